package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/qpipe/qpipe/internal/litert"
)

// repoFile is a path below the repository root (tests run in tools/train).
func repoFile(rel string) string { return filepath.Join("..", "..", rel) }

// committedEval reads the evaluation stored in the training log.
func committedEval(t *testing.T) evalReport {
	t.Helper()
	raw, err := os.ReadFile(repoFile(committedLog))
	if err != nil {
		t.Fatal(err)
	}
	var lg struct {
		Eval evalReport `json:"eval"`
	}
	if err := json.Unmarshal(raw, &lg); err != nil {
		t.Fatalf("%s: %v", committedLog, err)
	}
	if len(lg.Eval.UnigramCounts) != trainedConfig.Vocab {
		t.Fatalf("%s: %d unigram counts, want %d", committedLog, len(lg.Eval.UnigramCounts), trainedConfig.Vocab)
	}
	return lg.Eval
}

// testWindows is how many held-out windows (of 128 predicted tokens) the
// tests evaluate: enough to separate the model from the baselines by far.
const testWindows = 12

// TestTrainedModelLearned runs the committed .tflite on the interpreter
// over the start of the committed held-out token ids and wants a
// perplexity below the unigram model of the training text (whose counts
// the training log holds) and far below the uniform one.
func TestTrainedModelLearned(t *testing.T) {
	ev := committedEval(t)
	d, err := openDecoder(repoFile(committedModel))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.vocab != trainedConfig.Vocab || d.seq != trainedConfig.Seq {
		t.Fatalf("model vocab %d seq %d, want %d %d", d.vocab, d.seq, trainedConfig.Vocab, trainedConfig.Seq)
	}
	held, err := readIDsBinary(repoFile(committedIDs), d.vocab)
	if err != nil {
		t.Fatal(err)
	}
	got, n, err := d.heldoutNLL(held, testWindows)
	if err != nil {
		t.Fatal(err)
	}
	uni := unigramNLL(ev.UnigramCounts, held, d.seq, testWindows)
	t.Logf("%d held-out tokens: perplexity %.2f, unigram %.2f, uniform %d", n, math.Exp(got), math.Exp(uni), d.vocab)
	if !(got < uni) || !(math.Exp(got) < float64(d.vocab)/10) {
		t.Errorf("held-out perplexity %.2f: want below the unigram %.2f and below a tenth of the uniform %d", math.Exp(got), math.Exp(uni), d.vocab)
	}
}

// TestTrainedModelOnLiteRT runs the committed model on LiteRT.js over a
// held-out window and wants the interpreter's logits within float32
// rounding, and the same next-token choice at (almost) every position.
func TestTrainedModelOnLiteRT(t *testing.T) {
	r := litert.Require(t)
	path := repoFile(committedModel)
	d, err := openDecoder(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	held, err := readIDsBinary(repoFile(committedIDs), d.vocab)
	if err != nil {
		t.Fatal(err)
	}
	tokens := held[:d.seq]
	want, err := d.logits(tokens)
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Run(path, []litert.Tensor{litert.NewInt32("tokens", []int{d.seq}, tokens)})
	if err != nil {
		t.Fatal(err)
	}
	got := out[0].Float32s()
	if len(got) != len(want) {
		t.Fatalf("LiteRT gave %d logits, the interpreter %d", len(got), len(want))
	}
	var num, den float64
	argDiff := 0
	for s := 0; s < d.seq; s++ {
		g, w := got[s*d.vocab:(s+1)*d.vocab], want[s*d.vocab:(s+1)*d.vocab]
		ga, wa := 0, 0
		for v := range g {
			dd := float64(g[v]) - float64(w[v])
			num += dd * dd
			den += float64(w[v]) * float64(w[v])
			if g[v] > g[ga] {
				ga = v
			}
			if w[v] > w[wa] {
				wa = v
			}
		}
		if ga != wa {
			argDiff++
		}
	}
	rel := math.Sqrt(num / den)
	t.Logf("LiteRT vs interpreter: relative L2 %.2g, argmax differs at %d of %d positions", rel, argDiff, d.seq)
	if rel > 1e-4 || argDiff > 2 {
		t.Errorf("LiteRT vs interpreter: relative L2 %.3g (want < 1e-4), argmax differs at %d positions", rel, argDiff)
	}
}
