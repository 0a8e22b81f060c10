package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/qpipe/qpipe/internal/gen"
	"github.com/qpipe/qpipe/internal/tflite"
)

func init() {
	register(command{
		name:    "gen",
		usage:   "[--preset tiny|1gb|4gb|7b] [--vocab N] [--dim N] [--layers N] [--heads N] [--ffn N] [--seq N] [--seed N] [--act silu|gelu] [--not-divisible] [--layout inline|offset] OUT.tflite",
		summary: "write a generated float32 decoder-only transformer (LiteRT Torch names, seeded weights) for tests and benchmarks",
		run:     runGen,
	})
}

// offsetLayoutAbove is the weight size from which qpipe gen writes the
// offset layout unless --layout says otherwise: the writer then streams
// every weight to the file instead of building it into the flatbuffer.
const offsetLayoutAbove = 64 << 20

func runGen(args []string, stdout, _ io.Writer) error {
	ctx, stop := signalContext()
	defer stop()
	return genMain(ctx, args, stdout)
}

// genMain is qpipe gen; cancelling ctx stops the writing, removes the
// partial file and ends with exit code 130.
func genMain(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	preset := fs.String("preset", "tiny", "size preset: "+strings.Join(gen.PresetNames(), ", "))
	vocab := fs.Int("vocab", 0, "vocabulary size (rows of the embedding table)")
	dim := fs.Int("dim", 0, "model width")
	layers := fs.Int("layers", 0, "number of transformer blocks")
	heads := fs.Int("heads", 0, "attention heads (must divide dim)")
	ffn := fs.Int("ffn", 0, "feed-forward width")
	seq := fs.Int("seq", 0, "static number of token positions")
	seed := fs.Uint64("seed", 0, "weight seed")
	act := fs.String("act", "", "feed-forward activation: silu or gelu")
	notDiv := fs.Bool("not-divisible", false, "make the feed-forward width ffn−32 (down projections take int4 block 32 only)")
	layout := fs.String("layout", "", "inline or offset (default: offset when the weights exceed 64 MiB)")

	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(stdout, "usage: qpipe gen %s\n\n", commands["gen"].usage)
				fs.SetOutput(stdout)
				fs.PrintDefaults()
				return nil
			}
			return usagef("%v", err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(pos) != 1 {
		return usagef("want one output file, got %d arguments", len(pos))
	}
	out := pos[0]

	cfg, ok := gen.Preset(*preset)
	if !ok {
		return usagef("unknown preset %q (have %s)", *preset, strings.Join(gen.PresetNames(), ", "))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, o := range []struct {
		name     string
		dst, val *int
	}{{"vocab", &cfg.Vocab, vocab}, {"dim", &cfg.Dim, dim}, {"layers", &cfg.Layers, layers},
		{"heads", &cfg.Heads, heads}, {"ffn", &cfg.FFN, ffn}, {"seq", &cfg.Seq, seq}} {
		if set[o.name] {
			*o.dst = *o.val
		}
	}
	if set["seed"] {
		cfg.Seed = *seed
	}
	if set["act"] {
		cfg.Activation = *act
	}
	cfg.NotDivisible = *notDiv
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}

	opts := tflite.WriteOptions{Layout: tflite.LayoutInline}
	switch {
	case *layout == "offset" || *layout == "" && cfg.WeightBytes() > offsetLayoutAbove:
		opts.Layout = tflite.LayoutOffset
	case *layout == "inline" || *layout == "":
	default:
		return usagef("--layout %q: want inline or offset", *layout)
	}

	m, err := gen.Decoder(cfg)
	if err != nil {
		return err
	}
	if err := tflite.WriteFile(ctx, out, m, opts); err != nil {
		if ctx.Err() != nil {
			// WriteFile removed its temporary file.
			return interrupted(ctx, ctx.Err())
		}
		return err
	}
	fmt.Fprintf(stdout, "%s: decoder vocab %d dim %d layers %d heads %d ffn %d seq %d act %s seed %d: %d parameters, %d weight bytes, %s layout\n",
		out, cfg.Vocab, cfg.Dim, cfg.Layers, cfg.Heads, cfg.FFNWidth(), cfg.Seq, cfg.Activation, cfg.Seed, cfg.Params(), cfg.WeightBytes(), opts.Layout)
	return nil
}

// stopOnCancel makes every generated buffer fail at its next chunk once ctx
// is done, so that WriteFile stops and removes its temporary file.
