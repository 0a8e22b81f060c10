// Package atomicfile writes small files whole or not at all: the data goes
// to a temporary file with a unique name in the destination's folder, which
// is renamed over the destination when complete. A reader never sees half a
// file, and two writers of the same path never share a temporary file (the
// last rename wins, whole).
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile writes data to path atomically with mode perm (not filtered by
// the umask, so that outputs have the same mode on every machine). With
// mkdir, missing parent folders are created (mode 0755). Errors name path.
func WriteFile(path string, data []byte, perm os.FileMode, mkdir bool) error {
	dir := filepath.Dir(path)
	if mkdir {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, perm)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
