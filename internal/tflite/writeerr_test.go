package tflite

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// failingContent fails like a full disk once its first write is done.
type failingContent struct{ n int64 }

func (c failingContent) Len() int64 { return c.n }
func (c failingContent) WriteTo(w io.Writer) (int64, error) {
	return 0, &os.PathError{Op: "write", Path: "/out/.x.tmp-1", Err: syscall.ENOSPC}
}

// A write that fails (a full disk) names the output being written, not the
// model's input: "tflite: writing /tmp/in.tflite: … no space left on
// device" sent users to the wrong file (issue 21).
func TestWriteFileErrorNamesOutput(t *testing.T) {
	m := syntheticModel(4, 4, failingContent{64})
	m.Name = "/tmp/in.tflite"
	out := filepath.Join(t.TempDir(), "out.tflite")
	err := WriteFile(context.Background(), out, m, WriteOptions{})
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "writing "+out) || strings.Contains(err.Error(), "writing /tmp/in.tflite") {
		t.Errorf("error %v: want it to name %s", err, out)
	}
}

// countingContent writes its bytes in small pieces.
type piecesContent struct{ n, piece int64 }

func (c piecesContent) Len() int64 { return c.n }
func (c piecesContent) WriteTo(w io.Writer) (int64, error) {
	var done int64
	buf := make([]byte, c.piece)
	for done < c.n {
		k, err := w.Write(buf[:min(c.piece, c.n-done)])
		done += int64(k)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// The context given to WriteFile stops the writing of every content at its
// next write, and no file is left behind.
func TestWriteFileCancelled(t *testing.T) {
	m := syntheticModel(512, 512, piecesContent{1 << 20, 4096})
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := WriteFile(ctx, filepath.Join(dir, "out.tflite"), m, WriteOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled write: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files left behind: %v", ents)
	}
}

// readerFromContent hands its bytes over as an io.SectionReader, as a
// Section of a file does.
type readerFromContent struct{ data []byte }

func (c readerFromContent) Len() int64 { return int64(len(c.data)) }
func (c readerFromContent) WriteTo(w io.Writer) (int64, error) {
	return ReadFrom(w, io.NewSectionReader(bytes.NewReader(c.data), 0, int64(len(c.data))))
}

type recordingWriter struct {
	bytes.Buffer
	readFrom bool
}

func (w *recordingWriter) ReadFrom(r io.Reader) (int64, error) {
	w.readFrom = true
	return w.Buffer.ReadFrom(r)
}

// The context check keeps the file writer's ReadFrom (the in-kernel copy)
// reachable through writeItem's wrappers.
func TestWriteItemKeepsReadFrom(t *testing.T) {
	w := &recordingWriter{}
	c := readerFromContent{[]byte("0123456789abcdef")}
	if err := writeItem(context.Background(), w, item{what: "buffer 1", content: c, n: c.Len()}, "out.tflite"); err != nil {
		t.Fatal(err)
	}
	if !w.readFrom || w.String() != "0123456789abcdef" {
		t.Errorf("ReadFrom used %t, wrote %q", w.readFrom, w.String())
	}
}
