package tokenizer

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const testdir = "../../testdata/tokenizers"

// readLines reads a file's lines (without "\n"), as spm_encode reads them.
func readLines(t *testing.T, path string, limit int) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() && (limit <= 0 || len(out) < limit) {
		out = append(out, sc.Text())
	}
	return out
}

func readIDs(t *testing.T, path string) [][]int {
	t.Helper()
	var out [][]int
	for _, line := range readLines(t, path, 0) {
		ids := []int{}
		for _, f := range strings.Fields(line) {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			ids = append(ids, n)
		}
		out = append(out, ids)
	}
	return out
}

// TestSentencePieceGolden encodes strings.txt and the first 400 lines of
// botchan.txt with every SentencePiece model of testdata/tokenizers and
// compares with the ids spm_encode gave (make.sh).
func TestSentencePieceGolden(t *testing.T) { testGolden(t, "spm_*.model", 8) }

// TestHFGolden does the same with the tokenizer.json files and the ids
// Hugging Face's Tokenizers.js gave (make_hf.mjs); hf_gpt2_full.json.gz
// is all of GPT-2.
func TestHFGolden(t *testing.T) { testGolden(t, "hf_*.json*", 4) }

// loadTest loads a test tokenizer (a .gz file inflates in Parse).
func loadTest(t *testing.T, path string) Tokenizer {
	t.Helper()
	tok, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestGPT2Upstream: an id sequence Hugging Face's tokenizers tests state
// for GPT-2 (bindings/python/tests/bindings/test_tokenizer.py, a Thai
// character split into byte-level pieces), and the vocabulary size.
func TestGPT2Upstream(t *testing.T) {
	tok := loadTest(t, filepath.Join(testdir, "hf_gpt2_full.json.gz"))
	if got, want := tok.Encode("อั"), []int{19567, 255, 19567, 109}; !slices.Equal(got, want) {
		t.Errorf("อั: %v, want %v", got, want)
	}
	if n := tok.VocabSize(); n != 50257 {
		t.Errorf("VocabSize %d, want 50257", n)
	}
}

func testGolden(t *testing.T, glob string, atLeast int) {
	models, _ := filepath.Glob(filepath.Join(testdir, glob))
	if len(models) < atLeast {
		t.Fatalf("found %d tokenizers %s in %s", len(models), glob, testdir)
	}
	inputs := map[string][]string{
		"strings": readLines(t, filepath.Join(testdir, "strings.txt"), 0),
		"botchan": readLines(t, filepath.Join(testdir, "botchan.txt"), 400),
	}
	for _, path := range models {
		name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".gz"), filepath.Ext(strings.TrimSuffix(path, ".gz")))
		t.Run(name, func(t *testing.T) {
			tok := loadTest(t, path)
			for set, lines := range inputs {
				want := readIDs(t, filepath.Join(testdir, name+"."+set+".ids"))
				if len(want) != len(lines) {
					t.Fatalf("%s: %d lines of ids for %d lines", set, len(want), len(lines))
				}
				bad := 0
				for i, line := range lines {
					if got := tok.Encode(line); !slices.Equal(got, want[i]) && !(len(got) == 0 && len(want[i]) == 0) {
						if bad++; bad <= 5 {
							t.Errorf("%s line %d %q:\n got %v\nwant %v", set, i+1, line, got, want[i])
						}
					}
				}
				if bad > 0 {
					t.Errorf("%s: %d of %d lines differ", set, bad, len(lines))
				}
			}
		})
	}
}
