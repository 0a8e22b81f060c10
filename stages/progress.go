package stages

import (
	"io"
	"sync"

	"github.com/qpipe/qpipe/internal/tflite"
)

type progress struct {
	mu     sync.Mutex
	done   int64
	total  int64
	report func(done, total int64)
}

func (p *progress) add(n int) {
	p.mu.Lock()
	p.done += int64(n)
	done := p.done
	p.mu.Unlock()
	p.report(done, p.total)
}

// progressContent counts the bytes a Content writes.
type progressContent struct {
	tflite.Content
	p *progress
}

func (c progressContent) WriteTo(w io.Writer) (int64, error) {
	return c.Content.WriteTo(progressWriter{w, c.p})
}

type progressWriter struct {
	w io.Writer
	p *progress
}

func (w progressWriter) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	w.p.add(n)
	return n, err
}
