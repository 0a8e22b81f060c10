package stages

import (
	"io"
	"sync"

	"github.com/qpipe/qpipe/internal/tflite"
)

// byteCounter counts the bytes serialize writes and reports them.
type byteCounter struct {
	mu     sync.Mutex
	done   int64
	total  int64
	report func(done, total int64)
}

func (p *byteCounter) add(n int) {
	p.mu.Lock()
	p.done += int64(n)
	done := p.done
	p.mu.Unlock()
	p.report(done, p.total)
}

// progressContent counts the bytes a Content writes.
type progressContent struct {
	tflite.Content
	p *byteCounter
}

func (c progressContent) WriteTo(w io.Writer) (int64, error) {
	return c.Content.WriteTo(progressWriter{w, c.p})
}

type progressWriter struct {
	w io.Writer
	p *byteCounter
}

func (w progressWriter) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	w.p.add(n)
	return n, err
}

// ReadFrom passes on the in-kernel copy of unchanged buffers (see
// tflite.Section.WriteTo), which hands over at most 16 MiB at a time.
func (w progressWriter) ReadFrom(r io.Reader) (int64, error) {
	n, err := tflite.ReadFrom(w.w, r)
	w.p.add(int(n))
	return n, err
}
