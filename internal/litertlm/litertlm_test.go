package litertlm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const (
	mnistBundle = "../../testdata/models/aeq_conv_fc_mnist.litertlm"
	hfBundle    = "../../testdata/models/litertlm_test_hf_tokenizer.litertlm"
	mnistTFLite = "../../testdata/models/aeq_conv_fc_mnist.tflite"
)

// bytesContent is section content held in memory.
type bytesContent []byte

func (c bytesContent) Len() int64 { return int64(len(c)) }
func (c bytesContent) WriteAt(_ context.Context, f *os.File, off int64) error {
	_, err := f.WriteAt(c, off)
	return err
}

func readBytes(t testing.TB, data []byte, name string) (*Bundle, error) {
	t.Helper()
	return Read(bytes.NewReader(data), int64(len(data)), name)
}

func sectionBytes(t testing.TB, b *Bundle, i int) []byte {
	t.Helper()
	r := b.SectionReader(i)
	buf := make([]byte, r.Size())
	if _, err := r.ReadAt(buf, 0); err != nil && len(buf) > 0 {
		t.Fatal(err)
	}
	return buf
}

// TestUpstreamBundles reads the upstream test bundles: the section table
// and metadata upstream's tools print for them.
func TestUpstreamBundles(t *testing.T) {
	b, err := Open(mnistBundle)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Major != 1 || b.Minor != 5 || b.Patch != 0 || b.HeaderEnd() != 0x1d8 {
		t.Errorf("version %d.%d.%d header end %#x", b.Major, b.Minor, b.Patch, b.HeaderEnd())
	}
	if len(b.Sections) != 1 {
		t.Fatalf("%d sections", len(b.Sections))
	}
	s := b.Sections[0]
	if s.Type != TypeTFLiteModel || s.Begin != 16384 || s.End != 221424 || s.ModelType() != "tf_lite_embedder" {
		t.Errorf("section 0: %v [%d,%d) %q", s.Type, s.Begin, s.End, s.ModelType())
	}
	sys := map[string]any{}
	for _, kv := range b.System {
		sys[kv.Key] = kv.Value
	}
	if sys["Authors"] != "AI-Edge-Quantizer team" || sys["uuid"] == nil || sys["creation_timestamp"] == nil {
		t.Errorf("system metadata %v", b.System)
	}
	// The section is the bare model AEQ ships beside the bundle.
	bare, err := os.ReadFile(mnistTFLite)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sectionBytes(t, b, 0), bare) {
		t.Errorf("section 0 differs from %s", mnistTFLite)
	}

	h, err := Open(hfBundle)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if len(h.Sections) != 1 || h.Sections[0].Type != TypeHFTokenizerZlib || h.Sections[0].Begin != 16384 {
		t.Fatalf("hf bundle sections %+v", h.Sections[0])
	}
	if got := h.System; len(got) != 2 || got[0] != (KV{"arch", "all"}) || got[1] != (KV{"version", "0.1"}) {
		t.Errorf("hf system metadata %v", got)
	}
}

// TestRewriteIdentity: a bundle written with nothing replaced is the
// input, byte for byte.
func TestRewriteIdentity(t *testing.T) {
	for _, path := range []string{mnistBundle, hfBundle} {
		b, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "out.litertlm")
		if err := WriteFile(context.Background(), out, b, nil, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		b.Close()
		want, _ := os.ReadFile(path)
		got, _ := os.ReadFile(out)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: rewrite differs (%d bytes, input %d)", path, len(got), len(want))
		}
	}
}

// built writes a three-section bundle with New.
func built(t testing.TB) (path string, parts [][]byte) {
	t.Helper()
	model, err := os.ReadFile(mnistTFLite)
	if err != nil {
		t.Fatal(err)
	}
	parts = [][]byte{
		{0x0a, 3, 'a', 'b', 'c'}, // an SP_Tokenizer-like protobuf
		model,
		bytes.Repeat([]byte{7}, BlockSize+1), // weights crossing a block
	}
	b, err := New([]KV{{"Authors", "qpipe test"}, {"n", int64(-3)}, {"f", 0.5}, {"ok", true}},
		[]NewSection{
			{Type: TypeSPTokenizer},
			{Type: TypeTFLiteModel, Items: []KV{{"model_type", "tf_lite_prefill_decode"}}},
			{Type: TypeTFLiteWeights, Items: []KV{{"model_type", "tf_lite_prefill_decode"}, {"size", uint64(BlockSize + 1)}}},
		})
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "built.litertlm")
	repl := map[int]Content{0: bytesContent(parts[0]), 1: bytesContent(parts[1]), 2: bytesContent(parts[2])}
	if err := WriteFile(context.Background(), path, b, repl, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return path, parts
}

func checkAligned(t *testing.T, b *Bundle) {
	t.Helper()
	for _, s := range b.Sections {
		if s.Begin%BlockSize != 0 {
			t.Errorf("%s begins at %d, not on a %d-byte boundary", s.Name(), s.Begin, BlockSize)
		}
	}
}

// TestNewAndReplace builds a bundle, reads it back, replaces one section
// by a larger one and checks the others are byte-identical, the metadata
// unchanged and every section aligned.
func TestNewAndReplace(t *testing.T) {
	path, parts := built(t)
	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Size%BlockSize != 0 {
		t.Errorf("New's file of %d bytes is not padded to a block", b.Size)
	}
	checkAligned(t, b)
	for i, p := range parts {
		if !bytes.Equal(sectionBytes(t, b, i), p) {
			t.Errorf("section %d differs", i)
		}
	}
	wantSys := []KV{{"Authors", "qpipe test"}, {"n", int64(-3)}, {"f", 0.5}, {"ok", true}}
	if !reflect.DeepEqual(b.System, wantSys) {
		t.Errorf("system %v", b.System)
	}
	if v := b.Sections[2].Item("size"); v != uint64(BlockSize+1) {
		t.Errorf("item size = %v", v)
	}

	bigger := append(append([]byte(nil), parts[1]...), make([]byte, 3*BlockSize)...)
	out := filepath.Join(t.TempDir(), "replaced.litertlm")
	if err := WriteFile(context.Background(), out, b, map[int]Content{1: bytesContent(bigger)}, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	r, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkAligned(t, r)
	if !bytes.Equal(sectionBytes(t, r, 1), bigger) || !bytes.Equal(sectionBytes(t, r, 0), parts[0]) || !bytes.Equal(sectionBytes(t, r, 2), parts[2]) {
		t.Error("sections differ after replacing section 1")
	}
	if !reflect.DeepEqual(r.System, b.System) {
		t.Error("system metadata changed")
	}
	for i := range b.Sections {
		if !reflect.DeepEqual(r.Sections[i].Items, b.Sections[i].Items) || r.Sections[i].Type != b.Sections[i].Type {
			t.Errorf("section %d's type or items changed", i)
		}
	}
	// The header differs from the input's only in the offset fields.
	in, _ := os.ReadFile(path)
	got, _ := os.ReadFile(out)
	diff := 0
	for i := 0; i < int(b.HeaderEnd()); i++ {
		if in[i] != got[i] {
			diff++
		}
	}
	if diff == 0 || diff > 6*8 {
		t.Errorf("%d header bytes changed", diff)
	}
	if err := WriteFile(context.Background(), path, b, nil, WriteOptions{}); err == nil {
		t.Error("writing over the input bundle was not refused")
	}
}

// TestHostile: broken and lying bundles are refused with the place named.
func TestHostile(t *testing.T) {
	path, _ := built(t)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := readBytes(t, good, "good")
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	setOff := func(d []byte, sec int, begin bool, v uint64) {
		pos := b.Sections[sec].endPos
		if begin {
			pos = b.Sections[sec].beginPos
		}
		le.PutUint64(d[PreambleSize+pos:], v)
	}
	cases := []struct {
		name string
		edit func([]byte) []byte
		want string
	}{
		{"empty", func(d []byte) []byte { return nil }, "shorter than the 32-byte preamble"},
		{"preamble cut", func(d []byte) []byte { return d[:20] }, "shorter than the 32-byte preamble"},
		{"magic", func(d []byte) []byte { copy(d, "TFL3XXXX"); return d }, "not a LiteRT-LM bundle"},
		{"major version", func(d []byte) []byte { le.PutUint32(d[8:], 2); return d }, "only major version 1"},
		{"header end past EOF", func(d []byte) []byte { le.PutUint64(d[24:], uint64(len(d))+1); return d }, "past the end of the file"},
		{"header bomb", func(d []byte) []byte { le.PutUint64(d[24:], 1<<40); return d }, "header end offset"},
		{"header too small", func(d []byte) []byte { le.PutUint64(d[24:], 33); return d }, "no room for a header"},
		{"root outside", func(d []byte) []byte { le.PutUint32(d[32:], 1<<20); return d }, "header root"},
		{"truncated file", func(d []byte) []byte { return d[:len(d)-2*BlockSize] }, "section 2 (TFLiteWeights, tf_lite_prefill_decode): byte range"},
		{"end past EOF", func(d []byte) []byte { setOff(d, 1, false, uint64(len(d))+5); return d }, "section 1 (TFLiteModel, tf_lite_prefill_decode): byte range"},
		{"end before begin", func(d []byte) []byte { setOff(d, 0, false, 3); return d }, "section 0 (SP_Tokenizer): end offset 3 is before"},
		{"inside header", func(d []byte) []byte { setOff(d, 0, true, 40); return d }, "inside the header"},
		{"overlap", func(d []byte) []byte {
			setOff(d, 2, true, uint64(b.Sections[1].End-8))
			return d
		}, "overlaps section 1"},
		{"TFLite section lies", func(d []byte) []byte { copy(d[b.Sections[1].Begin+4:], "XXXX"); return d }, `section 1 (TFLiteModel, tf_lite_prefill_decode): a TFLiteModel section must be a TFLite flatbuffer`},
		{"protobuf section lies", func(d []byte) []byte { d[b.Sections[0].Begin] = 0x07; return d }, "section 0 (SP_Tokenizer): a SP_Tokenizer section must be a protobuf"},
		{"type NONE", func(d []byte) []byte {
			return setType(t, d, b, 0, 0)
		}, "section 0 (NONE): section type NONE"},
		{"huge section count", func(d []byte) []byte { return setSectionCount(t, d, 1<<30) }, "does not fit in the"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.edit(append([]byte(nil), good...))
			_, err := readBytes(t, d, "x.litertlm")
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *FormatError", err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "x.litertlm") {
				t.Errorf("err = %v\nwant it to contain %q and the file name", err, c.want)
			}
		})
	}
}

// setType rewrites section i's data_type byte.
func setType(t *testing.T, d []byte, b *Bundle, i int, typ byte) []byte {
	t.Helper()
	dec := &decoder{buf: d[PreambleSize:b.HeaderEnd()], fail: func(w string, p int, f string, a ...any) error { return errors.New(w) }}
	objs := sectionTables(t, dec)
	p, err := dec.field(objs[i], 3, 1, "")
	if err != nil || p < 0 {
		t.Fatal("no data_type field")
	}
	dec.buf[p] = typ
	return d
}

func sectionTables(t *testing.T, dec *decoder) []table {
	root, _ := dec.table(int(dec.u32(0)), "")
	sm, _ := dec.ref(root, 1, "")
	st, _ := dec.table(sm, "")
	objs, _ := dec.ref(st, 0, "")
	var out []table
	if err := dec.tables(objs, "", func(_ int, tb table) error { out = append(out, tb); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// setSectionCount rewrites the length of the section vector.
func setSectionCount(t *testing.T, d []byte, n uint32) []byte {
	t.Helper()
	le := binary.LittleEndian
	end := le.Uint64(d[24:])
	dec := &decoder{buf: d[PreambleSize:end], fail: func(w string, p int, f string, a ...any) error { return errors.New(w) }}
	root, _ := dec.table(int(dec.u32(0)), "")
	sm, _ := dec.ref(root, 1, "")
	st, _ := dec.table(sm, "")
	objs, _ := dec.ref(st, 0, "")
	le.PutUint32(dec.buf[objs:], n)
	return d
}

// TestNewEmptySystem: a bundle without system metadata still has the
// required (empty) entries vector.
func TestNewEmptySystem(t *testing.T) {
	b, err := New(nil, []NewSection{{Type: TypeGenericBinaryData}})
	if err != nil {
		t.Fatal(err)
	}
	d := &decoder{buf: b.header[PreambleSize:], fail: func(w string, p int, f string, a ...any) error { return errors.New(w) }}
	root, _ := d.table(int(d.u32(0)), "")
	sys, _ := d.ref(root, 0, "")
	st, err := d.table(sys, "")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := d.ref(st, 0, ""); p < 0 {
		t.Error("system_metadata.entries is missing")
	}
}

// TestCompact: the fuzzing seed of unaligned sections reads.
func TestCompact(t *testing.T) {
	b, err := readBytes(t, compact(t), "compact")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Sections) != 3 || b.Sections[1].ModelType() != "tf_lite_prefill_decode" {
		t.Errorf("sections %+v", b.Sections)
	}
}

// TestSniff: bundles are recognised; other files, folders and missing
// paths are not.
func TestSniff(t *testing.T) {
	for path, want := range map[string]bool{mnistBundle: true, hfBundle: true, mnistTFLite: false, "..": false, "no/such/file": false} {
		if got := Sniff(path); got != want {
			t.Errorf("Sniff(%s) = %v", path, got)
		}
	}
}
