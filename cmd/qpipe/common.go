package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/progress"
)

// newLogger logs to stderr: readable on a terminal, JSON lines otherwise.
// QPIPE_LOG_LEVEL (debug, info, warn, error) sets the level; info by default.
func newLogger(stderr io.Writer) zerolog.Logger {
	level := zerolog.InfoLevel
	if l, err := zerolog.ParseLevel(strings.ToLower(os.Getenv("QPIPE_LOG_LEVEL"))); err == nil && l != zerolog.NoLevel {
		level = l
	}
	var w io.Writer = stderr
	if isTerminal(stderr) {
		w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

func isTerminal(w io.Writer) bool {
	if s, ok := w.(*syncWriter); ok {
		w = s.w
	}
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// signalContext is cancelled on Ctrl-C or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// interrupted maps a cancelled run to exit code 130.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || err == nil) {
		return exitError{code: exitInterrupted, err: errors.New("interrupted: no output was left behind")}
	}
	return err
}

// progressLine shows the progress of a job's outputs on a terminal
// (internal/progress draws the line).
type progressLine struct {
	mu    sync.Mutex
	w     io.Writer
	label string
	r     *progress.Reporter
}

func newProgress(stderr io.Writer) *progressLine {
	if !isTerminal(stderr) {
		return nil
	}
	return &progressLine{w: stderr}
}

func (p *progressLine) Start(label string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.label = label
	p.mu.Unlock()
}

func (p *progressLine) Update(done, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.r == nil {
		p.r = progress.New(zerolog.Nop(), p.label, total, progress.Bytes, progress.Options{Term: p.w})
	}
	r := p.r
	p.mu.Unlock()
	r.Set(done)
}

func (p *progressLine) Finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	r := p.r
	p.r = nil
	p.mu.Unlock()
	r.Done()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// flagArgs splits args into flags (with their values, for the flags listed
// in withValue) and positional arguments, so flags may follow positionals.
func flagArgs(args []string, withValue map[string]bool) (flags, pos []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if withValue[name] && !strings.Contains(name, "=") && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	return flags, pos
}

// scalesFlag adds --scales to fs; check validates its value.
func scalesFlag(fs *flag.FlagSet) (value *string, check func() error) {
	v := fs.String("scales", "", "int4 scale method where the job does not choose: "+strings.Join(config.ScaleMethods, ", "))
	return v, func() error {
		if *v != "" && !slices.Contains(config.ScaleMethods, *v) {
			return usagef("--scales %s: want one of %s", *v, strings.Join(config.ScaleMethods, ", "))
		}
		return nil
	}
}
