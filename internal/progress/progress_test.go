package progress

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time       { return c.t }
func (c *clock) tick(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                { return &clock{t: time.Unix(1000, 0)} }

// TestTerminalLine: the line is drawn on the first count, then at most
// every 250 ms, shows counts, percentage and ETA, and is cleared by Done;
// nothing is logged while a terminal shows the line.
func TestTerminalLine(t *testing.T) {
	var term, logs bytes.Buffer
	c := newClock()
	r := New(zerolog.New(&logs), "calibration", 8, "samples", Options{Term: &term, Now: c.now})
	c.tick(time.Second)
	r.Add(1) // drawn: first
	c.tick(100 * time.Millisecond)
	r.Add(1) // throttled
	c.tick(time.Second)
	r.Add(2) // drawn
	r.Done()
	got := strings.Split(term.String(), "\r\033[K")
	want := []string{"", "calibration 1/8 samples (12%) ETA 0:07", "calibration 4/8 samples (50%) ETA 0:02", ""}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("terminal got %q, want %q", got, want)
	}
	if logs.Len() != 0 {
		t.Fatalf("logged with a terminal: %s", logs.String())
	}
}

// TestLogEvents: without a terminal, a "progress" event every 5 s with
// step, done, total and eta_s, and a last one at Done.
func TestLogEvents(t *testing.T) {
	var logs bytes.Buffer
	c := newClock()
	r := New(zerolog.New(&logs), "eval", 10, "samples", Options{Term: nil, Now: c.now})
	r.term = nil // no terminal, whatever the test process has
	for range 10 {
		c.tick(2 * time.Second)
		r.Add(1)
	}
	r.Done()
	var events []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	// Events at 6 s (3 done), 12 s (6), 18 s (9), then Done at 20 s (10).
	wantDone := []float64{3, 6, 9, 10}
	if len(events) != len(wantDone) {
		t.Fatalf("%d events, want %d: %s", len(events), len(wantDone), logs.String())
	}
	for i, e := range events {
		if e["message"] != "progress" || e["step"] != "eval" || e["total"] != 10.0 || e["done"] != wantDone[i] {
			t.Errorf("event %d: %v", i, e)
		}
	}
	if events[0]["eta_s"] != 14.0 || events[3]["eta_s"] != 0.0 {
		t.Errorf("eta_s %v then %v, want 14 then 0", events[0]["eta_s"], events[3]["eta_s"])
	}
}

// TestShortStepSilent: a step shorter than the log interval logs nothing.
func TestShortStepSilent(t *testing.T) {
	var logs bytes.Buffer
	c := newClock()
	r := New(zerolog.New(&logs), "x", 3, "", Options{Now: c.now})
	r.term = nil
	r.Add(3)
	r.Done()
	if logs.Len() != 0 {
		t.Fatalf("logged %s", logs.String())
	}
}

// TestNil: a nil Reporter does nothing.
func TestNil(t *testing.T) {
	var r *Reporter
	r.Add(1)
	r.Done()
	if r.ETA() != 0 {
		t.Fatal("nil ETA")
	}
}

func TestFormatETA(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0:00", 1499 * time.Millisecond: "0:01", 61 * time.Second: "1:01", 3723 * time.Second: "1:02:03"} {
		if got := FormatETA(d); got != want {
			t.Errorf("FormatETA(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestDoneNoRepeat: Done logs no second event for a count already logged.
func TestDoneNoRepeat(t *testing.T) {
	var logs bytes.Buffer
	c := newClock()
	r := New(zerolog.New(&logs), "x", 2, "", Options{Now: c.now})
	r.term = nil
	c.tick(6 * time.Second)
	r.Add(2)
	r.Done()
	if n := strings.Count(logs.String(), "\n"); n != 1 {
		t.Fatalf("%d events: %s", n, logs.String())
	}
}
