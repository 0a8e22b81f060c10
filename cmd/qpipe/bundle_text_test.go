package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/litertlm"
)

// bundleOf writes a bundle of the .tflite at model (tf_lite_prefill_decode)
// with the tokenizer file as an SP_Tokenizer section (none when "") and an
// LlmMetadata whose start token is bos (none when bos < 0).
func bundleOf(t *testing.T, out, model, spm string, bos int) string {
	t.Helper()
	data, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	secs := []litertlm.NewSection{{Type: litertlm.TypeTFLiteModel, Data: data,
		Items: []litertlm.KV{{Key: "model_type", Value: "tf_lite_prefill_decode"}}}}
	if spm != "" {
		tok, err := os.ReadFile(spm)
		if err != nil {
			t.Fatal(err)
		}
		secs = append(secs, litertlm.NewSection{Type: litertlm.TypeSPTokenizer, Data: tok})
	}
	if bos >= 0 {
		secs = append(secs, litertlm.NewSection{Type: litertlm.TypeLlmMetadataProto, Data: litertlm.LlmMetadata(bos, 0)})
	}
	if err := litertlm.Create(context.Background(), out, nil, secs); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEvalBundleTokenizer: eval --text on bundles without --tokenizer uses
// REF's tokenizer section and its metadata's start token as BOS, and gives
// exactly the numbers of the bare models with --tokenizer and --bos; an
// explicit --tokenizer wins; a bundle without a tokenizer is refused.
func TestEvalBundleTokenizer(t *testing.T) {
	dir := t.TempDir()
	ref, cand := quantizedTiny(t, dir, "dynamic_int4_block32")
	text := filepath.Join("..", "..", "testdata", "tokenizers", "botchan.txt")
	tok := filepath.Join("..", "..", "testdata", "tokenizers", "spm_bpe_nfkc_bytes.model")
	other := filepath.Join("..", "..", "testdata", "tokenizers", "spm_unigram_nfkc.model")
	refB := bundleOf(t, filepath.Join(dir, "ref.litertlm"), ref, tok, 1)
	candB := bundleOf(t, filepath.Join(dir, "cand.litertlm"), cand, tok, 1)

	same := func(what string, a, b []string) {
		t.Helper()
		x, y := evalJSON(t, append([]string{"--text", text, "--samples", "4"}, a...)...), evalJSON(t, append([]string{"--text", text, "--samples", "4"}, b...)...)
		js1, _ := json.Marshal(x.Signatures)
		js2, _ := json.Marshal(y.Signatures)
		if string(js1) != string(js2) {
			t.Errorf("%s: bundle and bare models differ:\n%s\n%s", what, js1, js2)
		}
		if x.Text == nil || x.Text.BOS == nil || *x.Text.BOS != 1 || x.Text.Tokens != y.Text.Tokens || x.Text.Windows != y.Text.Windows {
			t.Errorf("%s: text %+v, bare %+v", what, x.Text, y.Text)
		}
	}
	same("bundle tokenizer", []string{refB, candB}, []string{"--tokenizer", tok, "--bos", "1", ref, cand})
	same("explicit tokenizer", []string{"--tokenizer", other, refB, candB}, []string{"--tokenizer", other, "--bos", "1", ref, cand})
	r := evalJSON(t, "--text", text, "--samples", "1", refB, candB)
	if !strings.HasSuffix(r.Text.Tokenizer, "ref.litertlm section 1 (SP_Tokenizer)") || r.Text.Kind != "sentencepiece bpe" {
		t.Errorf("text report %+v", r.Text)
	}
	// --bos overrides the metadata's start token.
	if r := evalJSON(t, "--text", text, "--samples", "1", "--bos", "2", refB); r.Text.BOS == nil || *r.Text.BOS != 2 {
		t.Errorf("--bos 2: %+v", r.Text)
	}
	bare := bundleOf(t, filepath.Join(dir, "bare.litertlm"), ref, "", -1)
	if r := evalJSON(t, "--text", text, "--samples", "1", "--tokenizer", tok, bare); r.Text.BOS != nil {
		t.Errorf("no metadata: BOS %d", *r.Text.BOS)
	}
	code, _, stderr := e2eRun(t, "eval", "--text", text, bare)
	if code != exitFailed || !strings.Contains(stderr, "has no SP_Tokenizer or HF_Tokenizer_Zlib section") {
		t.Errorf("bundle without a tokenizer: exit %d: %s", code, stderr)
	}
}

// TestBundleTextJob: calibration and the accuracy gate on a bundle take
// the text without a tokenizer key (the bundle's); the gate measures what
// eval --text measures on the same section.
func TestBundleTextJob(t *testing.T) {
	dir := t.TempDir()
	ref := e2eCopy(t, dir, "tiny_decoder.tflite")
	tok := filepath.Join("..", "..", "testdata", "tokenizers", "spm_unigram_nfkc.model")
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "tokenizers", "botchan.txt"))
	if err != nil {
		t.Fatal(err)
	}
	text := e2eWrite(t, filepath.Join(dir, "botchan.txt"), string(b))
	bundleOf(t, filepath.Join(dir, "tiny.litertlm"), ref, tok, -1)
	job := e2eWrite(t, filepath.Join(dir, "job.yaml"), `version: 1
stages:
  - load: {path: tiny.litertlm}
  - quantize: {recipe: dynamic_int4_block32, scales: calibrated, calibration: {text: botchan.txt, samples: 4}}
  - verify:
      accuracy: {text: botchan.txt, max_ppl_ratio: 2}
  - serialize: {path: out.litertlm}
`)
	t.Setenv("QPIPE_CACHE_DIR", "off")
	code, stdout, stderr := e2eRun(t, "run", "--json", job)
	if code != 0 {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	var rep struct {
		Jobs []struct {
			Outputs []struct {
				Accuracy *struct {
					Checks []struct {
						Metric string
						Value  *float64
					}
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Jobs) != 1 || len(rep.Jobs[0].Outputs) != 1 || rep.Jobs[0].Outputs[0].Accuracy == nil {
		t.Fatalf("report: %s", stdout)
	}
	checks := rep.Jobs[0].Outputs[0].Accuracy.Checks
	n := logitsOf(t, evalJSON(t, "--samples", "8", "--text", text, filepath.Join(dir, "tiny.litertlm"), filepath.Join(dir, "out.litertlm"))).NextToken
	if len(checks) != 1 || checks[0].Value == nil || n == nil || float64(n.PPLRatio) != *checks[0].Value {
		t.Errorf("gate %+v, eval --text %+v", checks, n)
	}
	// The same job on the bare model needs the tokenizer key.
	bareJob := e2eWrite(t, filepath.Join(dir, "bare.yaml"), strings.Replace(strings.Replace(
		readFile(t, job), "tiny.litertlm", "tiny_decoder.tflite", 1), "out.litertlm", "out.tflite", 1))
	code, _, stderr = e2eRun(t, "run", bareJob)
	if code == 0 || !strings.Contains(stderr, "is not a .litertlm bundle, which carries its own") {
		t.Errorf("bare model without a tokenizer: exit %d: %s", code, stderr)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// planSchemes returns "section/tensor=scheme" of every weight of a plan
// --json.
func planSchemes(t *testing.T, args ...string) []string {
	t.Helper()
	code, stdout, stderr := e2eRun(t, append([]string{"plan", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("plan %v: exit %d: %s", args, code, stderr)
	}
	var out struct {
		Plans []struct {
			Weights []struct {
				Section *int    `json:"section"`
				Tensor  int     `json:"tensor_index"`
				Scheme  *string `json:"scheme"`
			}
		}
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, w := range out.Plans[0].Weights {
		sc := "float"
		if w.Scheme != nil {
			sc = *w.Scheme
		}
		sec := -1
		if w.Section != nil {
			sec = *w.Section
		}
		s = append(s, fmt.Sprintf("%d/%d=%s", sec, w.Tensor, sc))
	}
	return s
}

// TestPlanExportAEQBundle: plan --export-aeq on a bundle of several models
// prints the reference's model-type mapping, which --aeq-recipe reads back
// to the same plan; on a bundle of one model, that model's recipe.
func TestPlanExportAEQBundle(t *testing.T) {
	dir := t.TempDir()
	in, _ := testBundle(t, dir)
	job := e2eWrite(t, filepath.Join(dir, "job.yaml"), `version: 1
stages:
  - load: {path: llm.litertlm}
  - quantize:
      recipe: dynamic_int4_block32
      sections: {tf_lite_embedder: dynamic_int8}
  - serialize: {path: out.litertlm}
`)
	code, stdout, stderr := e2eRun(t, "plan", "--export-aeq", job)
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	for _, w := range []string{`"tf_lite_prefill_decode": [`, `"tf_lite_embedder": [`, `"BLOCKWISE_32"`, `"num_bits": 8`} {
		if !strings.Contains(stdout, w) {
			t.Errorf("mapping lacks %s:\n%s", w, stdout)
		}
	}
	mapping := e2eWrite(t, filepath.Join(dir, "mapping.json"), stdout)
	want := planSchemes(t, job)
	if got := planSchemes(t, "--aeq-recipe", mapping, in); !slices.Equal(got, want) || len(want) == 0 {
		t.Errorf("mapping read back plans\n%v\nthe job plans\n%v", got, want)
	}
	one := filepath.Join(e2eModels, "aeq_conv_fc_mnist.litertlm")
	code, stdout, stderr = e2eRun(t, "plan", "--recipe", "dynamic_int8", "--export-aeq", one)
	_, bare, _ := e2eRun(t, "plan", "--recipe", "dynamic_int8", "--export-aeq", filepath.Join(e2eModels, "aeq_conv_fc_mnist.tflite"))
	if code != 0 || stdout != bare || !strings.HasPrefix(stdout, "[") {
		t.Errorf("one-model bundle: exit %d, %s\n%s\nbare:\n%s", code, stderr, stdout, bare)
	}
}
