package main

import (
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/bytesize"
	"github.com/qpipe/qpipe/pipeline"
)

// budgetFlags are --budget-size and --budget-kl, and the metric and
// output a budget measures, shared by quantize and plan.
type budgetFlags struct {
	size           *string
	kl             *float64
	metric, output *string
}

func addBudgetFlags(fs *flag.FlagSet) budgetFlags {
	return budgetFlags{
		size:   fs.String("budget-size", "", "choose each weight's scheme for the least error within this output size (e.g. 1.2GB)"),
		kl:     fs.Float64("budget-kl", 0, "choose each weight's scheme for the smallest output within this mean KL divergence"),
		metric: fs.String("budget-metric", "", "the error a budget measures: kl (a logits output's mean KL divergence) or rel_l2 (the outputs' relative L2 error; the default without a logits output)"),
		output: fs.String("budget-output", "", "the output a budget compares (default: the logits output for kl, every float output for rel_l2)"),
	}
}

// budget is the command line's budget, nil without one.
func (f budgetFlags) budget() (*config.Budget, error) {
	b, err := config.FlagBudget(*f.size, *f.kl, *f.metric, *f.output)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return b, nil
}

// recipeOrBudget is the recipe of --recipe, --aeq-recipe or a budget flag:
// exactly one of them.
func recipeOrBudget(preset, aeq string, bf budgetFlags) (*config.Recipe, *config.Budget, error) {
	b, err := bf.budget()
	if err != nil {
		return nil, nil, err
	}
	if b == nil {
		r, err := cliRecipe(preset, aeq)
		return r, nil, err
	}
	if preset != "" || aeq != "" {
		return nil, nil, usagef("a budget chooses the schemes itself: leave out --recipe and --aeq-recipe")
	}
	return &config.Recipe{Name: config.BudgetRecipe, Suffix: config.BudgetRecipe}, b, nil
}

// printBudget shows what a budget chose and why: the mix against the
// uniform presets, the held-out acceptance, then each weight's options.
func printBudget(w io.Writer, p *pipeline.Plan) {
	b := p.Budget
	if b == nil {
		return
	}
	metric := "KL"
	if b.Metric == config.BudgetMetricRelL2 {
		metric = "REL L2"
	}
	goal := fmt.Sprintf("size at most %s (%d bytes)", bytesize.Format(b.SizeBytes), b.SizeBytes)
	switch {
	case b.MaxKL > 0:
		goal = fmt.Sprintf("mean KL divergence at most %g", b.MaxKL)
	case b.MaxRelL2 > 0:
		goal = fmt.Sprintf("rel L2 error at most %g", b.MaxRelL2)
	}
	fmt.Fprintf(w, "\nbudget: %s, measured as %s\n", goal, metric)
	on := "measured"
	if b.MeasuredOn == "held-out" {
		on = "measured on the held-out samples"
	}
	fmt.Fprintf(w, "  chosen: %s, %s (%d bytes), %s %.4g %s (%.4g predicted), found by %s\n",
		p.Recipe, bytesize.Format(b.PredictedBytes), b.PredictedBytes, metric, b.MeasuredKL, on, b.PredictedKL, b.Method)
	path := "each weight measured alone"
	switch b.Path {
	case "proxy":
		path = "each weight's output error from the calibration statistics, scaled per role group"
	case "proxy per weight":
		path = "each weight's output error from the calibration statistics, scaled per weight"
	}
	fmt.Fprintf(w, "  sensitivities: %s; on %s/%s, %d samples of %d tokens (seed %d): %d models run (%d sensitivities from the cache, %d predicted) in %.1fs\n",
		path, b.Signature, b.Output, b.Samples, b.Seq, b.Seed, b.Probes, b.Cached, b.Estimated, b.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  MIX\tSIZE\t%s\n", metric)
	for _, m := range b.Mixes {
		fmt.Fprintf(tw, "  %s\t%s\t%.4g\n", m.Recipe, bytesize.Format(m.Bytes), m.KL)
	}
	for _, m := range b.Presets {
		fmt.Fprintf(tw, "  preset %s\t%s\t%.4g\n", m.Recipe, bytesize.Format(m.Bytes), m.KL)
	}
	tw.Flush()
	if h := b.HeldOut; h != nil {
		fmt.Fprintf(w, "\nheld-out acceptance (%d samples, seed %d): written: %s\n  %s\n", h.Samples, h.Seed, h.Written, h.Why)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  HELD-OUT\tSIZE\t%s\n", metric)
		fmt.Fprintf(tw, "  mix (%s)\t%s\t%.4g\n", h.Mix.Recipe, bytesize.Format(h.Mix.Bytes), h.Mix.KL)
		for _, m := range h.Presets {
			fmt.Fprintf(tw, "  preset %s\t%s\t%.4g\n", m.Recipe, bytesize.Format(m.Bytes), m.KL)
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\nwhy each weight got its scheme (a shared buffer is listed once):")
	seen := map[uint32]bool{}
	for _, wp := range p.Weights {
		if wp.Budget == nil || seen[wp.Buffer] {
			continue
		}
		seen[wp.Buffer] = true
		fmt.Fprintf(w, "  %s: %s\n", wp.Name, wp.Budget.Why)
	}
}
