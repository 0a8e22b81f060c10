package litertlm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzRead feeds the reader arbitrary bytes, seeded with the upstream test
// bundles (cut to 32 KiB) and a compact bundle of three tiny sections
// (small inputs keep the fuzzing engine's minimisation fast). Reading must never panic and must fail
// with a *FormatError; a bundle that reads must write back, with nothing
// replaced, to a file that reads to the same section table.
func FuzzRead(f *testing.F) {
	for _, p := range []string{mnistBundle, hfBundle} {
		d, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(d[:min(len(d), 2*BlockSize)])
	}
	f.Add(compact(f))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Read(bytes.NewReader(data), int64(len(data)), "fuzz")
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FormatError", err)
			}
			return
		}
		out := filepath.Join(dir, "out.litertlm")
		if err := WriteFile(context.Background(), out, b, nil, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		again, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Read(bytes.NewReader(again), int64(len(again)), "again")
		if err != nil {
			t.Fatalf("written bundle does not read back: %v", err)
		}
		if len(r.Sections) != len(b.Sections) || !reflect.DeepEqual(fmtKV(r.System), fmtKV(b.System)) {
			t.Fatal("section table or metadata changed")
		}
		for i, s := range b.Sections {
			if !bytes.Equal(sectionBytes(t, r, i), sectionBytes(t, b, i)) {
				t.Fatalf("section %d changed", i)
			}
			if r.Sections[i].Type != s.Type {
				t.Fatalf("section %d's type changed", i)
			}
		}
	})
}

// fmtKV compares values that may be NaN.
func fmtKV(kvs []KV) []string {
	var out []string
	for _, kv := range kvs {
		out = append(out, kv.Key+"="+fmtAny(kv.Value))
	}
	return out
}

func fmtAny(v any) string { return reflect.ValueOf(&v).Elem().String() + "|" + sprint(v) }

func sprint(v any) string { return fmt.Sprint(v) }

// compact is a bundle of New's header with three tiny unaligned sections
// right after it (Read does not require alignment; upstream's readers do
// not either).
func compact(t testing.TB) []byte {
	b, err := New([]KV{{"k", "v"}, {"n", int64(1)}}, []NewSection{
		{Type: TypeSPTokenizer},
		{Type: TypeTFLiteModel, Items: []KV{{"model_type", "tf_lite_prefill_decode"}}},
		{Type: TypeHFTokenizerZlib},
	})
	if err != nil {
		t.Fatal(err)
	}
	parts := [][]byte{{0x0a, 1, 'x'}, []byte("\x08\x00\x00\x00TFL3\x00\x00"), {9, 0, 0, 0, 0, 0, 0, 0, 0x78, 0x9c, 3, 0}}
	at := b.HeaderEnd()
	begin, end := make([]int64, 3), make([]int64, 3)
	for i, p := range parts {
		begin[i], end[i] = at, at+int64(len(p))
		at = end[i]
	}
	d := b.Header(begin, end)
	for _, p := range parts {
		d = append(d, p...)
	}
	return d
}
