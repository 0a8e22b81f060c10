//go:build linux

package tflite

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// How the quantizer can get the bytes of a large weight that is already in
// the page cache, measured one thread at a time (go test -bench Input
// ./internal/tflite; QPIPE_BENCH_MB sets the file size, 256 by default).
// Every variant but the io.Copy baseline loads one word of every cache line
// it was given, as the kernels would; the mapping variants map and unmap the
// file in each iteration, since faults happen only on first access.

const inputPiece = 16 << 20

// openInput writes the benchmark's file (QPIPE_BENCH_MB MiB) in a
// temporary folder and reads it once, so that it sits in the page cache.
func openInput(b *testing.B) (*os.File, int64) {
	mb := 256
	if s := os.Getenv("QPIPE_BENCH_MB"); s != "" {
		var err error
		if mb, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	f, err := os.Create(filepath.Join(b.TempDir(), "input.bin"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for range mb {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	size := int64(mb) << 20
	if _, err := io.Copy(io.Discard, io.NewSectionReader(f, 0, size)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ResetTimer()
	return f, size
}

func benchMapped(b *testing.B, populate bool) {
	f, size := openInput(b)
	for b.Loop() {
		m, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < len(m); off += inputPiece {
			p := m[off:min(len(m), off+inputPiece)]
			if populate {
				if err := unix.Madvise(p, unix.MADV_POPULATE_READ); err != nil {
					b.Fatal(err)
				}
			}
			consumeLines(p)
		}
		if err := unix.Munmap(m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInputMmapTouch faults the mapping in page by page.
func BenchmarkInputMmapTouch(b *testing.B) { benchMapped(b, false) }

// BenchmarkInputMmapPopulate maps each 16 MiB piece with one
// MADV_POPULATE_READ (Linux 5.14) before reading it.
func BenchmarkInputMmapPopulate(b *testing.B) { benchMapped(b, true) }

func benchPread(b *testing.B, piece int) {
	f, size := openInput(b)
	buf := make([]byte, piece)
	for b.Loop() {
		for off := int64(0); off < size; off += int64(piece) {
			p := buf[:min(int64(piece), size-off)]
			if _, err := f.ReadAt(p, off); err != nil {
				b.Fatal(err)
			}
			consumeLines(p)
		}
	}
}

// BenchmarkInputPread16M reads 16 MiB pieces into one reused buffer.
func BenchmarkInputPread16M(b *testing.B) { benchPread(b, 16<<20) }

// BenchmarkInputPread1M reads 1 MiB pieces: they stay in the L2 cache
// between the copy and the loads.
func BenchmarkInputPread1M(b *testing.B) { benchPread(b, 1<<20) }

// benchPreadAhead reads the next piece on another goroutine while the
// current one is consumed (two buffers). With the file in the page cache it
// buys overlap only when a second core is free, and that core's cache gets
// the piece; it measured slower than reading in turn, so Pieces does not.
func benchPreadAhead(b *testing.B, piece int) {
	f, size := openInput(b)
	bufs := [2][]byte{make([]byte, piece), make([]byte, piece)}
	type read struct {
		p   []byte
		err error
	}
	start := func(i int, off int64) chan read {
		ch := make(chan read, 1)
		go func() {
			p := bufs[i][:min(int64(piece), size-off)]
			_, err := f.ReadAt(p, off)
			ch <- read{p, err}
		}()
		return ch
	}
	for b.Loop() {
		next := start(0, 0)
		for k, off := 0, int64(0); off < size; k, off = k+1, off+int64(piece) {
			r := <-next
			if r.err != nil {
				b.Fatal(r.err)
			}
			if off+int64(piece) < size {
				next = start((k+1)%2, off+int64(piece))
			}
			consumeLines(r.p)
		}
	}
}

func BenchmarkInputPread16MAhead(b *testing.B) { benchPreadAhead(b, 16<<20) }
func BenchmarkInputPread1MAhead(b *testing.B)  { benchPreadAhead(b, 1<<20) }

// BenchmarkInputIoCopy is the baseline: the file streamed through io.Copy's
// small buffer into io.Discard, no loads.
func BenchmarkInputIoCopy(b *testing.B) {
	f, size := openInput(b)
	for b.Loop() {
		if _, err := io.Copy(io.Discard, io.NewSectionReader(f, 0, size)); err != nil {
			b.Fatal(err)
		}
	}
}

// The output side, for the same number of bytes: writing a fresh file (in
// the page cache; dirty pages are flushed between iterations, outside the
// timed region) from a buffer in pieces of different sizes, and copying
// the input file to it with copy_file_range or through a buffer.

func benchOutput(b *testing.B, write func(out *os.File, in *os.File, size int64)) {
	in, size := openInput(b)
	path := filepath.Join(b.TempDir(), "out.bin")
	for b.Loop() {
		b.StopTimer()
		os.Remove(path)
		unix.Sync()
		b.StartTimer()
		out, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := out.Truncate(size); err != nil { // as WriteFile does
			b.Fatal(err)
		}
		write(out, in, size)
		if err := out.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func benchPwrite(b *testing.B, piece int) {
	buf := make([]byte, piece)
	for i := range buf {
		buf[i] = byte(i)
	}
	benchOutput(b, func(out, _ *os.File, size int64) {
		for off := int64(0); off < size; off += int64(piece) {
			if _, err := out.WriteAt(buf[:min(int64(piece), size-off)], off); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkOutputPwrite1M(b *testing.B)  { benchPwrite(b, 1<<20) }
func BenchmarkOutputPwrite16M(b *testing.B) { benchPwrite(b, 16<<20) }
func BenchmarkOutputPwrite64M(b *testing.B) { benchPwrite(b, 64<<20) }

// BenchmarkOutputCopyFileRange copies the input in 16 MiB ranges in the
// kernel, as WriteFile does for unchanged buffers.
func BenchmarkOutputCopyFileRange(b *testing.B) {
	benchOutput(b, func(out, in *os.File, size int64) {
		for off := int64(0); off < size; off += copyChunk {
			n := min(copyChunk, size-off)
			if m, err := copyRange(out, off, in, off, n); err != nil || m != n {
				b.Fatal(m, err)
			}
		}
	})
}

// BenchmarkOutputPreadPwrite copies through a 16 MiB buffer: the fallback.
func BenchmarkOutputPreadPwrite(b *testing.B) {
	buf := make([]byte, copyChunk)
	benchOutput(b, func(out, in *os.File, size int64) {
		for off := int64(0); off < size; off += copyChunk {
			p := buf[:min(copyChunk, size-off)]
			if _, err := in.ReadAt(p, off); err != nil {
				b.Fatal(err)
			}
			if _, err := out.WriteAt(p, off); err != nil {
				b.Fatal(err)
			}
		}
	})
}
