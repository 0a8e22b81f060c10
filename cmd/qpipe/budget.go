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

// budgetFlags are --budget-size and --budget-kl, shared by quantize and
// plan.
type budgetFlags struct {
	size *string
	kl   *float64
}

func addBudgetFlags(fs *flag.FlagSet) budgetFlags {
	return budgetFlags{
		size: fs.String("budget-size", "", "choose each weight's scheme for the least error within this output size (e.g. 1.2GB)"),
		kl:   fs.Float64("budget-kl", 0, "choose each weight's scheme for the smallest output within this mean KL divergence"),
	}
}

// budget is the command line's budget, nil without one.
func (f budgetFlags) budget() (*config.Budget, error) {
	if *f.size == "" && *f.kl == 0 {
		return nil, nil
	}
	if *f.size != "" && *f.kl != 0 {
		return nil, usagef("--budget-size and --budget-kl are exclusive")
	}
	if *f.kl < 0 {
		return nil, usagef("--budget-kl must be positive")
	}
	b := &config.Budget{MaxKL: *f.kl}
	if *f.size != "" {
		n, err := config.ParseSize(*f.size)
		if err != nil {
			return nil, usagef("--budget-size: %v", err)
		}
		b.Size = n
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
// uniform presets, then each weight's options.
func printBudget(w io.Writer, p *pipeline.Plan) {
	b := p.Budget
	if b == nil {
		return
	}
	goal := fmt.Sprintf("size at most %s (%d bytes)", bytesize.Format(b.SizeBytes), b.SizeBytes)
	if b.MaxKL > 0 {
		goal = fmt.Sprintf("mean KL divergence at most %g", b.MaxKL)
	}
	fmt.Fprintf(w, "\nbudget: %s\n", goal)
	fmt.Fprintf(w, "  chosen: %s, %s (%d bytes), KL %.4g measured (%.4g predicted), found by %s\n",
		p.Recipe, bytesize.Format(b.PredictedBytes), b.PredictedBytes, b.MeasuredKL, b.PredictedKL, b.Method)
	fmt.Fprintf(w, "  measured on %s/%s, %d samples of %d tokens: %d models run (%d sensitivities from the cache, %d estimated from weight error) in %.1fs\n",
		b.Signature, b.Output, b.Samples, b.Seq, b.Probes, b.Cached, b.Estimated, b.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  MIX\tSIZE\tMEASURED KL")
	for _, m := range b.Mixes {
		fmt.Fprintf(tw, "  %s\t%s\t%.4g\n", m.Recipe, bytesize.Format(m.Bytes), m.KL)
	}
	for _, m := range b.Presets {
		fmt.Fprintf(tw, "  preset %s\t%s\t%.4g\n", m.Recipe, bytesize.Format(m.Bytes), m.KL)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nwhy each weight got its scheme (KL with the weight alone quantized; a shared buffer is listed once):")
	seen := map[uint32]bool{}
	for _, wp := range p.Weights {
		if wp.Budget == nil || seen[wp.Buffer] {
			continue
		}
		seen[wp.Buffer] = true
		fmt.Fprintf(w, "  %s: %s\n", wp.Name, wp.Budget.Why)
	}
}
