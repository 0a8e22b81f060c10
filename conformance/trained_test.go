package conformance

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/evaluate"
	"github.com/qpipe/qpipe/internal/trained"
)

// trainedWindows is how many held-out windows (128 predicted tokens each)
// TestTrainedModelPresets evaluates.
const trainedWindows = 8

// TestTrainedModelPresets quantizes the trained test language model
// (docs/TRAINED.md) with every preset and measures, on the interpreter over
// the start of its held-out text, the perplexity of each output next to
// the float model's and the mean KL(float ‖ quantized) per position. It
// wants every preset's perplexity finite and the KL ordered as the schemes'
// precision is: fp16 < dynamic_int8 < dynamic_int4_block32 <
// dynamic_int4_block256.
func TestTrainedModelPresets(t *testing.T) {
	if testing.Short() {
		t.Skip("quantizes and runs the trained model with every preset")
	}
	root := filepath.Join("..")
	float, err := trained.Open(filepath.Join(root, trained.Model), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer float.Close()
	held, err := trained.ReadIDs(filepath.Join(root, trained.HeldoutIDs), float.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	ws := trained.Windows(held, float.Seq)[:trainedWindows]
	ref := make([][]float32, len(ws))
	var floatNLL float64
	for i, w := range ws {
		if ref[i], err = float.Logits(w[:float.Seq]); err != nil {
			t.Fatal(err)
		}
		floatNLL += trained.NLL(ref[i], float.Vocab, w)
	}
	n := float64(len(ws) * float.Seq)
	var b strings.Builder
	fmt.Fprintf(&b, "%d held-out tokens; float perplexity %.3f\n", len(ws)*float.Seq, math.Exp(floatNLL/n))
	fmt.Fprintf(&b, "| preset | perplexity | Δ vs float | mean KL (nats) | top-1 agreement |\n|---|---|---|---|---|\n")
	kl := map[string]float64{}
	dir := t.TempDir()
	for _, p := range config.Presets() {
		if p.Name == "none" {
			continue
		}
		out := filepath.Join(dir, p.Name+".tflite")
		if _, err := Quantize(context.Background(), filepath.Join(root, trained.Model), out, p.Name, false); err != nil {
			t.Errorf("%s: %v", p.Name, err)
			continue
		}
		q, err := trained.Open(out, 0)
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		var nll, sumKL float64
		top1 := 0
		for i, w := range ws {
			lg, err := q.Logits(w[:q.Seq])
			if err != nil {
				t.Fatalf("%s: %v", p.Name, err)
			}
			nll += trained.NLL(lg, q.Vocab, w)
			for s := 0; s < q.Seq; s++ {
				r, c := ref[i][s*q.Vocab:(s+1)*q.Vocab], lg[s*q.Vocab:(s+1)*q.Vocab]
				sumKL += evaluate.KL(r, c)
				if evaluate.Argmax(r) == evaluate.Argmax(c) {
					top1++
				}
			}
		}
		q.Close()
		kl[p.Name] = sumKL / n
		ppl := math.Exp(nll / n)
		fmt.Fprintf(&b, "| %s | %.3f | %+.2f %% | %.5f | %.1f %% |\n", p.Name, ppl, 100*(ppl/math.Exp(floatNLL/n)-1), kl[p.Name], 100*float64(top1)/n)
		if math.IsNaN(ppl) || math.IsInf(ppl, 0) {
			t.Errorf("%s: perplexity %v", p.Name, ppl)
		}
	}
	t.Log("\n" + b.String())
	order := []string{"fp16", "dynamic_int8", "dynamic_int4_block32", "dynamic_int4_block256"}
	for i := 1; i < len(order); i++ {
		a, c := order[i-1], order[i]
		if !(kl[a] < kl[c]) {
			t.Errorf("mean KL %s %.5g is not below %s %.5g", a, kl[a], c, kl[c])
		}
	}
}
