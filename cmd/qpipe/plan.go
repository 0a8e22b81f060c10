package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/bytesize"
	"github.com/qpipe/qpipe/internal/cache"
	"github.com/qpipe/qpipe/internal/litertlm"
	"github.com/qpipe/qpipe/internal/runner"
	"github.com/qpipe/qpipe/pipeline"
	"github.com/qpipe/qpipe/stages"
)

func init() {
	register(command{
		name:    "plan",
		usage:   "(JOB.yaml | --recipe NAME IN.{tflite,litertlm} | --aeq-recipe FILE.json IN.{tflite,litertlm} | --budget-size SIZE IN.tflite | --budget-kl KL IN.tflite) [--budget-metric kl|rel_l2] [--budget-output NAME] [--scales minmax|search|calibrated|gptq] [--json | --export-aeq] [--strict]",
		summary: "dry run: every weight with its role, layer, scheme and sizes; nothing is written",
		run:     planCmd,
	})
}

func planCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	recipe := fs.String("recipe", "", "preset name, to plan a model without a job file")
	aeq := fs.String("aeq-recipe", "", "AI Edge Quantizer recipe file, to plan a model without a job file")
	exportAEQ := fs.Bool("export-aeq", false, "print the resolved recipe as an AI Edge Quantizer recipe (JSON)")
	asJSON := fs.Bool("json", false, "print the plan as JSON")
	fallback := fs.Bool("fallback", false, "with --recipe: plan on_mismatch: fallback")
	strict := fs.Bool("strict", false, "fail when the job file has lines that do nothing on its model, instead of warning")
	scales, checkScales := scalesFlag(fs)
	bf := addBudgetFlags(fs)
	flags, pos := flagArgs(args, map[string]bool{"recipe": true, "aeq-recipe": true, "scales": true, "budget-size": true, "budget-kl": true, "budget-metric": true, "budget-output": true})
	if err := fs.Parse(flags); err != nil {
		return usagef("%v", err)
	}
	if err := checkScales(); err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one JOB.yaml, or --recipe NAME (or --aeq-recipe FILE.json) and one model")
	}
	if *asJSON && *exportAEQ {
		return usagef("--json and --export-aeq are exclusive")
	}
	var job *config.Job
	var err error
	if *recipe != "" || *aeq != "" || *bf.size != "" || *bf.kl != 0 {
		r, bud, err := recipeOrBudget(*recipe, *aeq, bf)
		if err != nil {
			return err
		}
		ext := ".tflite"
		if litertlm.Sniff(pos[0]) {
			ext = ".litertlm"
		}
		job = config.OneShotJob(pos[0], filepath.Join(filepath.Dir(pos[0]), "{name}_{suffix}"+ext), r, bud, *fallback, "")
	} else if job, err = config.LoadJob(pos[0]); err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	state := &pipeline.State{Log: newLogger(stderr), DryRun: true}
	branches, err := runner.Execute(ctx, job, stages.Options{Strict: *strict, Scales: *scales, BudgetCache: cache.Dir()}, state, nil)
	defer stages.Close(state)
	if err != nil {
		return interrupted(ctx, err)
	}
	if *exportAEQ {
		return exportPlanAEQ(stdout, stderr, job, branches)
	}
	plans := make([]*pipeline.Plan, 0, len(branches))
	for _, b := range branches {
		plans = append(plans, b.Plan)
	}
	warnings := state.Warnings
	for _, w := range job.Warnings {
		warnings = append(warnings, w.Error())
	}
	if *asJSON {
		out := map[string]any{"job": job.Name, "plans": plans}
		if len(warnings) > 0 {
			out["warnings"] = warnings
		}
		return writeJSON(stdout, out)
	}
	for _, p := range plans {
		printPlan(stdout, p)
	}
	for _, w := range warnings {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	return nil
}

func printPlan(w io.Writer, p *pipeline.Plan) {
	fmt.Fprintf(w, "model %s, recipe %s\n\n", p.Model, p.Recipe)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	searched := false
	for _, wp := range p.Weights {
		searched = searched || wp.SQNR != nil
	}
	sqnrHead := ""
	if searched {
		sqnrHead = "SQNR dB (MIN-MAX -> CHOSEN)\t"
	}
	// A bundle's plan names each weight's section first.
	sectionHead := ""
	for _, wp := range p.Weights {
		if wp.Section != nil {
			sectionHead = "SECTION\t"
		}
	}
	fmt.Fprintln(tw, sectionHead+"TENSOR\tSHAPE\tROLE\tLAYER\tSCHEME\tIN\tOUT\t"+sqnrHead+"OPS")
	for _, wp := range p.Weights {
		if sectionHead != "" {
			fmt.Fprintf(tw, "%d\t", *wp.Section)
		}
		layer, scheme := "-", "float"
		if wp.Layer != nil {
			layer = fmt.Sprint(*wp.Layer)
		}
		if wp.Scheme != nil {
			scheme = *wp.Scheme
		}
		scheme = config.SchemeLabel(scheme, wp.Scales)
		if wp.Fallback != "" {
			scheme += " (instead of " + wp.Fallback + ")"
		}
		sqnr := ""
		if searched {
			sqnr = "-\t"
			if wp.SQNR != nil {
				sqnr = fmt.Sprintf("%.2f -> %.2f\t", *wp.SQNRMinMax, *wp.SQNR)
			}
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%s\t%s\t%s%s\n", wp.Name, wp.Shape, wp.Role, layer, scheme,
			bytesize.Format(wp.BytesIn), bytesize.Format(wp.BytesOut), sqnr, strings.Join(wp.Ops, ","))
	}
	tw.Flush()
	t := p.Totals
	fmt.Fprintf(w, "\n%d weights, %d quantized: %s -> %s\n", t.Weights, t.Quantized, bytesize.Format(t.BytesIn), bytesize.Format(t.BytesOut))
	for _, r := range p.Rules {
		if !strings.HasPrefix(r.Source, "built-in") || r.Ops > 0 {
			fmt.Fprintf(w, "rule %-11s %-40s matched %d op(s)  [%s]\n", r.Role, r.Pattern, r.Ops, r.Source)
		}
	}
	for _, n := range p.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if a := p.Accuracy; a != nil {
		fmt.Fprintf(w, "accuracy gate: %s against the float model: %s\n", a.Setting(), a.Bounds())
	}
	printBudget(w, p)
	fmt.Fprintln(w)
}

// exportPlanAEQ prints the job's one recipe, as resolved on its model, as
// an AI Edge Quantizer recipe. On a bundle of one TFLiteModel section it
// is that section's recipe; on a bundle of several, the reference's
// model-type mapping (what --aeq-recipe reads back: docs/BUNDLES.md), each
// section's rules under its model_type.
func exportPlanAEQ(stdout, stderr io.Writer, job *config.Job, branches []*pipeline.State) error {
	q := job.Quantize()
	if q == nil || len(q.Recipes) != 1 || len(branches) != 1 {
		n := 0
		if q != nil {
			n = len(q.Recipes)
		}
		return usagef("--export-aeq writes one recipe; the job has %d (plan a job with one recipe, or use --recipe)", n)
	}
	log := newLogger(stderr)
	export := func(s *pipeline.State, prefix string) ([]byte, error) {
		rules, notes, err := stages.AEQRules(s, q.Recipes[0])
		if err != nil {
			return nil, err
		}
		for _, n := range notes {
			log.Warn().Msg(prefix + n)
		}
		return config.MarshalAEQ(rules)
	}
	ps, ok := branches[0].Model.(pipeline.Parts)
	if !ok {
		out, err := export(branches[0], "")
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	}
	parts := ps.Parts()
	byType := map[string]string{}
	var b bytes.Buffer
	b.WriteString("{")
	for i, p := range parts {
		sub := *branches[0]
		sub.Model, sub.Plan, sub.Part = p.Model, p.Plan, p
		out, err := export(&sub, p.Name+": ")
		if err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		if len(parts) == 1 {
			_, err = stdout.Write(out)
			return err
		}
		if p.ModelType == "" {
			return fmt.Errorf("--export-aeq: %s has no model_type, which the reference's mapping keys recipes by; plan its sections as bare models", p.Name)
		}
		if other, dup := byType[p.ModelType]; dup {
			return fmt.Errorf("--export-aeq: %s and %s have the same model_type, which the reference's mapping keys recipes by; plan its sections as bare models", other, p.Name)
		}
		byType[p.ModelType] = p.Name
		key, _ := json.Marshal(p.ModelType)
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n  %s: %s", key, bytes.TrimSpace(bytes.ReplaceAll(out, []byte("\n"), []byte("\n  "))))
	}
	b.WriteString("\n}\n")
	_, err := stdout.Write(b.Bytes())
	return err
}
