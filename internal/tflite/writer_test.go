package tflite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// flatcJSON decodes a .tflite file with flatc, printing default values too.
func flatcJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	flatc, err := exec.LookPath("flatc")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("flatc not found; CI needs it (apt-get install flatbuffers-compiler)")
		}
		t.Skip("flatc not found")
	}
	dir := t.TempDir()
	out, err := exec.Command(flatc, "--json", "--strict-json", "--defaults-json", "--raw-binary",
		"-o", dir, "fb/schema.fbs", "--", path).CombinedOutput()
	if err != nil {
		t.Fatalf("flatc %s: %v\n%s", path, err, out)
	}
	base := filepath.Base(path)
	js, err := os.ReadFile(filepath.Join(dir, strings.TrimSuffix(base, filepath.Ext(base))+".json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(hashDataArrays(t, js)))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// normalizeJSON replaces each buffer by the sha256 of its bytes (inline
// data or the bytes at offset/size in file: offsets legitimately move) and
// drops the buffer_location metadata entry (absent from inline output).
func normalizeJSON(t *testing.T, v map[string]any, file []byte) {
	t.Helper()
	bufs, _ := v["buffers"].([]any)
	for i, b := range bufs {
		b := b.(map[string]any)
		var norm any
		if data, ok := b["data"].(string); ok {
			norm = data
		} else if off, _ := b["offset"].(json.Number).Int64(); off > 1 {
			size, _ := b["size"].(json.Number).Int64()
			norm = sha(file[off : off+size])
		}
		bufs[i] = norm
	}
	if md, ok := v["metadata"].([]any); ok {
		kept := []any{}
		for _, e := range md {
			if e.(map[string]any)["name"] != bufferLocation {
				kept = append(kept, e)
			}
		}
		v["metadata"] = kept
	}
}

// hashDataArrays replaces, in flatc's JSON, the byte list of every
// Buffer.data (the only field named "data" in the schema) by the sha256 of
// those bytes, as a string: decoding megabytes of weights as JSON numbers
// would make the test crawl.
func hashDataArrays(t *testing.T, js []byte) []byte {
	t.Helper()
	key := []byte(`"data": [`)
	var out []byte
	for {
		i := bytes.Index(js, key)
		if i < 0 {
			return append(out, js...)
		}
		out = append(out, js[:i]...)
		js = js[i+len(key):]
		end := bytes.IndexByte(js, ']')
		if end < 0 {
			t.Fatal("unterminated data array in flatc output")
		}
		var raw []byte
		v, digits := 0, false
		for _, c := range js[:end] {
			switch {
			case c >= '0' && c <= '9':
				v, digits = v*10+int(c-'0'), true
			case c == ',':
				raw, v, digits = append(raw, byte(v)), 0, false
			}
		}
		if digits {
			raw = append(raw, byte(v))
		}
		out = append(out, `"data": "`+sha(raw)+`"`...)
		js = js[end+1:]
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestFidelityFlatc is the round-trip criterion: every test model, read and
// written back unchanged, decodes with flatc to the same JSON.
func TestFidelityFlatc(t *testing.T) {
	for _, path := range testModels(t) {
		t.Run(modelName(path), func(t *testing.T) {
			t.Parallel() // flatc's output of the larger models is I/O bound
			m, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			out := filepath.Join(t.TempDir(), filepath.Base(path))
			if err := WriteFile(context.Background(), out, m, WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			written, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			want, got := flatcJSON(t, path), flatcJSON(t, out)
			normalizeJSON(t, want, orig)
			normalizeJSON(t, got, written)
			wj, _ := json.MarshalIndent(want, "", " ")
			gj, _ := json.MarshalIndent(got, "", " ")
			if !bytes.Equal(wj, gj) {
				t.Errorf("flatc JSON differs after a round trip:\n%s", firstDiff(string(wj), string(gj)))
			}
		})
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) && i < len(bl); i++ {
		if al[i] != bl[i] {
			lo := max(0, i-3)
			return "line " + strconv.Itoa(i) + "\nwant: " + strings.Join(al[lo:min(len(al), i+3)], "\n") + "\ngot:  " + strings.Join(bl[lo:min(len(bl), i+3)], "\n")
		}
	}
	return "lengths differ"
}

func writeBytes(t testing.TB, m *Model, opts WriteOptions) []byte {
	t.Helper()
	var b bytes.Buffer
	n, err := Write(&b, m, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(b.Len()) {
		t.Fatalf("Write returned %d, wrote %d", n, b.Len())
	}
	return b.Bytes()
}

func readBytes(t testing.TB, b []byte) *Model {
	t.Helper()
	m, err := Read(bytes.NewReader(b), int64(len(b)), "written.tflite")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestWriteDeterministic: Write and WriteFile give the same bytes, whatever
// GOMAXPROCS and the concurrency options; writing what was read back gives
// the same bytes again.
func TestWriteDeterministic(t *testing.T) {
	for _, path := range testModels(t) {
		t.Run(modelName(path), func(t *testing.T) {
			m, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			for _, l := range []Layout{LayoutAuto, LayoutInline, LayoutOffset} {
				first := writeBytes(t, m, WriteOptions{Layout: l})
				if n, err := Size(m, WriteOptions{Layout: l}); err != nil || n != int64(len(first)) {
					t.Errorf("layout %v: Size = %d, %v; Write wrote %d bytes", l, n, err, len(first))
				}
				for _, procs := range []int{1, 2} {
					prev := runtime.GOMAXPROCS(procs)
					file := filepath.Join(t.TempDir(), "out.tflite")
					err := WriteFile(context.Background(), file, m, WriteOptions{Layout: l, MaxInFlight: 100, Workers: 3})
					runtime.GOMAXPROCS(prev)
					if err != nil {
						t.Fatal(err)
					}
					got, err := os.ReadFile(file)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, first) {
						t.Fatalf("layout %v: WriteFile with GOMAXPROCS %d differs from Write", l, procs)
					}
				}
				again := readBytes(t, first)
				if again.Layout == LayoutAuto || (l != LayoutAuto && again.Layout != l && hasConstants(m)) {
					t.Errorf("layout %v: read back as %v", l, again.Layout)
				}
				if second := writeBytes(t, again, WriteOptions{Layout: l}); !bytes.Equal(second, first) {
					t.Errorf("layout %v: write → read → write is not a fixed point", l)
				}
			}
		})
	}
}

func hasConstants(m *Model) bool {
	for i, b := range m.Buffers {
		if b.Data != nil && b.Data.Len() > 0 && !isMetadataBuffer(m, i) {
			return true
		}
	}
	return false
}

func isMetadataBuffer(m *Model, i int) bool {
	for _, md := range m.Meta.Metadata {
		if int(md.Buffer) == i {
			return true
		}
	}
	for _, b := range m.Meta.MetadataBuffer {
		if int(b) == i {
			return true
		}
	}
	return false
}

// TestLayoutsAgree writes every model in both layouts and checks that both
// read back to the same tables and buffer bytes as the input, with every
// buffer 16-byte aligned and metadata buffers inline.
func TestLayoutsAgree(t *testing.T) {
	for _, path := range testModels(t) {
		t.Run(modelName(path), func(t *testing.T) {
			m, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			for _, l := range []Layout{LayoutInline, LayoutOffset} {
				w := readBytes(t, writeBytes(t, m, WriteOptions{Layout: l}))
				if hasConstants(m) && w.Layout != l {
					t.Errorf("%v: read back as %v", l, w.Layout)
				}
				if !deepEqual(comparableMeta(m), comparableMeta(w)) {
					t.Errorf("%v: tables differ after the round trip", l)
				}
				for i, b := range w.Buffers {
					want, _ := ReadAll(m.Buffers[i].Data)
					got, _ := ReadAll(b.Data)
					if (b.Data == nil) != (m.Buffers[i].Data == nil) || !bytes.Equal(got, want) {
						t.Fatalf("%v: buffer %d differs", l, i)
					}
					if b.Data == nil {
						continue
					}
					s := b.Data.(*Section)
					if s.Offset()%16 != 0 {
						t.Errorf("%v: buffer %d at byte %d, not 16-byte aligned", l, i, s.Offset())
					}
					if inline := w.Meta.Buffers[i].Offset == 0; isMetadataBuffer(w, i) && !inline {
						t.Errorf("%v: metadata buffer %d is not inline", l, i)
					}
				}
			}
		})
	}
}

// comparableMeta is a copy of m's tables without what a round trip
// legitimately changes: buffer offsets and sizes, and buffer_location.
func comparableMeta(m *Model) *fb.ModelT {
	c := *m.Meta
	c.Buffers = make([]*fb.BufferT, len(m.Meta.Buffers))
	for i := range c.Buffers {
		c.Buffers[i] = &fb.BufferT{}
	}
	if c.Metadata != nil {
		c.Metadata = []*fb.MetadataT{}
		for _, e := range m.Meta.Metadata {
			if e.Name != bufferLocation {
				c.Metadata = append(c.Metadata, e)
			}
		}
	}
	return &c
}

func TestBufferLocationMetadata(t *testing.T) {
	m, err := Open(filepath.Join(modelsDir, "litert_simple_group_norm_op_bufoffset.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	names := func(l Layout) []string {
		var s []string
		for _, e := range readBytes(t, writeBytes(t, m, WriteOptions{Layout: l})).Meta.Metadata {
			s = append(s, e.Name)
		}
		return s
	}
	if got := strings.Join(names(LayoutOffset), ","); got != "min_runtime_version,buffer_location" {
		t.Errorf("offset layout keeps metadata %s", got)
	}
	if got := strings.Join(names(LayoutInline), ","); got != "min_runtime_version" {
		t.Errorf("inline layout keeps metadata %s, want buffer_location dropped", got)
	}
}

func TestAutoLayout(t *testing.T) {
	small := syntheticModel(4, 4, Bytes(make([]byte, 64)))
	if got := readBytes(t, writeBytes(t, small, WriteOptions{})).Layout; got != LayoutInline {
		t.Errorf("small new model: %v, want inline", got)
	}
	small.Layout = LayoutOffset
	if got := readBytes(t, writeBytes(t, small, WriteOptions{})).Layout; got != LayoutOffset {
		t.Errorf("small model read from an offset file: %v, want offset", got)
	}
	// Over InlineLimit: chosen without producing a byte of content.
	never := ContentFunc{N: 1 << 30, Write: func(io.Writer) error { panic("content produced while laying out") }}
	big := syntheticModel(1<<14, 1<<14, never, never)
	p, err := layout(big, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.layout != LayoutOffset {
		t.Errorf("2 GiB of weights: %v, want offset", p.layout)
	}
	if _, err := layout(big, WriteOptions{Layout: LayoutInline}); err == nil || !strings.Contains(err.Error(), "use the offset layout") {
		t.Errorf("2 GiB inline: %v, want an error saying to use the offset layout", err)
	}
}

func TestWriteFileRefusesInput(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.tflite")
	orig, err := os.ReadFile(filepath.Join(modelsDir, "aeq_single_fc.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	link := filepath.Join(dir, "link.tflite")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, link} {
		if err := WriteFile(context.Background(), p, m, WriteOptions{}); err == nil || !strings.Contains(err.Error(), "refusing") {
			t.Errorf("WriteFile(context.Background(), %s) over its input: %v", p, err)
		}
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, orig) {
		t.Error("input file changed")
	}
}

func TestWriteFileNoPartialOutput(t *testing.T) {
	boom := errors.New("boom")
	cases := map[string]Content{
		"error":     ContentFunc{N: 1000, Write: func(w io.Writer) error { w.Write(make([]byte, 10)); return boom }},
		"too short": ContentFunc{N: 1000, Write: func(w io.Writer) error { _, err := w.Write(make([]byte, 999)); return err }},
		"too long":  ContentFunc{N: 1000, Write: func(w io.Writer) error { _, err := w.Write(make([]byte, 1001)); return err }},
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			m := syntheticModel(4, 4, Bytes(make([]byte, 64)), bad, pattern(1, 5000))
			dir := t.TempDir()
			path := filepath.Join(dir, "out.tflite")
			for _, l := range []Layout{LayoutInline, LayoutOffset} {
				err := WriteFile(context.Background(), path, m, WriteOptions{Layout: l})
				if err == nil || !strings.Contains(err.Error(), "buffer 3") {
					t.Errorf("%v: %v, want an error naming buffer 3", l, err)
				}
				if _, err := Write(io.Discard, m, WriteOptions{Layout: l}); err == nil {
					t.Errorf("%v: Write succeeded", l)
				}
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("left behind: %v", ents)
			}
		})
	}
}

// WriteOptions.Check sees the complete model at the temporary path before
// the rename; its error leaves nothing behind, its success the same bytes
// as a write without it.
func TestWriteFileCheck(t *testing.T) {
	m := syntheticModel(4, 4, Bytes(make([]byte, 64)), pattern(1, 5000))
	dir := t.TempDir()
	plain, checked := filepath.Join(dir, "plain.tflite"), filepath.Join(dir, "checked.tflite")
	if err := WriteFile(context.Background(), plain, m, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(plain)
	var seen string
	err := WriteFile(context.Background(), checked, m, WriteOptions{Check: func(tmp string) error {
		seen = tmp
		if _, err := os.Stat(checked); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the output exists while it is checked: %v", err)
		}
		got, err := os.ReadFile(tmp)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("the checked temporary file is not the complete model (%v)", err)
		}
		return nil
	}})
	if err != nil || filepath.Dir(seen) != dir {
		t.Fatalf("WriteFile: %v; checked %q", err, seen)
	}
	if got, _ := os.ReadFile(checked); !bytes.Equal(got, want) {
		t.Error("a passing check changed the bytes")
	}
	refused := errors.New("refused")
	failed := filepath.Join(dir, "failed.tflite")
	if err := WriteFile(context.Background(), failed, m, WriteOptions{Check: func(string) error { return refused }}); !errors.Is(err, refused) {
		t.Errorf("failing check: %v, want its error", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("a failing check left files behind: %v", ents)
	}
}

func TestWriteRejectsInconsistentModel(t *testing.T) {
	m := syntheticModel(4, 4, Bytes(make([]byte, 64)))
	m.Buffers = m.Buffers[:2]
	if _, err := Write(io.Discard, m, WriteOptions{}); err == nil || !strings.Contains(err.Error(), "buffer contents for") {
		t.Errorf("mismatched buffer lists: %v", err)
	}
	m = syntheticModel(4, 4, Bytes(make([]byte, 64)))
	m.Meta.Buffers[1].Data = []byte{1}
	if _, err := Write(io.Discard, m, WriteOptions{}); err == nil || !strings.Contains(err.Error(), "Meta.Buffers[1].Data") {
		t.Errorf("Meta data set: %v", err)
	}
}

// TestSharedContentStoredOnce: buffers read from the same bytes of the
// input are written once.
func TestSharedContentStoredOnce(t *testing.T) {
	m := syntheticModel(64, 64, pattern(7, 64*64*4))
	m.Layout = LayoutOffset
	w := readBytes(t, writeBytes(t, m, WriteOptions{}))
	w.AddBuffer(w.Buffers[1].Data)
	w.Meta.Subgraphs[0].Tensors[1].Buffer = uint32(len(w.Buffers) - 1)
	for _, l := range []Layout{LayoutInline, LayoutOffset} {
		once := writeBytes(t, w, WriteOptions{Layout: l})
		r := readBytes(t, once)
		a, b := r.Buffers[1].Data.(*Section), r.Buffers[len(r.Buffers)-1].Data.(*Section)
		if a.Offset() != b.Offset() || a.Len() != 64*64*4 {
			t.Errorf("%v: shared content at %d and %d", l, a.Offset(), b.Offset())
		}
	}
}

// TestLargeCustomOptions: custom options kept after the flatbuffer survive
// a round trip in both layouts, stay out of the flatbuffer, and read back.
func TestLargeCustomOptions(t *testing.T) {
	m, err := Open(filepath.Join(modelsDir, "litert_tfl_with_metadata.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	op := m.Meta.Subgraphs[0].Operators[0]
	opts := op.CustomOptions
	op.CustomOptions = nil
	m.LargeCustomOptions = map[*fb.OperatorT]Content{op: Bytes(opts)}
	for _, l := range []Layout{LayoutInline, LayoutOffset} {
		first := writeBytes(t, m, WriteOptions{Layout: l})
		r := readBytes(t, first)
		rop := r.Meta.Subgraphs[0].Operators[0]
		c, ok := r.LargeCustomOptions[rop]
		if !ok || rop.CustomOptions != nil || rop.LargeCustomOptionsOffset%16 != 0 || rop.LargeCustomOptionsSize != uint64(len(opts)) {
			t.Fatalf("%v: operator reads back with custom options %v, offset %d, size %d", l, rop.CustomOptions, rop.LargeCustomOptionsOffset, rop.LargeCustomOptionsSize)
		}
		if got, _ := ReadAll(c); !bytes.Equal(got, opts) {
			t.Errorf("%v: custom options %q, want %q", l, got, opts)
		}
		if op.LargeCustomOptionsOffset != 0 {
			t.Errorf("Write modified the model")
		}
		if second := writeBytes(t, r, WriteOptions{Layout: l}); !bytes.Equal(second, first) {
			t.Errorf("%v: not a fixed point", l)
		}
	}
	c, err := m.Clone()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := writeBytes(t, c, WriteOptions{}), writeBytes(t, m, WriteOptions{}); !bytes.Equal(got, want) {
		t.Error("a clone writes differently")
	}
	delete(m.LargeCustomOptions, op)
	op.LargeCustomOptionsOffset = 4096
	if _, err := Write(io.Discard, m, WriteOptions{}); err == nil || !strings.Contains(err.Error(), "no content in Model.LargeCustomOptions") {
		t.Errorf("dangling large custom options: %v", err)
	}
}

// TestReadLargeFlatbufferFromReader reads through a plain io.ReaderAt a
// file whose flatbuffer part (a 3 MiB metadata buffer) is larger than the
// first prefix Read loads, in the offset layout: the prefix must grow, and
// offset-layout sections must be served by positioned reads.
func TestReadLargeFlatbufferFromReader(t *testing.T) {
	m := syntheticModel(256, 256, pattern(1, 256*256*4), pattern(2, 256*256*4))
	m.Meta.Metadata = append(m.Meta.Metadata, &fb.MetadataT{Name: "big", Buffer: m.AddBuffer(pattern(3, 3<<20))})
	data := writeBytes(t, m, WriteOptions{Layout: LayoutOffset})
	r, err := Read(io.NewSectionReader(bytes.NewReader(data), 0, int64(len(data))), int64(len(data)), "big.tflite")
	if err != nil {
		t.Fatal(err)
	}
	if r.Layout != LayoutOffset {
		t.Fatalf("layout %v", r.Layout)
	}
	for i, b := range r.Buffers {
		if b.Data == nil {
			continue
		}
		s := b.Data.(*Section)
		want, _ := ReadAll(m.Buffers[i].Data)
		var got bytes.Buffer
		if _, err := s.WriteTo(&got); err != nil || !bytes.Equal(got.Bytes(), want) {
			t.Errorf("buffer %d differs (%v)", i, err)
		}
		if metadata := isMetadataBuffer(r, i); (s.Bytes() != nil) != metadata {
			t.Errorf("buffer %d: in memory %v, want %v (only the flatbuffer part is loaded)", i, s.Bytes() != nil, metadata)
		}
	}
}
