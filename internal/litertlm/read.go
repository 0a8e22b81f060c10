package litertlm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
)

// Preamble layout (docs/FORMAT.md §12).
const (
	// Magic opens every bundle.
	Magic = "LITERTLM"
	// PreambleSize is where the header flatbuffer begins.
	PreambleSize = 32
	// headerEndPos is where the preamble stores the header's end offset.
	headerEndPos = 24
	// BlockSize is the alignment of every section's first byte.
	BlockSize = 16 << 10
	// MajorVersion is the only major version this package reads.
	MajorVersion = 1
	// MaxHeader is the largest header Read accepts. Real headers are a few
	// hundred bytes to a few KiB; upstream's loader reads at most 16 KiB.
	// The cap bounds what a hostile preamble can make Read allocate.
	MaxHeader = 1 << 20
)

// SectionType is AnySectionDataType of the header schema.
type SectionType uint8

// The section types of schema version 1.9 (litertlm_header_schema.fbs).
const (
	TypeNone SectionType = iota
	TypeGenericBinaryData
	TypeDeprecated
	TypeTFLiteModel
	TypeSPTokenizer
	TypeLlmMetadataProto
	TypeHFTokenizerZlib
	TypeTFLiteWeights
	TypeExecutorMetadataProto
)

var typeNames = []string{"NONE", "GenericBinaryData", "Deprecated", "TFLiteModel", "SP_Tokenizer",
	"LlmMetadataProto", "HF_Tokenizer_Zlib", "TFLiteWeights", "ExecutorMetadataProto"}

func (t SectionType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("unknown(%d)", uint8(t))
}

// Value types of the VData union.
const (
	vUInt8 = iota + 1
	vInt8
	vUInt16
	vInt16
	vUInt32
	vInt32
	vFloat32
	vBool
	vString
	vUInt64
	vInt64
	vDouble
)

// KV is one key/value pair of the system metadata or of a section's items.
// Value is a string, bool, int64, uint64 or float64; nil when the value's
// encoding could not be read (it is still copied unchanged).
type KV struct {
	Key   string
	Value any
}

// Section is one section of a bundle.
type Section struct {
	Index      int
	Type       SectionType
	Begin, End int64
	Items      []KV
	// beginPos and endPos are where the header stores Begin and End
	// (relative to the header's start), patched by WriteFile.
	beginPos, endPos int
}

// Len is the section's size in bytes.
func (s *Section) Len() int64 { return s.End - s.Begin }

// Item returns the value of the section's item key, or nil.
func (s *Section) Item(key string) any {
	for _, kv := range s.Items {
		if kv.Key == key {
			return kv.Value
		}
	}
	return nil
}

// MainModel returns the TFLiteModel section a single-model command (eval,
// the interpreter) runs: the one whose model_type is
// tf_lite_prefill_decode, else the only or first TFLiteModel section.
func (b *Bundle) MainModel() (*Section, error) {
	var first *Section
	for _, s := range b.Sections {
		if s.Type != TypeTFLiteModel {
			continue
		}
		if s.ModelType() == "tf_lite_prefill_decode" {
			return s, nil
		}
		if first == nil {
			first = s
		}
	}
	if first == nil {
		return nil, &FormatError{Name: b.Name, Offset: -1, Msg: "the bundle has no TFLiteModel section"}
	}
	return first, nil
}

// ModelType is the section's model_type item ("tf_lite_prefill_decode",
// "tf_lite_embedder", ...), or "".
func (s *Section) ModelType() string {
	v, _ := s.Item("model_type").(string)
	return v
}

// Bundle is a parsed bundle: its preamble, header and section table. The
// section bytes stay in the input.
type Bundle struct {
	Name                string
	Size                int64
	Major, Minor, Patch uint32
	System              []KV
	// Sections in header order.
	Sections []*Section
	// header is the preamble and the header flatbuffer, bytes [0, end).
	header []byte
	// padded: written files end on a block boundary (New).
	padded bool
	r      io.ReaderAt
	closer io.Closer
}

// HeaderEnd is the offset where the header ends.
func (b *Bundle) HeaderEnd() int64 { return int64(len(b.header)) }

// SectionReader returns the bytes of section i.
func (b *Bundle) SectionReader(i int) *io.SectionReader {
	s := b.Sections[i]
	return io.NewSectionReader(b.r, s.Begin, s.Len())
}

// ReaderAt is the input the bundle was read from.
func (b *Bundle) ReaderAt() io.ReaderAt { return b.r }

// Close closes the file Open opened.
func (b *Bundle) Close() error {
	if b.closer == nil {
		return nil
	}
	c := b.closer
	b.closer = nil
	return c.Close()
}

// FormatError reports a bundle that cannot be read: what and where.
type FormatError struct {
	Name   string
	Where  string // e.g. "section 2 (TFLiteModel)"; empty for the file
	Offset int64  // byte offset in the file, or -1
	Msg    string
}

func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("litertlm: ")
	if e.Name != "" {
		b.WriteString(e.Name + ": ")
	}
	if e.Where != "" {
		b.WriteString(e.Where + ": ")
	}
	b.WriteString(e.Msg)
	if e.Offset >= 0 {
		fmt.Fprintf(&b, " (at byte %#x)", e.Offset)
	}
	return b.String()
}

// Sniff says whether the file at path is a regular file that starts with
// the bundle magic (it reads nothing from pipes or devices).
func Sniff(path string) bool {
	if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var m [len(Magic)]byte
	_, err = io.ReadFull(f, m[:])
	return err == nil && string(m[:]) == Magic
}

// Open reads the bundle in the file at path; Close closes the file.
func Open(path string) (*Bundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("litertlm: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("litertlm: %w", err)
	}
	b, err := Read(f, fi.Size(), path)
	if err != nil {
		f.Close()
		return nil, err
	}
	b.closer = f
	return b, nil
}

// Read reads the preamble, header and section table of a bundle of size
// bytes in r, and the first bytes of each section to check its type; name
// names it in errors. r must stay readable while the bundle is used.
func Read(r io.ReaderAt, size int64, name string) (*Bundle, error) {
	fail := func(where string, off int64, format string, a ...any) error {
		return &FormatError{Name: name, Where: where, Offset: off, Msg: fmt.Sprintf(format, a...)}
	}
	var pre [PreambleSize]byte
	if n, err := r.ReadAt(pre[:], 0); n < PreambleSize {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, fail("preamble", -1, "file of %d bytes is shorter than the %d-byte preamble: truncated or not a LiteRT-LM bundle", size, PreambleSize)
		}
		return nil, fmt.Errorf("litertlm: %s: %w", name, err)
	}
	if string(pre[:8]) != Magic {
		return nil, fail("preamble", 0, "magic %q is not %q: not a LiteRT-LM bundle", pre[:8], Magic)
	}
	b := &Bundle{Name: name, Size: size, r: r,
		Major: binary.LittleEndian.Uint32(pre[8:]),
		Minor: binary.LittleEndian.Uint32(pre[12:]),
		Patch: binary.LittleEndian.Uint32(pre[16:])}
	if b.Major != MajorVersion {
		return nil, fail("preamble", 8, "format version %d.%d.%d: only major version %d is known", b.Major, b.Minor, b.Patch, MajorVersion)
	}
	end := binary.LittleEndian.Uint64(pre[headerEndPos:])
	switch {
	case end < PreambleSize+8:
		return nil, fail("preamble", headerEndPos, "header end offset %d leaves no room for a header flatbuffer after the %d-byte preamble", end, PreambleSize)
	case end > uint64(size):
		return nil, fail("preamble", headerEndPos, "header end offset %d is past the end of the file (%d bytes): truncated", end, size)
	case end > MaxHeader:
		return nil, fail("preamble", headerEndPos, "header of %d bytes is larger than the %d bytes accepted", end-PreambleSize, MaxHeader)
	}
	b.header = make([]byte, end)
	if n, err := r.ReadAt(b.header, 0); n < len(b.header) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("litertlm: %s: reading the header: %w", name, err)
	}
	d := &decoder{buf: b.header[PreambleSize:], fail: func(where string, pos int, format string, a ...any) error {
		off := int64(-1)
		if pos >= 0 {
			off = int64(pos) + PreambleSize
		}
		return fail(where, off, format, a...)
	}}
	if err := d.metadata(b); err != nil {
		return nil, err
	}
	if err := checkSections(b, fail); err != nil {
		return nil, err
	}
	return b, nil
}

// checkSections checks the section table against the file: ranges inside
// the file and after the header, no overlaps, content matching the type.
func checkSections(b *Bundle, fail func(string, int64, string, ...any) error) error {
	order := make([]*Section, len(b.Sections))
	copy(order, b.Sections)
	sort.SliceStable(order, func(i, j int) bool { return order[i].Begin < order[j].Begin })
	for _, s := range b.Sections {
		where := s.Name()
		switch {
		case s.Type == TypeNone:
			return fail(where, -1, "section type NONE: the section says nothing about its content")
		case s.End < s.Begin:
			return fail(where, -1, "end offset %d is before begin offset %d", s.End, s.Begin)
		case s.Begin < b.HeaderEnd():
			return fail(where, -1, "begins at byte %d, inside the header (which ends at %d)", s.Begin, b.HeaderEnd())
		case s.End > b.Size:
			return fail(where, -1, "byte range [%d, %d) runs past the end of the file (%d bytes): truncated or corrupt", s.Begin, s.End, b.Size)
		}
	}
	for i := 1; i < len(order); i++ {
		if p, s := order[i-1], order[i]; s.Begin < p.End {
			return fail(s.Name(), -1, "byte range [%d, %d) overlaps %s's [%d, %d)", s.Begin, s.End, p.Name(), p.Begin, p.End)
		}
	}
	for _, s := range b.Sections {
		if err := checkContent(b, s); err != nil {
			return fail(s.Name(), s.Begin, "%s", err)
		}
	}
	return nil
}

// Name names the section in messages: "section 1 (TFLiteModel, tf_lite_embedder)".
func (s *Section) Name() string {
	if mt := s.ModelType(); mt != "" {
		return fmt.Sprintf("section %d (%s, %s)", s.Index, s.Type, mt)
	}
	return fmt.Sprintf("section %d (%s)", s.Index, s.Type)
}

// checkContent checks that a section's first bytes are what its type says.
func checkContent(b *Bundle, s *Section) error {
	var head [16]byte
	n := int(min(int64(len(head)), s.Len()))
	if m, err := b.r.ReadAt(head[:n], s.Begin); m < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("reading its first bytes: %w", err)
	}
	h := head[:n]
	switch s.Type {
	case TypeTFLiteModel:
		if len(h) < 8 || string(h[4:8]) != "TFL3" {
			return fmt.Errorf("a TFLiteModel section must be a TFLite flatbuffer (identifier \"TFL3\" at bytes 4..8); it starts % x", h)
		}
	case TypeHFTokenizerZlib:
		// An 8-byte uncompressed size, then a zlib stream (RFC 1950 section 2.2:
		// method 8, header checksum).
		if len(h) < 10 || h[8]&0x0f != 8 || (uint16(h[8])<<8|uint16(h[9]))%31 != 0 {
			return fmt.Errorf("an HF_Tokenizer_Zlib section must be an 8-byte size and a zlib stream; it starts % x", h)
		}
		if u := binary.LittleEndian.Uint64(h); u == 0 || u > 1<<32 {
			return fmt.Errorf("HF_Tokenizer_Zlib announces %d uncompressed bytes", u)
		}
	case TypeSPTokenizer, TypeLlmMetadataProto, TypeExecutorMetadataProto:
		// A protobuf message: the first byte is a field tag (field number
		// ≥ 1, wire type 0, 1, 2 or 5).
		if len(h) > 0 && (h[0]>>3 == 0 || (h[0]&7 != 0 && h[0]&7 != 1 && h[0]&7 != 2 && h[0]&7 != 5)) {
			return fmt.Errorf("a %s section must be a protobuf message; its first byte %#02x is not a field tag", s.Type, h[0])
		}
	}
	return nil
}

// decoder reads the header flatbuffer with every access bounds-checked.
type decoder struct {
	buf  []byte
	fail func(where string, pos int, format string, a ...any) error
}

func (d *decoder) u16(p int) uint16 { return binary.LittleEndian.Uint16(d.buf[p:]) }
func (d *decoder) u32(p int) uint32 { return binary.LittleEndian.Uint32(d.buf[p:]) }

func (d *decoder) in(p, n int) bool { return p >= 0 && n >= 0 && p <= len(d.buf) && n <= len(d.buf)-p }

// table is a table's position and its vtable's.
type table struct{ pos, vt, vtLen int }

func (d *decoder) table(p int, where string) (table, error) {
	if !d.in(p, 4) || p%4 != 0 {
		return table{}, d.fail(where, p, "table at header byte %d is outside the header or misaligned", p)
	}
	vt := int64(p) - int64(int32(d.u32(p)))
	if vt < 0 || vt > int64(len(d.buf)) || !d.in(int(vt), 4) || vt%2 != 0 {
		return table{}, d.fail(where, p, "table's vtable is outside the header")
	}
	vtLen, tLen := int(d.u16(int(vt))), int(d.u16(int(vt)+2))
	if vtLen < 4 || vtLen%2 != 0 || !d.in(int(vt), vtLen) || !d.in(p, tLen) {
		return table{}, d.fail(where, p, "table's vtable (%d bytes, table %d bytes) runs outside the header", vtLen, tLen)
	}
	for slot := 0; 4+2*slot < vtLen; slot++ {
		if off := int(d.u16(int(vt) + 4 + 2*slot)); off != 0 && off >= tLen {
			return table{}, d.fail(where, p, "field %d at table offset %d is outside its %d-byte table", slot, off, tLen)
		}
	}
	return table{pos: p, vt: int(vt), vtLen: vtLen}, nil
}

// field returns the position of a field of width bytes, or -1 if absent.
func (d *decoder) field(t table, slot, width int, where string) (int, error) {
	if 4+2*slot >= t.vtLen {
		return -1, nil
	}
	off := int(d.u16(t.vt + 4 + 2*slot))
	if off == 0 {
		return -1, nil
	}
	p := t.pos + off
	if !d.in(p, width) {
		return -1, d.fail(where, p, "field %d runs outside the header", slot)
	}
	return p, nil
}

// ref follows an offset field to the object it points at, or -1.
func (d *decoder) ref(t table, slot int, where string) (int, error) {
	p, err := d.field(t, slot, 4, where)
	if err != nil || p < 0 {
		return -1, err
	}
	q := int64(p) + int64(d.u32(p))
	if q >= int64(len(d.buf)) {
		return -1, d.fail(where, p, "offset %d points outside the header", d.u32(p))
	}
	return int(q), nil
}

// vector returns the position and length of a vector of elemSize elements.
func (d *decoder) vector(p, elemSize int, where string) (int, int, error) {
	if !d.in(p, 4) {
		return 0, 0, d.fail(where, p, "vector length outside the header")
	}
	n := d.u32(p)
	if uint64(n)*uint64(elemSize) > uint64(len(d.buf)-p-4) {
		return 0, 0, d.fail(where, p, "vector of %d elements does not fit in the %d-byte header", n, len(d.buf))
	}
	return p + 4, int(n), nil
}

func (d *decoder) str(p int, where string) (string, error) {
	q, n, err := d.vector(p, 1, where)
	if err != nil {
		return "", err
	}
	if !d.in(q, n+1) || d.buf[q+n] != 0 {
		return "", d.fail(where, p, "string is not zero-terminated inside the header")
	}
	return string(d.buf[q : q+n]), nil
}

// tables reads a vector of tables.
func (d *decoder) tables(p int, where string, each func(i int, t table) error) error {
	q, n, err := d.vector(p, 4, where)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		e := q + 4*i
		t, err := d.table(e+int(d.u32(e)), fmt.Sprintf("%s[%d]", where, i))
		if err != nil {
			return err
		}
		if err := each(i, t); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) metadata(b *Bundle) error {
	if !d.in(0, 4) {
		return d.fail("header", 0, "header too short for a flatbuffer")
	}
	root, err := d.table(int(d.u32(0)), "header root")
	if err != nil {
		return err
	}
	if sys, err := d.ref(root, 0, "system_metadata"); err != nil {
		return err
	} else if sys >= 0 {
		t, err := d.table(sys, "system_metadata")
		if err != nil {
			return err
		}
		if b.System, err = d.kvs(t, 0, "system_metadata.entries"); err != nil {
			return err
		}
	}
	sm, err := d.ref(root, 1, "section_metadata")
	if err != nil {
		return err
	}
	if sm < 0 {
		return d.fail("section_metadata", -1, "the header has no section table")
	}
	st, err := d.table(sm, "section_metadata")
	if err != nil {
		return err
	}
	objs, err := d.ref(st, 0, "section_metadata.objects")
	if err != nil {
		return err
	}
	if objs < 0 {
		return d.fail("section_metadata", -1, "the section table has no objects vector (required)")
	}
	seen := map[int]int{}
	return d.tables(objs, "section", func(i int, t table) error {
		where := fmt.Sprintf("section %d", i)
		s := &Section{Index: i}
		var err error
		if s.Items, err = d.kvs(t, 0, where+" items"); err != nil {
			return err
		}
		for slot, dst := range []*int{&s.beginPos, &s.endPos} {
			p, err := d.field(t, 1+slot, 8, where)
			if err != nil {
				return err
			}
			if p < 0 {
				return d.fail(where, t.pos, "no %s offset (a section always has one)", []string{"begin", "end"}[slot])
			}
			if j, dup := seen[p]; dup {
				return d.fail(where, p, "shares its offset fields with section %d", j)
			}
			seen[p] = i
			*dst = p
			v := binary.LittleEndian.Uint64(d.buf[p:])
			if v > math.MaxInt64 {
				return d.fail(where, p, "offset %d is out of range", v)
			}
			if slot == 0 {
				s.Begin = int64(v)
			} else {
				s.End = int64(v)
			}
		}
		if p, err := d.field(t, 3, 1, where); err != nil {
			return err
		} else if p >= 0 {
			s.Type = SectionType(d.buf[p])
		}
		b.Sections = append(b.Sections, s)
		return nil
	})
}

// kvs reads a [KeyValuePair] field.
func (d *decoder) kvs(t table, slot int, where string) ([]KV, error) {
	p, err := d.ref(t, slot, where)
	if err != nil || p < 0 {
		return nil, err
	}
	var out []KV
	err = d.tables(p, where, func(i int, kt table) error {
		w := fmt.Sprintf("%s[%d]", where, i)
		kp, err := d.ref(kt, 0, w)
		if err != nil {
			return err
		}
		if kp < 0 {
			return d.fail(w, kt.pos, "key/value pair without a key (required)")
		}
		kv := KV{}
		if kv.Key, err = d.str(kp, w+" key"); err != nil {
			return err
		}
		tp, err := d.field(kt, 1, 1, w)
		if err != nil {
			return err
		}
		vp, err := d.ref(kt, 2, w)
		if err != nil {
			return err
		}
		if tp >= 0 && vp >= 0 {
			kv.Value = d.value(d.buf[tp], vp)
		}
		out = append(out, kv)
		return nil
	})
	return out, err
}

// value decodes a VData value for display. Schema 1.9 stores every value
// as a table; early files stored the scalar kinds as structs, which are
// recognised by not being a valid table. Undecodable values are nil: the
// header is copied unchanged anyway.
func (d *decoder) value(typ byte, p int) any {
	if typ == vString {
		t, err := d.table(p, "")
		if err != nil {
			return nil
		}
		sp, err := d.ref(t, 0, "")
		if err != nil || sp < 0 {
			return nil
		}
		s, err := d.str(sp, "")
		if err != nil {
			return nil
		}
		return s
	}
	width := map[byte]int{vUInt8: 1, vInt8: 1, vBool: 1, vUInt16: 2, vInt16: 2, vUInt32: 4, vInt32: 4, vFloat32: 4, vUInt64: 8, vInt64: 8, vDouble: 8}[typ]
	if width == 0 {
		return nil
	}
	vp := p
	quiet := &decoder{buf: d.buf, fail: func(string, int, string, ...any) error { return errors.New("") }}
	if t, err := quiet.table(p, ""); err == nil {
		f, err := quiet.field(t, 0, width, "")
		if err != nil {
			return nil
		}
		if f < 0 {
			return scalar(typ, make([]byte, 8)) // the default, 0
		}
		vp = f
	}
	if !d.in(vp, width) {
		return nil
	}
	return scalar(typ, d.buf[vp:vp+width])
}

func scalar(typ byte, b []byte) any {
	le := binary.LittleEndian
	switch typ {
	case vUInt8:
		return uint64(b[0])
	case vInt8:
		return int64(int8(b[0]))
	case vBool:
		return b[0] != 0
	case vUInt16:
		return uint64(le.Uint16(b))
	case vInt16:
		return int64(int16(le.Uint16(b)))
	case vUInt32:
		return uint64(le.Uint32(b))
	case vInt32:
		return int64(int32(le.Uint32(b)))
	case vFloat32:
		return float64(math.Float32frombits(le.Uint32(b)))
	case vUInt64:
		return le.Uint64(b)
	case vInt64:
		return int64(le.Uint64(b))
	case vDouble:
		return math.Float64frombits(le.Uint64(b))
	}
	return nil
}
