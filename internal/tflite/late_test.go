package tflite

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// TestLateTablesAndContents: a content that fills in table values and a
// Late content computed by another one are both in the file WriteFile
// writes; Write refuses such a model.
func TestLateTablesAndContents(t *testing.T) {
	var done atomic.Bool
	scale := []float32{0, 0, 0, 0}
	weights := ContentFunc{N: 64, Write: func(w io.Writer) error {
		for i := range scale {
			scale[i] = float32(i + 1) // computed while the bytes are produced
		}
		done.Store(true)
		_, err := w.Write(bytes.Repeat([]byte{7}, 64))
		return err
	}}
	late := Late{Content: ContentFunc{N: 16, Write: func(w io.Writer) error {
		if !done.Load() {
			return io.ErrUnexpectedEOF // would mean the Late content ran first
		}
		_, err := w.Write(bytes.Repeat([]byte{9}, 16))
		return err
	}}}
	m := syntheticModel(4, 16, weights)
	wt := m.Meta.Subgraphs[0].Tensors[1]
	wt.Type = fb.TensorTypeINT8
	wt.Quantization = &fb.QuantizationParametersT{Scale: scale, ZeroPoint: make([]int64, 4)}
	extra := m.AddBuffer(late)
	m.LateTables = true

	if _, err := Write(io.Discard, m, WriteOptions{}); err == nil || !strings.Contains(err.Error(), "WriteFile") {
		t.Fatalf("Write: %v, want a refusal that points to WriteFile", err)
	}
	for _, l := range []Layout{LayoutInline, LayoutOffset} {
		for i := range scale {
			scale[i] = 0
		}
		done.Store(false)
		path := filepath.Join(t.TempDir(), "late.tflite")
		if err := WriteFile(context.Background(), path, m, WriteOptions{Layout: l, Workers: 4}); err != nil {
			t.Fatalf("%v: %v", l, err)
		}
		got, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if s := got.Meta.Subgraphs[0].Tensors[1].Quantization.Scale; len(s) != 4 || s[0] != 1 || s[3] != 4 {
			t.Errorf("%v: scales %v, want the values filled in while writing", l, s)
		}
		b, err := ReadAll(got.Buffers[extra].Data)
		if err != nil || !bytes.Equal(b, bytes.Repeat([]byte{9}, 16)) {
			t.Errorf("%v: late buffer %v, %v", l, b, err)
		}
		got.Close()
	}
}
