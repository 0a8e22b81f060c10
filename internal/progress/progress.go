// Package progress reports how far a long step (calibration, sensitivity
// measurements, evaluation) has got: a count done out of a total and an
// estimate of the time left.
//
// A Reporter draws one self-overwriting line on the terminal when stderr
// is one (at most four times a second), and otherwise emits a "progress"
// event in the log (fields step, done, total, eta_s) every few seconds:
// the JSON log of a run that is not on a terminal shows how far a long
// step is without flooding it. Tests are silent by default: `go test`
// does not give its binaries a terminal, and their loggers discard.
//
// Every method is safe for concurrent use and a nil *Reporter does
// nothing, so code that may or may not report holds a *Reporter and calls
// it regardless.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/internal/bytesize"
)

const (
	// drawEvery throttles the terminal line.
	drawEvery = 250 * time.Millisecond
	// logEvery spaces the log events.
	logEvery = 5 * time.Second
)

// Options overrides where a Reporter writes and what clock it reads
// (tests); the zero value is the process's terminal (Terminal) and
// time.Now.
type Options struct {
	// Term receives the progress line; nil means Terminal(). A Reporter
	// with a terminal does not log progress events.
	Term io.Writer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

var (
	termOnce sync.Once
	term     io.Writer
	// termMu serialises the lines of reporters that run at once.
	termMu sync.Mutex
)

// Terminal is stderr when it is a terminal, else nil.
func Terminal() io.Writer {
	termOnce.Do(func() {
		if isatty.IsTerminal(os.Stderr.Fd()) || isatty.IsCygwinTerminal(os.Stderr.Fd()) {
			term = os.Stderr
		}
	})
	return term
}

// Reporter reports the progress of one step.
type Reporter struct {
	mu                sync.Mutex
	log               zerolog.Logger
	step              string
	unit              string
	term              io.Writer
	now               func() time.Time
	start             time.Time
	lastDraw, lastLog time.Time
	done, total       int64
	shown, logged     bool
	loggedDone        int64 // done at the last event
}

// Bytes as a Reporter's unit shows the counts as sizes (895 KiB / 2.0 MiB).
const Bytes = "bytes"

// Start begins reporting step, which counts total units (the unit names
// them on the terminal line: "samples", "weights"), to the process's
// terminal or log.
func Start(log zerolog.Logger, step string, total int64, unit string) *Reporter {
	return New(log, step, total, unit, Options{})
}

// New is Start with opt.
func New(log zerolog.Logger, step string, total int64, unit string, opt Options) *Reporter {
	r := &Reporter{log: log, step: step, unit: unit, total: total, term: opt.Term, now: opt.Now}
	if r.term == nil {
		r.term = Terminal()
	}
	if r.now == nil {
		r.now = time.Now
	}
	r.start = r.now()
	r.lastLog = r.start
	return r
}

// Add counts n more units done.
func (r *Reporter) Add(n int64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done += n
	r.report()
}

// Set says done units are done (for a counter kept elsewhere).
func (r *Reporter) Set(done int64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = done
	r.report()
}

// report draws or logs the count after a change (r.mu held).
func (r *Reporter) report() {
	now := r.now()
	if r.term != nil {
		if !r.shown || now.Sub(r.lastDraw) >= drawEvery {
			r.lastDraw = now
			r.draw(now)
		}
		return
	}
	if now.Sub(r.lastLog) >= logEvery {
		r.lastLog = now
		r.event(now)
	}
}

// Done ends the step: it clears the terminal line, and logs a last event
// when it logged any.
func (r *Reporter) Done() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shown {
		termMu.Lock()
		fmt.Fprint(r.term, "\r\033[K")
		termMu.Unlock()
		r.shown = false
	}
	if r.logged && r.loggedDone != r.done {
		r.event(r.now())
	}
	r.logged = false
}

// ETA estimates the time left from the rate so far (0 when nothing or
// everything is done).
func (r *Reporter) ETA() time.Duration {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eta(r.now())
}

func (r *Reporter) eta(now time.Time) time.Duration {
	if r.done <= 0 || r.done >= r.total {
		return 0
	}
	el := now.Sub(r.start)
	return time.Duration(float64(el) / float64(r.done) * float64(r.total-r.done))
}

// draw writes the line (r.mu held).
func (r *Reporter) draw(now time.Time) {
	line := fmt.Sprintf("%s %d/%d %s", r.step, r.done, r.total, r.unit)
	if r.unit == Bytes {
		line = fmt.Sprintf("%s %s / %s", r.step, bytesize.Format(r.done), bytesize.Format(r.total))
	}
	if r.total > 0 {
		line += fmt.Sprintf(" (%.0f%%)", 100*float64(r.done)/float64(r.total))
	}
	if eta := r.eta(now); eta > 0 {
		line += " ETA " + FormatETA(eta)
	}
	termMu.Lock()
	fmt.Fprint(r.term, "\r\033[K"+line)
	termMu.Unlock()
	r.shown = true
}

// event logs one progress event (r.mu held).
func (r *Reporter) event(now time.Time) {
	r.logged, r.loggedDone = true, r.done
	r.log.Info().Str("step", r.step).Int64("done", r.done).Int64("total", r.total).
		Float64("eta_s", r.eta(now).Round(100*time.Millisecond).Seconds()).Msg("progress")
}

// FormatETA writes d as m:ss (h:mm:ss from an hour).
func FormatETA(d time.Duration) string {
	s := int64((d + time.Second/2) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
