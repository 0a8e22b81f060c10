package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/pipeline"
)

func TestBudgetFlags(t *testing.T) {
	dir := t.TempDir()
	in := e2eCopy(t, dir, "tiny_decoder.tflite")
	out := filepath.Join(dir, "o.tflite")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"quantize", "--budget-size", "1MB", "--recipe", "fp16", in, out}, exitUsage, "leave out --recipe"},
		{[]string{"quantize", "--budget-size", "1MB", "--budget-kl", "0.1", in, out}, exitUsage, "exclusive"},
		{[]string{"quantize", "--budget-size", "lots", in, out}, exitUsage, `size "lots"`},
		{[]string{"quantize", "--budget-kl", "-1", in, out}, exitUsage, "positive"},
		{[]string{"quantize", "--budget-size", "1MB", "--budget-metric", "mse", in, out}, exitUsage, `--budget-metric: unknown metric "mse": want kl`},
		{[]string{"quantize", "--budget-kl", "0.1", "--budget-metric", "rel_l2", in, out}, exitUsage, "max_kl bounds the KL divergence"},
		{[]string{"quantize", "--budget-metric", "rel_l2", "--recipe", "fp16", in, out}, exitUsage, "go with --budget-size"},
		{[]string{"plan", "--budget-size", "1MB", "--budget-output", "nope", in}, exitFailed, `quantize.budget.output: the model has no output "nope"`},
		{[]string{"plan", "--budget-size", "10kB", in}, exitFailed, "no mix of the candidates fits in 10000 bytes"},
	} {
		code, _, stderr := e2eRun(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused budget wrote an output")
	}
}

// budgetPlanJob writes, in a new folder with its own cache, a job that
// runs budget (YAML) on the tiny decoder; it skips under the race
// detector, which makes the sensitivity pass take minutes.
func budgetPlanJob(t *testing.T, budget string) (dir, job string) {
	t.Helper()
	if raceEnabled {
		t.Skip("runs the interpreter many times: .ci/run runs it without the race detector")
	}
	dir = t.TempDir()
	t.Setenv("QPIPE_CACHE_DIR", filepath.Join(dir, "cache"))
	e2eCopy(t, dir, "tiny_decoder.tflite")
	job = e2eWrite(t, filepath.Join(dir, "job.yaml"), `version: 1
stages:
  - load: {path: tiny_decoder.tflite}
  - quantize:
      budget: `+budget+`
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`)
	return dir, job
}

// TestBudgetPlan: plan shows the budget's choice and why, in text and
// JSON, and writes nothing.
func TestBudgetPlan(t *testing.T) {
	dir, job := budgetPlanJob(t, "{size: 900kB, samples: 1}")
	code, stdout, stderr := e2eRun(t, "plan", job)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"budget: size at most", "chosen: budget", "held-out acceptance", "HELD-OUT", "preset dynamic_int8", "why each weight got its scheme", "arith.constant4: dynamic_int"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("plan output lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, stderr = e2eRun(t, "plan", "--json", job)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var plan struct{ Plans []pipeline.Plan }
	if err := json.Unmarshal([]byte(stdout), &plan); err != nil {
		t.Fatal(err)
	}
	p := plan.Plans[0]
	if p.Budget == nil || p.Budget.PredictedBytes > 900000 || p.Budget.Cached == 0 {
		t.Fatalf("budget %+v: want a mix within 900 kB, its sensitivities read from the cache the first plan filled", p.Budget)
	}
	if h := p.Budget.HeldOut; h == nil || h.Written == "" || h.Why == "" || h.Seed == p.Budget.Seed || p.Budget.Metric != "kl" {
		t.Errorf("held-out acceptance %+v (metric %q): want what was written and why, on another seed than %d", h, p.Budget.Metric, p.Budget.Seed)
	}
	chosen := 0
	for _, w := range p.Weights {
		if w.Budget == nil || w.Budget.Why == "" {
			t.Errorf("%s: no budget explanation", w.Name)
			continue
		}
		for _, o := range w.Budget.Options {
			if o.Chosen {
				chosen++
				if w.Scheme == nil || *w.Scheme != o.Scheme {
					t.Errorf("%s: chosen %s, planned %v", w.Name, o.Scheme, w.Scheme)
				}
			}
		}
	}
	if chosen != len(p.Weights) {
		t.Errorf("%d of %d weights have a chosen option", chosen, len(p.Weights))
	}
	if files := e2eFiles(t, filepath.Join(dir)); len(files) != 3 {
		t.Errorf("plan wrote files: %v", files)
	}
}

// TestBudgetPlanScales: with candidates that differ only by their scale
// method, plan names each weight's option with its method, in the table,
// the reasons and the JSON options, as it names searched scales outside a
// budget.
func TestBudgetPlanScales(t *testing.T) {
	_, job := budgetPlanJob(t, "{size: 900kB, samples: 1, candidates: {default: [dynamic_int8, dynamic_int4_block32, {scheme: dynamic_int4_block32, scales: search}, dynamic_int4_block128]}}")
	code, stdout, stderr := e2eRun(t, "plan", "--json", job)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var plan struct{ Plans []pipeline.Plan }
	if err := json.Unmarshal([]byte(stdout), &plan); err != nil {
		t.Fatal(err)
	}
	searched := 0
	for _, w := range plan.Plans[0].Weights {
		var scales []string
		for _, o := range w.Budget.Options {
			scales = append(scales, o.Scheme+"+"+o.Scales)
			if o.Chosen && (w.Scheme == nil || *w.Scheme != o.Scheme || w.Scales != o.Scales) {
				t.Errorf("%s: chosen %s+%s, planned %v+%s", w.Name, o.Scheme, o.Scales, w.Scheme, w.Scales)
			}
		}
		if got := strings.Join(scales, " "); got != "dynamic_int8+ dynamic_int4_block32+ dynamic_int4_block32+search dynamic_int4_block128+" {
			t.Errorf("%s: options %s", w.Name, got)
		}
		if w.Scales == "search" {
			searched++
			if w.SQNR == nil || w.SQNRMinMax == nil {
				t.Errorf("%s: searched without its SQNRs", w.Name)
			}
		}
	}
	if searched == 0 {
		t.Fatal("no weight got searched scales: the test tests nothing")
	}
	code, stdout, stderr = e2eRun(t, "plan", job)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"dynamic_int4_block32+search  ", ": dynamic_int4_block32+search (", "(same size) would change it by"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("plan output lacks %q:\n%s", want, stdout)
		}
	}
}
