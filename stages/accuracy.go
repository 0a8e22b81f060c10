package stages

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/evaluate"
	"github.com/qpipe/qpipe/internal/litertlm"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/pipeline"
)

// AccuracySeed seeds the inputs of every accuracy gate, so that a job
// measures the same numbers on every run: evaluate's MeasureSeed (the seed
// policy keeps calibration's inputs far from it).
const AccuracySeed = evaluate.MeasureSeed

// Metric names of pipeline.AccuracyCheck.
const (
	metricMeanKL = "mean_kl"
	metricTop1   = "top1"
	metricRelL2  = "rel_l2"
	// metricPPLRatio is the candidate's next-token perplexity on the
	// gate's text over the float model's (bound max_ppl_ratio).
	metricPPLRatio = "ppl_ratio"
)

// accuracyGate is verify's accuracy: mapping resolved against the float
// model. The verify stage builds it (opening the float model with the
// interpreter, so an op it cannot run, a sequence length the model does
// not take or a KL bound on a model without logits fail the job before
// anything is written); serialize measures the written model with it
// before the model is renamed into place.
//
// The candidate measured is the written temporary file, not the model in
// memory: the quantized weights (and the int4 scales) only exist once
// serialize has streamed them out, and measuring the file measures
// exactly the bytes that will be published. The file is memory-mapped, so
// the gate costs the activations, not another copy of the weights.
type accuracyGate struct {
	cfg       *config.AccuracyGate
	floatPath string
	// section is the bundle section the float model is read from (-1: the
	// float file is a bare model).
	section int
	plan    pipeline.Accuracy  // the checks, without values
	text    []*evaluate.Sample // the text's windows, when the gate has a text
}

// openSection opens the model in the file at path: the whole file
// (section -1), or that section of a bundle.
func openSection(path string, section int) (*evaluate.Model, error) {
	if section < 0 {
		return evaluate.Open(path, 0)
	}
	b, err := litertlm.Open(path)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if section >= len(b.Sections) {
		return nil, fmt.Errorf("%s has no section %d", path, section)
	}
	sec := b.Sections[section]
	f, err := tflite.OpenSection(path, sec.Begin, sec.Len(), path+" "+sec.Name())
	if err != nil {
		return nil, err
	}
	return evaluate.OpenFile(f, path, 0)
}

func (g *accuracyGate) options() evaluate.Options {
	opt := evaluate.Options{Samples: g.cfg.Samples, Seq: g.cfg.Seq, Seed: AccuracySeed}
	if g.text != nil {
		opt.Inputs, opt.InputsFile = g.text, g.cfg.Text
	}
	return opt
}

// planAccuracy resolves cfg against the float model at floatPath (its
// section section of a bundle, or the whole file for -1).
func planAccuracy(cfg *config.AccuracyGate, floatPath string, section int) (*accuracyGate, error) {
	g := &accuracyGate{cfg: cfg, floatPath: floatPath, section: section}
	where := "verify.accuracy"
	if cfg.P.File != "" {
		where = cfg.P.String() + ": " + where
	}
	m, err := openSection(floatPath, section)
	if err != nil {
		return nil, fmt.Errorf("%s: the float model cannot be evaluated: %w", where, err)
	}
	defer m.Close()
	if cfg.Text != "" {
		if g.text, _, err = evaluate.TextSamples(m, g.options(), cfg.Text, cfg.Tokenizer, evaluate.NoBOS); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	}
	sigs, err := evaluate.Describe(m, g.options())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	samples := cfg.Samples
	if g.text != nil {
		samples = min(cfg.Samples, len(g.text))
	}
	g.plan = pipeline.Accuracy{Samples: samples, Seed: AccuracySeed, Text: cfg.Text, Checks: []pipeline.AccuracyCheck{}}
	logits := 0
	var names []string
	for _, s := range sigs {
		if g.plan.Seq == 0 {
			g.plan.Seq = s.Seq
		}
		for _, o := range s.Outputs {
			names = append(names, fmt.Sprintf("%q %v", o.Name, o.Shape))
			check := func(metric string, bound *float64) {
				if bound != nil {
					g.plan.Checks = append(g.plan.Checks, pipeline.AccuracyCheck{Signature: s.Signature, Output: o.Name, Metric: metric, Bound: *bound})
				}
			}
			if o.Vocab > 0 {
				logits++
				check(metricMeanKL, cfg.MaxKL)
				check(metricTop1, cfg.MinTop1)
				check(metricPPLRatio, cfg.MaxPPLRatio)
			}
			check(metricRelL2, cfg.MaxRelL2)
		}
	}
	if logits == 0 && (cfg.MaxKL != nil || cfg.MinTop1 != nil || cfg.MaxPPLRatio != nil) {
		return nil, fmt.Errorf("%s: max_kl, min_top1 and max_ppl_ratio measure logits outputs (last dimension = the vocabulary of an embedding table), and this model has none (outputs %s); bound max_rel_l2 instead",
			where, strings.Join(names, ", "))
	}
	return g, nil
}

// measure compares the model written at candPath with the float model and
// returns every check with its value, and an error listing the bounds it
// misses.
func (g *accuracyGate) measure(ctx context.Context, candPath string, candSection int) (*pipeline.Accuracy, error) {
	ref, err := openSection(g.floatPath, g.section)
	if err != nil {
		return nil, err
	}
	defer ref.Close()
	cand, err := openSection(candPath, candSection)
	if err != nil {
		return nil, fmt.Errorf("accuracy gate: the written model cannot be evaluated: %w", err)
	}
	defer cand.Close()
	rep, err := evaluate.Compare(ctx, ref, cand, g.options())
	if err != nil {
		return nil, fmt.Errorf("accuracy gate: %w", err)
	}
	acc := g.plan
	acc.Checks = make([]pipeline.AccuracyCheck, len(g.plan.Checks))
	var missed []string
	for i, c := range g.plan.Checks {
		v, ok := measured(rep, c)
		if !ok {
			return nil, fmt.Errorf("accuracy gate: output %q of signature %q was not measured", c.Output, c.Signature)
		}
		pass := v <= c.Bound
		if c.Metric == metricTop1 {
			pass = v >= c.Bound
		}
		if math.IsNaN(v) {
			pass = false
		}
		jv := reportable(v)
		c.Value, c.Pass = &jv, &pass
		acc.Checks[i] = c
		if !pass {
			op, bound := ">", "max_"+strings.TrimPrefix(c.Metric, "mean_")
			if c.Metric == metricTop1 {
				op, bound = "<", "min_top1"
			}
			missed = append(missed, fmt.Sprintf("output %q (signature %q): %s %.6g %s %s %g", c.Output, c.Signature, c.Metric, v, op, bound, c.Bound))
		}
	}
	if len(missed) > 0 {
		where := ""
		if g.cfg.P.File != "" {
			where = " (" + g.cfg.P.String() + ")"
		}
		return &acc, fmt.Errorf("accuracy gate%s: %d of %d bound(s) missed on %d sample(s), so the output was not written:\n  %s",
			where, len(missed), len(acc.Checks), acc.Samples, strings.Join(missed, "\n  "))
	}
	return &acc, nil
}

// measured finds the value of check c in rep.
func measured(rep *evaluate.Report, c pipeline.AccuracyCheck) (float64, bool) {
	for _, s := range rep.Signatures {
		if s.Signature != c.Signature {
			continue
		}
		for _, o := range s.Outputs {
			if o.Name != c.Output {
				continue
			}
			switch {
			case c.Metric == metricRelL2 && o.Distance != nil:
				return float64(o.Distance.RelL2), true
			case c.Metric == metricMeanKL && o.Logits != nil:
				return float64(o.Logits.MeanKL), true
			case c.Metric == metricTop1 && o.Logits != nil:
				return float64(o.Logits.Top1), true
			case c.Metric == metricPPLRatio && o.NextToken != nil:
				return float64(o.NextToken.PPLRatio), true
			}
		}
	}
	return 0, false
}

// reportable clamps a value to ±999 for JSON (NaN counts as 999: a miss).
func reportable(x float64) float64 {
	if math.IsNaN(x) {
		return 999
	}
	return math.Max(-999, math.Min(999, x))
}
