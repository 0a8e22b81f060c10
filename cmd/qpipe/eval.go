package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/qpipe/qpipe/internal/evaluate"
)

func init() {
	register(command{
		name:    "eval",
		usage:   "[--signature S] [--samples N] [--seq L] [--seed S] [--inputs FILE | --text FILE --tokenizer FILE [--bos ID]] [--json] REF.tflite [CAND.tflite]",
		summary: "run CAND and REF on the same inputs and compare their outputs (rel L2, max abs, cosine; KL and top-1/top-5 for logits; perplexity, KL and Δp of the next token on text or an inputs file), or run one model and print its output statistics",
		run:     evalCmd,
	})
}

func evalCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	signature := fs.String("signature", "", "run only this signature (default: every signature)")
	samples := fs.Int("samples", 0, fmt.Sprintf("number of samples (default %d, or every line of --inputs)", evaluate.DefaultSamples))
	seq := fs.Int("seq", 0, fmt.Sprintf("tokens per sequence (default: the model's; %d where it is dynamic)", evaluate.DefaultSeq))
	seed := fs.Int64("seed", evaluate.MeasureSeed, "seed of the generated inputs")
	inputs := fs.String("inputs", "", "JSON-lines file of inputs, one sample per line (README: Evaluating)")
	text := fs.String("text", "", "text file: tokenized with --tokenizer and run in windows of the model's sequence length (docs/EVAL.md)")
	tokFile := fs.String("tokenizer", "", "tokenizer of --text: a SentencePiece model or a tokenizer.json")
	bos := fs.Int("bos", evaluate.NoBOS, "with --text: start every window with this token id (the model's BOS), then L-1 text tokens")
	asJSON := fs.Bool("json", false, "print the report as JSON on stdout")
	flags, pos := flagArgs(args, map[string]bool{"signature": true, "samples": true, "seq": true, "seed": true, "inputs": true, "text": true, "tokenizer": true, "bos": true})
	if err := fs.Parse(flags); err != nil {
		return usagef("%v", err)
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usagef("want REF.tflite [CAND.tflite], got %d argument(s)", len(pos))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["samples"] && *samples < 1 {
		return usagef("--samples %d: want at least 1", *samples)
	}
	if set["seq"] && *seq < 1 {
		return usagef("--seq %d: want at least 1", *seq)
	}
	log := newLogger(stderr)
	opt := evaluate.Options{Samples: *samples, Seq: *seq, Seed: *seed, Log: &log}
	if set["signature"] {
		opt.Signatures = []string{*signature}
	}
	switch {
	case *text != "" && *inputs != "":
		return usagef("--text and --inputs: give one")
	case *text != "" && *tokFile == "":
		return usagef("--text needs --tokenizer FILE (a SentencePiece model or a tokenizer.json)")
	case *text == "" && *tokFile != "":
		return usagef("--tokenizer is for --text")
	case set["bos"] && (*text == "" || *bos < 0):
		return usagef("--bos ID: a token id (0 or more), with --text")
	}
	if *inputs != "" {
		f, err := os.Open(*inputs)
		if err != nil {
			return fmt.Errorf("--inputs: %w", err)
		}
		opt.Inputs, err = evaluate.ParseSamples(f, *inputs)
		f.Close()
		if err != nil {
			return err
		}
		opt.InputsFile = *inputs
	}
	ctx, stop := signalContext()
	defer stop()
	var models []*evaluate.Model
	defer func() {
		for _, m := range models {
			m.Close()
		}
	}()
	for _, p := range pos {
		m, err := evaluate.Open(p, 0)
		if err != nil {
			return err
		}
		models = append(models, m)
	}
	var info *evaluate.TextInfo
	if *text != "" {
		var err error
		if opt.Inputs, info, err = evaluate.TextSamples(models[0], opt, *text, *tokFile, *bos); err != nil {
			return err
		}
		opt.InputsFile = *text
	}
	var rep *evaluate.Report
	var err error
	if len(models) == 2 {
		rep, err = evaluate.Compare(ctx, models[0], models[1], opt)
	} else {
		rep, err = evaluate.Smoke(ctx, models[0], opt)
	}
	if err != nil {
		if ctx.Err() != nil {
			return interrupted(ctx, err)
		}
		return err
	}
	rep.Text = info
	if *asJSON {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		printEval(stdout, rep)
	}
	if bad := nonFinite(rep); len(bad) > 0 {
		return exitError{code: exitFailed, err: errors.New(strings.Join(bad, "; "))}
	}
	return nil
}

// nonFinite lists the outputs with NaN or infinite values: a smoke test
// fails on them, and so does a comparison whose candidate has them where
// the reference does not.
func nonFinite(r *evaluate.Report) []string {
	var bad []string
	for _, s := range r.Signatures {
		for _, o := range s.Outputs {
			switch {
			case o.Stats != nil && o.Stats.NaN+o.Stats.Inf > 0:
				bad = append(bad, fmt.Sprintf("signature %q output %q has %d NaN and %d infinite value(s)", s.Signature, o.Name, o.Stats.NaN, o.Stats.Inf))
			case o.Distance != nil && o.Distance.Mismatched > 0:
				bad = append(bad, fmt.Sprintf("signature %q output %q: %d value(s) are NaN or infinite on one side only", s.Signature, o.Name, o.Distance.Mismatched))
			}
		}
	}
	return bad
}

func printEval(w io.Writer, r *evaluate.Report) {
	fmt.Fprintf(w, "reference  %s\n", r.Reference)
	if r.Candidate != "" {
		fmt.Fprintf(w, "candidate  %s\n", r.Candidate)
	}
	if r.Inputs == "generated" {
		fmt.Fprintf(w, "inputs     %d sample(s), generated with seed %d\n", r.Samples, r.Seed)
	} else {
		fmt.Fprintf(w, "inputs     %d sample(s) from %s\n", r.Samples, r.Inputs)
	}
	if t := r.Text; t != nil {
		fmt.Fprintf(w, "text       %d tokens (%s %s), %d window(s) of %d", t.Tokens, t.Kind, t.Tokenizer, t.Windows, t.Seq)
		if t.BOS != nil {
			fmt.Fprintf(w, ", each BOS %d and %d text tokens", *t.BOS, t.Seq-1)
		}
		fmt.Fprintln(w)
	}
	for _, s := range r.Signatures {
		fmt.Fprintf(w, "\nsignature %q", s.Signature)
		if s.Seq > 0 {
			fmt.Fprintf(w, ", %d tokens per sequence", s.Seq)
		}
		fmt.Fprintln(w)
		for _, in := range s.Inputs {
			fmt.Fprintf(w, "  in   %s %s %v", in.Name, in.Type, in.Shape)
			if in.Vocab > 0 {
				fmt.Fprintf(w, ", token ids in [0, %d)", in.Vocab)
			}
			fmt.Fprintln(w)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		if r.Candidate != "" {
			fmt.Fprintln(tw, "  OUTPUT\tSHAPE\tREL L2\tMAX ABS\tCOSINE\tMEAN KL\tP99 KL\tTOP-1\tTOP-5")
			for _, o := range s.Outputs {
				d := o.Distance
				fmt.Fprintf(tw, "  %s\t%v\t%s\t%s\t%s", o.Name, o.Shape, num(d.RelL2, "%.4g"), num(d.MaxAbs, "%.4g"), num(d.Cosine, "%.6f"))
				if l := o.Logits; l != nil {
					fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s\n", num(l.MeanKL, "%.4g"), num(l.P99KL, "%.4g"), pct(l.Top1), pct(l.Top5))
				} else {
					fmt.Fprintf(tw, "\t-\t-\t-\t-\n")
				}
			}
		} else {
			fmt.Fprintln(tw, "  OUTPUT\tSHAPE\tMIN\tMAX\tMEAN\tSTD\tNAN\tINF")
			for _, o := range s.Outputs {
				st := o.Stats
				fmt.Fprintf(tw, "  %s\t%v\t%s\t%s\t%s\t%s\t%d\t%d\n", o.Name, o.Shape, num(st.Min, "%.4g"), num(st.Max, "%.4g"),
					num(st.Mean, "%.4g"), num(st.Std, "%.4g"), st.NaN, st.Inf)
			}
		}
		tw.Flush()
		for _, o := range s.Outputs {
			if n := o.NextToken; n != nil {
				fmt.Fprintf(w, "  next token of %q, %d prediction(s): perplexity %s -> %s (ratio %s), KL mean %s median %s p99 %s max %s, top-1 %s, RMS Δp %s\n",
					o.Name, n.Scored, num(n.PPLRef, "%.4f"), num(n.PPLCand, "%.4f"), num(n.PPLRatio, "%.5f"), num(n.MeanKL, "%.4g"),
					num(n.MedianKL, "%.4g"), num(n.P99KL, "%.4g"), num(n.MaxKL, "%.4g"), pct(n.Top1), pctf(n.RMSDp))
			}
		}
	}
	if r.Candidate != "" {
		fmt.Fprintln(w, "\nKL is KL(softmax(REF) ‖ softmax(CAND)) per position, in nats; TOP-5: REF's top token among CAND's five largest.")
	}
}

func num(n evaluate.Num, format string) string {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Sprint(f)
	}
	return fmt.Sprintf(format, f)
}

func pctf(n evaluate.Num) string {
	return fmt.Sprintf("%.3f%%", 100*float64(n))
}

func pct(n evaluate.Num) string {
	return fmt.Sprintf("%.1f%%", 100*float64(n))
}
