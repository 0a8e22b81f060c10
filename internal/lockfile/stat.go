package lockfile

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/qpipe/qpipe/internal/atomicfile"
)

// StatCache remembers, for files hashed before, the digest together with
// the file's stat data: size, modification time, change time, inode and
// device. Digest returns the remembered digest without reading the file
// when all five are unchanged, and rehashes on any mismatch, as make,
// ninja and git's index do.
//
// Why this is safe enough: rewriting a file in place changes its mtime and
// ctime, replacing it (rename, cp to a new file) changes its inode and
// ctime, and unlike the mtime the ctime cannot be set back by a program
// (touch -d, cp -p, rsync -t set the mtime only). A change made within the
// timestamp granularity of the moment the digest was taken could keep all
// five; so an entry is trusted only when the file's mtime and ctime are at
// least Racy older than the moment its digest was taken (git's "racily
// clean" rule), and rehashed otherwise. Files on systems without inode and
// ctime (non-Linux builds) are always rehashed.
//
// The cache is machine-local state, not part of the lock: it lives in
// JOB.lock.stat next to the lock (CachePathFor), is rewritten whenever it
// changes, and a missing or unreadable cache only costs a rehash.
type StatCache struct {
	path    string
	dir     string
	mu      sync.Mutex           // guards entries, dirty and Hashed (not held while hashing)
	entries map[string]statEntry // by path relative to dir
	dirty   bool

	// Now is the clock (tests move it).
	Now func() time.Time
	// Hashed counts the files read to compute a digest.
	Hashed int
}

// Racy is how much older than its digest a file must be for the cache
// to trust its stat data.
const Racy = 2 * time.Second

type statEntry struct {
	sum     string
	st      stamp
	checked int64 // unix ns when the digest was taken
}

// stamp is what the fast path compares.
type stamp struct {
	size, mtime, ctime int64
	ino, dev           uint64
}

// CachePathFor returns the stat cache of a lock file.
func CachePathFor(lockPath string) string { return lockPath + ".stat" }

const statHeader = "# qpipe stat cache: machine-local, safe to delete (README: Lock files)\nstat 1\n"

// NewStatCache returns an empty cache kept in memory only (Save does
// nothing), keyed by absolute paths: a process that needs a file's digest
// several times reads the file once. Safe for concurrent use.
func NewStatCache() *StatCache {
	return &StatCache{dir: string(filepath.Separator), entries: map[string]statEntry{}, Now: time.Now}
}

// OpenStatCache reads the stat cache at path; a missing or malformed file
// gives an empty cache (it is only a cache).
func OpenStatCache(path string) *StatCache {
	c := &StatCache{path: path, dir: filepath.Dir(path), entries: map[string]statEntry{}, Now: time.Now}
	data, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(data, []byte(statHeader)) {
		return c
	}
	sc := bufio.NewScanner(bytes.NewReader(data[len(statHeader):]))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 8)
		if len(f) != 8 || !isHexDigest(f[0]) {
			return &StatCache{path: path, dir: c.dir, entries: map[string]statEntry{}, Now: time.Now}
		}
		var n [6]int64
		ok := true
		for i := range n {
			v, err := strconv.ParseInt(f[i+1], 10, 64)
			ok = ok && err == nil
			n[i] = v
		}
		p, err := strconv.Unquote(f[7])
		if !ok || err != nil {
			return &StatCache{path: path, dir: c.dir, entries: map[string]statEntry{}, Now: time.Now}
		}
		c.entries[p] = statEntry{sum: f[0], checked: n[5],
			st: stamp{size: n[0], mtime: n[1], ctime: n[2], ino: uint64(n[3]), dev: uint64(n[4])}}
	}
	return c
}

// Digest returns the file's path (relative to the cache's folder), size
// and sha256, from the cache when the stat data allow it (fromCache), else
// by reading the file and remembering the result.
func (c *StatCache) Digest(path string) (f File, fromCache bool, err error) {
	rel := Rel(c.dir, path)
	fi, err := os.Stat(path)
	if err != nil {
		return File{}, false, err
	}
	if fi.IsDir() {
		return File{}, false, fmt.Errorf("%s is a folder, not a file", path)
	}
	st, ok := stampOf(fi)
	c.mu.Lock()
	e, hit := c.entries[rel]
	c.mu.Unlock()
	if ok && hit && e.st == st && e.checked-max(st.mtime, st.ctime) >= int64(Racy) {
		return File{Path: rel, Size: st.size, SHA256: e.sum}, true, nil
	}
	checked := c.Now().UnixNano()
	sum, size, after, err := hashFile(path)
	if err != nil {
		return File{}, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Hashed++
	if ok && after == st {
		c.entries[rel] = statEntry{sum: sum, st: st, checked: checked}
		c.dirty = true
	} else if _, hit := c.entries[rel]; hit {
		// Changed while it was read: remember nothing.
		delete(c.entries, rel)
		c.dirty = true
	}
	return File{Path: rel, Size: size, SHA256: sum}, false, nil
}

// Forget drops the entry of path (e.g. an output about to be replaced).
func (c *StatCache) Forget(path string) {
	rel := Rel(c.dir, path)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[rel]; ok {
		delete(c.entries, rel)
		c.dirty = true
	}
}

// Save writes the cache atomically if it changed.
func (c *StatCache) Save() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty || c.path == "" {
		return nil
	}
	keys := make([]string, 0, len(c.entries))
	for k := range c.entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString(statHeader)
	for _, k := range keys {
		e := c.entries[k]
		fmt.Fprintf(&b, "%s %d %d %d %d %d %d %s\n", e.sum, e.st.size, e.st.mtime, e.st.ctime, int64(e.st.ino), int64(e.st.dev), e.checked, strconv.Quote(k))
	}
	if err := atomicfile.WriteFile(c.path, b.Bytes(), 0o644, false); err != nil {
		return err
	}
	c.dirty = false
	return nil
}

// hashFile reads the file once and returns its sha256, its size and the
// stat data of the open file after reading.
func hashFile(path string) (sum string, size int64, after stamp, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, stamp{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, stamp{}, fmt.Errorf("read %s: %w", path, err)
	}
	if fi, err := f.Stat(); err == nil {
		after, _ = stampOf(fi)
	}
	return hex.EncodeToString(h.Sum(nil)), n, after, nil
}

// SHA256 hashes a file without any cache.
func SHA256(path string) (File, error) {
	sum, size, _, err := hashFile(path)
	return File{Path: path, Size: size, SHA256: sum}, err
}
