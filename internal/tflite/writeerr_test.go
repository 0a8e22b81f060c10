package tflite

import (
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
