package evaluate

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/interp"
	"github.com/qpipe/qpipe/internal/tokenizer"
)

const (
	tokdir     = "../../testdata/tokenizers"
	botchan    = tokdir + "/botchan.txt"
	spmUnigram = tokdir + "/spm_unigram_nfkc.model"
)

// TestNextTokenDirect runs the tiny decoder and a perturbed copy of its
// logits' computation (the division-free variant) on text windows and
// checks perplexity, KL, top-1 and Δp against a direct computation from
// the interpreter's logits: softmax in float64 from the definition, no
// shared helper.
func TestNextTokenDirect(t *testing.T) {
	ref := openTiny(t)
	cand, err := Open("../../testdata/models/tiny_decoder_nodiv.tflite", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cand.Close()
	text := t.TempDir() + "/text.txt"
	lines, _ := os.ReadFile(botchan)
	if err := os.WriteFile(text, lines[:3000], 0o644); err != nil {
		t.Fatal(err)
	}
	samples, info, err := TextSamples(ref, Options{}, text, spmUnigram, NoBOS)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := tokenizer.Load(spmUnigram)
	ids := tok.Encode(string(lines[:3000]))
	if info.Tokens != len(ids) || info.Seq != 8 || info.Windows != len(ids)/8 || len(samples) != info.Windows {
		t.Fatalf("text info %+v, %d samples, %d ids", info, len(samples), len(ids))
	}
	const windows = 5
	opt := Options{Inputs: samples, InputsFile: text, Samples: windows}
	r, err := Compare(context.Background(), ref, cand, opt)
	if err != nil {
		t.Fatal(err)
	}
	got := r.Signatures[0].Outputs[0].NextToken
	if got == nil {
		t.Fatal("no next-token report")
	}

	// The direct computation.
	softmax := func(x []float32) []float64 {
		m := math.Inf(-1)
		for _, v := range x {
			m = math.Max(m, float64(v))
		}
		out := make([]float64, len(x))
		s := 0.0
		for i, v := range x {
			out[i] = math.Exp(float64(v) - m)
			s += out[i]
		}
		for i := range out {
			out[i] /= s
		}
		return out
	}
	argmax := func(p []float64) int {
		b := 0
		for i, v := range p {
			if v > p[b] {
				b = i
			}
		}
		return b
	}
	var nllR, nllC, dp2 float64
	var kls []float64
	top1 := 0
	for w := range windows {
		win := ids[w*8 : (w+1)*8]
		in := map[string]*interp.Tensor{"tokens": {Type: ref.Interp.Signatures()[0].Inputs[0].Type, Shape: []int{8}, I32: make([]int32, 8)}}
		for i, id := range win {
			in["tokens"].I32[i] = int32(id)
		}
		outR, err := ref.Interp.Run(context.Background(), "serving_default", in)
		if err != nil {
			t.Fatal(err)
		}
		outC, err := cand.Interp.Run(context.Background(), "serving_default", in)
		if err != nil {
			t.Fatal(err)
		}
		lr, lc := outR["logits"].F32, outC["logits"].F32
		for i := 4; i < 7; i++ { // positions 8/2 .. 8-2
			p, q := softmax(lr[i*1024:(i+1)*1024]), softmax(lc[i*1024:(i+1)*1024])
			next := win[i+1]
			nllR -= math.Log(p[next])
			nllC -= math.Log(q[next])
			d := q[next] - p[next]
			dp2 += d * d
			kl := 0.0
			for j := range p {
				kl += p[j] * math.Log(p[j]/q[j])
			}
			kls = append(kls, kl)
			if argmax(p) == argmax(q) {
				top1++
			}
		}
	}
	n := float64(len(kls))
	sort.Float64s(kls)
	mean := 0.0
	for _, k := range kls {
		mean += k / n
	}
	want := map[string][2]float64{
		"scored":    {float64(got.Scored), n},
		"ppl_ref":   {float64(got.PPLRef), math.Exp(nllR / n)},
		"ppl_cand":  {float64(got.PPLCand), math.Exp(nllC / n)},
		"ppl_ratio": {float64(got.PPLRatio), math.Exp((nllC - nllR) / n)},
		"mean_kl":   {float64(got.MeanKL), mean},
		"median_kl": {float64(got.MedianKL), kls[len(kls)/2]}, // 15 values: the middle one
		"p99_kl":    {float64(got.P99KL), kls[len(kls)-1]},    // ⌈0.99·15⌉ = 15th
		"max_kl":    {float64(got.MaxKL), kls[len(kls)-1]},
		"top1":      {float64(got.Top1), float64(top1) / n},
		"rms_dp":    {float64(got.RMSDp), math.Sqrt(dp2 / n)},
	}
	for name, gw := range want {
		if math.Abs(gw[0]-gw[1]) > 1e-9*math.Max(1, math.Abs(gw[1])) {
			t.Errorf("%s = %.12g, direct computation %.12g", name, gw[0], gw[1])
		}
	}
	if got.PPLRef <= 1 || got.MeanKL <= 0 {
		t.Errorf("degenerate numbers %+v", got)
	}
	// The report's KL over every position and the next-token KL agree on
	// the scored positions only: the whole-output mean is another number.
	if lg := r.Signatures[0].Outputs[0].Logits; lg.Positions != windows*8 {
		t.Errorf("logits positions %d", lg.Positions)
	}
}

func TestTextSamplesErrors(t *testing.T) {
	m := openTiny(t)
	dir := t.TempDir()
	short := filepath.Join(dir, "short.txt")
	os.WriteFile(short, []byte("Hi"), 0o644)
	small, err := Open("../../testdata/models/aeq_embedding_lookup.tflite", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	for _, tc := range []struct {
		m         *Model
		text, tok string
		want      string
	}{
		{m, short, spmUnigram, "fewer than one window of the model's 8"},
		{small, botchan, spmUnigram, "has 1024 ids, the model ../../testdata/models/aeq_embedding_lookup.tflite's embedding table 16 rows"},
		{m, botchan, botchan, "botchan.txt: SentencePiece model"},
		{m, filepath.Join(dir, "none.txt"), spmUnigram, "none.txt"},
	} {
		_, _, err := TextSamples(tc.m, Options{}, tc.text, tc.tok, NoBOS)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s with %s: %v, want %q", tc.text, tc.tok, err, tc.want)
		}
	}
	if got := WindowSamples([]int{1, 2, 3, 4, 5}, 2, NoBOS); len(got) != 2 || !slices.Equal(got[1].Values[TokensKey].Nums, []json.Number{"3", "4"}) {
		t.Errorf("WindowSamples: %+v", got)
	}
	if got := WindowSamples([]int{1, 2, 3, 4, 5}, 3, 9); len(got) != 2 || !slices.Equal(got[1].Values[TokensKey].Nums, []json.Number{"9", "3", "4"}) {
		t.Errorf("WindowSamples with BOS: %+v", got)
	}
	if got := WindowSamples([]int{1, 2}, 1, 9); got != nil {
		t.Errorf("BOS in windows of 1: %+v", got)
	}
	if _, _, err := TextSamples(m, Options{}, botchan, spmUnigram, 1024); err == nil || !strings.Contains(err.Error(), "BOS id 1024") {
		t.Errorf("BOS past the table: %v", err)
	}
	_, info, err := TextSamples(m, Options{}, botchan, spmUnigram, 1)
	if err != nil || info.BOS == nil || *info.BOS != 1 || info.Windows != info.Tokens/7 {
		t.Errorf("BOS 1: %+v %v", info, err)
	}
}
