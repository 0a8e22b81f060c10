package litertlm

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"

	flatbuffers "github.com/google/flatbuffers/go"
)

// Content is new content for a section: Len bytes, written by WriteAt into
// the output file at an offset (a quantized model's writer streams and
// places its own pieces).
type Content interface {
	Len() int64
	WriteAt(ctx context.Context, f *os.File, off int64) error
}

// Layout returns each section's new [begin, end) when the sections in
// repl take the given sizes: sections keep their file order; while no
// earlier section changed size a section keeps its offsets (so a bundle
// with nothing resized is written back byte for byte), after that each
// begins at the first BlockSize boundary at or after the previous end.
func (b *Bundle) Layout(sizes map[int]int64) (begin, end []int64, total int64) {
	order := b.fileOrder()
	begin, end = make([]int64, len(b.Sections)), make([]int64, len(b.Sections))
	moved := false
	prev := b.HeaderEnd()
	for _, s := range order {
		n := s.Len()
		if m, ok := sizes[s.Index]; ok {
			n = m
		}
		at := align(prev)
		if !moved && s.Begin >= at {
			at = s.Begin
		}
		if n != s.Len() || at != s.Begin {
			moved = true
		}
		begin[s.Index], end[s.Index] = at, at+n
		prev = at + n
	}
	switch {
	case !moved && len(order) > 0:
		total = b.Size
	case b.padEnd(): // the input was padded to a block, as upstream's writer does
		total = align(prev)
	default:
		total = prev
	}
	return begin, end, total
}

// padEnd says whether the file ends on a block boundary after its last
// section (upstream's C++ writer pads; the reference quantizer's does not).
func (b *Bundle) padEnd() bool {
	if b.padded {
		return true
	}
	var last int64
	for _, s := range b.Sections {
		last = max(last, s.End)
	}
	return b.Size > last && b.Size%BlockSize == 0
}

func align(n int64) int64 { return (n + BlockSize - 1) / BlockSize * BlockSize }

// fileOrder lists the sections by begin offset (header order for ties).
func (b *Bundle) fileOrder() []*Section {
	order := make([]*Section, len(b.Sections))
	copy(order, b.Sections)
	sort.SliceStable(order, func(i, j int) bool { return order[i].Begin < order[j].Begin })
	return order
}

// Header returns the preamble and header with each section's offsets set
// to begin[i], end[i]; every other byte is the input's.
func (b *Bundle) Header(begin, end []int64) []byte {
	h := append([]byte(nil), b.header...)
	for _, s := range b.Sections {
		binary.LittleEndian.PutUint64(h[PreambleSize+s.beginPos:], uint64(begin[s.Index]))
		binary.LittleEndian.PutUint64(h[PreambleSize+s.endPos:], uint64(end[s.Index]))
	}
	return h
}

// WriteOptions are WriteFile's options.
type WriteOptions struct {
	// Check, when set, is run on the complete temporary file before it is
	// renamed into place; an error fails the write.
	Check func(tmp string) error
	// Sync flushes the file and its folder to the disk.
	Sync bool
}

// WriteFile writes b to path with the sections in repl replaced and the
// others copied byte for byte, through a temporary file renamed into
// place when complete. It refuses to write over the bundle's own input
// file.
func WriteFile(ctx context.Context, path string, b *Bundle, repl map[int]Content, opts WriteOptions) (err error) {
	if in, ok := b.r.(*os.File); ok {
		if a, err1 := os.Stat(path); err1 == nil {
			if c, err2 := in.Stat(); err2 == nil && os.SameFile(a, c) {
				return fmt.Errorf("litertlm: %s is the input bundle: qpipe never overwrites its input", path)
			}
		}
	}
	sizes := map[int]int64{}
	for i, c := range repl {
		if i < 0 || i >= len(b.Sections) {
			return fmt.Errorf("litertlm: WriteFile: no section %d", i)
		}
		sizes[i] = c.Len()
	}
	begin, end, total := b.Layout(sizes)
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("litertlm: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Truncate(total); err != nil { // the padding reads as zeros
		return fmt.Errorf("litertlm: %w", err)
	}
	if _, err := f.WriteAt(b.Header(begin, end), 0); err != nil {
		return fmt.Errorf("litertlm: %w", err)
	}
	for _, s := range b.fileOrder() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if c, ok := repl[s.Index]; ok {
			if err := c.WriteAt(ctx, f, begin[s.Index]); err != nil {
				return fmt.Errorf("litertlm: writing %s %s: %w", path, s.Name(), err)
			}
			continue
		}
		if b.r == nil {
			return fmt.Errorf("litertlm: writing %s: %s has no content", path, s.Name())
		}
		if err := copySection(f, begin[s.Index], b.r, s.Begin, s.Len()); err != nil {
			return fmt.Errorf("litertlm: writing %s: copying %s: %w", path, s.Name(), err)
		}
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("litertlm: %w", err)
	}
	if opts.Sync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("litertlm: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("litertlm: %w", err)
	}
	if opts.Check != nil {
		if err := opts.Check(f.Name()); err != nil {
			return err
		}
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("litertlm: %w", err)
	}
	if opts.Sync {
		if d, err := os.Open(filepath.Dir(path)); err == nil {
			d.Sync() // failure only weakens durability
			d.Close()
		}
	}
	return nil
}

// copySection copies n bytes of src at from to dst at to. From a file, the
// copy goes through (*os.File).ReadFrom, which lets the kernel copy
// (copy_file_range) on Linux.
func copySection(dst *os.File, to int64, src io.ReaderAt, from, n int64) error {
	if _, err := dst.Seek(to, io.SeekStart); err != nil {
		return err
	}
	var r io.Reader = io.NewSectionReader(src, from, n)
	if sf, ok := src.(*os.File); ok {
		if _, err := sf.Seek(from, io.SeekStart); err == nil {
			r = io.LimitReader(sf, n)
		}
	}
	m, err := io.Copy(dst, r)
	if err == nil && m != n {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// NewSection describes a section of a bundle built by New.
type NewSection struct {
	Type  SectionType
	Items []KV // values: string, bool, int64, uint64 or float64
}

// New returns a bundle of the given sections, with a header built from
// scratch (schema 1.9, every value a table, as upstream's writer). It has
// no input: WriteFile must be given every section's content.
func New(system []KV, sections []NewSection) (*Bundle, error) {
	bld := flatbuffers.NewBuilder(1024)
	sysVec, err := kvVector(bld, system)
	if err != nil {
		return nil, err
	}
	if sysVec == 0 { // entries is required, even when empty
		sysVec = offsets(bld, nil)
	}
	bld.StartObject(1)
	bld.PrependUOffsetTSlot(0, sysVec, 0)
	sysT := bld.EndObject()
	objs := make([]flatbuffers.UOffsetT, len(sections))
	for i, s := range sections {
		items, err := kvVector(bld, s.Items)
		if err != nil {
			return nil, err
		}
		bld.StartObject(4)
		bld.PrependUint64Slot(2, math.MaxInt64, 0)
		bld.PrependUint64Slot(1, math.MaxInt64, 0)
		if items != 0 {
			bld.PrependUOffsetTSlot(0, items, 0)
		}
		bld.PrependByteSlot(3, byte(s.Type), 0)
		objs[i] = bld.EndObject()
	}
	vec := offsets(bld, objs)
	bld.StartObject(1)
	bld.PrependUOffsetTSlot(0, vec, 0)
	secT := bld.EndObject()
	bld.StartObject(2)
	bld.PrependUOffsetTSlot(1, secT, 0)
	bld.PrependUOffsetTSlot(0, sysT, 0)
	bld.Finish(bld.EndObject())
	fbuf := bld.FinishedBytes()
	hdr := make([]byte, PreambleSize+len(fbuf))
	copy(hdr, Magic)
	binary.LittleEndian.PutUint32(hdr[8:], MajorVersion)
	binary.LittleEndian.PutUint32(hdr[12:], 9)
	binary.LittleEndian.PutUint64(hdr[headerEndPos:], uint64(len(hdr)))
	copy(hdr[PreambleSize:], fbuf)
	b := &Bundle{Name: "new bundle", Major: MajorVersion, Minor: 9, header: hdr}
	d := &decoder{buf: hdr[PreambleSize:], fail: func(where string, pos int, format string, a ...any) error {
		return fmt.Errorf("litertlm: New: internal error: %s: %s", where, fmt.Sprintf(format, a...))
	}}
	if err := d.metadata(b); err != nil {
		return nil, err
	}
	// Placeholder offsets: each section empty, in order after the header.
	for _, s := range b.Sections {
		s.Begin, s.End = align(b.HeaderEnd()), align(b.HeaderEnd())
	}
	b.Size = align(b.HeaderEnd())
	b.padded = true
	return b, nil
}

func offsets(bld *flatbuffers.Builder, objs []flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	bld.StartVector(4, len(objs), 4)
	for i := len(objs) - 1; i >= 0; i-- {
		bld.PrependUOffsetT(objs[i])
	}
	return bld.EndVector(len(objs))
}

// kvVector builds a [KeyValuePair] vector (0 for none).
func kvVector(bld *flatbuffers.Builder, kvs []KV) (flatbuffers.UOffsetT, error) {
	if len(kvs) == 0 {
		return 0, nil
	}
	objs := make([]flatbuffers.UOffsetT, len(kvs))
	for i, kv := range kvs {
		key := bld.CreateString(kv.Key)
		var typ byte
		var val flatbuffers.UOffsetT
		switch v := kv.Value.(type) {
		case string:
			s := bld.CreateString(v)
			bld.StartObject(1)
			bld.PrependUOffsetTSlot(0, s, 0)
			typ, val = vString, bld.EndObject()
		case bool:
			bld.StartObject(1)
			bld.PrependBoolSlot(0, v, false)
			typ, val = vBool, bld.EndObject()
		case int64:
			bld.StartObject(1)
			bld.PrependInt64Slot(0, v, 0)
			typ, val = vInt64, bld.EndObject()
		case uint64:
			bld.StartObject(1)
			bld.PrependUint64Slot(0, v, 0)
			typ, val = vUInt64, bld.EndObject()
		case float64:
			bld.StartObject(1)
			bld.PrependFloat64Slot(0, v, 0)
			typ, val = vDouble, bld.EndObject()
		default:
			return 0, fmt.Errorf("litertlm: metadata %q: value of type %T", kv.Key, kv.Value)
		}
		bld.StartObject(3)
		bld.PrependUOffsetTSlot(2, val, 0)
		bld.PrependUOffsetTSlot(0, key, 0)
		bld.PrependByteSlot(1, typ, 0)
		objs[i] = bld.EndObject()
	}
	return offsets(bld, objs), nil
}
