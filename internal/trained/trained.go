// Package trained reads qpipe's trained test language model
// (testdata/models/trained_decoder.tflite, made by tools/train and `make
// trained-model`; docs/TRAINED.md) and its held-out text, and measures
// what the model predicts: held-out cross-entropy (perplexity) from a
// decoder's logits, the unigram baseline, greedy continuations.
//
// Token ids of the held-out text are stored as little-endian uint16 (the
// vocabulary is 4096); the text is cut into windows of seq+1 tokens with
// stride seq, and each window predicts its last seq tokens from the ones
// before (the model's static signature takes seq tokens).
package trained

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"

	"github.com/qpipe/qpipe/internal/evaluate"
	"github.com/qpipe/qpipe/internal/interp"
)

// The committed files, relative to the repository root.
const (
	Model      = "testdata/models/trained_decoder.tflite"
	Tokenizer  = "testdata/models/trained_decoder.spm.model"
	HeldoutTxt = "testdata/models/trained_decoder_heldout.txt"
	HeldoutIDs = "testdata/models/trained_decoder_heldout.ids"
	Log        = "testdata/models/trained_decoder.json"
)

// EOS is the tokenizer's </s> id, which ends every line of text.
const EOS = 2

// Windows cuts ids into sequences of seq+1 tokens with stride seq.
func Windows(ids []int32, seq int) [][]int32 {
	var w [][]int32
	for i := 0; i+seq+1 <= len(ids); i += seq {
		w = append(w, ids[i:i+seq+1])
	}
	return w
}

// WriteIDs writes ids as little-endian uint16.
func WriteIDs(path string, ids []int32) error {
	b := make([]byte, 2*len(ids))
	for i, id := range ids {
		if id < 0 || id > math.MaxUint16 {
			return fmt.Errorf("%s: token id %d does not fit uint16", path, id)
		}
		binary.LittleEndian.PutUint16(b[2*i:], uint16(id))
	}
	return os.WriteFile(path, b, 0o644)
}

// ReadIDs reads little-endian uint16 token ids, each below vocab.
func ReadIDs(path string, vocab int) ([]int32, error) {
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

// NLL is the summed negative log-likelihood (nats) of window[1:] under the
// rows of logits ([len(window)−1 or more, vocab]; row t predicts
// window[t+1]), computed in float64 by log-sum-exp.
func NLL(logits []float32, vocab int, window []int32) float64 {
	var s float64
	for t := 0; t+1 < len(window); t++ {
		row := logits[t*vocab : (t+1)*vocab]
		mx := math.Inf(-1)
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

// Counts is the number of occurrences of each id.
func Counts(ids []int32, vocab int) []int64 {
	c := make([]int64, vocab)
	for _, id := range ids {
		c[id]++
	}
	return c
}

// UnigramNLL is the cross-entropy (nats per token) of the tokens the
// first n windows predict (n ≤ 0: all) under the add-one-smoothed unigram
// distribution of counts.
func UnigramNLL(counts []int64, ids []int32, seq, n int) float64 {
	var total float64
	for _, c := range counts {
		total += float64(c + 1)
	}
	ws := firstWindows(ids, seq, n)
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

func firstWindows(ids []int32, seq, n int) [][]int32 {
	ws := Windows(ids, seq)
	if n > 0 && n < len(ws) {
		ws = ws[:n]
	}
	return ws
}

// Decoder is a decoder .tflite (input "tokens" [seq] int32, output
// "logits" [seq, vocab] float32) on qpipe's interpreter.
type Decoder struct {
	*evaluate.Model
	Seq, Vocab int
}

// Open opens a decoder file (threads 0: GOMAXPROCS; results do not depend
// on it).
func Open(path string, threads int) (*Decoder, error) {
	m, err := evaluate.Open(path, threads)
	if err != nil {
		return nil, err
	}
	sg := m.File.Meta.Subgraphs[0]
	if len(sg.Inputs) != 1 || len(sg.Outputs) != 1 {
		m.Close()
		return nil, fmt.Errorf("%s: not a decoder: %d inputs, %d outputs", path, len(sg.Inputs), len(sg.Outputs))
	}
	tok, logits := sg.Tensors[sg.Inputs[0]], sg.Tensors[sg.Outputs[0]]
	if len(tok.Shape) != 1 || len(logits.Shape) != 2 || tok.Shape[0] != logits.Shape[0] {
		m.Close()
		return nil, fmt.Errorf("%s: not a decoder: tokens %v, logits %v", path, tok.Shape, logits.Shape)
	}
	return &Decoder{Model: m, Seq: int(tok.Shape[0]), Vocab: int(logits.Shape[1])}, nil
}

// Logits runs tokens (at most Seq; the rest padded with id 0, which the
// causal mask keeps from changing earlier positions) and returns the
// [Seq, Vocab] logits.
func (d *Decoder) Logits(tokens []int32) ([]float32, error) {
	if len(tokens) > d.Seq {
		return nil, fmt.Errorf("%s: %d tokens, the model takes %d", d.Path, len(tokens), d.Seq)
	}
	in := make([]int32, d.Seq)
	copy(in, tokens)
	sig := d.Interp.Signatures()[0]
	out, err := d.Interp.Run(context.Background(), sig.Key, map[string]*interp.Tensor{sig.Inputs[0].Name: interp.I32Tensor([]int{d.Seq}, in)})
	if err != nil {
		return nil, err
	}
	t := out[sig.Outputs[0].Name]
	if t == nil || len(t.F32) != d.Seq*d.Vocab {
		return nil, fmt.Errorf("%s: no float32 logits [%d, %d]", d.Path, d.Seq, d.Vocab)
	}
	return t.F32, nil
}

// HeldoutNLL is the mean negative log-likelihood per predicted token over
// the first n windows of ids (n ≤ 0: all), and the number of tokens.
func (d *Decoder) HeldoutNLL(ids []int32, n int) (float64, int, error) {
	var tot float64
	var count int
	for _, w := range firstWindows(ids, d.Seq, n) {
		lg, err := d.Logits(w[:d.Seq])
		if err != nil {
			return 0, 0, err
		}
		tot += NLL(lg, d.Vocab, w)
		count += d.Seq
	}
	if count == 0 {
		return 0, 0, fmt.Errorf("fewer than %d held-out tokens", d.Seq+1)
	}
	return tot / float64(count), count, nil
}

// Greedy appends n argmax tokens to prompt, the context cut to the last
// Seq tokens.
func (d *Decoder) Greedy(prompt []int32, n int) ([]int32, error) {
	out := append([]int32(nil), prompt...)
	for i := 0; i < n; i++ {
		ctx := out
		if len(ctx) > d.Seq {
			ctx = ctx[len(ctx)-d.Seq:]
		}
		lg, err := d.Logits(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, int32(evaluate.Argmax(lg[(len(ctx)-1)*d.Vocab:len(ctx)*d.Vocab])))
	}
	return out, nil
}
