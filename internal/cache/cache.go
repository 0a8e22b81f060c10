// Package cache says where qpipe keeps what it measured between runs
// (calibration statistics, budget sensitivities) and names the files:
// one resolution of the folder for every cache, keyed and versioned
// names, atomic writes.
//
// The folder is $QPIPE_CACHE_DIR, else $XDG_CACHE_HOME/qpipe, else
// ~/.cache/qpipe (os.UserCacheDir). QPIPE_CACHE_DIR=off turns every cache
// off: nothing is read or written anywhere.
package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/qpipe/qpipe/internal/atomicfile"
)

// EnvVar is the environment variable that overrides the folder; Off as its
// value turns caching off.
const (
	EnvVar = "QPIPE_CACHE_DIR"
	Off    = "off"
)

// Dir is the cache folder, or "" when caching is off or no folder can be
// determined.
func Dir() string {
	if d, ok := os.LookupEnv(EnvVar); ok && d != "" {
		if d == Off {
			return ""
		}
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "qpipe")
}

// File is the path of the cache file of kind (a short word: "calibration",
// "sensitivity") for key, format version and extension ext, in dir; ""
// when dir is "" (caching off). The key is hashed, so any string may be
// one; the version is part of the name, so a new format never reads an old
// file.
func File(dir, kind, key string, version int, ext string) string {
	if dir == "" {
		return ""
	}
	h := sha256.Sum256([]byte(key))
	return filepath.Join(dir, fmt.Sprintf("%s-v%d-%s.%s", kind, version, hex.EncodeToString(h[:12]), ext))
}

// Write stores data in file atomically (unique temporary name, renamed
// when complete), creating the folder; file "" is a no-op.
func Write(file string, data []byte) error {
	if file == "" {
		return nil
	}
	return atomicfile.WriteFile(file, data, 0o644, true)
}
