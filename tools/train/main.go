// Command train makes qpipe's trained test language model (docs/TRAINED.md):
// a small decoder-only transformer of the architecture qpipe gen writes,
// trained on text from the Go distribution with a SentencePiece tokenizer,
// written as a float .tflite with LiteRT Torch names. `make trained-model`
// runs every step.
//
//	train corpus -out DIR            write DIR/train.txt and DIR/heldout.txt
//	train fit -train IDS -out MODEL  train on token ids (spm_encode --output_format=id)
//	train pack -in IDS -out BIN      token ids (spm_encode output) as uint16
//	train tokenizer                  the committed tokenizer: spm_train's, "\n" as piece 2
//	train bundle -out B.litertlm     the model and its tokenizer as a LiteRT-LM bundle
//	train eval                       held-out perplexity, baselines, greedy text
//	train bench                      measure training throughput
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"

	"github.com/qpipe/qpipe/internal/trained"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: train corpus|fit|eval|pack|tokenizer|bundle|bench [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "corpus":
		err = cmdCorpus(os.Args[2:])
	case "fit":
		err = cmdFit(os.Args[2:])
	case "bench":
		err = cmdBench(os.Args[2:])
	case "eval":
		err = cmdEval(os.Args[2:])
	case "tokenizer":
		err = cmdTokenizer(os.Args[2:])
	case "bundle":
		err = cmdBundle(os.Args[2:])
	case "pack":
		err = cmdPack(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want corpus, fit, eval, pack, tokenizer, bundle or bench", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "train:", err)
		os.Exit(1)
	}
}

func cmdCorpus(args []string) error {
	fs := flag.NewFlagSet("corpus", flag.ExitOnError)
	goroot := fs.String("goroot", runtime.GOROOT(), "the Go distribution to take text from")
	out := fs.String("out", ".cache/train", "directory for train.txt and heldout.txt")
	fs.Parse(args)
	info, err := buildCorpus(*goroot, *out)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(info))
	for k := range info {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("%s: %s\n", k, info[k])
	}
	return nil
}

func cmdPack(args []string) error {
	fs := flag.NewFlagSet("pack", flag.ExitOnError)
	in := fs.String("in", "", "token ids as spm_encode --output_format=id writes them")
	out := fs.String("out", "", "the little-endian uint16 file to write")
	fs.Parse(args)
	ids, err := readIDs(*in, trainedConfig.Vocab)
	if err != nil {
		return err
	}
	return trained.WriteIDs(*out, ids)
}

func cmdBundle(args []string) error {
	fs := flag.NewFlagSet("bundle", flag.ExitOnError)
	out := fs.String("out", ".cache/train/trained_decoder.litertlm", "the bundle to write")
	fs.Parse(args)
	return trained.WriteBundle(context.Background(), *out, trained.Model, trained.Tokenizer)
}
