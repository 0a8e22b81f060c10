package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/cache"
	"github.com/qpipe/qpipe/internal/runner"
	"github.com/qpipe/qpipe/pipeline"
	"github.com/qpipe/qpipe/stages"
)

func init() {
	register(command{
		name:    "quantize",
		usage:   "(--recipe NAME | --aeq-recipe FILE.json | --budget-size SIZE | --budget-kl KL) [--budget-metric kl|rel_l2] [--budget-output NAME] [--scales minmax|search|calibrated|gptq] [--fallback] [--layout auto|inline|offset] [--metrics] [--fsync] [--dequantized-reference] [--strict] IN.tflite|IN.litertlm OUT.tflite|OUT.litertlm",
		summary: "quantize one model with a preset recipe (like the upstream converter's --quantize)",
		run:     quantizeCmd,
	})
}

func quantizeCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("quantize", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	recipe := fs.String("recipe", "", "preset name (see `qpipe recipes`)")
	aeq := fs.String("aeq-recipe", "", "AI Edge Quantizer recipe file (JSON)")
	fallback := fs.Bool("fallback", false, "give a weight the next scheme that fits instead of failing")
	layout := fs.String("layout", "auto", "buffer layout of the output")
	metrics := fs.Bool("metrics", false, "measure and log each tensor's quantization error")
	fsync := fs.Bool("fsync", false, "flush each output to the disk before reporting it written")
	strict := fs.Bool("strict-reference", false, "do not clamp tiny int4 block scales")
	strictLint := fs.Bool("strict", false, "fail when a rule of the --aeq-recipe matches no op that reads a weight, instead of warning")
	scales, checkScales := scalesFlag(fs)
	deqRef := fs.Bool("dequantized-reference", false, "write a float32 model whose weights are the dequantized values of the recipe's output (a reference for accuracy tests)")
	bf := addBudgetFlags(fs)
	flags, pos := flagArgs(args, map[string]bool{"recipe": true, "layout": true, "aeq-recipe": true, "scales": true, "budget-size": true, "budget-kl": true, "budget-metric": true, "budget-output": true})
	if err := fs.Parse(flags); err != nil {
		return usagef("%v", err)
	}
	if err := checkScales(); err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("want IN.tflite OUT.tflite, got %d argument(s)", len(pos))
	}
	r, bud, err := recipeOrBudget(*recipe, *aeq, bf)
	if err != nil {
		return err
	}
	log := newLogger(stderr)
	if r.Warning != "" {
		log.Warn().Msg(r.Warning)
	}
	job := config.OneShotJob(pos[0], pos[1], r, bud, *fallback, *layout)
	opt := stages.Options{Sync: *fsync, StrictReference: *strict, DequantizedReference: *deqRef, Strict: *strictLint, Scales: *scales, BudgetCache: cache.Dir()}
	var prog runner.Progress
	if p := newProgress(stderr); p != nil {
		prog = p
	}
	ctx, stop := signalContext()
	defer stop()
	state := &pipeline.State{Log: log, Metrics: *metrics}
	branches, err := runner.Execute(ctx, job, opt, state, prog)
	defer stages.Close(state)
	if err != nil {
		return interrupted(ctx, err)
	}
	for _, b := range branches {
		if b.Output == nil {
			continue
		}
		ev := log.Info().Str("path", b.Output.Path).Int64("bytes", b.Output.Bytes).Str("layout", b.Output.Layout)
		ev.Msg(fmt.Sprintf("wrote %s (%s)", b.Output.Path, r.Name))
		for _, t := range b.Output.Tensors {
			log.Info().Str("tensor", t.Tensor).Str("scheme", t.Scheme).Float64("sqnr_db", t.SQNR).Float64("rel_l2", t.RelL2).Msg("error")
		}
	}
	return nil
}

// cliRecipe is the recipe of --recipe NAME or --aeq-recipe FILE: exactly
// one of them.
func cliRecipe(preset, aeq string) (*config.Recipe, error) {
	switch {
	case preset != "" && aeq != "":
		return nil, usagef("--recipe and --aeq-recipe are exclusive")
	case aeq != "":
		return config.LoadAEQMapping(aeq)
	case preset == "":
		return nil, usagef("--recipe NAME (see `qpipe recipes`) or --aeq-recipe FILE.json is required")
	}
	r, err := config.Preset(preset)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return r, nil
}
