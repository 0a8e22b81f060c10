package stages

import (
	"context"
	"fmt"
	"strings"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/calib"
	"github.com/qpipe/qpipe/pipeline"
)

// Quantize applies a recipe to the annotated weights: it decides a scheme
// for every op input that reads a weight, checks that each fits the tensor
// (before any weight is touched), duplicates tensors and buffers whose
// readers disagree, computes every scale, rewrites the tables (types,
// quantization parameters, scale tensors, DEQUANTIZE ops, op versions) and
// leaves each quantized buffer as content that is computed while serialize
// writes it.
type Quantize struct {
	Recipe *config.Recipe
	// Fallback replaces a scheme that does not fit a tensor (a block size
	// that does not divide its last dimension) by the next one that does,
	// instead of failing the job (verify's on_mismatch: fallback).
	Fallback bool
	// StrictReference turns off the int4 scale clamp (SEMANTICS.md §6.5):
	// all-zero and tiny blocks then get the reference's zero or subnormal
	// float16 scales, which XNNPACK refuses.
	StrictReference bool
	// Reference writes, instead of the quantized model, the float model
	// whose weights are replaced by their dequantized values: the sharp
	// reference that the runtime output of the quantized model must match
	// up to the runtime's own arithmetic.
	Reference bool
	// Scales is the int4 scale method where neither the scheme nor the
	// recipe sets one (the job's quantize.scales or --scales); "" = min-max.
	Scales string
	// Calibration configures the statistics pass of calibrated scales
	// (nil: config.DefaultCalibration).
	Calibration *config.Calibration
	// Choice, when set, gives weights their scheme ahead of the recipe:
	// what a budget chose (the schemes are valid for every reader).
	Choice map[tensorKey]*config.Scheme
	// stats, when set, are the calibration statistics to use instead of
	// gathering them (a budget's probes share the ones it gathered).
	stats weightStats
	// outStats, when set, are the statistics a budget's proxy weighs each
	// weight's quantization error with (quant.OutputErrors).
	outStats weightStats
	// ReleaseRows gives the gptq calibration rows of an activation back once
	// every weight that reads it is written (a 7B model's 1.5 GB of rows
	// otherwise stay to the end): the run gathers its own rows instead of
	// sharing the process's (calib.GetInputs), so it suits a job's only
	// quantize run, not a budget's probes or several recipes of one model.
	ReleaseRows bool
	// Sections replaces Recipe for a bundle's sections (config's
	// QuantizeStage.Sections; forPart).
	Sections map[string]*config.Recipe
}

// scales is the scale method for the recipe's schemes that set none.
func (q *Quantize) scales() string {
	if q.Recipe.Scales != "" {
		return q.Recipe.Scales
	}
	return q.Scales
}

func (*Quantize) Name() string { return "quantize" }

func (q *Quantize) Run(ctx context.Context, s *pipeline.State) error {
	if p := q.forPart(s); p != q {
		return p.Run(ctx, s)
	}
	ms, err := model(s)
	if err != nil {
		return err
	}
	if s.Plan == nil {
		return fmt.Errorf("no annotations: the job needs an annotate stage before quantize (the runner adds one by default)")
	}
	m := ms.m
	s.Plan.Recipe = q.Recipe.Name

	reqs, fallbacks, err := q.resolve(m, ms.uses)
	if err != nil {
		return err
	}
	// Lint warns about the rules that matched no op (or fails with --strict).
	s.Plan.Rules = append(s.Plan.Rules, aeqRuleMatches(q.Recipe, ms.uses)...)
	var (
		stats  weightStats
		inputs *calib.Inputs
	)
	if !s.Estimate {
		if stats, err = q.calibrate(ctx, s, reqs); err != nil {
			return err
		}
		if inputs, err = q.gptqInputs(ctx, s, reqs); err != nil {
			return err
		}
	}
	groups := groupTensors(m, ms.uses, reqs)
	jobs := groupBuffers(m, groups)
	factors := newFactorCache(inputs)
	for _, j := range jobs {
		j.reference = q.Reference
		j.outLen = j.outputLen()
		j.stats = stats.of(j)
		j.outErrs.Stats = inputStats(q.outStats, j)
		j.gptq = gptqSourceFor(ctx, s.Log, m, inputs, factors, j)
	}
	factors.expect(jobs)
	gptqNotes(s.Plan, jobs)
	if s.DryRun {
		if !s.Estimate { // an estimate needs the plan's schemes and sizes only
			if err := measureScales(ctx, jobs, !q.StrictReference); err != nil {
				return err
			}
		} else if s.Plan != nil {
			rows, factors, err := gptqMemory(m, q.calibration(), jobs)
			if err != nil {
				return err
			}
			s.Plan.CalibrationBytes = max(s.Plan.CalibrationBytes, rows+factors)
		}
		ms.jobs = jobs
		updatePlan(s.Plan, m, groups, jobs, fallbacks)
		return ctx.Err()
	}
	if err := computeParams(ctx, m, jobs, !q.StrictReference); err != nil {
		return err
	}
	rewrite(m, groups, jobs, s.Metrics)
	ms.jobs = jobs
	updatePlan(s.Plan, m, groups, jobs, fallbacks)
	return ctx.Err()
}

// recipeCheck resolves every recipe of a multi-recipe job against the
// annotated weights before the first branch runs, so that a recipe that
// does not fit the model fails the job before any weight is quantized and
// before another recipe's output is written. (With one recipe, quantize's
// own resolve is that check.)
type recipeCheck struct {
	quantize []*Quantize
}

func (*recipeCheck) Name() string { return "check" }

func (c *recipeCheck) Run(ctx context.Context, s *pipeline.State) error {
	ms, err := model(s)
	if err != nil {
		return err
	}
	var bad []string
	for _, q := range c.quantize {
		if _, _, err := q.forPart(s).resolve(ms.m, ms.uses); err != nil {
			bad = append(bad, fmt.Sprintf("recipe %s: %v", q.Recipe.Name, err))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s\nno output was written", strings.Join(bad, "\n"))
	}
	return ctx.Err()
}
