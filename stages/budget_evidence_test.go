package stages

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/evaluate"
	"github.com/qpipe/qpipe/internal/gen"
	"github.com/qpipe/qpipe/internal/litert"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/pipeline"
)

// litertKL runs ref and cand on LiteRT.js with qpipe eval's inputs (its
// samples' seeds) and returns the mean KL of the logits (the last output
// whose last dimension is vocab).
func litertKL(t *testing.T, r *litert.Runner, ref, cand string, vocab int) float64 {
	t.Helper()
	info, err := r.Info(ref)
	if err != nil {
		t.Fatal(err)
	}
	acc := evaluate.NewAccumulator(vocab)
	for k := 0; k < evaluate.DefaultSamples; k++ {
		in := litert.RandomInputs(info, evaluate.SampleSeed(0, k), vocab)
		want, err := r.Run(ref, in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Run(cand, in)
		if err != nil {
			t.Fatalf("LiteRT.js refuses %s: %v", cand, err)
		}
		for i := range want {
			if s := want[i].Shape; want[i].DType == "float32" && len(s) > 0 && s[len(s)-1] == vocab {
				acc.Add(want[i].Float32s(), got[i].Float32s())
			}
		}
	}
	return acc.Logits().MeanKL
}

// runBudgetJob runs a job file text in dir with a sensitivity cache.
func runBudgetJob(t *testing.T, dir, text, cache string) []*pipeline.State {
	t.Helper()
	path := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	job, err := config.LoadJob(path)
	if err != nil {
		t.Fatal(err)
	}
	pj, err := Build(job, Options{BudgetCache: cache})
	if err != nil {
		t.Fatal(err)
	}
	s := &pipeline.State{Log: zerolog.Nop(), Metrics: true}
	branches, err := pipeline.Run(context.Background(), pj, s)
	t.Cleanup(func() { Close(s) })
	if err != nil {
		t.Fatal(err)
	}
	return branches
}

// TestBudgetEvidence checks the claims on the tiny decoder with
// qpipe eval's measurement of the written files (default samples, seed 0 —
// the budget's own samples — and seed 1, held out, logged):
//   - at the size of uniform dynamic_int4_block128, the budget's KL is
//     lower than every uniform preset's of that size or smaller;
//   - at dynamic_int8's size it is no worse than dynamic_int8;
//   - both land at or under the size, within 1 %;
//   - max_kl: X gives a KL within X and a size no larger than the smallest
//     uniform preset whose KL is within X.
func TestBudgetEvidence(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sensitivity pass three times")
	}
	if raceEnabled {
		// .ci/run runs it without the race detector.
		t.Skip("the race detector makes the three sensitivity passes take minutes")
	}
	in := absModel(t, "tiny_decoder.tflite")
	dir, cache := t.TempDir(), t.TempDir()
	presets := []string{"fp16", "dynamic_int8", "dynamic_int4_block32", "dynamic_int4_block64", "dynamic_int4_block128", "dynamic_int4_block256"}
	type point struct {
		name      string
		size      int64
		kl, heldo float64
		path      string
	}
	var uniform []point
	byName := map[string]point{}
	for _, b := range runBudgetJob(t, dir, fmt.Sprintf("version: 1\nname: u\nstages:\n  - load: {path: %s}\n  - quantize: {recipes: [%s]}\n  - serialize: {path: \"{name}_{suffix}.tflite\"}\n", in, strings.Join(presets, ", ")), "") {
		p := point{b.Recipe, b.Output.Bytes, evalKL(t, in, b.Output.Path, 0), evalKL(t, in, b.Output.Path, 1), b.Output.Path}
		uniform = append(uniform, p)
		byName[p.name] = p
		t.Logf("uniform %-22s %8d bytes  KL %.5f (held out %.5f)", p.name, p.size, p.kl, p.heldo)
	}
	budgetRun := func(budget string) (point, *pipeline.BudgetReport) {
		sub := t.TempDir()
		b := runBudgetJob(t, sub, budgetJob(t, "tiny_decoder.tflite", budget), cache)[0]
		p := point{"budget " + budget, b.Output.Bytes, evalKL(t, in, b.Output.Path, 0), evalKL(t, in, b.Output.Path, 1), b.Output.Path}
		r := b.Output.Budget
		t.Logf("%-30s %8d bytes  KL %.5f (held out %.5f); the pass: %s, %d probes (%d cached), %.1fs", p.name, p.size, p.kl, p.heldo, r.Method, r.Probes, r.Cached, r.Seconds)
		if p.kl != r.MeasuredKL {
			t.Errorf("%s: qpipe eval measures %g, the budget reported %g on the same samples", p.name, p.kl, r.MeasuredKL)
		}
		return p, r
	}
	// LiteRT.js, where it runs: every output loads and runs; the KL it
	// gives is compared as qpipe eval's is.
	rt := litert.Require(t)
	m := openModel(t, in)
	vocab := litert.VocabSize(m.Meta)
	m.Close()
	rtKL := map[string]float64{}
	for _, u := range uniform {
		rtKL[u.name] = litertKL(t, rt, in, u.path, vocab)
	}
	for _, target := range []string{"dynamic_int4_block128", "dynamic_int8"} {
		limit := byName[target].size
		got, _ := budgetRun(fmt.Sprintf("{size: %d}", limit))
		gotRT := litertKL(t, rt, in, got.path, vocab)
		t.Logf("LiteRT.js KL: budget %.5f, uniform %s %.5f", gotRT, target, rtKL[target])
		for _, u := range uniform {
			if u.size <= limit && (gotRT > rtKL[u.name] || (target != "dynamic_int8" && gotRT == rtKL[u.name])) {
				t.Errorf("LiteRT.js: at %s's size the budget's KL %g is not below uniform %s's %g", target, gotRT, u.name, rtKL[u.name])
			}
		}
		// Within 1 % under. At dynamic_int8's size on this 15-weight model
		// one weight is ~2 % of the file, and every move that would fill
		// the gap measures worse than uniform dynamic_int8: the budget keeps
		// the better mix (logged, not asserted).
		if got.size > limit || (target != "dynamic_int8" && float64(got.size) < 0.99*float64(limit)) {
			t.Errorf("budget %d: output of %d bytes, want within 1 %% under", limit, got.size)
		}
		t.Logf("budget %d: %d bytes, %.2f %% under", limit, got.size, 100*(1-float64(got.size)/float64(limit)))
		for _, u := range uniform {
			if u.size > limit {
				continue
			}
			if target == "dynamic_int8" {
				if got.kl > u.kl {
					t.Errorf("at %s's size: KL %g, worse than uniform %s (%g)", target, got.kl, u.name, u.kl)
				}
			} else if got.kl >= u.kl {
				t.Errorf("at %s's size: KL %g, not below uniform %s (%g)", target, got.kl, u.name, u.kl)
			}
		}
	}
	x := byName["dynamic_int4_block32"].kl * 1.001
	got, _ := budgetRun(fmt.Sprintf("{max_kl: %g}", x))
	t.Logf("LiteRT.js KL: budget max_kl %.5f", litertKL(t, rt, in, got.path, vocab))
	smallest := int64(-1)
	for _, u := range uniform {
		if u.kl <= x && (smallest < 0 || u.size < smallest) {
			smallest = u.size
		}
	}
	if got.kl > x || got.size > smallest {
		t.Errorf("max_kl %g: KL %g, %d bytes; the smallest uniform preset within it has %d bytes", x, got.kl, got.size, smallest)
	}
}

// TestBudgetScalesEvidence measures what searched-scale candidates give a
// size budget: on the tiny decoder and two other generated decoders, at
// the size of uniform dynamic_int4_block128, the budget's KL (qpipe eval,
// seed 0 — the pass's samples — and seed 1, held out) and its pass time
// with the min-max candidates (fp16, dynamic_int8, the four int4 block
// sizes) and with the defaults, which add each int4 block size with
// scales: search. It decided the default candidates (README, Budgets);
// run it with QPIPE_BUDGET_EVIDENCE=1 (minutes).
func TestBudgetScalesEvidence(t *testing.T) {
	if os.Getenv("QPIPE_BUDGET_EVIDENCE") != "1" {
		t.Skip("a measurement; set QPIPE_BUDGET_EVIDENCE=1 to run it")
	}
	if raceEnabled {
		t.Skip("the race detector makes the sensitivity passes take many minutes")
	}
	dir := t.TempDir()
	models := []string{absModel(t, "tiny_decoder.tflite")}
	for _, g := range []struct {
		name string
		edit func(*gen.Config)
	}{
		{"gelu_seed7", func(c *gen.Config) { c.Seed, c.Activation = 7, gen.ActGELU }},
		{"wide_4layers", func(c *gen.Config) { c.Seed, c.Layers, c.Dim, c.FFN = 3, 4, 512, 1024 }},
	} {
		cfg, _ := gen.Preset("tiny")
		cfg.Name = g.name
		g.edit(&cfg)
		m, err := gen.Decoder(cfg)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, g.name+".tflite")
		if err := tflite.WriteFile(context.Background(), p, m, tflite.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		models = append(models, p)
	}
	minmax := "{default: [fp16, dynamic_int8, dynamic_int4_block32, dynamic_int4_block64, dynamic_int4_block128, dynamic_int4_block256]}"
	if !strings.Contains(strings.Join(config.DefaultBudgetCandidates, " "), "+search") {
		t.Fatal("the default candidates have no searched scales: compare other lists")
	}
	for _, in := range models {
		name := strings.TrimSuffix(filepath.Base(in), ".tflite")
		uni := runBudgetJob(t, t.TempDir(), fmt.Sprintf("version: 1\nname: u\nstages:\n  - load: {path: %s}\n  - quantize: {recipes: [dynamic_int4_block128, {name: s128, suffix: s128, scales: search, default: dynamic_int4_block128}]}\n  - serialize: {path: \"{name}_{suffix}.tflite\"}\n", in), "")
		size := uni[0].Output.Bytes
		t.Logf("%s: uniform dynamic_int4_block128 %d bytes KL %.5f (held out %.5f); with scales: search KL %.5f (held out %.5f)", name, size,
			evalKL(t, in, uni[0].Output.Path, 0), evalKL(t, in, uni[0].Output.Path, 1), evalKL(t, in, uni[1].Output.Path, 0), evalKL(t, in, uni[1].Output.Path, 1))
		for _, c := range []struct{ label, candidates string }{
			{"min-max only", ", candidates: " + minmax},
			{"defaults", ""},
		} {
			job := fmt.Sprintf("version: 1\nname: b\nstages:\n  - load: {path: %s}\n  - quantize:\n      budget: {size: %d%s}\n  - serialize: {path: \"{name}_{suffix}.tflite\"}\n", in, size, c.candidates)
			b := runBudgetJob(t, t.TempDir(), job, "")[0]
			r := b.Output.Budget
			if b.Output.Bytes > size {
				t.Errorf("%s, %s: %d bytes over the budget of %d", name, c.label, b.Output.Bytes, size)
			}
			t.Logf("%s, %-12s: %d bytes, KL %.5f (held out %.5f), %s; pass %.1fs, %d probes",
				name, c.label, b.Output.Bytes, evalKL(t, in, b.Output.Path, 0), evalKL(t, in, b.Output.Path, 1), r.Method, r.Seconds, r.Probes)
		}
	}
}
