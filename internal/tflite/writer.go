package tflite

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	flatbuffers "github.com/google/flatbuffers/go"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// WriteOptions controls how Write and WriteFile lay out a model. The zero
// value is ready to use.
type WriteOptions struct {
	// Layout is where buffer bytes go. LayoutAuto picks LayoutOffset when
	// the input model was in the offset layout, or when the file written
	// in the inline layout (flatbuffer tables plus all buffer bytes) would
	// exceed InlineLimit (2 GiB − 512 MiB, the converter's own threshold);
	// LayoutInline otherwise.
	Layout Layout

	// MaxInFlight bounds the bytes of buffer content WriteFile produces
	// concurrently (0 means 256 MiB). A single buffer larger than this is
	// still written, alone.
	MaxInFlight int64

	// Workers is how many goroutines WriteFile uses to produce buffer
	// content (0 means GOMAXPROCS).
	Workers int

	// Sync makes WriteFile flush the file (and the rename) to the disk
	// before returning, so the output survives an OS crash. Without it the
	// output is still complete or absent for every reader — the rename only
	// happens once every byte was written — but, like cp or a compiler,
	// WriteFile leaves writeback to the kernel, which on a slow disk is
	// most of the time of a large quantization.
	Sync bool

	// Check, when set, is called by WriteFile with the path of the
	// complete, closed temporary file, before it is renamed into place
	// (an accuracy gate reads the written model there). An error from it
	// removes the temporary file and is returned: path is not written.
	Check func(tmpPath string) error
}

// InlineLimit is the inline file size above which LayoutAuto chooses the
// offset layout.
const InlineLimit = 2<<30 - 512<<20

const (
	defaultMaxInFlight = 256 << 20
	dataAlign          = 16
	// tailPadding zero bytes follow the last buffer: XNNPACK may read up to
	// 16 bytes past the end of a weight (the converter pads the same way).
	tailPadding = 16
	// placeholder values are written in fields that are patched once the
	// flatbuffer's size is known; they must differ from the field default
	// so that the field is stored.
	placeholder = 1
)

// item is one piece of content placed in the output file.
type item struct {
	what    string // names it in errors: "buffer 7"
	content Content
	off     int64 // position of the first content byte
	n       int64
	prefix  bool // an inline vector: its u32 length sits at off-4
}

// plan is a laid-out file: the flatbuffer (already patched with every
// offset) followed by items at fixed positions, zeros in between.
type plan struct {
	head   []byte
	items  []item
	size   int64
	layout Layout
}

// Write writes m to w in the layout opts selects and returns the number of
// bytes written. The bytes are exactly those WriteFile writes; Write
// produces buffer contents one at a time, in file order.
func Write(w io.Writer, m *Model, opts WriteOptions) (int64, error) {
	p, err := layout(m, opts)
	if err != nil {
		return 0, err
	}
	if late := lateItems(p); m.LateTables || len(late) > 0 {
		return 0, fmt.Errorf("tflite: Write %s: the model's tables or buffers are completed while its data is written; use WriteFile", m.Name)
	}
	cw := &countingWriter{w: w}
	if _, err := cw.Write(p.head); err != nil {
		return cw.n, err
	}
	for _, it := range p.items {
		start := it.off
		if it.prefix {
			start -= 4
		}
		if err := writeZeros(cw, start-cw.n); err != nil {
			return cw.n, err
		}
		if it.prefix {
			var l [4]byte
			binary.LittleEndian.PutUint32(l[:], uint32(it.n))
			if _, err := cw.Write(l[:]); err != nil {
				return cw.n, err
			}
		}
		if err := writeItem(context.Background(), cw, it, "a copy of "+m.Name); err != nil {
			return cw.n, err
		}
	}
	if err := writeZeros(cw, p.size-cw.n); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

// Size is the number of bytes Write and WriteFile would write for m: the
// layout is computed, no content is produced.
func Size(m *Model, opts WriteOptions) (int64, error) {
	p, err := layout(m, opts)
	if err != nil {
		return 0, err
	}
	return p.size, nil
}

// WriteFile writes m to the file at path: into a temporary file in the
// same folder, synced, then renamed over path, so that path holds either
// its old content or the complete new model, never a partial one. Buffer
// contents are produced concurrently (see WriteOptions) and each is
// streamed to its offset. WriteFile refuses to write over a file the
// model's buffers are read from. Once ctx is done, every content fails at
// its next write and the temporary file is removed.
func WriteFile(ctx context.Context, path string, m *Model, opts WriteOptions) (err error) {
	if err := refuseInput(path, m); err != nil {
		return err
	}
	p, err := layout(m, opts)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("tflite: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Truncate(p.size); err != nil { // the gaps read as zeros
		return fmt.Errorf("tflite: %w", err)
	}
	if err := writePlan(ctx, f, path, p, m, opts, 0); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("tflite: %w", err)
	}
	if opts.Sync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("tflite: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("tflite: %w", err)
	}
	if opts.Check != nil {
		if err := opts.Check(f.Name()); err != nil {
			return err
		}
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("tflite: %w", err)
	}
	if opts.Sync {
		syncDir(filepath.Dir(path))
	}
	return nil
}

// syncDir makes a rename durable; failure only weakens durability.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// lateItems returns the positions in p.items of Late contents.
func lateItems(p *plan) map[int]bool {
	late := map[int]bool{}
	for i, it := range p.items {
		if _, ok := it.content.(Late); ok {
			late[i] = true
		}
	}
	return late
}

// writePlan writes p into f: the length prefixes, then every item's content
// at its offset, concurrently — Late contents after all others — and the
// flatbuffer last, built again when the model's tables were completed while
// the contents were written (Model.LateTables).
func writePlan(ctx context.Context, f *os.File, path string, p *plan, m *Model, opts WriteOptions, base int64) error {
	for _, it := range p.items {
		if it.prefix {
			var l [4]byte
			binary.LittleEndian.PutUint32(l[:], uint32(it.n))
			if _, err := f.WriteAt(l[:], base+it.off-4); err != nil {
				return fmt.Errorf("tflite: %w", err)
			}
		}
	}
	maxInFlight := opts.MaxInFlight
	if maxInFlight <= 0 {
		maxInFlight = defaultMaxInFlight
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	late := lateItems(p)
	for _, phase := range []bool{false, true} {
		sem := semaphore.NewWeighted(maxInFlight)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(workers)
		for i, it := range p.items {
			if late[i] != phase {
				continue
			}
			weight := min(max(it.n, 1), maxInFlight)
			if err := sem.Acquire(gctx, weight); err != nil {
				break // a worker failed or ctx is done; Wait returns why
			}
			g.Go(func() error {
				defer sem.Release(weight)
				return writeItem(gctx, &fileWriter{f: f, off: base + it.off}, it, path)
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	head := p.head
	if m.LateTables {
		again, err := build(m, p.layout)
		if err != nil {
			return err
		}
		if len(again.head) != len(p.head) || again.size != p.size {
			return fmt.Errorf("tflite: Write %s: internal error: the tables changed size while the data was written (%d → %d bytes)", m.Name, len(p.head), len(again.head))
		}
		head = again.head
	}
	if _, err := f.WriteAt(head, base); err != nil {
		return fmt.Errorf("tflite: %w", err)
	}
	return nil
}

// WriteAt writes m into f at offset base, as WriteFile would write it to a
// file of its own (Size bytes; the bytes between the pieces are left as
// they are, zeros in a freshly truncated file): a LiteRT-LM bundle's
// TFLiteModel section. opts.Check is not applied.
func WriteAt(ctx context.Context, f *os.File, base int64, m *Model, opts WriteOptions) error {
	if err := refuseInput(f.Name(), m); err != nil {
		return err
	}
	p, err := layout(m, opts)
	if err != nil {
		return err
	}
	return writePlan(ctx, f, f.Name(), p, m, opts, base)
}

// writeItem streams it's content to w, which must be positioned at it.off,
// and checks that the content writes exactly the bytes it announced. Once
// ctx is done the content's next write fails. out names what is written in
// errors.
func writeItem(ctx context.Context, w io.Writer, it item, out string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ew := &exactWriter{w: ctxWriter{ctx, w}, left: it.n}
	n, err := it.content.WriteTo(ew)
	if err == nil && (n != it.n || ew.left != 0) {
		err = fmt.Errorf("content wrote %d bytes, its Len is %d", it.n-ew.left, it.n)
	}
	if err != nil {
		return fmt.Errorf("tflite: writing %s: %s: %w", out, it.what, err)
	}
	return nil
}

// exactWriter refuses bytes beyond the announced length, so that a
// misbehaving Content cannot overwrite its neighbour.
type exactWriter struct {
	w    io.Writer
	left int64
}

var errTooLong = errors.New("content writes more bytes than its Len")

func (e *exactWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > e.left {
		return 0, errTooLong
	}
	n, err := e.w.Write(p)
	e.left -= int64(n)
	return n, err
}

var zeros [64]byte

func writeZeros(w io.Writer, n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := w.Write(zeros[:k]); err != nil {
			return err
		}
		n -= k
	}
	if n < 0 {
		return fmt.Errorf("tflite: internal error: layout overlaps by %d bytes", -n)
	}
	return nil
}

// refuseInput fails when path is a file that m's buffers are read from:
// replacing it while they are still being read would be unsafe on systems
// without memory mapping, and is never what the caller meant.
func refuseInput(path string, m *Model) error {
	st, err := os.Stat(path)
	if err != nil {
		return nil // nothing there (or not ours to judge): write normally
	}
	same := func(src *source) bool { return src != nil && src.file != nil && os.SameFile(src.file, st) }
	bad := same(m.src)
	for _, b := range m.Buffers {
		if s, ok := b.Data.(*Section); ok && same(s.src) {
			bad = true
		}
	}
	for _, c := range m.LargeCustomOptions {
		if s, ok := c.(*Section); ok && same(s.src) {
			bad = true
		}
	}
	if bad {
		return fmt.Errorf("tflite: refusing to write %s: it is the file the model's weights are read from; write to another path", path)
	}
	return nil
}

func align(n, a int64) int64 { return (n + a - 1) / a * a }

// layout chooses the layout and computes the file.
func layout(m *Model, opts WriteOptions) (*plan, error) {
	if m == nil || m.Meta == nil {
		return nil, errors.New("tflite: Write: model has no tables")
	}
	if len(m.Buffers) != len(m.Meta.Buffers) {
		return nil, fmt.Errorf("tflite: Write %s: %d buffer contents for %d Buffer tables", m.Name, len(m.Buffers), len(m.Meta.Buffers))
	}
	for i, b := range m.Meta.Buffers {
		if b != nil && b.Data != nil {
			return nil, fmt.Errorf("tflite: Write %s: Meta.Buffers[%d].Data is set; put buffer bytes in Model.Buffers[%d].Data", m.Name, i, i)
		}
	}
	switch opts.Layout {
	case LayoutInline, LayoutOffset:
		return build(m, opts.Layout)
	}
	if m.Layout == LayoutOffset {
		return build(m, LayoutOffset)
	}
	var data int64
	for _, b := range m.Buffers {
		if b.Data != nil {
			data += align(b.Data.Len()+4, dataAlign)
		}
	}
	if data > InlineLimit {
		return build(m, LayoutOffset)
	}
	p, err := build(m, LayoutInline)
	if err != nil || p.size <= InlineLimit {
		return p, err
	}
	return build(m, LayoutOffset)
}

// contentKey identifies content that is stored once however many buffers
// refer to it: the same bytes of the same input file.
type contentKey struct {
	src    *source
	off, n int64
	inline bool
}

// build lays m out in layout l.
//
// The flatbuffer holds every table; buffer bytes never pass through the
// Builder. In the inline layout each Buffer.data is a uoffset patched after
// Finish to point forward to a [u32 length][bytes] vector placed after the
// flatbuffer, its bytes 16-byte aligned. In the offset layout Buffer.offset
// and Buffer.size address 16-byte aligned bytes instead, except for
// metadata buffers, which stay inline vectors placed first (the runtime
// reads min_runtime_version from inline data only) and empty buffers,
// which stay empty vectors. Then come 16 zero bytes, then custom options
// that the input kept out of the flatbuffer.
func build(m *Model, l Layout) (*plan, error) {
	meta := m.Meta
	metadata := meta.Metadata
	if l == LayoutInline && metadata != nil {
		metadata = make([]*fb.MetadataT, 0, len(meta.Metadata))
		for _, e := range meta.Metadata {
			if e.Name != bufferLocation {
				metadata = append(metadata, e)
			}
		}
	}
	metaBufs := map[uint32]bool{}
	for _, md := range metadata {
		metaBufs[md.Buffer] = true
	}
	for _, b := range meta.MetadataBuffer {
		metaBufs[uint32(b)] = true
	}
	// How each buffer is stored.
	const (
		none = iota
		vector
		offset
	)
	kind := make([]int, len(m.Buffers))
	for i, b := range m.Buffers {
		switch {
		case b.Data == nil:
			kind[i] = none
		case l == LayoutOffset && b.Data.Len() > 0 && !metaBufs[uint32(i)]:
			kind[i] = offset
		default:
			kind[i] = vector
		}
		if b.Data != nil && b.Data.Len() < 0 {
			return nil, fmt.Errorf("tflite: Write %s: buffer %d has negative length %d", m.Name, i, b.Data.Len())
		}
	}

	ops, err := customOptionsOps(m)
	if err != nil {
		return nil, err
	}

	var head []byte
	var bufTables []flatbuffers.UOffsetT
	if err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("tflite: Write %s: building the flatbuffer failed (%v); its tables must stay under 2 GiB", m.Name, r)
			}
		}()
		b := flatbuffers.NewBuilder(1 << 16)
		root := packModel(b, m, metadata, ops, func(i int) flatbuffers.UOffsetT {
			fb.BufferStart(b)
			switch kind[i] {
			case vector:
				b.PrependUint32Slot(0, placeholder, 0) // uoffset, patched below
			case offset:
				fb.BufferAddOffset(b, placeholder) // patched below
				fb.BufferAddSize(b, uint64(m.Buffers[i].Data.Len()))
			}
			return fb.BufferEnd(b)
		}, &bufTables)
		b.FinishWithFileIdentifier(root, []byte("TFL3"))
		head = b.FinishedBytes()
		return nil
	}(); err != nil {
		return nil, err
	}
	if int64(len(head)) > maxFlatbuffer {
		return nil, fmt.Errorf("tflite: Write %s: the flatbuffer tables take %d bytes, over the 2 GiB limit", m.Name, len(head))
	}

	p := &plan{layout: l}
	pos := align(int64(len(head)), dataAlign)
	placed := map[contentKey]int64{}
	place := func(i int, c Content, inline bool) int64 {
		key, dedup := contentKey{}, false
		if s, ok := c.(*Section); ok {
			key, dedup = contentKey{s.src, s.off, s.n, inline}, true
			if off, ok := placed[key]; ok {
				return off
			}
		}
		var off int64
		if inline {
			off = align(pos+4, dataAlign)
		} else {
			off = align(pos, dataAlign)
		}
		p.items = append(p.items, item{what: fmt.Sprintf("buffer %d", i), content: c, off: off, n: c.Len(), prefix: inline})
		pos = off + c.Len()
		if dedup {
			placed[key] = off
		}
		return off
	}
	tablePos := func(t flatbuffers.UOffsetT) int64 { return int64(len(head)) - int64(t) }
	fieldPos := func(table int64, slot int) int64 {
		tab := flatbuffers.Table{Bytes: head, Pos: flatbuffers.UOffsetT(table)}
		return table + int64(tab.Offset(flatbuffers.VOffsetT(4+2*slot)))
	}
	// Inline vectors: metadata buffers first, then (inline layout) the rest.
	for _, first := range []bool{true, false} {
		for i, b := range m.Buffers {
			if kind[i] != vector || metaBufs[uint32(i)] != first {
				continue
			}
			off := place(i, b.Data, true)
			f := fieldPos(tablePos(bufTables[i]), 0)
			binary.LittleEndian.PutUint32(head[f:], uint32(off-4-f))
		}
	}
	if pos > maxFlatbuffer {
		if l == LayoutInline {
			return nil, fmt.Errorf("tflite: Write %s: %d bytes in the inline layout, over the 2 GiB a flatbuffer can hold; use the offset layout", m.Name, pos)
		}
		return nil, fmt.Errorf("tflite: Write %s: metadata buffers take %d bytes, over the 2 GiB a flatbuffer can hold", m.Name, pos)
	}
	for i, b := range m.Buffers {
		if kind[i] != offset {
			continue
		}
		off := place(i, b.Data, false)
		binary.LittleEndian.PutUint64(head[fieldPos(tablePos(bufTables[i]), 1):], uint64(off))
	}
	pos += tailPadding
	if len(ops) > 0 {
		root := fb.GetRootAsModel(head, 0)
		for _, op := range ops {
			off := align(pos, dataAlign)
			p.items = append(p.items, item{what: fmt.Sprintf("custom options of subgraph %d operator %d", op.sg, op.op), content: op.c, off: off, n: op.c.Len()})
			pos = off + op.c.Len()
			var sg fb.SubGraph
			var o fb.Operator
			if !root.Subgraphs(&sg, op.sg) || !sg.Operators(&o, op.op) || !o.MutateLargeCustomOptionsOffset(uint64(off)) {
				return nil, fmt.Errorf("tflite: Write %s: internal error: cannot patch large custom options of subgraph %d operator %d", m.Name, op.sg, op.op)
			}
		}
	}
	p.head = head
	p.size = pos
	return p, nil
}

// largeOptions is an operator whose custom options go after the buffers.
type largeOptions struct {
	sg, op int
	c      Content
}

// customOptionsOps lists, in file order, the operators whose custom
// options are stored after the flatbuffer.
func customOptionsOps(m *Model) ([]largeOptions, error) {
	var ops []largeOptions
	for si, sg := range m.Meta.Subgraphs {
		for oi, op := range sg.Operators {
			c, ok := m.LargeCustomOptions[op]
			switch {
			case ok && op.CustomOptions != nil:
				return nil, fmt.Errorf("tflite: Write %s: subgraph %d operator %d has both custom_options and LargeCustomOptions", m.Name, si, oi)
			case ok:
				ops = append(ops, largeOptions{si, oi, c})
			case op.CustomOptions == nil && op.LargeCustomOptionsOffset > 1:
				return nil, fmt.Errorf("tflite: Write %s: subgraph %d operator %d has large_custom_options_offset %d but no content in Model.LargeCustomOptions",
					m.Name, si, oi, op.LargeCustomOptionsOffset)
			}
		}
	}
	return ops, nil
}

// packModel builds the Model table as fb.ModelT.Pack does, except that
// Buffer tables come from packBuffer (their tables are recorded in
// *bufTables), the metadata list is the given one (without
// buffer_location in the inline layout), and operators with large custom
// options get placeholder offsets.
func packModel(b *flatbuffers.Builder, m *Model, metadata []*fb.MetadataT, ops []largeOptions,
	packBuffer func(i int) flatbuffers.UOffsetT, bufTables *[]flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	t := m.Meta
	tables := func(n int, pack func(j int) flatbuffers.UOffsetT) flatbuffers.UOffsetT {
		offs := make([]flatbuffers.UOffsetT, n)
		for j := range offs {
			offs[j] = pack(j)
		}
		b.StartVector(4, n, 4)
		for j := n - 1; j >= 0; j-- {
			b.PrependUOffsetT(offs[j])
		}
		return b.EndVector(n)
	}

	var opcodes, subgraphs, description, buffers, metadataBuffer, metadataVec, signatures, groups, externals flatbuffers.UOffsetT
	if t.OperatorCodes != nil {
		opcodes = tables(len(t.OperatorCodes), func(j int) flatbuffers.UOffsetT { return t.OperatorCodes[j].Pack(b) })
	}
	if t.Subgraphs != nil {
		sgs := withLargeOptionPlaceholders(t.Subgraphs, ops)
		subgraphs = tables(len(sgs), func(j int) flatbuffers.UOffsetT { return sgs[j].Pack(b) })
	}
	if t.Description != "" {
		description = b.CreateString(t.Description)
	}
	if t.Buffers != nil {
		*bufTables = make([]flatbuffers.UOffsetT, len(t.Buffers))
		buffers = tables(len(t.Buffers), func(j int) flatbuffers.UOffsetT {
			(*bufTables)[j] = packBuffer(j)
			return (*bufTables)[j]
		})
	}
	if t.MetadataBuffer != nil {
		fb.ModelStartMetadataBufferVector(b, len(t.MetadataBuffer))
		for j := len(t.MetadataBuffer) - 1; j >= 0; j-- {
			b.PrependInt32(t.MetadataBuffer[j])
		}
		metadataBuffer = b.EndVector(len(t.MetadataBuffer))
	}
	if metadata != nil {
		metadataVec = tables(len(metadata), func(j int) flatbuffers.UOffsetT { return metadata[j].Pack(b) })
	}
	if t.SignatureDefs != nil {
		signatures = tables(len(t.SignatureDefs), func(j int) flatbuffers.UOffsetT { return t.SignatureDefs[j].Pack(b) })
	}
	if t.ExternalBufferGroups != nil {
		groups = tables(len(t.ExternalBufferGroups), func(j int) flatbuffers.UOffsetT { return t.ExternalBufferGroups[j].Pack(b) })
	}
	if t.ExternalBuffers != nil {
		externals = tables(len(t.ExternalBuffers), func(j int) flatbuffers.UOffsetT { return t.ExternalBuffers[j].Pack(b) })
	}
	fb.ModelStart(b)
	fb.ModelAddVersion(b, t.Version)
	fb.ModelAddOperatorCodes(b, opcodes)
	fb.ModelAddSubgraphs(b, subgraphs)
	fb.ModelAddDescription(b, description)
	fb.ModelAddBuffers(b, buffers)
	fb.ModelAddMetadataBuffer(b, metadataBuffer)
	fb.ModelAddMetadata(b, metadataVec)
	fb.ModelAddSignatureDefs(b, signatures)
	fb.ModelAddExternalBufferGroups(b, groups)
	fb.ModelAddExternalBuffers(b, externals)
	return fb.ModelEnd(b)
}

// bufferLocation is the metadata entry the converter adds to offset-layout
// files; BuildFromModel refuses files that carry it, so an inline file must
// not.
const bufferLocation = "buffer_location"

// withLargeOptionPlaceholders returns subgraphs whose operators with large
// custom options carry placeholder offsets and their real sizes (shallow
// copies: the model is not modified).
func withLargeOptionPlaceholders(sgs []*fb.SubGraphT, ops []largeOptions) []*fb.SubGraphT {
	if len(ops) == 0 {
		return sgs
	}
	out := append([]*fb.SubGraphT(nil), sgs...)
	copied := map[int]bool{}
	for _, o := range ops {
		if !copied[o.sg] {
			sg := *out[o.sg]
			sg.Operators = append([]*fb.OperatorT(nil), sg.Operators...)
			out[o.sg] = &sg
			copied[o.sg] = true
		}
		op := *out[o.sg].Operators[o.op]
		op.LargeCustomOptionsOffset = placeholder + 1 // > 1: "stored outside"
		op.LargeCustomOptionsSize = uint64(o.c.Len())
		out[o.sg].Operators[o.op] = &op
	}
	return out
}

// ctxWriter fails every write once ctx is done: contents write in chunks
// of at most 16 MiB (Section; the quantize kernels write the output of 1 MiB
// of input at a time), so a cancel takes effect within one chunk. It lives
// for one writeItem call.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (w ctxWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.w.Write(p)
}

// ReadFrom checks ctx, then passes r on (Section hands over at most 16 MiB
// at a time), so that the file writer's in-kernel copy stays available.
func (w ctxWriter) ReadFrom(r io.Reader) (int64, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return ReadFrom(w.w, r)
}
