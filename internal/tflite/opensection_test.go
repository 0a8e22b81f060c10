package tflite

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestOpenSection reads the TFLiteModel section of an upstream LiteRT-LM
// bundle in place and checks it against the bare model it holds: the same
// bytes when written, and WriteAt places exactly WriteFile's bytes at an
// offset of another file.
func TestOpenSection(t *testing.T) {
	const bundle = "../../testdata/models/aeq_conv_fc_mnist.litertlm"
	const off, end = 16384, 221424 // its section table (internal/litertlm tests)
	m, err := OpenSection(bundle, off, end-off, "mnist section")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	bare, err := Open("../../testdata/models/aeq_conv_fc_mnist.tflite")
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	var a, b bytes.Buffer
	if _, err := Write(&a, m, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(&b, bare, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("the section and the bare model write different bytes")
	}
	for _, buf := range m.Buffers {
		if s, ok := buf.Data.(*Section); ok && s.Len() > 0 && (s.Offset() < off || s.Offset()+s.Len() > end) {
			t.Errorf("buffer section [%d, %d) is outside the bundle's section", s.Offset(), s.Offset()+s.Len())
		}
	}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "at"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const base = 3 << 14
	if err := WriteAt(context.Background(), f, base, m, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "whole.tflite")
	if err := WriteFile(context.Background(), want, m, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	w, _ := os.ReadFile(want)
	got, _ := os.ReadFile(f.Name())
	// WriteAt leaves trailing padding to the file's truncation.
	got = append(got, make([]byte, max(0, base+len(w)-len(got)))...)
	if len(got) != base+len(w) || !bytes.Equal(got[base:], w) {
		t.Errorf("WriteAt wrote %d bytes, want %d at %d", len(got), len(w), base)
	}
	if _, err := OpenSection(bundle, off, 1<<40, "x"); err == nil {
		t.Error("a section past the end of the file was accepted")
	}
}
