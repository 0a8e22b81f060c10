package tflite

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestCopyRange: copy_file_range copies a range at other offsets within one
// file system, and what the kernel refuses (tmpfs to the test's folder:
// EXDEV since Linux 5.19) comes back as errNoKernelCopy with nothing
// copied, so that the writer copies through memory.
func TestCopyRange(t *testing.T) {
	src := make([]byte, 3<<20+5000)
	for i := range src {
		src[i] = byte(i * 13 >> 3)
	}
	dirs := []string{t.TempDir()}
	if shm, err := os.MkdirTemp("/dev/shm", "qpipe-test-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(shm) })
		dirs = append(dirs, shm)
	}
	for _, dir := range dirs {
		in := filepath.Join(dir, "in")
		if err := os.WriteFile(in, src, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := os.Open(in)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		w, err := os.Create(filepath.Join(t.TempDir(), "out"))
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		const srcOff, dstOff, n = 4100, 100, 3 << 20
		got, err := copyRange(w, dstOff, r, srcOff, n)
		switch {
		case errors.Is(err, errNoKernelCopy):
			if dir == dirs[0] {
				t.Errorf("copy within %s refused", dir)
			}
			t.Logf("%s: the kernel declined (%d bytes copied first)", dir, got)
			continue
		case err != nil:
			t.Fatal(err)
		case got != n:
			t.Fatalf("copied %d bytes, want %d", got, n)
		}
		out := make([]byte, n)
		if _, err := w.ReadAt(out, dstOff); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, src[srcOff:srcOff+n]) {
			t.Errorf("%s: copied bytes differ", dir)
		}
		// Past the end of src: a short count, no error.
		if got, err := copyRange(w, 0, r, int64(len(src))-10, 100); err != nil && !errors.Is(err, errNoKernelCopy) || err == nil && got != 10 {
			t.Errorf("copy past the end: %d, %v; want 10 bytes", got, err)
		}
	}
}
