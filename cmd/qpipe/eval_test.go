package main

// End-to-end tests of qpipe eval and of verify's accuracy gate, run
// in-process through runMain on the committed tiny decoder.

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/evaluate"
	"github.com/qpipe/qpipe/internal/tokenizer"
)

// quantizedTiny writes tiny_decoder quantized with recipe into dir and
// returns the float model's and the quantized model's paths.
func quantizedTiny(t *testing.T, dir, recipe string) (ref, cand string) {
	t.Helper()
	ref = e2eCopy(t, dir, "tiny_decoder.tflite")
	cand = filepath.Join(dir, "tiny_"+recipe+".tflite")
	if code, _, stderr := e2eRun(t, "quantize", "--recipe", recipe, ref, cand); code != 0 {
		t.Fatalf("quantize: exit %d: %s", code, stderr)
	}
	return ref, cand
}

func evalJSON(t *testing.T, args ...string) *evaluate.Report {
	t.Helper()
	code, stdout, stderr := e2eRun(t, append([]string{"eval", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("eval %v: exit %d: %s", args, code, stderr)
	}
	var r evaluate.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("eval --json output: %v\n%s", err, stdout)
	}
	return &r
}

// logitsOf returns the only output of tiny_decoder's only signature.
func logitsOf(t *testing.T, r *evaluate.Report) evaluate.OutputReport {
	t.Helper()
	if len(r.Signatures) != 1 || len(r.Signatures[0].Outputs) != 1 {
		t.Fatalf("report %+v: want one signature with one output", r)
	}
	return r.Signatures[0].Outputs[0]
}

func TestEvalCompare(t *testing.T) {
	dir := t.TempDir()
	ref, cand := quantizedTiny(t, dir, "dynamic_int4_block32")

	r := evalJSON(t, ref, cand)
	o := logitsOf(t, r)
	if r.Samples != evaluate.DefaultSamples || r.Seed != 1 || r.Inputs != "generated" || r.Signatures[0].Seq != 8 {
		t.Errorf("report header %+v", r)
	}
	if in := r.Signatures[0].Inputs; len(in) != 1 || in[0].Name != "tokens" || in[0].Vocab != 1024 {
		t.Errorf("inputs %+v: want tokens with vocab 1024", in)
	}
	if o.Name != "logits" || !slices.Equal(o.Shape, []int{8, 1024}) || o.Vocab != 1024 || o.Distance == nil || o.Logits == nil {
		t.Fatalf("output %+v", o)
	}
	d, l := o.Distance, o.Logits
	// int4 weights change the logits, but not beyond recognition.
	if !(d.RelL2 > 1e-4 && d.RelL2 < 2) || !(d.Cosine > 0.5 && d.Cosine < 1) || !(d.MaxAbs > 0) {
		t.Errorf("distance %+v", d)
	}
	if l.Positions != 64 || !(l.MeanKL > 0 && l.MeanKL <= l.P99KL && l.P99KL <= l.MaxKL) || !(l.Top1 > 0 && l.Top1 <= l.Top5 && l.Top5 <= 1) {
		t.Errorf("logits %+v", l)
	}

	// The same numbers on every run and for every thread count.
	_, first, _ := e2eRun(t, "eval", "--json", ref, cand)
	prev := runtime.GOMAXPROCS(1)
	_, single, _ := e2eRun(t, "eval", "--json", ref, cand)
	runtime.GOMAXPROCS(prev)
	if first != single {
		t.Error("eval --json differs between GOMAXPROCS values")
	}

	// A model against itself: no distance at all.
	self := logitsOf(t, evalJSON(t, ref, ref))
	if self.Distance.RelL2 != 0 || self.Distance.MaxAbs != 0 || math.Abs(float64(self.Distance.Cosine)-1) > 1e-12 ||
		self.Logits.MeanKL != 0 || self.Logits.Top1 != 1 || self.Logits.Top5 != 1 {
		t.Errorf("model against itself: %+v %+v", self.Distance, self.Logits)
	}

	// Another seed, other inputs, other numbers; fewer samples, fewer positions.
	other := logitsOf(t, evalJSON(t, "--seed", "2", "--samples", "3", ref, cand))
	if other.Logits.Positions != 24 || other.Distance.RelL2 == d.RelL2 {
		t.Errorf("seed 2, 3 samples: %+v %+v", other.Distance, other.Logits)
	}

	code, stdout, stderr := e2eRun(t, "eval", ref, cand)
	for _, want := range []string{"candidate  " + cand, `signature "serving_default", 8 tokens per sequence`, "token ids in [0, 1024)", "MEAN KL", "TOP-5", "logits"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("eval table: exit %d, missing %q:\n%s%s", code, want, stdout, stderr)
		}
	}
}

func TestEvalSmoke(t *testing.T) {
	dir := t.TempDir()
	ref := e2eCopy(t, dir, "tiny_decoder.tflite")
	code, stdout, stderr := e2eRun(t, "eval", ref)
	if code != 0 || !strings.Contains(stdout, "MIN") || !strings.Contains(stdout, "logits") {
		t.Fatalf("exit %d:\n%s%s", code, stdout, stderr)
	}
	o := logitsOf(t, evalJSON(t, ref))
	s := o.Stats
	if s == nil || s.Count != 8*8*1024 || s.NaN != 0 || s.Inf != 0 || !(s.Min < s.Mean && s.Mean < s.Max) || !(s.Std > 0) {
		t.Errorf("stats %+v", s)
	}
	// A model that computes NaN fails the smoke test.
	bad := filepath.Join(dir, "nan.tflite")
	nanModel(t, ref, bad, "arith.constant14")
	code, _, stderr = e2eRun(t, "eval", bad)
	if code != exitFailed || !strings.Contains(stderr, `output "logits" has`) || !strings.Contains(stderr, "NaN") {
		t.Errorf("NaN model: exit %d: %s", code, stderr)
	}
}

func TestEvalInputsFile(t *testing.T) {
	dir := t.TempDir()
	ref, cand := quantizedTiny(t, dir, "dynamic_int8")
	good := e2eWrite(t, filepath.Join(dir, "in.jsonl"), "{\"tokens\": [1, 2, 3, 4, 5, 6, 7, 8]}\n\n{\"tokens\": [9, 10, 11, 12, 13, 14, 15, 1023]}\n")
	r := evalJSON(t, "--inputs", good, ref, cand)
	if o := logitsOf(t, r); r.Samples != 2 || r.Inputs != good || o.Logits.Positions != 16 {
		t.Errorf("2 samples from a file: %+v %+v", r, o.Logits)
	}
	if r := evalJSON(t, "--inputs", good, "--samples", "1", ref, cand); r.Samples != 1 {
		t.Errorf("--samples 1 with a file of 2: %d samples", r.Samples)
	}
	for name, tc := range map[string]struct{ text, want string }{
		"out of vocabulary": {"{\"tokens\": [1, 2, 3, 4, 5, 6, 7, 8]}\n{\"tokens\": [1, 2, 3, 4, 5, 6, 7, 1024]}\n",
			`bad.jsonl:2:2: input "tokens": element 7 (1024) is not a token id in [0, 1024)`},
		"wrong length":  {`{"tokens": [1, 2, 3]}`, "bad.jsonl:1:2: input \"tokens\": shape [3], the model's is [8]"},
		"unknown input": {`{"ids": [1]}`, `bad.jsonl:1:2: signature "serving_default" has no input "ids"; its inputs are "tokens"`},
		"invalid JSON":  {`{"tokens": [1, 2,}`, "bad.jsonl:1:"},
		"not an object": {`[1, 2]`, "bad.jsonl:1:1: a sample is a JSON object"},
		"wrong rank":    {`{"tokens": [[1, 2, 3, 4, 5, 6, 7, 8]]}`, "lists of shape [1 8], the model's shape [8] has rank 1"},
	} {
		bad := e2eWrite(t, filepath.Join(dir, "bad.jsonl"), tc.text)
		code, stdout, stderr := e2eRun(t, "eval", "--inputs", bad, ref, cand)
		if code != exitFailed || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q, want exit 1 and %q", name, code, stderr, tc.want)
		}
	}
}

func TestEvalErrors(t *testing.T) {
	dir := t.TempDir()
	ref, cand := quantizedTiny(t, dir, "fp16")
	fc := e2eCopy(t, dir, "aeq_single_fc.tflite")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no model", nil, exitUsage, "want REF [CAND] (.tflite or .litertlm)"},
		{"three models", []string{ref, cand, ref}, exitUsage, "got 3 argument(s)"},
		{"zero samples", []string{"--samples", "0", ref}, exitUsage, "--samples 0"},
		{"zero seq", []string{"--seq", "0", ref}, exitUsage, "--seq 0"},
		{"bad flag", []string{"--sample", "3", ref}, exitUsage, "flag provided but not defined"},
		{"fixed length", []string{"--seq", "64", ref, cand}, exitFailed, "the model's sequence length is 8 (token input \"tokens\" has shape [8]), not 64"},
		{"no token input", []string{"--seq", "8", fc}, exitFailed, "has no token input"},
		{"unknown signature", []string{"--signature", "decode", ref}, exitFailed, `has no signature "decode"; its signatures are "serving_default"`},
		{"other model", []string{ref, fc}, exitFailed, "cannot be compared"},
		{"missing file", []string{filepath.Join(dir, "nope.tflite")}, exitFailed, "nope.tflite"},
		{"missing inputs file", []string{"--inputs", filepath.Join(dir, "nope.jsonl"), ref}, exitFailed, "nope.jsonl"},
	} {
		code, _, stderr := e2eRun(t, append([]string{"eval"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", tc.name, code, stderr, tc.code, tc.want)
		}
	}
	if code, _, _ := e2eRun(t, "eval", "--seq", "8", ref, cand); code != 0 {
		t.Errorf("--seq equal to the model's length: exit %d", code)
	}
}

const gateJob = `version: 1
stages:
  - load: {path: tiny_decoder.tflite}
  - quantize: {recipe: dynamic_int4_block32}
%s  - serialize: {path: "out/{name}_{suffix}.tflite"}
`

func gateJobText(verify string) string { return strings.Replace(gateJob, "%s", verify, 1) }

// TestAccuracyGate: a bound the recipe misses fails the job with the
// numbers and writes nothing; bounds it meets write exactly the bytes the
// job writes without a gate, and report the numbers.
func TestAccuracyGate(t *testing.T) {
	dir := t.TempDir()
	e2eCopy(t, dir, "tiny_decoder.tflite")

	plain := e2eWrite(t, filepath.Join(dir, "plain.yaml"), gateJobText("  - verify: {}\n"))
	if code, _, stderr := e2eRun(t, "run", plain); code != 0 {
		t.Fatalf("job without a gate: exit %d: %s", code, stderr)
	}
	want := e2eSHA(t, filepath.Join(dir, "out", "plain_q4_block32.tflite"))

	tight := e2eWrite(t, filepath.Join(dir, "tight.yaml"), gateJobText("  - verify:\n      accuracy: {samples: 2, max_kl: 0.0000001, min_top1: 1, max_rel_l2: 10}\n"))
	code, _, stderr := e2eRun(t, "run", tight)
	for _, w := range []string{"tight.yaml:6:7", "accuracy gate", `output "logits" (signature "serving_default"): mean_kl`, "> max_kl 1e-07", "on 2 sample(s)", "not written"} {
		if code != exitFailed || !strings.Contains(stderr, w) {
			t.Errorf("too tight: exit %d, missing %q in:\n%s", code, w, stderr)
		}
	}
	if strings.Contains(stderr, "rel_l2") {
		t.Errorf("a bound that was met is reported as missed:\n%s", stderr)
	}
	if files := e2eFiles(t, filepath.Join(dir, "out")); slices.Contains(files, "tight_q4_block32.tflite") || len(files) != 1 {
		t.Errorf("a failed gate left files: %v", files)
	}

	loose := e2eWrite(t, filepath.Join(dir, "loose.yaml"), gateJobText("  - verify:\n      accuracy: {samples: 2, max_kl: 10, min_top1: 0.01, max_rel_l2: 10}\n"))
	code, stdout, stderr := e2eRun(t, "run", "--json", loose)
	if code != 0 {
		t.Fatalf("loose gate: exit %d: %s", code, stderr)
	}
	if got := e2eSHA(t, filepath.Join(dir, "out", "loose_q4_block32.tflite")); got != want {
		t.Error("a passing gate changed the output bytes")
	}
	var rep struct {
		Jobs []struct {
			Outputs []struct {
				Accuracy *struct {
					Samples, Seq int
					Checks       []struct {
						Output, Metric string
						Bound          float64
						Value          *float64
						Pass           *bool
					}
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	a := rep.Jobs[0].Outputs[0].Accuracy
	if a == nil || a.Samples != 2 || a.Seq != 8 || len(a.Checks) != 3 {
		t.Fatalf("run --json accuracy: %+v", a)
	}
	for i, metric := range []string{"mean_kl", "top1", "rel_l2"} {
		c := a.Checks[i]
		if c.Output != "logits" || c.Metric != metric || c.Value == nil || c.Pass == nil || !*c.Pass {
			t.Errorf("check %d: %+v, want %s on logits, measured, passed", i, c, metric)
		}
	}
	if !(*a.Checks[0].Value > 0) || !(*a.Checks[1].Value > 0.01) {
		t.Errorf("measured values: KL %v, top-1 %v", *a.Checks[0].Value, *a.Checks[1].Value)
	}

	_, _, stderr = e2eRun(t, "run", "--force", loose)
	if !strings.Contains(stderr, "accuracy (2 samples x 8 tokens, seed 1): logits mean_kl ") {
		t.Errorf("summary without the measured accuracy:\n%s", stderr)
	}
	code, stdout, stderr = e2eRun(t, "plan", loose)
	if code != 0 || !strings.Contains(stdout, "accuracy gate: 2 samples x 8 tokens, seed 1 against the float model: logits mean_kl <= 10, logits top1 >= 0.01, logits rel_l2 <= 10") {
		t.Errorf("plan: exit %d:\n%s%s", code, stdout, stderr)
	}
}

func TestAccuracyGateErrors(t *testing.T) {
	dir := t.TempDir()
	e2eCopy(t, dir, "tiny_decoder.tflite")
	e2eCopy(t, dir, "aeq_single_fc.tflite")
	for _, tc := range []struct {
		name, job string
		want      []string
	}{
		{"fixed length", gateJobText("  - verify: {accuracy: {seq: 64, max_rel_l2: 1}}\n"),
			[]string{"job.yaml:5:14: verify.accuracy", "the model's sequence length is 8"}},
		{"KL without logits", strings.NewReplacer("tiny_decoder", "aeq_single_fc", "dynamic_int4_block32", "dynamic_int8").Replace(gateJobText("  - verify: {accuracy: {max_kl: 1}}\n")),
			[]string{"max_kl, min_top1 and max_ppl_ratio measure logits outputs", "this model has none"}},
	} {
		job := e2eWrite(t, filepath.Join(dir, "job.yaml"), tc.job)
		for _, cmd := range []string{"run", "plan"} {
			code, _, stderr := e2eRun(t, cmd, job)
			for _, w := range tc.want {
				if code != exitFailed || !strings.Contains(stderr, w) {
					t.Errorf("%s, %s: exit %d, missing %q in:\n%s", tc.name, cmd, code, w, stderr)
				}
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
			t.Errorf("%s: an output folder was made", tc.name)
		}
	}
}

// Eval on a text gives the numbers of eval on the inputs file of the same
// token ids (one line per window), next-token perplexity and KL included.
func TestEvalTextEqualsInputs(t *testing.T) {
	dir := t.TempDir()
	ref, cand := quantizedTiny(t, dir, "dynamic_int4_block32")
	text := filepath.Join("..", "..", "testdata", "tokenizers", "botchan.txt")
	tok := filepath.Join("..", "..", "testdata", "tokenizers", "spm_bpe_nfkc_bytes.model")
	fromText := evalJSON(t, "--text", text, "--tokenizer", tok, "--samples", "6", ref, cand)
	if fromText.Text == nil || fromText.Text.Seq != 8 || fromText.Text.Windows != fromText.Text.Tokens/8 || fromText.Inputs != text {
		t.Fatalf("text report %+v", fromText.Text)
	}
	tz, err := tokenizer.Load(tok)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(text)
	ids := tz.Encode(string(b))
	var lines strings.Builder
	for w := 0; w < 6; w++ {
		js, _ := json.Marshal(map[string][]int{"tokens": ids[w*8 : (w+1)*8]})
		lines.Write(append(js, '\n'))
	}
	jsonl := filepath.Join(dir, "ids.jsonl")
	if err := os.WriteFile(jsonl, []byte(lines.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	fromIDs := evalJSON(t, "--inputs", jsonl, ref, cand)
	a, _ := json.Marshal(fromText.Signatures)
	c, _ := json.Marshal(fromIDs.Signatures)
	if string(a) != string(c) {
		t.Errorf("text and inputs file differ:\n%s\n%s", a, c)
	}
	// With a BOS: each window is the BOS and the next 7 text tokens.
	lines.Reset()
	for w := 0; w < 2; w++ {
		js, _ := json.Marshal(map[string][]int{"tokens": append([]int{1}, ids[w*7:(w+1)*7]...)})
		lines.Write(append(js, '\n'))
	}
	if err := os.WriteFile(jsonl, []byte(lines.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	a, _ = json.Marshal(evalJSON(t, "--text", text, "--tokenizer", tok, "--bos", "1", "--samples", "2", ref, cand).Signatures)
	c, _ = json.Marshal(evalJSON(t, "--inputs", jsonl, ref, cand).Signatures)
	if string(a) != string(c) {
		t.Errorf("text with BOS and inputs file differ:\n%s\n%s", a, c)
	}
	n := logitsOf(t, fromText).NextToken
	if n == nil || n.Scored != 6*3 || n.PPLRatio <= 0 || n.MeanKL <= 0 {
		t.Errorf("next token %+v", n)
	}
	// Generated inputs have no next-token comparison.
	if o := logitsOf(t, evalJSON(t, "--samples", "1", ref, cand)); o.NextToken != nil {
		t.Errorf("generated inputs: next token %+v", o.NextToken)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--text", text, ref}, "--text needs --tokenizer"},
		{[]string{"--tokenizer", tok, ref}, "--tokenizer is for --text"},
		{[]string{"--text", text, "--tokenizer", tok, "--inputs", jsonl, ref}, "give one"},
		{[]string{"--bos", "1", ref}, "--bos ID"},
		{[]string{"--text", text, "--tokenizer", tok, "--bos", "-2", ref}, "--bos ID"},
	} {
		code, _, stderr := e2eRun(t, append([]string{"eval"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("eval %v: exit %d, %q; want usage error %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestAccuracyGateText: the gate on a text measures the next-token
// perplexity ratio qpipe eval --text reports for the same windows; a
// ratio over the bound fails the job and writes nothing.
func TestAccuracyGateText(t *testing.T) {
	dir := t.TempDir()
	ref := e2eCopy(t, dir, "tiny_decoder.tflite")
	for _, f := range []string{"botchan.txt", "spm_unigram_nfkc.model"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "tokenizers", f))
		if err != nil {
			t.Fatal(err)
		}
		e2eWrite(t, filepath.Join(dir, f), string(b))
	}
	gate := func(bound string) string {
		return gateJobText("  - verify:\n      accuracy: {text: botchan.txt, tokenizer: spm_unigram_nfkc.model, max_ppl_ratio: " + bound + "}\n")
	}
	tight := e2eWrite(t, filepath.Join(dir, "tight.yaml"), gate("1.05"))
	code, _, stderr := e2eRun(t, "run", tight)
	for _, w := range []string{"tight.yaml:6:7", `output "logits" (signature "serving_default"): ppl_ratio 1.1`, "> max_ppl_ratio 1.05", "on 8 sample(s)", "not written"} {
		if code != exitFailed || !strings.Contains(stderr, w) {
			t.Errorf("too tight: exit %d, missing %q in:\n%s", code, w, stderr)
		}
	}
	loose := e2eWrite(t, filepath.Join(dir, "loose.yaml"), gate("2"))
	code, stdout, stderr := e2eRun(t, "run", "--json", loose)
	if code != 0 {
		t.Fatalf("loose gate: exit %d: %s", code, stderr)
	}
	var rep struct {
		Jobs []struct {
			Outputs []struct {
				Accuracy *struct {
					Samples int
					Text    string
					Checks  []struct {
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
	a := rep.Jobs[0].Outputs[0].Accuracy
	if a == nil || a.Samples != 8 || a.Text != filepath.Join(dir, "botchan.txt") || len(a.Checks) != 1 || a.Checks[0].Metric != "ppl_ratio" || a.Checks[0].Value == nil {
		t.Fatalf("run --json accuracy: %+v", a)
	}
	code, stdout, _ = e2eRun(t, "plan", loose)
	if code != 0 || !strings.Contains(stdout, "accuracy gate: 8 samples x 8 tokens of "+filepath.Join(dir, "botchan.txt")+" against the float model: logits ppl_ratio <= 2") {
		t.Errorf("plan: exit %d:\n%s", code, stdout)
	}
	cand := filepath.Join(dir, "out", "loose_q4_block32.tflite")
	n := logitsOf(t, evalJSON(t, "--samples", "8", "--text", filepath.Join(dir, "botchan.txt"), "--tokenizer", filepath.Join(dir, "spm_unigram_nfkc.model"), ref, cand)).NextToken
	if n == nil || math.Abs(float64(n.PPLRatio)-*a.Checks[0].Value) > 1e-12 {
		t.Errorf("gate ppl_ratio %v, eval --text %+v", *a.Checks[0].Value, n)
	}
}
