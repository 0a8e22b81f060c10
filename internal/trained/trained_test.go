package trained

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/litert"
	"github.com/qpipe/qpipe/internal/litertlm"
	"github.com/qpipe/qpipe/internal/tokenizer"
)

// repoFile is a path below the repository root (tests run in internal/trained).
func repoFile(rel string) string { return filepath.Join("..", "..", rel) }

const vocab, seq = 4096, 128

// unigramCounts reads the training text's token counts from the training log.
func unigramCounts(t *testing.T) []int64 {
	t.Helper()
	raw, err := os.ReadFile(repoFile(Log))
	if err != nil {
		t.Fatal(err)
	}
	var lg struct {
		Eval struct {
			Counts []int64 `json:"unigram_counts"`
		} `json:"eval"`
	}
	if err := json.Unmarshal(raw, &lg); err != nil {
		t.Fatalf("%s: %v", Log, err)
	}
	if len(lg.Eval.Counts) != vocab {
		t.Fatalf("%s: %d unigram counts, want %d", Log, len(lg.Eval.Counts), vocab)
	}
	return lg.Eval.Counts
}

// testWindows is how many held-out windows (of 128 predicted tokens) the
// tests evaluate: enough to separate the model from the baselines by far.
const testWindows = 12

// TestTrainedModelLearned runs the committed .tflite on the interpreter
// over the start of the committed held-out token ids and wants a
// perplexity below the unigram model of the training text (whose counts
// the training log holds) and far below the uniform one.
func TestTrainedModelLearned(t *testing.T) {
	counts := unigramCounts(t)
	d, err := Open(repoFile(Model), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Vocab != vocab || d.Seq != seq {
		t.Fatalf("model vocab %d seq %d, want %d %d", d.Vocab, d.Seq, vocab, seq)
	}
	held, err := ReadIDs(repoFile(HeldoutIDs), d.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	got, n, err := d.HeldoutNLL(held, testWindows)
	if err != nil {
		t.Fatal(err)
	}
	uni := UnigramNLL(counts, held, d.Seq, testWindows)
	t.Logf("%d held-out tokens: perplexity %.2f, unigram %.2f, uniform %d", n, math.Exp(got), math.Exp(uni), d.Vocab)
	if !(got < uni) || !(math.Exp(got) < float64(d.Vocab)/10) {
		t.Errorf("held-out perplexity %.2f: want below the unigram %.2f and below a tenth of the uniform %d", math.Exp(got), math.Exp(uni), d.Vocab)
	}
}

// TestTrainedModelOnLiteRT runs the committed model on LiteRT.js over a
// held-out window and wants the interpreter's logits within float32
// rounding, and the same next-token choice at (almost) every position.
func TestTrainedModelOnLiteRT(t *testing.T) {
	r := litert.Require(t)
	path := repoFile(Model)
	d, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	held, err := ReadIDs(repoFile(HeldoutIDs), d.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	tokens := held[:d.Seq]
	want, err := d.Logits(tokens)
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Run(path, []litert.Tensor{litert.NewInt32("tokens", []int{d.Seq}, tokens)})
	if err != nil {
		t.Fatal(err)
	}
	got := out[0].Float32s()
	if len(got) != len(want) {
		t.Fatalf("LiteRT gave %d logits, the interpreter %d", len(got), len(want))
	}
	var num, den float64
	argDiff := 0
	for s := 0; s < d.Seq; s++ {
		g, w := got[s*d.Vocab:(s+1)*d.Vocab], want[s*d.Vocab:(s+1)*d.Vocab]
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
	t.Logf("LiteRT vs interpreter: relative L2 %.2g, argmax differs at %d of %d positions", rel, argDiff, d.Seq)
	if rel > 1e-4 || argDiff > 2 {
		t.Errorf("LiteRT vs interpreter: relative L2 %.3g (want < 1e-4), argmax differs at %d positions", rel, argDiff)
	}
}

// TestHeldoutIDsFromTokenizer encodes the committed held-out text with
// qpipe's own SentencePiece reader (internal/tokenizer) and the committed
// tokenizer, one line at a time with </s> after each line as tools/train's
// spm_encode did, and wants exactly the committed ids: they can be rebuilt
// without Debian's sentencepiece. Encoded as one text, as qpipe eval
// --text does (the tokenizer's piece 2 is the newline), it wants nearly the
// same ids: the same lines, and within 0.1 % of the ids (runs of five or
// more tabs split in the other order there: the tab pieces tie).
func TestHeldoutIDsFromTokenizer(t *testing.T) {
	tok, err := tokenizer.Load(repoFile(Tokenizer))
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != vocab {
		t.Fatalf("tokenizer: %d ids, want %d", tok.VocabSize(), vocab)
	}
	text, err := os.ReadFile(repoFile(HeldoutTxt))
	if err != nil {
		t.Fatal(err)
	}
	want, err := ReadIDs(repoFile(HeldoutIDs), vocab)
	if err != nil {
		t.Fatal(err)
	}
	var got []int32
	for _, line := range strings.SplitAfter(string(text), "\n") {
		if line == "" {
			continue
		}
		for _, id := range tok.Encode(strings.TrimSuffix(line, "\n")) {
			got = append(got, int32(id))
		}
		got = append(got, EOS)
	}
	if len(got) != len(want) {
		t.Fatalf("%d ids from the tokenizer line by line, %d committed", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("id %d: %d from the tokenizer line by line, %d committed", i, got[i], want[i])
		}
	}
	whole := tok.Encode(string(text))
	newlines, wantNewlines := 0, 0
	for _, id := range whole {
		if id == EOS {
			newlines++
		}
	}
	for _, id := range want {
		if id == EOS {
			wantNewlines++
		}
	}
	t.Logf("as one text: %d ids (line by line %d)", len(whole), len(want))
	if newlines != wantNewlines || math.Abs(float64(len(whole)-len(want))) > 0.001*float64(len(want)) {
		t.Errorf("as one text: %d ids, %d newlines; line by line %d, %d", len(whole), newlines, len(want), wantNewlines)
	}
}

// TestBundle writes the model and its tokenizer as a .litertlm bundle and
// reads both sections back byte for byte.
func TestBundle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trained.litertlm")
	if err := WriteBundle(context.Background(), path, repoFile(Model), repoFile(Tokenizer)); err != nil {
		t.Fatal(err)
	}
	b, err := litertlm.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i, f := range []string{Tokenizer, Model} {
		want, err := os.ReadFile(repoFile(f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(b.SectionReader(i))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("section %d: %d bytes differ from %s (%d bytes)", i, len(got), f, len(want))
		}
	}
}
