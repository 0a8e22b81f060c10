package stages

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/tokenizer"
)

// TestBudgetText: a budget on a text measures its choice samples on the
// text's first windows and its held-out samples on the windows after
// them; a text too short for both is an error that says so.
func TestBudgetText(t *testing.T) {
	dir := filepath.Join("..", "testdata", "tokenizers")
	text, tokFile := filepath.Join(dir, "botchan.txt"), filepath.Join(dir, "spm_bpe_nfkc_bytes.model")
	cfg := &config.Budget{Size: 1, Samples: 2, Text: text, Tokenizer: tokFile}
	_, mm, _ := budgetFixture(t, cfg)
	tok, err := tokenizer.Load(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(text)
	ids := tok.Encode(string(b))
	window := func(w int) []int32 {
		out := make([]int32, 8)
		for i, id := range ids[w*8 : (w+1)*8] {
			out[i] = int32(id)
		}
		return out
	}
	if len(mm.choose.inputs) != 2 {
		t.Fatalf("%d choice samples", len(mm.choose.inputs))
	}
	for k, in := range mm.choose.inputs {
		if got := in["tokens"].I32; !slices.Equal(got, window(k)) {
			t.Errorf("choice sample %d: %v, want window %d %v", k, got, k, window(k))
		}
	}
	held, err := mm.heldOutSet(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if held.first != 2 || len(held.inputs) < 2 {
		t.Fatalf("held-out: first window %d, %d samples", held.first, len(held.inputs))
	}
	for k, in := range held.inputs {
		if got := in["tokens"].I32; !slices.Equal(got, window(2+k)) {
			t.Errorf("held-out sample %d: %v, want window %d", k, got, 2+k)
		}
	}

	short := filepath.Join(t.TempDir(), "short.txt")
	if err := os.WriteFile(short, b[:200], 0o644); err != nil {
		t.Fatal(err)
	}
	short1 := &config.Budget{Size: 1, Samples: 64, Text: short, Tokenizer: tokFile}
	ms := mm.ms
	if _, err := newMeasurer(context.Background(), ms, mm.plan, short1, 0, "", "", mm.log); err == nil || !strings.Contains(err.Error(), "the budget needs 64") {
		t.Errorf("short text: %v", err)
	}
}
