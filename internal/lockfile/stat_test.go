//go:build linux

package lockfile

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func sumOf(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// later moves the cache's clock past the racy window of files just written.
func later(c *StatCache) { c.Now = func() time.Time { return time.Now().Add(10 * Racy) } }

func TestStatCacheFastPathAndMismatches(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "model.tflite")
	orig := []byte("0123456789abcdef")
	if err := os.WriteFile(p, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	cachePath := filepath.Join(dir, "job.lock.stat")
	c := OpenStatCache(cachePath)
	later(c)
	f, hit, err := c.Digest(p)
	if err != nil || hit || f.SHA256 != sumOf(orig) || f.Size != 16 || f.Path != "model.tflite" {
		t.Fatalf("first digest: %+v hit=%v err=%v", f, hit, err)
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}

	// A new process: the saved entry is trusted, nothing is read.
	c = OpenStatCache(cachePath)
	if f, hit, _ := c.Digest(p); !hit || f.SHA256 != sumOf(orig) || c.Hashed != 0 {
		t.Fatalf("unchanged file: hit=%v hashed=%d", hit, c.Hashed)
	}

	mtime := time.Unix(1_600_000_000, 0)
	for _, tc := range []struct {
		name   string
		change func(t *testing.T) []byte
	}{
		{"rewritten in place, same size, mtime set back", func(t *testing.T) []byte {
			b := []byte("0123456789abcdeX")
			fi, _ := os.Stat(p)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			// Only the ctime and the racy rule can tell now.
			if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
			return b
		}},
		{"replaced by rename, same size and mtime", func(t *testing.T) []byte {
			b := []byte("Y123456789abcdeX")
			tmp := filepath.Join(dir, "new")
			if err := os.WriteFile(tmp, b, 0o644); err != nil {
				t.Fatal(err)
			}
			fi, _ := os.Stat(p)
			os.Chtimes(tmp, fi.ModTime(), fi.ModTime())
			if err := os.Rename(tmp, p); err != nil {
				t.Fatal(err)
			}
			return b
		}},
		{"old mtime written back after an edit", func(t *testing.T) []byte {
			b := []byte("Z123456789abcdeX")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(p, mtime, mtime)
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Settle the entry first so that it is trusted.
			c := OpenStatCache(cachePath)
			later(c)
			c.Digest(p)
			c.Save()
			want := tc.change(t)
			c = OpenStatCache(cachePath)
			later(c)
			f, hit, err := c.Digest(p)
			if err != nil || hit || f.SHA256 != sumOf(want) {
				t.Fatalf("changed file served from the cache: hit=%v sum=%s want %s err=%v", hit, f.SHA256, sumOf(want), err)
			}
			c.Save()
		})
	}
}

func TestStatCacheRacyEntryIsRehashed(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.tflite")
	os.WriteFile(p, []byte("abc"), 0o644)
	c := OpenStatCache(filepath.Join(dir, "j.lock.stat"))
	c.Digest(p) // taken right after the write: racy
	c.Save()
	c = OpenStatCache(filepath.Join(dir, "j.lock.stat"))
	if _, hit, _ := c.Digest(p); hit {
		t.Fatal("an entry taken within Racy of the file's change was trusted")
	}
	// The rehash moved the entry's time only to now: still racy until
	// Racy has passed.
	later(c)
	c.Digest(p)
	c.Save()
	c = OpenStatCache(filepath.Join(dir, "j.lock.stat"))
	if _, hit, _ := c.Digest(p); !hit {
		t.Fatal("a settled entry was not trusted")
	}
}

func TestStatCacheCorruptOrMissing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m")
	os.WriteFile(p, []byte("m"), 0o644)
	cp := filepath.Join(dir, "j.lock.stat")
	for _, text := range []string{"", "garbage", statHeader + "zz 1 2 3 4 5 6 \"m\"\n", statHeader + sumOf([]byte("x")) + " 1 2 3 4 5 6 unquoted\n"} {
		os.WriteFile(cp, []byte(text), 0o644)
		c := OpenStatCache(cp)
		if len(c.entries) != 0 {
			t.Fatalf("%q: kept %d entries", text, len(c.entries))
		}
		if f, hit, err := c.Digest(p); err != nil || hit || f.SHA256 != sumOf([]byte("m")) {
			t.Fatalf("%q: %+v %v %v", text, f, hit, err)
		}
	}
	c := OpenStatCache(filepath.Join(dir, "none.stat"))
	if _, _, err := c.Digest(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("digest of a missing file")
	}
	if _, _, err := c.Digest(dir); err == nil {
		t.Fatal("digest of a folder")
	}
}

// TestMemoryStatCache: the in-memory cache reads an unchanged file once,
// also when asked from several goroutines, rehashes it after a change,
// and never writes anything.
func TestMemoryStatCache(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "model.tflite")
	if err := os.WriteFile(p, []byte("first"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := NewStatCache()
	later(c)
	if f, hit, err := c.Digest(p); err != nil || hit || f.SHA256 != sumOf([]byte("first")) {
		t.Fatalf("first digest: %+v hit=%v err=%v", f, hit, err)
	}
	done := make(chan bool)
	for range 4 {
		go func() {
			f, hit, err := c.Digest(p)
			done <- err == nil && hit && f.SHA256 == sumOf([]byte("first"))
		}()
	}
	for range 4 {
		if !<-done {
			t.Error("an unchanged file was not served from memory")
		}
	}
	if c.Hashed != 1 {
		t.Errorf("hashed %d times, want 1", c.Hashed)
	}
	if err := os.WriteFile(p, []byte("second"), 0o644); err != nil {
		t.Fatal(err)
	}
	if f, hit, _ := c.Digest(p); hit || f.SHA256 != sumOf([]byte("second")) {
		t.Errorf("changed file: hit=%v sum %s", hit, f.SHA256)
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the memory cache wrote files: %d entries in its folder", len(entries))
	}
}
