package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/qpipe/qpipe/internal/interp"
	"github.com/qpipe/qpipe/internal/tflite"
)

// Committed files (testdata/models), written by `make trained-model`.
const (
	committedModel   = "testdata/models/trained_decoder.tflite"
	committedSPM     = "testdata/models/trained_decoder.spm.model"
	committedHeldout = "testdata/models/trained_decoder_heldout.txt"
	committedIDs     = "testdata/models/trained_decoder_heldout.ids"
	committedLog     = "testdata/models/trained_decoder.json"
)

// decoderRunner runs a decoder .tflite (input "tokens" [seq] int32, output
// "logits" [seq, vocab]) on the interpreter.
type decoderRunner struct {
	in         *interp.Interpreter
	m          *tflite.Model
	seq, vocab int
}

func openDecoder(path string) (*decoderRunner, error) {
	m, err := tflite.Open(path)
	if err != nil {
		return nil, err
	}
	in, err := interp.New(m, interp.Options{})
	if err != nil {
		m.Close()
		return nil, err
	}
	d := &decoderRunner{in: in, m: m}
	sg := m.Meta.Subgraphs[0]
	tok, logits := sg.Tensors[sg.Inputs[0]], sg.Tensors[sg.Outputs[0]]
	if len(tok.Shape) != 1 || len(logits.Shape) != 2 {
		m.Close()
		return nil, fmt.Errorf("%s: not a decoder: tokens %v, logits %v", path, tok.Shape, logits.Shape)
	}
	d.seq, d.vocab = int(tok.Shape[0]), int(logits.Shape[1])
	return d, nil
}

func (d *decoderRunner) Close() error { return d.m.Close() }

// logits runs tokens (at most seq; the rest padded with id 0, which the
// causal mask keeps from changing earlier positions) and returns the
// [seq, vocab] logits.
func (d *decoderRunner) logits(tokens []int32) ([]float32, error) {
	in := make([]int32, d.seq)
	copy(in, tokens)
	out, err := d.in.Run(context.Background(), "serving_default", map[string]*interp.Tensor{"tokens": interp.I32Tensor([]int{d.seq}, in)})
	if err != nil {
		return nil, err
	}
	return out["logits"].F32, nil
}

// nll is the summed negative log-likelihood (nats) of the targets
// window[1:] given window[:len−1], from the logits of each position.
func nll(logits []float32, vocab int, window []int32) float64 {
	var s float64
	for t := 0; t+1 < len(window); t++ {
		row := logits[t*vocab : (t+1)*vocab]
		mx := float64(row[0])
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		var z float64
		for _, v := range row {
			z += math.Exp(float64(v) - mx)
		}
		s += math.Log(z) + mx - float64(row[window[t+1]])
	}
	return s
}

// heldoutNLL is the mean negative log-likelihood per predicted token over
// the first n windows (seq+1 tokens, stride seq) of ids; n ≤ 0: all.
func (d *decoderRunner) heldoutNLL(ids []int32, n int) (float64, int, error) {
	ws := windows(ids, d.seq)
	if n > 0 && n < len(ws) {
		ws = ws[:n]
	}
	var tot float64
	var count int
	for _, w := range ws {
		lg, err := d.logits(w[:d.seq])
		if err != nil {
			return 0, 0, err
		}
		tot += nll(lg, d.vocab, w)
		count += d.seq
	}
	return tot / float64(count), count, nil
}

// unigramNLL is the cross-entropy (nats per token) of ids under the
// add-one-smoothed unigram distribution of counts, predicting the same
// positions heldoutNLL does (the first n windows).
func unigramNLL(counts []int64, ids []int32, seq, n int) float64 {
	var total float64
	for _, c := range counts {
		total += float64(c + 1)
	}
	ws := windows(ids, seq)
	if n > 0 && n < len(ws) {
		ws = ws[:n]
	}
	var s float64
	var k int
	for _, w := range ws {
		for _, id := range w[1:] {
			s -= math.Log(float64(counts[id]+1) / total)
			k++
		}
	}
	return s / float64(k)
}

func countIDs(ids []int32, vocab int) []int64 {
	c := make([]int64, vocab)
	for _, id := range ids {
		c[id]++
	}
	return c
}

// greedy appends n argmax tokens to prompt (truncated to the window).
func (d *decoderRunner) greedy(prompt []int32, n int) ([]int32, error) {
	out := append([]int32(nil), prompt...)
	for i := 0; i < n; i++ {
		ctx := out
		if len(ctx) > d.seq {
			ctx = ctx[len(ctx)-d.seq:]
		}
		lg, err := d.logits(ctx)
		if err != nil {
			return nil, err
		}
		row := lg[(len(ctx)-1)*d.vocab : len(ctx)*d.vocab]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		out = append(out, int32(best))
	}
	return out, nil
}

// writeIDs writes ids as little-endian uint16 (the vocabulary is below
// 65536).
func writeIDs(path string, ids []int32) error {
	b := make([]byte, 2*len(ids))
	for i, id := range ids {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(id))
	}
	return os.WriteFile(path, b, 0o644)
}

func readIDsBinary(path string, vocab int) ([]int32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b)%2 != 0 {
		return nil, fmt.Errorf("%s: %d bytes: not uint16 token ids", path, len(b))
	}
	ids := make([]int32, len(b)/2)
	for i := range ids {
		ids[i] = int32(binary.LittleEndian.Uint16(b[2*i:]))
		if int(ids[i]) >= vocab {
			return nil, fmt.Errorf("%s: token %d is id %d, not below the vocabulary %d", path, i, ids[i], vocab)
		}
	}
	return ids, nil
}

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
		if id == eosID {
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

// eosID is the tokenizer's </s>, which ends every line of text.
const eosID = 2

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
	model := fs.String("model", committedModel, "the .tflite")
	spm := fs.String("spm", committedSPM, "the SentencePiece model")
	heldout := fs.String("heldout", committedIDs, "held-out token ids (uint16)")
	train := fs.String("train", ".cache/train/train.ids", "training token ids (spm_encode output), for the unigram baseline")
	logPath := fs.String("log", committedLog, "training log to add the evaluation to")
	n := fs.Int("windows", 0, "held-out windows (0: all)")
	gen := fs.Int("gen", 48, "greedy tokens per prompt")
	fs.Parse(args)
	d, err := openDecoder(*model)
	if err != nil {
		return err
	}
	defer d.Close()
	held, err := readIDsBinary(*heldout, d.vocab)
	if err != nil {
		return err
	}
	tr, err := readIDs(*train, d.vocab)
	if err != nil {
		return err
	}
	r := evalReport{UniformPPL: float64(d.vocab), UnigramCounts: countIDs(tr, d.vocab)}
	r.ModelNLL, r.HeldoutTokens, err = d.heldoutNLL(held, *n)
	if err != nil {
		return err
	}
	r.UnigramNLL = unigramNLL(r.UnigramCounts, held, d.seq, *n)
	r.ModelPPL, r.UnigramPPL = math.Exp(r.ModelNLL), math.Exp(r.UnigramNLL)
	fmt.Printf("held-out: %d tokens predicted; perplexity model %.2f (%.4f nats), unigram %.2f (%.4f nats), uniform %d\n",
		r.HeldoutTokens, r.ModelPPL, r.ModelNLL, r.UnigramPPL, r.UnigramNLL, d.vocab)
	for _, p := range prompts {
		ids, err := spmEncode(*spm, p)
		if err != nil {
			return err
		}
		// spm_encode ends the last line too; a prompt that does not end
		// with a newline continues its last line.
		if !strings.HasSuffix(p, "\n") && len(ids) > 0 && ids[len(ids)-1] == eosID {
			ids = ids[:len(ids)-1]
		}
		out, err := d.greedy(ids, *gen)
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
