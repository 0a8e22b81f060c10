package tflite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/qpipe/qpipe/internal/litertlm"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// maxFlatbuffer is the largest flatbuffer the format allows: uoffsets are
// signed 32-bit in the reference implementation, and the runtime verifies at
// most the first 2 GiB of a file.
const maxFlatbuffer = 1<<31 - 1

// firstPrefix is how much of a non-file input Read loads before it knows
// where the flatbuffer part ends.
const firstPrefix = 1 << 20

// Open reads the model in the file at path. The file is memory-mapped
// read-only, or read by positioned reads where mapping is impossible; even
// when mapped, large buffers are streamed by positioned reads on demand
// (Pieces, Section.WriteTo). The returned Model must be closed to release
// it. A LiteRT-LM bundle opens as its main model (litertlm.MainModel: the
// prefill/decode model), read in place with OpenSection.
func Open(path string) (*Model, error) {
	if litertlm.Sniff(path) {
		b, err := litertlm.Open(path)
		if err != nil {
			return nil, err
		}
		defer b.Close()
		sec, err := b.MainModel()
		if err != nil {
			return nil, err
		}
		return OpenSection(path, sec.Begin, sec.Len(), path+" "+sec.Name())
	}
	f, fi, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	return readFile(f, fi, path, true)
}

// openRegular opens the regular file at path.
func openRegular(path string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("tflite: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("tflite: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("tflite: %s: not a regular file", path)
	}
	return f, fi, nil
}

// OpenSection reads the model stored in bytes [off, off+n) of the file at
// path (a TFLiteModel section of a LiteRT-LM bundle); name names it in
// errors. The file is mapped and streamed as by Open; offsets inside the
// model are relative to off, Section.Offset is a position in the file.
func OpenSection(path string, off, n int64, name string) (*Model, error) {
	f, fi, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	if off < 0 || n < 0 || off > fi.Size() || n > fi.Size()-off {
		f.Close()
		return nil, &FormatError{Name: name, Offset: -1, Msg: fmt.Sprintf("bytes [%d, %d) are not inside %s (%d bytes)", off, off+n, path, fi.Size())}
	}
	data, err := mmapFile(f, fi.Size())
	if err != nil {
		// No mapping: positioned reads of the section.
		src, err := loadPrefix(io.NewSectionReader(f, off, n), n, name)
		if err != nil {
			f.Close()
			return nil, err
		}
		src.file, src.release = fi, f.Close
		return decodeSource(src, n)
	}
	src := &source{name: name, data: data, mapped: true, r: f, file: fi, base: off,
		release: func() error { return errors.Join(munmap(data), f.Close()) }}
	return decodeSource(src, n)
}

// Read reads a model of size bytes from r; name names it in errors.
//
// When r is an *os.File whose size is size, the file is memory-mapped as in
// Open (Model.Close unmaps it; the file stays open and owned by the caller).
// Otherwise Read loads the flatbuffer part of the input into memory and
// reads the buffers stored after it (offset layout) by positioned reads
// when asked for them. The flatbuffer part ends at the first offset-layout
// buffer; for a file in the inline layout it is the whole input, so such
// input is held in memory whole. r must stay readable until the Model is
// closed.
func Read(r io.ReaderAt, size int64, name string) (*Model, error) {
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() == size {
			return readFile(f, fi, name, false)
		}
	}
	src, err := loadPrefix(r, size, name)
	if err != nil {
		return nil, err
	}
	return decodeSource(src, size)
}

// readFile maps f and decodes it; own says whether f is ours to close.
func readFile(f *os.File, fi os.FileInfo, name string, own bool) (*Model, error) {
	size := fi.Size()
	data, err := mmapFile(f, size)
	if err != nil {
		// No mapping (empty file, unsupported system): positioned reads.
		src, err := loadPrefix(f, size, name)
		if err != nil {
			if own {
				f.Close()
			}
			return nil, err
		}
		src.file = fi
		if own {
			src.release = f.Close
		}
		return decodeSource(src, size)
	}
	// The descriptor stays open beside the mapping: large weights are read
	// through it by positioned reads (Pieces, Section.WriteTo), which costs
	// less than faulting the mapping in a page at a time.
	release := func() error { return munmap(data) }
	if own {
		release = func() error { return errors.Join(munmap(data), f.Close()) }
	}
	src := &source{name: name, data: data, mapped: true, r: f, file: fi, release: release}
	return decodeSource(src, size)
}

// loadPrefix reads the flatbuffer part of a non-mapped input into memory,
// growing the prefix it reads until the Model table and its buffers vector
// lie inside it and say where the flatbuffer part ends.
func loadPrefix(r io.ReaderAt, size int64, name string) (*source, error) {
	limit := min(size, maxFlatbuffer)
	if limit < 0 {
		limit = 0
	}
	buf := make([]byte, 0, min(limit, firstPrefix))
	want := min(limit, firstPrefix)
	for {
		if err := readMore(r, &buf, want, name); err != nil {
			return nil, err
		}
		d := &decoder{name: name, buf: buf, fileSize: size, partial: int64(len(buf)) < limit}
		h, err := d.header()
		if err != nil && d.short {
			want = min(limit, 2*int64(len(buf)))
			continue
		}
		if err != nil {
			return nil, err
		}
		if h.end > int64(len(buf)) {
			if err := readMore(r, &buf, h.end, name); err != nil {
				return nil, err
			}
		}
		return &source{name: name, data: buf[:h.end:h.end], r: r}, nil
	}
}

// readMore extends *buf to n bytes read from r at the same positions.
func readMore(r io.ReaderAt, buf *[]byte, n int64, name string) error {
	have := int64(len(*buf))
	if n <= have {
		return nil
	}
	b := make([]byte, n)
	copy(b, *buf)
	m, err := r.ReadAt(b[have:], have)
	if int64(m) < n-have {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("tflite: %s: reading bytes %d..%d: %w", name, have, n, err)
	}
	*buf = b
	return nil
}

// decodeSource decodes the model in src and closes src on failure.
func decodeSource(src *source, size int64) (*Model, error) {
	src.size = size
	d := &decoder{name: src.name, buf: src.data[src.base:], fileSize: size}
	m, err := d.decode(src)
	if err != nil {
		src.Close()
		return nil, err
	}
	m.closer = src
	m.src = src
	return m, nil
}

// decoder reads one model. Fields it parses by hand (the root, the version
// and the buffers, whose data must not be copied) are bounds-checked
// explicitly; everything else is unpacked by the generated object API
// under fb.Decode, whose panics on corrupt input become errors.
type decoder struct {
	name     string
	buf      []byte // the flatbuffer part, or a prefix of it while scanning
	fileSize int64
	partial  bool // buf is only a prefix: reads past it ask for more
	short    bool // a read went past buf while partial
}

// rawBuffer is a Buffer table as the file holds it.
type rawBuffer struct {
	table   int64
	hasData bool
	dataPos int64 // first byte of the data vector's payload
	dataLen int64
	offset  uint64
	size    uint64
}

type header struct {
	version        uint32
	buffersPresent bool
	buffers        []rawBuffer
	end            int64 // end of the flatbuffer part
}

func (d *decoder) errorf(where string, off int64, format string, a ...any) error {
	return &FormatError{Name: d.name, Where: where, Offset: off, Msg: fmt.Sprintf(format, a...)}
}

// need checks that [pos, pos+n) lies in buf.
func (d *decoder) need(pos, n int64, where, what string) error {
	if pos >= 0 && n >= 0 && pos <= int64(len(d.buf)) && n <= int64(len(d.buf))-pos {
		return nil
	}
	if d.partial {
		d.short = true
	}
	if pos < 0 || pos >= int64(len(d.buf)) {
		return d.errorf(where, -1, "%s at byte %#x lies outside the flatbuffer (%d bytes): file truncated or corrupt", what, pos, len(d.buf))
	}
	return d.errorf(where, pos, "%s of %d bytes runs past the end of the flatbuffer (%d bytes): file truncated or corrupt", what, n, len(d.buf))
}

func (d *decoder) u16(pos int64) uint16 { return binary.LittleEndian.Uint16(d.buf[pos:]) }
func (d *decoder) u32(pos int64) uint32 { return binary.LittleEndian.Uint32(d.buf[pos:]) }
func (d *decoder) u64(pos int64) uint64 { return binary.LittleEndian.Uint64(d.buf[pos:]) }

// rawTable is a table whose vtable has been bounds-checked.
type rawTable struct {
	pos, vt      int64
	vtLen, tbLen int64
}

func (d *decoder) table(pos int64, where string) (rawTable, error) {
	if err := d.need(pos, 4, where, "table"); err != nil {
		return rawTable{}, err
	}
	vt := pos - int64(int32(d.u32(pos)))
	if err := d.need(vt, 4, where, "vtable"); err != nil {
		return rawTable{}, err
	}
	t := rawTable{pos: pos, vt: vt, vtLen: int64(d.u16(vt)), tbLen: int64(d.u16(vt + 2))}
	if t.vtLen < 4 || t.vtLen%2 != 0 || t.tbLen < 4 {
		return rawTable{}, d.errorf(where, vt, "malformed vtable (size %d, table size %d)", t.vtLen, t.tbLen)
	}
	if err := d.need(vt, t.vtLen, where, "vtable"); err != nil {
		return rawTable{}, err
	}
	if err := d.need(pos, t.tbLen, where, "table"); err != nil {
		return rawTable{}, err
	}
	return t, nil
}

// field returns the position of field slot's value of width bytes, or 0
// when the field is absent.
func (d *decoder) field(t rawTable, slot int, width int64, where, what string) (int64, error) {
	vo := int64(4 + 2*slot)
	if vo+2 > t.vtLen {
		return 0, nil
	}
	off := int64(d.u16(t.vt + vo))
	if off == 0 {
		return 0, nil
	}
	if off+width > t.tbLen {
		return 0, d.errorf(where, t.pos, "field %s lies outside its table", what)
	}
	return t.pos + off, nil
}

// vector returns the position of the first element and the length of the
// vector in field slot of t.
func (d *decoder) vector(t rawTable, slot int, elemSize int64, where, what string) (pos, n int64, present bool, err error) {
	f, err := d.field(t, slot, 4, where, what)
	if err != nil || f == 0 {
		return 0, 0, false, err
	}
	at := f + int64(d.u32(f))
	if err := d.need(at, 4, where, what+" vector"); err != nil {
		return 0, 0, false, err
	}
	n = int64(d.u32(at))
	if err := d.need(at+4, n*elemSize, where, fmt.Sprintf("%s vector (%d elements)", what, n)); err != nil {
		return 0, 0, false, err
	}
	return at + 4, n, true, nil
}

// header checks the file identifier and version and reads the Buffer
// tables, which say where the flatbuffer part ends.
func (d *decoder) header() (*header, error) {
	if int64(len(d.buf)) < 8 && d.partial {
		d.short = true
	}
	if d.fileSize < 8 || len(d.buf) < 8 {
		return nil, d.errorf("", -1, "file is %d bytes, too short for a .tflite model: truncated or empty", d.fileSize)
	}
	if id := d.buf[4:8]; string(id) != "TFL3" {
		return nil, d.errorf("", 4, "file identifier is %q, want \"TFL3\": not a .tflite model", printable(id))
	}
	model, err := d.table(int64(d.u32(0)), "model table")
	if err != nil {
		return nil, err
	}
	h := &header{}
	f, err := d.field(model, 0, 4, "model table", "version")
	if err != nil {
		return nil, err
	}
	if f != 0 {
		h.version = d.u32(f)
	}
	if h.version != 3 {
		return nil, d.errorf("", f, "schema version %d, want 3 (the only version the LiteRT runtime loads)", h.version)
	}
	pos, n, present, err := d.vector(model, 4, 4, "model table", "buffers")
	if err != nil {
		return nil, err
	}
	h.buffersPresent = present
	h.buffers = make([]rawBuffer, n) // n·4 bytes were checked to lie in buf
	h.end = min(d.fileSize, maxFlatbuffer)
	for i := range h.buffers {
		where := fmt.Sprintf("buffer %d", i)
		at := pos + 4*int64(i)
		b := &h.buffers[i]
		b.table = at + int64(d.u32(at))
		t, err := d.table(b.table, where)
		if err != nil {
			return nil, err
		}
		dp, dn, has, err := d.vector(t, 0, 1, where, "data")
		if err != nil {
			return nil, err
		}
		b.hasData, b.dataPos, b.dataLen = has, dp, dn
		if f, err := d.field(t, 1, 8, where, "offset"); err != nil {
			return nil, err
		} else if f != 0 {
			b.offset = d.u64(f)
		}
		if f, err := d.field(t, 2, 8, where, "size"); err != nil {
			return nil, err
		} else if f != 0 {
			b.size = d.u64(f)
		}
		if !b.hasData && b.offset > 1 && b.offset < uint64(h.end) {
			h.end = int64(b.offset)
		}
	}
	return h, nil
}

func printable(b []byte) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '.'
		}
		return r
	}, string(b))
}

// decodeBudget is the unpack budget for a flatbuffer part of n bytes: each
// unpacked element needs at least a few bytes of file, so a multiple of n
// admits every honest file and stops shared-table bombs.
func decodeBudget(n int64) int64 { return 8*n + 1<<16 }

func (d *decoder) decode(src *source) (*Model, error) {
	h, err := d.header()
	if err != nil {
		return nil, err
	}
	d.buf = d.buf[:h.end]
	// Re-read the header within the flatbuffer part: every Buffer table and
	// inline data vector must lie in it.
	if h, err = d.header(); err != nil {
		return nil, err
	}
	if err := d.verifyFlatbuffer(); err != nil {
		return nil, err
	}
	meta := &fb.ModelT{Version: h.version}
	err = fb.Decode(decodeBudget(int64(len(d.buf))), func() error {
		return d.unpack(meta)
	})
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			return nil, err
		}
		return nil, d.errorf("", -1, "%s", describePanic(err, len(d.buf)))
	}
	m := &Model{Meta: meta, Name: d.name, Layout: LayoutInline}
	if h.buffersPresent {
		meta.Buffers = make([]*fb.BufferT, len(h.buffers))
	}
	m.Buffers = make([]Buffer, len(h.buffers))
	for i, b := range h.buffers {
		meta.Buffers[i] = &fb.BufferT{Offset: b.offset, Size: b.size}
		switch {
		case b.hasData:
			m.Buffers[i].Data = src.section(b.dataPos, b.dataLen)
		case b.offset > 1:
			if b.offset > uint64(d.fileSize) || b.size > uint64(d.fileSize)-b.offset {
				return nil, d.errorf(fmt.Sprintf("buffer %d", i), b.table,
					"data at offset %d of size %d runs past the end of the file (%d bytes): file truncated or corrupt", b.offset, b.size, d.fileSize)
			}
			m.Buffers[i].Data = src.section(int64(b.offset), int64(b.size))
			m.Layout = LayoutOffset
		}
	}
	if err := d.largeCustomOptions(m, src); err != nil {
		return nil, err
	}
	if err := d.validate(m); err != nil {
		return nil, err
	}
	return m, nil
}

// largeCustomOptions turns custom options stored after the flatbuffer
// (large_custom_options_offset > 1, no custom_options vector: the runtime
// then reads them from the file) into Sections.
func (d *decoder) largeCustomOptions(m *Model, src *source) error {
	for si, sg := range m.Meta.Subgraphs {
		for oi, op := range sg.Operators {
			if op.CustomOptions != nil || op.LargeCustomOptionsOffset <= 1 {
				continue
			}
			off, n := op.LargeCustomOptionsOffset, op.LargeCustomOptionsSize
			if off > uint64(d.fileSize) || n > uint64(d.fileSize)-off {
				return d.errorf(fmt.Sprintf("subgraph %d operator %d", si, oi), -1,
					"large custom options at offset %d of size %d run past the end of the file (%d bytes)", off, n, d.fileSize)
			}
			if m.LargeCustomOptions == nil {
				m.LargeCustomOptions = map[*fb.OperatorT]Content{}
			}
			m.LargeCustomOptions[op] = src.section(int64(off), int64(n))
		}
	}
	return nil
}

// describePanic turns what a generated accessor panicked with into words.
func describePanic(err error, fbSize int) string {
	if errors.Is(err, fb.ErrBudget) {
		return err.Error()
	}
	var re runtime.Error
	if errors.As(err, &re) {
		return fmt.Sprintf("a table or vector lies outside the flatbuffer (%d bytes): file truncated or corrupt (%v)", fbSize, re)
	}
	return "corrupt flatbuffer: " + err.Error()
}

// try runs f, turning a panic into an error located at where.
func (d *decoder) try(where func() string, f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(error)
			if !ok {
				e = fmt.Errorf("%v", r)
			}
			err = d.errorf(where(), -1, "%s", describePanic(e, len(d.buf)))
		}
	}()
	f()
	return nil
}

func at(s string) func() string { return func() string { return s } }

// count checks a vector length read by a generated accessor: n elements of
// elemSize bytes must fit in the flatbuffer before anything is allocated.
func (d *decoder) count(n int, elemSize int64, what string) error {
	if n < 0 || int64(n)*elemSize > int64(len(d.buf)) {
		return d.errorf("model table", -1, "%s vector claims %d elements, more than the flatbuffer (%d bytes) can hold", what, n, len(d.buf))
	}
	return nil
}

// Model vtable offsets (4 + 2·field id), for presence checks.
const (
	voOperatorCodes        = 6
	voSubgraphs            = 8
	voMetadataBuffer       = 14
	voMetadata             = 16
	voSignatureDefs        = 18
	voExternalBufferGroups = 20
	voExternalBuffers      = 22
)

// unpack fills every field of meta except Version and Buffers, element by
// element so that an error can say which element is broken. It mirrors
// fb.Model.UnPackTo (a test checks that they agree on every test model).
func (d *decoder) unpack(meta *fb.ModelT) error {
	var root *fb.Model
	var tab flatbuffers.Table
	if err := d.try(at("model table"), func() {
		root = fb.GetRootAsModel(d.buf, 0)
		tab = root.Table()
	}); err != nil {
		return err
	}
	// header() checked the root's vtable, so these reads are in bounds.
	present := func(vo flatbuffers.VOffsetT, n int) bool { return n > 0 || tab.Offset(vo) != 0 }

	// Operator codes.
	var n int
	if err := d.try(at("operator codes"), func() { n = root.OperatorCodesLength() }); err != nil {
		return err
	}
	if err := d.count(n, 4, "operator_codes"); err != nil {
		return err
	}
	if present(voOperatorCodes, n) {
		meta.OperatorCodes = make([]*fb.OperatorCodeT, n)
	}
	for j := 0; j < n; j++ {
		if err := d.try(func() string { return fmt.Sprintf("operator code %d", j) }, func() {
			var x fb.OperatorCode
			root.OperatorCodes(&x, j)
			meta.OperatorCodes[j] = x.UnPack()
		}); err != nil {
			return err
		}
	}

	// Subgraphs.
	if err := d.try(at("subgraphs"), func() { n = root.SubgraphsLength() }); err != nil {
		return err
	}
	if err := d.count(n, 4, "subgraphs"); err != nil {
		return err
	}
	if present(voSubgraphs, n) {
		meta.Subgraphs = make([]*fb.SubGraphT, n)
	}
	for i := 0; i < n; i++ {
		sg, err := d.subgraph(root, i)
		if err != nil {
			return err
		}
		meta.Subgraphs[i] = sg
	}

	if err := d.try(at("model description"), func() { meta.Description = string(root.Description()) }); err != nil {
		return err
	}

	// Legacy metadata_buffer list.
	if err := d.try(at("metadata_buffer"), func() { n = root.MetadataBufferLength() }); err != nil {
		return err
	}
	if err := d.count(n, 4, "metadata_buffer"); err != nil {
		return err
	}
	if present(voMetadataBuffer, n) {
		meta.MetadataBuffer = make([]int32, n)
	}
	if err := d.try(at("metadata_buffer"), func() {
		for j := 0; j < n; j++ {
			meta.MetadataBuffer[j] = root.MetadataBuffer(j)
		}
	}); err != nil {
		return err
	}

	// Metadata.
	if err := d.try(at("metadata"), func() { n = root.MetadataLength() }); err != nil {
		return err
	}
	if err := d.count(n, 4, "metadata"); err != nil {
		return err
	}
	if present(voMetadata, n) {
		meta.Metadata = make([]*fb.MetadataT, n)
	}
	for j := 0; j < n; j++ {
		if err := d.try(func() string { return fmt.Sprintf("metadata %d", j) }, func() {
			var x fb.Metadata
			root.Metadata(&x, j)
			meta.Metadata[j] = x.UnPack()
		}); err != nil {
			return err
		}
	}

	// Signature defs.
	if err := d.try(at("signature defs"), func() { n = root.SignatureDefsLength() }); err != nil {
		return err
	}
	if err := d.count(n, 4, "signature_defs"); err != nil {
		return err
	}
	if present(voSignatureDefs, n) {
		meta.SignatureDefs = make([]*fb.SignatureDefT, n)
	}
	for j := 0; j < n; j++ {
		if err := d.try(func() string { return fmt.Sprintf("signature %d", j) }, func() {
			var x fb.SignatureDef
			root.SignatureDefs(&x, j)
			meta.SignatureDefs[j] = x.UnPack()
		}); err != nil {
			return err
		}
	}

	// External buffer groups and external buffers (schema 3d).
	if err := d.try(at("external buffer groups"), func() { n = root.ExternalBufferGroupsLength() }); err != nil {
		return err
	}
	if err := d.count(n, 4, "external_buffer_groups"); err != nil {
		return err
	}
	if present(voExternalBufferGroups, n) {
		meta.ExternalBufferGroups = make([]*fb.ExternalBufferGroupT, n)
	}
	for j := 0; j < n; j++ {
		if err := d.try(func() string { return fmt.Sprintf("external buffer group %d", j) }, func() {
			var x fb.ExternalBufferGroup
			root.ExternalBufferGroups(&x, j)
			meta.ExternalBufferGroups[j] = x.UnPack()
		}); err != nil {
			return err
		}
	}
	if err := d.try(at("external buffers"), func() { n = root.ExternalBuffersLength() }); err != nil {
		return err
	}
	if err := d.count(n, 4, "external_buffers"); err != nil {
		return err
	}
	if present(voExternalBuffers, n) {
		meta.ExternalBuffers = make([]*fb.ExternalBufferT, n)
	}
	for j := 0; j < n; j++ {
		if err := d.try(func() string { return fmt.Sprintf("external buffer %d", j) }, func() {
			var x fb.ExternalBuffer
			root.ExternalBuffers(&x, j)
			meta.ExternalBuffers[j] = x.UnPack()
		}); err != nil {
			return err
		}
	}
	return nil
}

// subgraph unpacks subgraph i. When that fails it unpacks the tensors and
// operators one by one to say which one is broken.
func (d *decoder) subgraph(root *fb.Model, i int) (*fb.SubGraphT, error) {
	var sg fb.SubGraph
	var t *fb.SubGraphT
	err := d.try(func() string { return fmt.Sprintf("subgraph %d", i) }, func() {
		root.Subgraphs(&sg, i)
		t = sg.UnPack()
	})
	if err == nil {
		return t, nil
	}
	if fe := (*FormatError)(nil); errors.As(err, &fe) && strings.Contains(fe.Msg, fb.ErrBudget.Error()) {
		return nil, err // the budget is spent: a second pass would blame an innocent element
	}
	var nt, no int
	if d.try(at(""), func() { nt, no = sg.TensorsLength(), sg.OperatorsLength() }) != nil {
		return nil, err
	}
	for j := 0; j < nt; j++ {
		var x fb.Tensor
		pos := int64(-1)
		if e := d.try(at(""), func() {
			sg.Tensors(&x, j)
			pos = int64(x.Table().Pos)
			x.UnPack()
		}); e != nil {
			return nil, d.errorf(fmt.Sprintf("subgraph %d tensor %d", i, j), pos, "%s", e.(*FormatError).Msg)
		}
	}
	for j := 0; j < no; j++ {
		var x fb.Operator
		pos := int64(-1)
		if e := d.try(at(""), func() {
			sg.Operators(&x, j)
			pos = int64(x.Table().Pos)
			x.UnPack()
		}); e != nil {
			return nil, d.errorf(fmt.Sprintf("subgraph %d operator %d", i, j), pos, "%s", e.(*FormatError).Msg)
		}
	}
	return nil, err
}
