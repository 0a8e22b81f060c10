package atomicfile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "f.json")
	if err := WriteFile(path, []byte("x"), 0o644, false); err == nil {
		t.Fatal("a missing folder without mkdir: want an error")
	} else if !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q does not name %s", err, path)
	}
	if err := WriteFile(path, []byte("one"), 0o640, true); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("two"), 0o644, true); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if string(got) != "two" {
		t.Fatalf("content %q, want two", got)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644", st.Mode().Perm())
	}
	left, _ := filepath.Glob(filepath.Join(dir, "a", "b", ".*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// Concurrent writers of one path (two --jobs workers caching the same
// model's measurements) never share a temporary file: the result is one
// writer's data, whole.
func TestWriteFileConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cache.json")
	var wg sync.WaitGroup
	datas := make([][]byte, 8)
	for i := range datas {
		datas[i] = bytes.Repeat([]byte(fmt.Sprintf("%d", i)), 1<<16)
	}
	for round := 0; round < 20; round++ {
		for i := range datas {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if err := WriteFile(path, datas[i], 0o644, true); err != nil {
					t.Error(err)
				}
			}(i)
		}
		wg.Wait()
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		whole := false
		for _, d := range datas {
			whole = whole || bytes.Equal(got, d)
		}
		if !whole {
			t.Fatalf("round %d: the file is a mix of writers (%d bytes)", round, len(got))
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestWriteFileReadOnlyFolder(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes into read-only folders")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o555)
	defer os.Chmod(dir, 0o755)
	if err := WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644, false); err == nil {
		t.Fatal("want an error")
	}
}
