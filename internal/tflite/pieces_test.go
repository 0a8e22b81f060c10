package tflite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// streamModel writes a model with a large weight (read by positioned
// reads), a small one (read through the mapping) and returns its path and
// the weights' bytes.
func streamModel(t *testing.T, dir string) (string, [][]byte) {
	t.Helper()
	sizes := []int64{3<<20 + 48, 64 << 10}
	var want [][]byte
	var weights []Content
	for i, n := range sizes {
		var b bytes.Buffer
		if err := pattern(uint64(i+7), n).Write(&b); err != nil {
			t.Fatal(err)
		}
		want = append(want, b.Bytes())
		weights = append(weights, Bytes(b.Bytes()))
	}
	path := filepath.Join(dir, "stream.tflite")
	if err := WriteFile(context.Background(), path, syntheticModel(4, 4, weights...), WriteOptions{Layout: LayoutOffset}); err != nil {
		t.Fatal(err)
	}
	return path, want
}

// weightSections returns the model's weight contents in syntheticModel's
// order.
func weightContents(m *Model) []Content {
	var out []Content
	for _, tensor := range m.Meta.Subgraphs[0].Tensors {
		if strings.HasSuffix(tensor.Name, "/weight") {
			out = append(out, m.Buffers[tensor.Buffer].Data)
		}
	}
	return out
}

// readAllPieces reads c with ReadPieces and checks the pieces' sizes.
func readAllPieces(t *testing.T, c Content, size int) []byte {
	t.Helper()
	p, err := ReadPieces(c, size)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var got []byte
	for {
		b, err := p.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if left := c.Len() - int64(len(got)); int64(len(b)) != min(int64(size), left) {
			t.Fatalf("piece of %d bytes at %d, want %d", len(b), len(got), min(int64(size), left))
		}
		got = append(got, b...)
	}
	if _, err := p.Next(); err != io.EOF {
		t.Fatalf("Next after the end: %v, want io.EOF", err)
	}
	return got
}

// TestPieces reads weights in pieces from every kind of input: a mapped
// file (Open, and Read of an *os.File), a plain io.ReaderAt, and bytes in
// memory, with piece sizes that do and do not divide the weight.
func TestPieces(t *testing.T) {
	path, want := streamModel(t, t.TempDir())
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	inputs := map[string]func() (*Model, error){
		"Open":        func() (*Model, error) { return Open(path) },
		"Read(file)":  func() (*Model, error) { return Read(f, int64(len(data)), path) },
		"Read(bytes)": func() (*Model, error) { return Read(bytes.NewReader(data), int64(len(data)), "bytes") },
	}
	for name, open := range inputs {
		t.Run(name, func(t *testing.T) {
			m, err := open()
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			for i, c := range weightContents(m) {
				for _, size := range []int{4096 + 4, 1 << 20, int(c.Len()), 5 << 20} {
					if got := readAllPieces(t, c, size); !bytes.Equal(got, want[i]) {
						t.Errorf("weight %d in pieces of %d: bytes differ", i, size)
					}
				}
			}
		})
	}
	t.Run("Bytes", func(t *testing.T) {
		if got := readAllPieces(t, Bytes(want[0]), 1<<20); !bytes.Equal(got, want[0]) {
			t.Error("bytes differ")
		}
	})
}

// TestPiecesErrors: a bad piece size, a closed model and an input file cut
// short while it is read give errors, not a crash (reading a truncated
// file through its mapping would raise SIGBUS).
func TestPiecesErrors(t *testing.T) {
	if _, err := ReadPieces(Bytes{1}, 0); err == nil {
		t.Error("piece size 0 accepted")
	}
	path, _ := streamModel(t, t.TempDir())

	m, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	big := weightContents(m)[0]
	p, err := ReadPieces(big, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Next(); err != nil {
		t.Fatal(err)
	}
	m.Close()
	var closedErr error
	for closedErr == nil {
		_, closedErr = p.Next()
	}
	p.Close()
	if closedErr == io.EOF {
		t.Errorf("reading after Close reached the end without an error")
	}

	m, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	big = weightContents(m)[0]
	s := big.(*Section)
	if err := os.Truncate(path, s.Offset()+s.Len()/2); err != nil {
		t.Fatal(err)
	}
	p, err = ReadPieces(big, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for err == nil {
		_, err = p.Next()
	}
	if err == io.EOF || !strings.Contains(err.Error(), path) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated input: %v, want an unexpected-EOF error naming %s", err, path)
	}
	if _, err := big.WriteTo(io.Discard); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("WriteTo of the truncated input: %v, want an error naming %s", err, path)
	}
}

// TestWriteFileCopiesUnchanged: a model whose large buffers are unchanged
// sections of its input is written with the kernel's file-to-file copy
// where it is offered, through memory where not (turned off, or another
// file system) and by Write; every way gives the same bytes.
func TestWriteFileCopiesUnchanged(t *testing.T) {
	dirs := []string{t.TempDir()}
	if shm, err := os.MkdirTemp("/dev/shm", "qpipe-test-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(shm) })
		dirs = append(dirs, shm) // tmpfs: copy_file_range to the temp dir may be refused (EXDEV)
	}
	var want []byte
	for _, dir := range dirs {
		in, _ := streamModel(t, dir)
		m, err := Open(in)
		if err != nil {
			t.Fatal(err)
		}
		var streamed bytes.Buffer
		if _, err := Write(&streamed, m, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if want == nil {
			want = streamed.Bytes()
		}
		if !bytes.Equal(streamed.Bytes(), want) {
			t.Errorf("%s: Write gives other bytes", dir)
		}
		for _, kernel := range []bool{true, false} {
			kernelCopy = kernel
			out := filepath.Join(t.TempDir(), fmt.Sprintf("out-%v.tflite", kernel))
			err := WriteFile(context.Background(), out, m, WriteOptions{})
			kernelCopy = true
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s, kernel copy %v: WriteFile gives other bytes than Write", dir, kernel)
			}
		}
		m.Close()
	}
}

// overlong is content that hands the writer more bytes than its Len
// through ReadFrom.
type overlong struct {
	f *os.File
	n int64
}

func (o overlong) Len() int64 { return o.n }

func (o overlong) WriteTo(w io.Writer) (int64, error) {
	return ReadFrom(w, io.NewSectionReader(o.f, 0, o.n+1))
}

// TestReadFromBounded: content cannot write past its Len through
// ReadFrom either.
func TestReadFromBounded(t *testing.T) {
	path, _ := streamModel(t, t.TempDir())
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := syntheticModel(4, 4, overlong{f, 1 << 20}, Bytes(make([]byte, 64)))
	out := filepath.Join(t.TempDir(), "out.tflite")
	if err := WriteFile(context.Background(), out, m, WriteOptions{}); err == nil || !strings.Contains(err.Error(), "more bytes than its Len") {
		t.Errorf("WriteFile: %v, want an error about too many bytes", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("output left behind")
	}
}
