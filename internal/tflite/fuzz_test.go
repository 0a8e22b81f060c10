package tflite

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// maxSeed is the largest test model used as a fuzzing seed. The fuzzing
// engine mutates and minimizes whole inputs, and on multi-megabyte inputs it
// stalls for tens of seconds per new finding; the larger models are covered
// by the table-driven tests.
const maxSeed = 1 << 20

// FuzzRead feeds the reader arbitrary bytes, seeded from every test model
// up to maxSeed bytes. Reading must never panic and must fail with a
// *FormatError; whatever reads must write, the written file must read back
// to the same tables and bytes, and writing that again must give the same
// file.
func FuzzRead(f *testing.F) {
	for _, path := range testModels(f) {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		if len(data) <= maxSeed {
			f.Add(data)
		}
	}
	// Forms the test models lack: a small model in the offset layout, and
	// one whose custom options are stored after the flatbuffer.
	m := syntheticModel(4, 8, pattern(1, 4*8*4), pattern(2, 4*8*4))
	var b bytes.Buffer
	if _, err := Write(&b, m, WriteOptions{Layout: LayoutOffset}); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	m.Meta.Subgraphs[0].Operators[1].BuiltinOptions = nil
	m.LargeCustomOptions = map[*fb.OperatorT]Content{m.Meta.Subgraphs[0].Operators[1]: Bytes("custom options")}
	b.Reset()
	if _, err := Write(&b, m, WriteOptions{Layout: LayoutInline}); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Read(bytes.NewReader(data), int64(len(data)), "fuzz.tflite")
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error is %T, not *FormatError: %v", err, err)
			}
			return
		}
		defer m.Close()
		layout := LayoutInline
		if m.Layout == LayoutOffset {
			layout = LayoutOffset
		}
		var first bytes.Buffer
		if _, err := Write(&first, m, WriteOptions{Layout: layout}); err != nil {
			t.Fatalf("read but cannot write: %v", err)
		}
		r, err := Read(bytes.NewReader(first.Bytes()), int64(first.Len()), "rewritten.tflite")
		if err != nil {
			t.Fatalf("written file does not read: %v", err)
		}
		defer r.Close()
		var second bytes.Buffer
		if _, err := Write(&second, r, WriteOptions{Layout: layout}); err != nil {
			t.Fatalf("rewritten model cannot be written: %v", err)
		}
		if !bytes.Equal(first.Bytes(), second.Bytes()) {
			t.Fatal("write → read → write is not a fixed point")
		}
		compareModels(t, m, r)
	})
}

// compareModels checks that b holds what a holds, up to what a round trip
// legitimately changes (buffer and custom-option offsets, buffer_location
// in the inline layout). It clears the large custom option offsets of both
// models' operators.
func compareModels(t *testing.T, a, b *Model) {
	t.Helper()
	if len(a.Buffers) != len(b.Buffers) {
		t.Fatalf("%d buffers read back as %d", len(a.Buffers), len(b.Buffers))
	}
	for i := range a.Buffers {
		x, y := a.Buffers[i].Data, b.Buffers[i].Data
		if (x == nil) != (y == nil) {
			t.Fatalf("buffer %d: data present %v, read back %v", i, x != nil, y != nil)
		}
		xb, err1 := ReadAll(x)
		yb, err2 := ReadAll(y)
		if err1 != nil || err2 != nil || !bytes.Equal(xb, yb) {
			t.Fatalf("buffer %d: bytes differ (%v, %v)", i, err1, err2)
		}
	}
	for _, m := range []*Model{a, b} {
		for _, sg := range m.Meta.Subgraphs {
			for _, op := range sg.Operators {
				c, ok := m.LargeCustomOptions[op]
				if !ok {
					continue
				}
				op.LargeCustomOptionsOffset = 0
				cb, err := ReadAll(c)
				if err != nil {
					t.Fatal(err)
				}
				op.CustomOptions = cb // compared with the tables below
			}
		}
	}
	if !deepEqual(comparableMeta(a), comparableMeta(b)) {
		t.Fatal("tables differ after a round trip")
	}
}
