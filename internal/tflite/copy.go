package tflite

import (
	"errors"
	"io"
	"os"
)

// fileWriter writes at increasing offsets of f: the writer WriteFile hands
// to each buffer's content.
type fileWriter struct {
	f   *os.File
	off int64
}

func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.f.WriteAt(p, w.off)
	w.off += int64(n)
	return n, err
}

// errNoKernelCopy says that the kernel declined to copy between the files
// (another file system, an old kernel, a system without copy_file_range):
// the caller copies through memory instead.
var errNoKernelCopy = errors.New("no in-kernel copy")

// kernelCopy can be turned off by tests, to compare both paths.
var kernelCopy = true

// ReadFrom copies r to the file. When r is an io.SectionReader of another
// file (what Section.WriteTo hands over) the kernel copies the bytes from
// file to file (copy_file_range on Linux), sparing the two copies through
// a user buffer; otherwise, and for whatever the kernel declines, they go
// through a pooled buffer.
func (w *fileWriter) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	if sr, ok := r.(*io.SectionReader); ok && kernelCopy {
		if src, base, size := sr.Outer(); src != nil {
			if f, ok := src.(*os.File); ok {
				pos, err := sr.Seek(0, io.SeekCurrent)
				if err != nil {
					return 0, err
				}
				n, err = copyRange(w.f, w.off, f, base+pos, size-pos)
				w.off += n
				if _, serr := sr.Seek(pos+n, io.SeekStart); serr != nil && err == nil {
					err = serr
				}
				if !errors.Is(err, errNoKernelCopy) {
					return n, err
				}
			}
		}
	}
	bp := getBuf(bufSize)
	defer putBuf(bp)
	m, err := io.CopyBuffer(writerOnly{w}, r, *bp)
	return n + m, err
}

// ReadFrom passes r on when it fits in what is left, so that the kernel
// copy stays available; anything else goes through Write, which checks.
func (e *exactWriter) ReadFrom(r io.Reader) (int64, error) {
	if sr, ok := r.(*io.SectionReader); ok {
		pos, err := sr.Seek(0, io.SeekCurrent)
		if err != nil {
			return 0, err
		}
		if sr.Size()-pos > e.left {
			return 0, errTooLong
		}
		n, err := ReadFrom(e.w, r)
		e.left -= n
		return n, err
	}
	return io.Copy(writerOnly{e}, r)
}
