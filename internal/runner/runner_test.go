package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/internal/lockfile"
	"github.com/qpipe/qpipe/pipeline"
	"github.com/qpipe/qpipe/stages"
)

func testLock(sha string) *lockfile.Lock {
	return &lockfile.Lock{
		Tool:    lockfile.Tool{Version: "v1", Build: "b", Platform: "p"},
		Job:     lockfile.File{Path: "job.yaml", SHA256: sha},
		Options: "strict-reference=false",
		Outputs: []lockfile.Output{{Recipe: "name=r", Input: lockfile.File{Path: "in.tflite"}, File: lockfile.File{Path: "out.tflite"}}},
	}
}

// The lock policy, decided without running anything.
func TestDecide(t *testing.T) {
	old, want := testLock("aa"), testLock("aa")
	edited := testLock("bb") // the job file changed
	fresh := func() []string { return nil }
	stale := func() []string { return []string{"output out.tflite is missing"} }
	never := func() []string { t.Fatal("stale called"); return nil }
	for _, c := range []struct {
		name      string
		mode      Mode
		old, want *lockfile.Lock
		stale     func() []string
		action    Action
		reasons   int
		err       string
	}{
		{"no lock: build", Update, nil, want, never, Build, 0, ""},
		{"up to date: skip", Update, old, want, fresh, Skip, 0, ""},
		{"stale: build with reasons", Update, old, want, stale, Build, 1, ""},
		{"force: build even when up to date", Force, old, want, never, Build, 0, ""},
		{"force without a lock", Force, nil, want, never, Build, 0, ""},
		{"check: compare", Check, old, want, never, Compare, 0, ""},
		{"check without a lock", Check, nil, want, never, 0, 0, "no lock file job.lock; run `qpipe run job.yaml`"},
		{"locked and up to date: skip", Locked, old, want, fresh, Skip, 0, ""},
		{"locked, outputs stale: rebuild", Locked, old, want, stale, Build, 1, ""},
		{"locked without a lock", Locked, nil, want, never, 0, 0, "--locked does not create one"},
		{"locked, the job changed", Locked, old, edited, func() []string { return []string{"job changed"} }, 0, 1, "would change (--locked)"},
	} {
		action, reasons, err := Decide(c.mode, "job.lock", "job.yaml", c.old, c.want, c.stale)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want %q", c.name, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err == "" && action != c.action:
			t.Errorf("%s: %s, want %s", c.name, action, c.action)
		}
		if len(reasons) != c.reasons {
			t.Errorf("%s: reasons %q", c.name, reasons)
		}
	}
}

func TestWriteLock(t *testing.T) {
	a := testLock("aa")
	a.Outputs[0].File.SHA256 = "11"
	b := testLock("aa")
	b.Outputs[0].File.SHA256 = "22"
	for _, c := range []struct {
		mode     Mode
		old, got *lockfile.Lock
		write    bool
		err      bool
	}{
		{Update, nil, a, true, false},
		{Update, a, a, false, false},
		{Update, a, b, true, false},
		{Force, a, a, true, false},
		{Locked, a, a, false, false},
		{Locked, a, b, false, true},
	} {
		write, err := WriteLock(c.mode, "job.lock", c.old, c.got)
		if write != c.write || (err != nil) != c.err {
			t.Errorf("%s old=%v: write %t err %v", c.mode, c.old != nil, write, err)
		}
	}
}

func TestParseShard(t *testing.T) {
	for s, ok := range map[string]bool{"0/1": true, "2/3": true, "3/3": false, "-1/2": false, "1": false, "a/b": false, "0/0": false} {
		if _, _, err := ParseShard(s); (err == nil) != ok {
			t.Errorf("ParseShard(%q): %v", s, err)
		}
	}
}

func TestMemoryBudget(t *testing.T) {
	for _, s := range []string{"8GiB", "8gib", "8 GiB"} {
		if n, err := MemoryBudget(s); err != nil || n != 8<<30 {
			t.Errorf("MemoryBudget(%q) = %d, %v", s, n, err)
		}
	}
	if _, err := MemoryBudget("lots"); err == nil {
		t.Error("MemoryBudget(lots): no error")
	}
	if n, err := MemoryBudget(""); err != nil || n < 0 {
		t.Errorf("MemoryBudget() = %d, %v", n, err)
	}
}

func writeJob(t *testing.T, dir, name, out string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	text := "version: 1\nname: tiny\nstages:\n  - load: {path: tiny.tflite}\n  - quantize: {recipe: dynamic_int8}\n  - serialize: {path: " + out + "}\n"
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestShardJobsRefusesSharedOutput(t *testing.T) {
	dir := t.TempDir()
	a, b := writeJob(t, dir, "a.yaml", "x.tflite"), writeJob(t, dir, "b.yaml", "x.tflite")
	if _, err := ShardJobs([]string{a, b}, 0, 2); err == nil || !strings.Contains(err.Error(), "both write") {
		t.Errorf("ShardJobs: %v", err)
	}
}

func TestExpandJobArgs(t *testing.T) {
	dir := t.TempDir()
	a := writeJob(t, dir, "a.yaml", "a.tflite")
	b := writeJob(t, dir, "b.yml", "b.tflite")
	os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644)
	got, err := ExpandJobArgs([]string{dir, "missing.yaml"})
	if err != nil || !slices.Equal(got, []string{a, b, "missing.yaml"}) {
		t.Errorf("ExpandJobArgs = %q, %v", got, err)
	}
	if _, err := ExpandJobArgs([]string{t.TempDir()}); !errors.Is(err, ErrNoJobFiles) {
		t.Errorf("empty folder: %v", err)
	}
}

// The runner's modes on a real job, in-process: run writes the output and
// the lock, a second run skips, --check and --locked pass, an edited
// output is rebuilt, --locked refuses a job without a lock.
func TestRunnerModes(t *testing.T) {
	dir := t.TempDir()
	model, err := os.ReadFile("../../testdata/models/tiny_decoder.tflite")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "tiny.tflite"), model, 0o644)
	job := writeJob(t, dir, "job.yaml", "out/tiny.tflite")
	out := filepath.Join(dir, "out", "tiny.tflite")
	run := func(mode Mode) *pipeline.JobReport {
		t.Helper()
		rn := &Runner{Log: zerolog.Nop(), Stage: stages.Options{Hash: true}, Mode: mode, Tool: Tool("test")}
		r := rn.Run(context.Background(), []string{job}, 1, 0, false)
		if len(r) != 1 {
			t.Fatalf("%d reports", len(r))
		}
		return r[0]
	}
	if r := run(Locked); r.Status != pipeline.StatusFailed || !strings.Contains(r.Error, "--locked does not create one") {
		t.Errorf("locked without a lock: %s %s", r.Status, r.Error)
	}
	if r := run(Update); r.Status != pipeline.StatusOK || len(r.Outputs) != 1 || r.Outputs[0].Path != out {
		t.Fatalf("first run: %s %s %+v", r.Status, r.Error, r.Outputs)
	}
	lock, err := lockfile.Read(lockfile.PathFor(job))
	if err != nil || lock.Outputs[0].File.SHA256 == "" {
		t.Fatalf("lock: %v", err)
	}
	if r := run(Update); r.Status != pipeline.StatusSkipped {
		t.Errorf("second run: %s %s", r.Status, r.Error)
	}
	if r := run(Check); r.Status != pipeline.StatusOK || len(r.Check) == 0 {
		t.Errorf("check: %s %s", r.Status, r.Error)
	}
	if r := run(Locked); r.Status != pipeline.StatusSkipped {
		t.Errorf("locked, up to date: %s %s", r.Status, r.Error)
	}
	os.WriteFile(out, []byte("edited"), 0o644)
	if r := run(Check); r.Status != pipeline.StatusFailed || !strings.Contains(r.Error, "output") {
		t.Errorf("check after an edit: %s %s", r.Status, r.Error)
	}
	if r := run(Locked); r.Status != pipeline.StatusOK || r.Outputs[0].Path != out {
		t.Errorf("locked rebuild: %s %s", r.Status, r.Error)
	}
	if got, _ := lockfile.SHA256(out); got.SHA256 != lock.Outputs[0].File.SHA256 {
		t.Error("the locked rebuild did not restore the output")
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "out")); len(ents) != 1 {
		t.Errorf("staging left files: %v", ents)
	}
	if r := run(Force); r.Status != pipeline.StatusOK {
		t.Errorf("force: %s %s", r.Status, r.Error)
	}
}
