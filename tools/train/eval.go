package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/qpipe/qpipe/internal/trained"
)

// spmEncode tokenizes text with spm_encode (one line per line, </s> after
// each, as the corpus was encoded).
func spmEncode(model, text string) ([]int32, error) {
	cmd := exec.Command("spm_encode", "--model="+model, "--output_format=id", "--extra_options=eos")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("spm_encode: %w", err)
	}
	var ids []int32
	for _, f := range strings.Fields(string(out)) {
		v, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		ids = append(ids, int32(v))
	}
	return ids, nil
}

// spmDecode turns ids back into text with spm_decode, the </s> id (2) as
// the end of a line.
func spmDecode(model string, ids []int32) (string, error) {
	var in bytes.Buffer
	for _, id := range ids {
		if id == trained.EOS {
			in.WriteByte('\n')
			continue
		}
		fmt.Fprintf(&in, "%d ", id)
	}
	in.WriteByte('\n')
	cmd := exec.Command("spm_decode", "--model="+model, "--input_format=id")
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("spm_decode: %w", err)
	}
	return strings.TrimSuffix(string(out), "\n"), nil
}

// evalReport is what `train eval` measures and stores in the log.
type evalReport struct {
	HeldoutTokens int         `json:"heldout_tokens_predicted"`
	ModelNLL      float64     `json:"model_nll"`
	ModelPPL      float64     `json:"model_perplexity"`
	UnigramNLL    float64     `json:"unigram_nll"`
	UnigramPPL    float64     `json:"unigram_perplexity"`
	UniformPPL    float64     `json:"uniform_perplexity"`
	Continuations [][2]string `json:"greedy_continuations"`
	UnigramCounts []int64     `json:"unigram_counts"`
}

var prompts = []string{
	"// Copyright 2009 The Go Authors. All rights reserved.\n// Use of this source code is governed by a BSD-style\n// license that can be found in the LICENSE file.\n\npackage",
	"func (b *Buffer) Len() int {\n",
	"// NewReader returns",
	"\tif err != nil {\n",
}

func cmdEval(args []string) error {
	fs := flag.NewFlagSet("eval", flag.ExitOnError)
	model := fs.String("model", trained.Model, "the .tflite")
	spm := fs.String("spm", trained.Tokenizer, "the SentencePiece model")
	heldout := fs.String("heldout", trained.HeldoutIDs, "held-out token ids (uint16)")
	train := fs.String("train", ".cache/train/train.ids", "training token ids (spm_encode output), for the unigram baseline")
	logPath := fs.String("log", trained.Log, "training log to add the evaluation to")
	n := fs.Int("windows", 0, "held-out windows (0: all)")
	gen := fs.Int("gen", 48, "greedy tokens per prompt")
	fs.Parse(args)
	d, err := trained.Open(*model, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	held, err := trained.ReadIDs(*heldout, d.Vocab)
	if err != nil {
		return err
	}
	tr, err := readIDs(*train, d.Vocab)
	if err != nil {
		return err
	}
	r := evalReport{UniformPPL: float64(d.Vocab), UnigramCounts: trained.Counts(tr, d.Vocab)}
	r.ModelNLL, r.HeldoutTokens, err = d.HeldoutNLL(held, *n)
	if err != nil {
		return err
	}
	r.UnigramNLL = trained.UnigramNLL(r.UnigramCounts, held, d.Seq, *n)
	r.ModelPPL, r.UnigramPPL = math.Exp(r.ModelNLL), math.Exp(r.UnigramNLL)
	fmt.Printf("held-out: %d tokens predicted; perplexity model %.2f (%.4f nats), unigram %.2f (%.4f nats), uniform %d\n",
		r.HeldoutTokens, r.ModelPPL, r.ModelNLL, r.UnigramPPL, r.UnigramNLL, d.Vocab)
	for _, p := range prompts {
		ids, err := spmEncode(*spm, p)
		if err != nil {
			return err
		}
		// spm_encode ends the last line too; a prompt that does not end
		// with a newline continues its last line.
		if !strings.HasSuffix(p, "\n") && len(ids) > 0 && ids[len(ids)-1] == trained.EOS {
			ids = ids[:len(ids)-1]
		}
		out, err := d.Greedy(ids, *gen)
		if err != nil {
			return err
		}
		text, err := spmDecode(*spm, out[len(ids):])
		if err != nil {
			return err
		}
		r.Continuations = append(r.Continuations, [2]string{p, text})
		fmt.Printf("--- prompt %q\n%s\n", p, text)
	}
	if *logPath == "" {
		return nil
	}
	raw, err := os.ReadFile(*logPath)
	if err != nil {
		return err
	}
	var lg map[string]any
	if err := json.Unmarshal(raw, &lg); err != nil {
		return fmt.Errorf("%s: %w", *logPath, err)
	}
	lg["eval"] = r
	b, err := json.MarshalIndent(lg, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(*logPath, append(b, '\n'), 0o644)
}
