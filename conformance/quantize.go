package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/pipeline"
	"github.com/qpipe/qpipe/stages"
)

// ErrNotApplicable is wrapped by Quantize's error when the preset does not
// fit the model (a block size that divides no weight's input dimension):
// qpipe refuses the whole job, as the upstream converter does, and the
// conformance suite records the pair as not applicable.
var ErrNotApplicable = errors.New("preset does not fit the model")

// notFit is the phrase stages.Quantize uses for weights a scheme cannot
// quantize (stages/resolve.go, mismatchError).
const notFit = "do not fit the recipe"

// Quantize runs `qpipe quantize --recipe preset in out` in process: load,
// annotate, quantize, verify (on_mismatch: fail) and serialize. With
// reference set it writes the dequantized reference instead (`qpipe
// quantize --dequantized-reference`): a float32 model whose weights are the
// dequantized values of what the preset writes. It returns how many
// weights the preset quantized.
func Quantize(ctx context.Context, in, out, preset string, reference bool) (quantized int, err error) {
	return QuantizeWith(ctx, in, out, preset, stages.Options{DequantizedReference: reference})
}

// QuantizeWith is Quantize with the command line's options (such as
// --scales, Options.Scales).
func QuantizeWith(ctx context.Context, in, out, preset string, opt stages.Options) (quantized int, err error) {
	r, err := config.Preset(preset)
	if err != nil {
		return 0, err
	}
	return quantizeRecipe(ctx, in, out, r, nil, opt)
}

// QuantizeRecipe is Quantize with a recipe of any kind (an AI Edge
// Quantizer recipe file, say).
func QuantizeRecipe(ctx context.Context, in, out string, r *config.Recipe, reference bool) (quantized int, err error) {
	return quantizeRecipe(ctx, in, out, r, nil, stages.Options{DequantizedReference: reference})
}

// QuantizeCalibrated is QuantizeRecipe with the job's quantize.calibration
// (nil: the defaults).
func QuantizeCalibrated(ctx context.Context, in, out string, r *config.Recipe, cal *config.Calibration) (quantized int, err error) {
	return quantizeRecipe(ctx, in, out, r, cal, stages.Options{})
}

func quantizeRecipe(ctx context.Context, in, out string, r *config.Recipe, cal *config.Calibration, opt stages.Options) (quantized int, err error) {
	preset := r.Name
	job := &config.Job{Path: in, Name: preset, Stages: []config.Stage{
		&config.LoadStage{Path: in},
		&config.AnnotateStage{},
		&config.QuantizeStage{Recipes: []*config.Recipe{r}, Calibration: cal},
		&config.VerifyStage{OnMismatch: config.OnMismatchFail},
		&config.SerializeStage{Path: out},
	}}
	pj, err := stages.Build(job, opt)
	if err != nil {
		return 0, fmt.Errorf("conformance: building the %s job for %s: %w", preset, in, err)
	}
	s := &pipeline.State{Log: zerolog.Nop()}
	branches, err := pipeline.Run(ctx, pj, s)
	defer stages.Close(s)
	if err != nil {
		if strings.Contains(err.Error(), notFit) {
			return 0, fmt.Errorf("%w: %v", ErrNotApplicable, err)
		}
		return 0, fmt.Errorf("conformance: quantizing %s with %s: %w", in, preset, err)
	}
	if len(branches) != 1 || branches[0].Plan == nil {
		return 0, fmt.Errorf("conformance: quantizing %s with %s: the job ran %d branch(es), want 1 with a plan", in, preset, len(branches))
	}
	p := branches[0].Plan
	p.Sum()
	return p.Totals.Quantized, nil
}
