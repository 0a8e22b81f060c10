package tflite

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// Section is Content for the bytes of an input file at [Offset, Offset+Len).
// Buffers of a Model read by Open or Read are *Section. A Section stays
// usable until the Model it came from is closed.
type Section struct {
	src *source
	off int64
	n   int64
}

// Len is the number of bytes in the section.
func (s *Section) Len() int64 { return s.n }

// Offset is the position of the section's first byte in its file.
func (s *Section) Offset() int64 { return s.off }

// Bytes returns the section's bytes without copying when they are in memory
// (the file is memory-mapped, or the section lies in the flatbuffer part
// that Read loaded), and nil otherwise or after the model was closed. The
// result must not be modified (a mapping is read-only: writing faults) nor
// used after the model is closed. Reading a large section through the
// mapping faults it in a page at a time; Pieces and WriteTo read it for
// less.
func (s *Section) Bytes() []byte {
	if s.src.closed.Load() || s.off+s.n > int64(len(s.src.data)) {
		return nil
	}
	return s.src.data[s.off : s.off+s.n : s.off+s.n]
}

// Streaming input. Sections larger than smallSection are read by Pieces,
// through the mapping or by pread, whichever this machine does faster
// (inputpath.go); pread reads of 1 MiB, which stay in the cache until they
// are used, beat reads of 16 MiB (go test -bench Input ./internal/tflite).
// Unchanged sections are copied between files by the kernel where it can
// (copy_file_range). The mapping serves the flatbuffer and small buffers.
const (
	// smallSection is the largest section always read through the mapping.
	smallSection = 1 << 20
	// copyChunk is how many bytes WriteTo hands to an io.ReaderFrom at a
	// time: the grain at which wrappers of w see progress and cancellation.
	copyChunk = 16 << 20
	// bufSize is the size of the buffers WriteTo and the writer's ReadFrom
	// copy through when the kernel cannot copy: small enough to stay in
	// the cache between the read and the write.
	bufSize = 1 << 20
	// maxPooled is the largest buffer kept for reuse.
	maxPooled = 64 << 20
)

var piecePool sync.Pool

// getBuf returns a pooled buffer of n bytes (8-byte aligned: callers view
// it as float32s).
func getBuf(n int) *[]byte {
	if bp, ok := piecePool.Get().(*[]byte); ok && cap(*bp) >= n {
		*bp = (*bp)[:n]
		return bp
	}
	b := make([]byte, n, max(n, bufSize))
	return &b
}

func putBuf(bp *[]byte) {
	if bp != nil && cap(*bp) <= maxPooled {
		piecePool.Put(bp)
	}
}

// fromMemory says whether the section is read from memory: it was loaded
// (not mapped), or it is small, or there is nothing to pread from.
func (s *Section) fromMemory() bool {
	return s.Bytes() != nil && (!s.src.mapped || s.n <= smallSection || s.src.r == nil)
}

// readAt fills p with the section's bytes from offset off of the section.
func (s *Section) readAt(p []byte, off int64) error {
	if s.src.closed.Load() {
		return s.closedErr()
	}
	m, err := s.src.r.ReadAt(p, s.off+off)
	if m < len(p) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("tflite: %s: reading %d bytes at %#x: %w", s.src.name, len(p), s.off+off, err)
	}
	return nil
}

// closedErr is the error of a read after the model was closed.
func (s *Section) closedErr() error {
	return fmt.Errorf("tflite: %s: section at byte %#x read after the model was closed", s.src.name, s.off)
}

// stillThere checks, before the section's first end bytes are read through
// the mapping, that the file still holds them: reading a mapped page past
// the end of a file that was cut short raises SIGBUS, which no caller could
// handle. (A file cut while a piece is being read still can; pread cannot
// fail that way, which is why the mapping is only used on a measured gain.)
func (s *Section) stillThere(end int64) error {
	if s.src.closed.Load() {
		return s.closedErr()
	}
	f, ok := s.src.r.(*os.File)
	if !ok {
		return nil
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() < s.off+end {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return fmt.Errorf("tflite: %s: reading %d bytes at %#x: %w", s.src.name, end, s.off, err)
	}
	return nil
}

// WriteTo writes the section's bytes to w. A small section of a mapped file
// is written from memory. Otherwise, when w is an io.ReaderFrom (WriteFile's
// writer, and wrappers that forward to it with ReadFrom), the bytes go to
// it as io.SectionReaders of the input file of at most copyChunk bytes, so
// that the writer can copy them in the kernel; else they are read into a
// pooled buffer and written in chunks.
func (s *Section) WriteTo(w io.Writer) (int64, error) {
	if s.src.closed.Load() {
		return 0, s.closedErr()
	}
	if s.fromMemory() {
		n, err := w.Write(s.Bytes())
		return int64(n), err
	}
	if rf, ok := w.(io.ReaderFrom); ok && s.src.r != nil {
		var n int64
		for n < s.n {
			if s.src.closed.Load() {
				return n, s.closedErr()
			}
			k := min(copyChunk, s.n-n)
			m, err := rf.ReadFrom(io.NewSectionReader(s.src.r, s.off+n, k))
			n += m
			if err == nil && m != k {
				err = fmt.Errorf("tflite: %s: reading %d bytes at %#x: %w", s.src.name, k, s.off+n, io.ErrUnexpectedEOF)
			}
			if err != nil {
				return n, err
			}
		}
		return n, nil
	}
	bp := getBuf(int(min(bufSize, s.n)))
	defer putBuf(bp)
	buf := *bp
	var n int64
	for n < s.n {
		c := buf[:min(int64(len(buf)), s.n-n)]
		if err := s.readAt(c, n); err != nil {
			return n, err
		}
		m, err := w.Write(c)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// ReadFrom copies r to w: through w.ReadFrom when w has one, otherwise with
// io.Copy. It lets a writer that wraps another (to count bytes, or to stop
// on cancellation) pass on the kernel copy that Section.WriteTo offers.
func ReadFrom(w io.Writer, r io.Reader) (int64, error) {
	if rf, ok := w.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(w, r)
}

// writerOnly hides a writer's ReadFrom, for io.Copy inside ReadFrom.
type writerOnly struct{ io.Writer }

// Pieces reads a Content front to back in pieces of a fixed size. A large
// Section of a mapped file is read the way this machine reads fastest
// (inputpath.go): either handed out from the mapping, the pages it has
// passed released every releaseEvery bytes, or read by positioned reads
// into one pooled buffer, reused for every piece: a piece of the kernels'
// size (1 MiB) is still in the cache when it is quantized. Other content
// (small sections, bytes in memory) is handed out from memory without
// copying.
//
// There is no read-ahead goroutine: it was slower with the file in the
// page cache (go test -bench Pread1M ./internal/tflite; the piece lands in
// another core's cache), and the kernel's readahead serves uncached files.
type Pieces struct {
	size  int
	total int64
	off   int64 // of the next piece Next returns
	mem   []byte
	sec   *Section // read by pread
	buf   *[]byte
	// mapped is the section handed out from its mapping; the pages
	// before rel are released.
	mapped *Section
	rel    int64
	// buffered copies mapped pieces into buf (ReadPiecesBuffered).
	buffered bool
}

// releaseEvery is how many bytes of a mapped section Pieces passes between
// releases of their pages.
const releaseEvery = 16 << 20

// ReadPieces returns a reader of c in pieces of size bytes (the last may be
// shorter). The caller must Close it.
func ReadPieces(c Content, size int) (*Pieces, error) { return readPieces(c, size, false) }

// ReadPiecesBuffered is ReadPieces for a caller whose loop keeps few cache
// misses in flight (e.g. int4 blocks: a short dependent chain per 32
// elements, no read-ahead of its own): a piece of a large section is
// always copied into the pooled buffer, from the mapping or by pread, so
// that the caller reads it from the cache (int4 block 32 on the 1 GB
// decoder: 0.64-0.68 user seconds against 0.86-0.93 in place; int8, whose
// kernels read ahead, stays in place).
func ReadPiecesBuffered(c Content, size int) (*Pieces, error) { return readPieces(c, size, true) }

func readPieces(c Content, size int, buffered bool) (*Pieces, error) {
	if size <= 0 {
		return nil, fmt.Errorf("tflite: ReadPieces: piece size %d", size)
	}
	p := &Pieces{size: size, total: c.Len(), buffered: buffered}
	if s, ok := c.(*Section); ok && !s.fromMemory() && s.src.r != nil && size <= maxPooled {
		if s.src.mapped && inputPath(s) == InputMapped {
			if p.mem = s.Bytes(); p.mem != nil {
				p.mapped = s
				return p, nil
			}
		}
		p.sec = s
		return p, nil
	}
	mem, err := ReadAll(c)
	if err != nil {
		return nil, err
	}
	p.mem = mem
	return p, nil
}

// Next returns the next piece, valid until the following call of Next or
// Close, or io.EOF after the last.
func (p *Pieces) Next() ([]byte, error) {
	if p.off >= p.total {
		return nil, io.EOF
	}
	n := min(int64(p.size), p.total-p.off)
	if p.mem != nil {
		if p.mapped != nil && p.off-p.rel >= releaseEvery {
			p.release()
		}
		if p.mapped != nil {
			if err := p.mapped.stillThere(p.off + n); err != nil {
				return nil, err
			}
		}
		b := p.mem[p.off : p.off+n]
		if p.mapped != nil && p.buffered {
			if p.buf == nil {
				p.buf = getBuf(p.size)
			}
			b = (*p.buf)[:copy((*p.buf)[:n], b)]
		}
		p.off += n
		return b, nil
	}
	if p.buf == nil {
		p.buf = getBuf(p.size)
	}
	b := (*p.buf)[:n]
	if err := p.sec.readAt(b, p.off); err != nil {
		return nil, err
	}
	p.off += n
	return b, nil
}

// release drops the pages of the mapped section that Next has passed.
func (p *Pieces) release() {
	s := p.mapped
	s.src.releaseMapped(s.off+p.rel, s.off+p.off)
	p.rel = p.off
}

// Close returns the buffer to the pool, or releases the pages passed.
func (p *Pieces) Close() {
	if p.mapped != nil {
		p.release()
		p.mapped, p.mem = nil, nil
	}
	putBuf(p.buf)
	p.buf = nil
}

// source is the input a Model's sections read from.
type source struct {
	name string
	size int64 // of the whole input
	// data is the whole file when it is memory-mapped, otherwise the
	// flatbuffer part that was read into memory.
	data   []byte
	mapped bool
	// r serves positioned reads (of every byte when the file is mapped,
	// of bytes beyond data otherwise).
	r io.ReaderAt
	// file identifies the input file (nil when not read from a file); used
	// to refuse writing over it.
	file   os.FileInfo
	closed atomic.Bool
	// release unmaps data and/or closes the file we opened.
	release func() error
	// base is where the model begins in data and r (OpenSection): the
	// model's own offsets are relative to it, Sections' are not.
	base int64
}

// section is the Section of the model's bytes [off, off+n).
func (s *source) section(off, n int64) *Section { return &Section{src: s, off: s.base + off, n: n} }

// Close releases the mapping and files opened by Open.
func (s *source) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.release == nil {
		return nil
	}
	return s.release()
}
