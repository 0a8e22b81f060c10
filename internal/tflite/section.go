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
// used after the model is closed.
func (s *Section) Bytes() []byte {
	if s.src.closed.Load() || s.off+s.n > int64(len(s.src.data)) {
		return nil
	}
	return s.src.data[s.off : s.off+s.n : s.off+s.n]
}

// copyChunk is how many bytes WriteTo hands to w at a time.
const copyChunk = 4 << 20

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// WriteTo writes the section's bytes to w in chunks: from memory when the
// file is mapped (releasing the pages it has passed, so that streaming a
// large tensor does not grow the resident set), by positioned reads
// otherwise.
func (s *Section) WriteTo(w io.Writer) (int64, error) {
	if s.src.closed.Load() {
		return 0, fmt.Errorf("tflite: %s: section at byte %#x read after the model was closed", s.src.name, s.off)
	}
	if b := s.Bytes(); b != nil {
		var n int64
		for len(b) > 0 {
			c := b[:min(len(b), copyChunk)]
			m, err := w.Write(c)
			n += int64(m)
			if err != nil {
				return n, err
			}
			if s.src.mapped && len(b) > copyChunk {
				releasePages(s.src.data, c)
			}
			b = b[len(c):]
		}
		return n, nil
	}
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	var n int64
	for n < s.n {
		c := buf[:min(int64(len(buf)), s.n-n)]
		m, err := s.src.r.ReadAt(c, s.off+n)
		if m < len(c) {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return n, fmt.Errorf("tflite: %s: reading %d bytes at %#x: %w", s.src.name, len(c), s.off+n, err)
		}
		m, err = w.Write(c)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// source is the input a Model's sections read from.
type source struct {
	name string
	size int64 // of the whole input
	// data is the whole file when it is memory-mapped, otherwise the
	// flatbuffer part that was read into memory.
	data   []byte
	mapped bool
	// r serves positioned reads of bytes beyond data.
	r io.ReaderAt
	// file identifies the input file (nil when not read from a file); used
	// to refuse writing over it.
	file   os.FileInfo
	closed atomic.Bool
	// release unmaps data and/or closes the file we opened.
	release func() error
}

func (s *source) section(off, n int64) *Section { return &Section{src: s, off: off, n: n} }

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
