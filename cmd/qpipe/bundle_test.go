package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/litert"
	"github.com/qpipe/qpipe/internal/litertlm"
	"github.com/qpipe/qpipe/internal/tflite"
)

type memContent []byte

func (c memContent) Len() int64 { return int64(len(c)) }
func (c memContent) WriteAt(_ context.Context, f *os.File, off int64) error {
	_, err := f.WriteAt(c, off)
	return err
}

// testBundle writes a bundle shaped like a real LLM bundle: a tokenizer
// (the upstream HF test bundle's section), metadata, two TFLite models of
// two model types and an external-weights section.
func testBundle(t *testing.T, dir string) (path string, sections [][]byte) {
	t.Helper()
	read := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join(e2eModels, p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	hf, err := litertlm.Open(filepath.Join(e2eModels, "litertlm_test_hf_tokenizer.litertlm"))
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	tok, err := io.ReadAll(hf.SectionReader(0))
	if err != nil {
		t.Fatal(err)
	}
	sections = [][]byte{
		tok,
		{0x0a, 4, 'g', 'e', 'm', 'a', 0x10, 1}, // an LlmMetadata-like message
		read("tiny_decoder.tflite"),
		read("aeq_conv_fc_mnist.tflite"),
		bytes.Repeat([]byte{0xa5}, 5000),
	}
	b, err := litertlm.New([]litertlm.KV{{Key: "Authors", Value: "qpipe test"}, {Key: "layers", Value: int64(2)}},
		[]litertlm.NewSection{
			{Type: litertlm.TypeHFTokenizerZlib},
			{Type: litertlm.TypeLlmMetadataProto},
			{Type: litertlm.TypeTFLiteModel, Items: []litertlm.KV{{Key: "model_type", Value: "tf_lite_prefill_decode"}}},
			{Type: litertlm.TypeTFLiteModel, Items: []litertlm.KV{{Key: "model_type", Value: "tf_lite_embedder"}, {Key: "backend", Value: "cpu"}}},
			{Type: litertlm.TypeTFLiteWeights, Items: []litertlm.KV{{Key: "model_type", Value: "tf_lite_prefill_decode"}}},
		})
	if err != nil {
		t.Fatal(err)
	}
	repl := map[int]litertlm.Content{}
	for i, s := range sections {
		repl[i] = memContent(s)
	}
	path = filepath.Join(dir, "llm.litertlm")
	if err := litertlm.WriteFile(context.Background(), path, b, repl, litertlm.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return path, sections
}

func sectionOf(t *testing.T, b *litertlm.Bundle, i int) []byte {
	t.Helper()
	d, err := io.ReadAll(b.SectionReader(i))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestBundleQuantize: `qpipe quantize` on a bundle. With recipe none the
// output is the input byte for byte (upstream's bundle and a built one);
// with a recipe every TFLite section is exactly the bare model's output of
// the same command, every other section and all metadata are unchanged,
// and the sections are aligned.
func TestBundleQuantize(t *testing.T) {
	dir := t.TempDir()
	in, sections := testBundle(t, dir)
	for _, src := range []string{in, filepath.Join(e2eModels, "aeq_conv_fc_mnist.litertlm")} {
		out := filepath.Join(dir, "none.litertlm")
		if code, _, stderr := e2eRun(t, "quantize", "--recipe", "none", src, out); code != 0 {
			t.Fatalf("quantize --recipe none %s: exit %d\n%s", src, code, stderr)
		}
		if e2eSHA(t, out) != e2eSHA(t, src) {
			t.Errorf("quantize --recipe none %s changed the bundle", src)
		}
	}

	out := filepath.Join(dir, "q8.litertlm")
	if code, _, stderr := e2eRun(t, "quantize", "--recipe", "dynamic_int8", in, out); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	bin, err := litertlm.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	bout, err := litertlm.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer bout.Close()
	if !reflect.DeepEqual(bout.System, bin.System) || len(bout.Sections) != len(bin.Sections) {
		t.Fatalf("metadata or section count changed")
	}
	bare := map[int]string{2: "tiny_decoder.tflite", 3: "aeq_conv_fc_mnist.tflite"}
	for i, s := range bout.Sections {
		if s.Begin%litertlm.BlockSize != 0 {
			t.Errorf("%s begins at %d, not aligned", s.Name(), s.Begin)
		}
		if !reflect.DeepEqual(s.Items, bin.Sections[i].Items) || s.Type != bin.Sections[i].Type {
			t.Errorf("%s: items or type changed", s.Name())
		}
		got := sectionOf(t, bout, i)
		name, isModel := bare[i]
		if !isModel {
			if !bytes.Equal(got, sections[i]) {
				t.Errorf("%s changed", s.Name())
			}
			continue
		}
		want := filepath.Join(dir, "bare_"+name)
		if code, _, stderr := e2eRun(t, "quantize", "--recipe", "dynamic_int8", filepath.Join(e2eModels, name), want); code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		w, _ := os.ReadFile(want)
		if !bytes.Equal(got, w) {
			t.Errorf("%s differs from the bare model's output %s", s.Name(), want)
		}
		// The section runs on LiteRT.js as the bare output does.
		ext := filepath.Join(dir, "section.tflite")
		if err := os.WriteFile(ext, got, 0o644); err != nil {
			t.Fatal(err)
		}
		sameOnRuntime(t, ext, want)
	}

	// eval runs the bundles' main models (the prefill/decode section).
	if code, stdout, stderr := e2eRun(t, "eval", "--samples", "1", in, out); code != 0 || !strings.Contains(stdout, "logits") {
		t.Errorf("eval on bundles: exit %d\n%s%s", code, stdout, stderr)
	}

	// One section as a bare .tflite: refused while there are two models.
	if code, _, stderr := e2eRun(t, "quantize", "--recipe", "dynamic_int8", in, filepath.Join(dir, "one.tflite")); code == 0 || !strings.Contains(stderr, "2 TFLiteModel sections") {
		t.Errorf("a bare output of a two-model bundle: exit %d\n%s", code, stderr)
	}
}

// sameOnRuntime runs both models on LiteRT.js with the same inputs and
// wants the same outputs.
func sameOnRuntime(t *testing.T, a, b string) {
	t.Helper()
	r := litert.Require(t)
	info, err := r.Info(a)
	if err != nil {
		t.Fatal(err)
	}
	m, err := tflite.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	vocab := litert.VocabSize(m.Meta)
	m.Close()
	in := litert.RandomInputs(info, 1, vocab)
	oa, err := r.Run(a, in)
	if err != nil {
		t.Fatalf("LiteRT.js runs %s: %v", a, err)
	}
	ob, err := r.Run(b, in)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(oa, ob) {
		t.Errorf("%s and %s give different outputs on LiteRT.js", a, b)
	}
}

// TestBundleInspectPlan: inspect lists the sections; plan --json marks
// every weight with its section; a bare model serialized to .litertlm is
// wrapped into a one-section bundle.
func TestBundleInspectPlan(t *testing.T) {
	dir := t.TempDir()
	in, sections := testBundle(t, dir)
	code, stdout, stderr := e2eRun(t, "inspect", "--json", in)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var sum BundleSummary
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatal(err)
	}
	wantTypes := []string{"HF_Tokenizer_Zlib", "LlmMetadataProto", "TFLiteModel", "TFLiteModel", "TFLiteWeights"}
	for i, s := range sum.Sections {
		if s.Type != wantTypes[i] || s.Bytes != int64(len(sections[i])) || (s.Model != nil) != (s.Type == "TFLiteModel") {
			t.Errorf("section %d: %+v", i, s)
		}
	}
	if sum.Sections[0].Tokenizer != "huggingface" || sum.Sections[3].ModelType != "tf_lite_embedder" || sum.Sections[3].Items["backend"] != "cpu" {
		t.Errorf("sections %+v", sum.Sections)
	}
	if code, stdout, _ = e2eRun(t, "inspect", in); code != 0 || !strings.Contains(stdout, "tf_lite_prefill_decode") {
		t.Errorf("inspect text: exit %d\n%s", code, stdout)
	}

	code, stdout, stderr = e2eRun(t, "plan", "--json", "--recipe", "dynamic_int8", in)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var plan struct {
		Plans []struct {
			Weights []struct {
				Section *int    `json:"section"`
				Scheme  *string `json:"scheme"`
			} `json:"weights"`
		} `json:"plans"`
	}
	if err := json.Unmarshal([]byte(stdout), &plan); err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for _, w := range plan.Plans[0].Weights {
		if w.Section == nil {
			t.Fatal("a weight without its section")
		}
		seen[*w.Section]++
	}
	if len(seen) != 2 || seen[2] == 0 || seen[3] != 3 {
		t.Errorf("weights per section %v", seen)
	}

	wrapped := filepath.Join(dir, "wrapped.litertlm")
	if code, _, stderr := e2eRun(t, "quantize", "--recipe", "none", filepath.Join(e2eModels, "aeq_conv_fc_mnist.tflite"), wrapped); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	b, err := litertlm.Open(wrapped)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if len(b.Sections) != 1 || b.Sections[0].ModelType() != "tf_lite_prefill_decode" || b.Sections[0].Begin != litertlm.BlockSize {
		t.Errorf("wrapped bundle %+v", b.Sections)
	}
}

// TestBundleSectionRecipes: quantize.sections gives sections their own
// recipe by model type or index; `none` leaves a section byte for byte.
func TestBundleSectionRecipes(t *testing.T) {
	dir := t.TempDir()
	_, sections := testBundle(t, dir)
	job := e2eWrite(t, filepath.Join(dir, "job.yaml"), `version: 1
stages:
  - load: {path: llm.litertlm}
  - quantize:
      recipe: dynamic_int8
      sections: {tf_lite_embedder: none, "2": fp16}
  - serialize: {path: "out/{name}_{suffix}.litertlm"}
`)
	if code, _, stderr := e2eRun(t, "run", job); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	b, err := litertlm.Open(filepath.Join(dir, "out", "job_q8.litertlm"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !bytes.Equal(sectionOf(t, b, 3), sections[3]) {
		t.Error("the embedder (recipe none) changed")
	}
	want := filepath.Join(dir, "fp16.tflite")
	if code, _, stderr := e2eRun(t, "quantize", "--recipe", "fp16", filepath.Join(e2eModels, "tiny_decoder.tflite"), want); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if w, _ := os.ReadFile(want); !bytes.Equal(sectionOf(t, b, 2), w) {
		t.Error("section 2 is not the fp16 output of its model")
	}
}

// TestBundleHostile: a bundle lying about a section, and a valid bundle
// holding a corrupt model, fail every command with exit 1, the section
// named, and no output left behind.
func TestBundleHostile(t *testing.T) {
	dir := t.TempDir()
	in, _ := testBundle(t, dir)
	good, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := litertlm.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	s2, s3 := b.Sections[2].Begin, b.Sections[3].Begin
	b.Close()
	cases := map[string]struct {
		edit func([]byte)
		want string
	}{
		"lying section": {func(d []byte) { copy(d[s2+4:], "XXXX") }, "section 2 (TFLiteModel, tf_lite_prefill_decode): a TFLiteModel section must be a TFLite flatbuffer"},
		"corrupt model": {func(d []byte) { copy(d[s3:], []byte{0xff, 0xff, 0xff, 0x7f}) }, "section 3 (TFLiteModel, tf_lite_embedder)"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			d := append([]byte(nil), good...)
			c.edit(d)
			bad := filepath.Join(t.TempDir(), "bad.litertlm")
			if err := os.WriteFile(bad, d, 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(filepath.Dir(bad), "out.litertlm")
			for _, args := range [][]string{
				{"quantize", "--recipe", "dynamic_int8", bad, out},
				{"plan", "--recipe", "dynamic_int8", bad},
				{"inspect", bad},
			} {
				code, _, stderr := e2eRun(t, args...)
				if code != 1 || !strings.Contains(stderr, c.want) {
					t.Errorf("%v: exit %d, want 1 and %q in\n%s", args[0], code, c.want, stderr)
				}
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("an output was left behind")
			}
		})
	}
}

// TestBundleAEQMapping: --aeq-recipe takes the reference quantizer's
// model-type mapping: the embedder gets the mapped recipe (the same bytes
// as that recipe on the bare model), the prefill/decode model, which the
// mapping does not name and which has no default, stays byte for byte.
func TestBundleAEQMapping(t *testing.T) {
	dir := t.TempDir()
	in, sections := testBundle(t, dir)
	recipe, err := filepath.Abs("../../examples/aeq/mixed.json")
	if err != nil {
		t.Fatal(err)
	}
	mapping := e2eWrite(t, filepath.Join(dir, "mapping.json"), `{"tf_lite_embedder": "`+recipe+`"}`)
	out := filepath.Join(dir, "out.litertlm")
	if code, _, stderr := e2eRun(t, "quantize", "--aeq-recipe", mapping, in, out); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	b, err := litertlm.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !bytes.Equal(sectionOf(t, b, 2), sections[2]) {
		t.Error("the prefill/decode model, not in the mapping, changed")
	}
	want := filepath.Join(dir, "bare.tflite")
	if code, _, stderr := e2eRun(t, "quantize", "--aeq-recipe", recipe, filepath.Join(e2eModels, "aeq_conv_fc_mnist.tflite"), want); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if w, _ := os.ReadFile(want); !bytes.Equal(sectionOf(t, b, 3), w) || bytes.Equal(w, sections[3]) {
		t.Error("the embedder is not the mapped recipe's output")
	}
	bad := e2eWrite(t, filepath.Join(dir, "bad.json"), `{"tf_lite_embedder": 3}`)
	if code, _, stderr := e2eRun(t, "quantize", "--aeq-recipe", bad, in, out); code == 0 || !strings.Contains(stderr, "bad.json") {
		t.Errorf("a bad mapping: exit %d\n%s", code, stderr)
	}
}

// TestBundleOneSection: serialize.section writes one section as a bare
// .tflite, the same bytes as the bare model's output; a selector that
// names no section is an error naming the sections.
func TestBundleOneSection(t *testing.T) {
	dir := t.TempDir()
	testBundle(t, dir)
	want := filepath.Join(dir, "bare.tflite")
	if code, _, stderr := e2eRun(t, "quantize", "--recipe", "dynamic_int8", filepath.Join(e2eModels, "aeq_conv_fc_mnist.tflite"), want); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	w, _ := os.ReadFile(want)
	for _, sel := range []string{"tf_lite_embedder", "3"} {
		job := e2eWrite(t, filepath.Join(dir, "job.yaml"), `version: 1
stages:
  - load: {path: llm.litertlm}
  - quantize: {recipe: dynamic_int8}
  - serialize: {path: "out/emb.tflite", section: `+sel+`}
`)
		if code, _, stderr := e2eRun(t, "run", "--force", job); code != 0 {
			t.Fatalf("section %s: exit %d\n%s", sel, code, stderr)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "out", "emb.tflite")); !bytes.Equal(got, w) {
			t.Errorf("section %s: not the bare model's output", sel)
		}
	}
	job := e2eWrite(t, filepath.Join(dir, "job.yaml"), `version: 1
stages:
  - load: {path: llm.litertlm}
  - quantize: {recipe: dynamic_int8}
  - serialize: {path: "out/x.tflite", section: tf_lite_vision_encoder}
`)
	if code, _, stderr := e2eRun(t, "run", job); code != 1 || !strings.Contains(stderr, `serialize.section "tf_lite_vision_encoder" names 0`) {
		t.Errorf("exit %d\n%s", code, stderr)
	}
}

// TestBundleBudgetRefused: a budget on a bundle is refused, not applied
// once per section with the whole bundle's goal.
func TestBundleBudgetRefused(t *testing.T) {
	dir := t.TempDir()
	in, _ := testBundle(t, dir)
	code, _, stderr := e2eRun(t, "plan", "--budget-size", "1MB", in)
	if code != 1 || !strings.Contains(stderr, "budgets do not run on LiteRT-LM bundles") {
		t.Errorf("exit %d\n%s", code, stderr)
	}
}

// TestBundleUnusedSelector: a per-section recipe that names no section is
// a warning of plan, an error with --strict.
func TestBundleUnusedSelector(t *testing.T) {
	dir := t.TempDir()
	testBundle(t, dir)
	job := e2eWrite(t, filepath.Join(dir, "job.yaml"), `version: 1
stages:
  - load: {path: llm.litertlm}
  - quantize:
      recipe: dynamic_int8
      sections: {tf_lite_vision_encoder: none, "3": fp16}
  - serialize: {path: "out/{name}_{suffix}.litertlm"}
`)
	code, stdout, stderr := e2eRun(t, "plan", job)
	if code != 0 || !strings.Contains(stdout+stderr, `per-section recipes for "tf_lite_vision_encoder" name no TFLiteModel section`) {
		t.Errorf("plan: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, _, stderr := e2eRun(t, "plan", "--strict", job); code != 1 || !strings.Contains(stderr, "tf_lite_vision_encoder") {
		t.Errorf("plan --strict: exit %d\n%s", code, stderr)
	}
}

// TestBundleLint: lint judges the job against all sections together: an
// annotate rule matching in one section is not a finding; one matching in
// none is, once.
func TestBundleLint(t *testing.T) {
	dir := t.TempDir()
	testBundle(t, dir)
	job := e2eWrite(t, filepath.Join(dir, "job.yaml"), `version: 1
stages:
  - load: {path: llm.litertlm}
  - annotate:
      rules:
        - {role: attention, match: 'sequential/conv2d'}
        - {role: attention, match: 'no_such_op_anywhere'}
  - quantize: {recipe: dynamic_int8}
  - serialize: {path: "out/{name}_{suffix}.litertlm"}
`)
	code, stdout, stderr := e2eRun(t, "plan", "--json", job)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var out struct {
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Warnings) != 1 || !strings.Contains(out.Warnings[0], "no_such_op_anywhere") {
		t.Errorf("warnings %q, want one, about no_such_op_anywhere", out.Warnings)
	}
}

// TestBundleOffsetLayout: a model in the offset layout (buffers after the
// flatbuffer, at offsets relative to the model's start) reads and writes
// inside a bundle: quantizing the wrapped model gives the bare output.
func TestBundleOffsetLayout(t *testing.T) {
	dir := t.TempDir()
	tiny := filepath.Join(e2eModels, "tiny_decoder.tflite")
	wrapped := filepath.Join(dir, "tiny.litertlm")
	out := filepath.Join(dir, "q4.litertlm")
	bare := filepath.Join(dir, "q4.tflite")
	for _, args := range [][]string{
		{"quantize", "--recipe", "none", "--layout", "offset", tiny, wrapped},
		{"quantize", "--recipe", "dynamic_int4_block32", "--layout", "offset", wrapped, out},
		{"quantize", "--recipe", "dynamic_int4_block32", "--layout", "offset", tiny, bare},
	} {
		if code, _, stderr := e2eRun(t, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, stderr)
		}
	}
	b, err := litertlm.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	m, err := tflite.OpenSection(out, b.Sections[0].Begin, b.Sections[0].Len(), "q4 section")
	if err != nil {
		t.Fatal(err)
	}
	layout := m.Layout
	m.Close()
	if w, _ := os.ReadFile(bare); layout != tflite.LayoutOffset || !bytes.Equal(sectionOf(t, b, 0), w) {
		t.Errorf("layout %v; section equals the bare output: %v", layout, bytes.Equal(sectionOf(t, b, 0), w))
	}
}

// TestBundleAccuracyGate: verify's gate measures each quantized section of
// the written bundle against the same section of the input: a loose gate
// reports every section's checks, a tight one fails naming the section and
// writes nothing.
func TestBundleAccuracyGate(t *testing.T) {
	dir := t.TempDir()
	testBundle(t, dir)
	jobText := func(bound string) string {
		return `version: 1
stages:
  - load: {path: llm.litertlm}
  - quantize: {recipe: dynamic_int8}
  - verify:
      accuracy: {samples: 1, max_rel_l2: ` + bound + `}
  - serialize: {path: "out/{name}_{suffix}.litertlm"}
`
	}
	loose := e2eWrite(t, filepath.Join(dir, "loose.yaml"), jobText("10"))
	code, stdout, stderr := e2eRun(t, "run", "--json", loose)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var rep struct {
		Jobs []struct {
			Outputs []struct {
				Accuracy *struct {
					Checks []struct{ Signature string }
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	acc := rep.Jobs[0].Outputs[0].Accuracy
	sections := map[string]bool{}
	for _, c := range acc.Checks {
		sections[strings.SplitN(c.Signature, ":", 2)[0]] = true
	}
	if !sections["section 2"] || !sections["section 3"] {
		t.Errorf("checks %+v: want both sections", acc.Checks)
	}
	tight := e2eWrite(t, filepath.Join(dir, "tight.yaml"), jobText("0.000000001"))
	if code, _, stderr := e2eRun(t, "run", tight); code != 1 || !strings.Contains(stderr, "section 2 (TFLiteModel, tf_lite_prefill_decode)") {
		t.Errorf("tight gate: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "tight_q8.litertlm")); err == nil {
		t.Error("a failed gate left its output")
	}
}

// TestBundleCalibrated: calibrated scales of two sections of one bundle
// are each their own model's (the statistics are cached per section, not
// per file): each section is the bare model's output of the same job.
func TestBundleCalibrated(t *testing.T) {
	dir := t.TempDir()
	models := []string{"tiny_decoder.tflite", "tiny_decoder_nodiv.tflite"}
	b, err := litertlm.New(nil, []litertlm.NewSection{
		{Type: litertlm.TypeTFLiteModel, Items: []litertlm.KV{{Key: "model_type", Value: "tf_lite_prefill_decode"}}},
		{Type: litertlm.TypeTFLiteModel, Items: []litertlm.KV{{Key: "model_type", Value: "tf_lite_aux"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	repl := map[int]litertlm.Content{}
	for i, m := range models {
		d, err := os.ReadFile(filepath.Join(e2eModels, m))
		if err != nil {
			t.Fatal(err)
		}
		repl[i] = memContent(d)
		e2eCopy(t, dir, m)
	}
	if err := litertlm.WriteFile(context.Background(), filepath.Join(dir, "two.litertlm"), b, repl, litertlm.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	job := func(in, out string) string {
		return e2eWrite(t, filepath.Join(dir, "job.yaml"), `version: 1
stages:
  - load: {path: `+in+`}
  - quantize: {recipe: dynamic_int4_block32, scales: calibrated, calibration: {samples: 2, seq: 8}}
  - verify: {on_mismatch: fallback}
  - serialize: {path: "`+out+`"}
`)
	}
	t.Setenv("QPIPE_CACHE_DIR", "off")
	for _, c := range [][2]string{{"two.litertlm", "out/two.litertlm"}, {models[0], "out/a.tflite"}, {models[1], "out/b.tflite"}} {
		if code, _, stderr := e2eRun(t, "run", "--force", job(c[0], c[1])); code != 0 {
			t.Fatalf("%s: exit %d\n%s", c[0], code, stderr)
		}
	}
	out, err := litertlm.Open(filepath.Join(dir, "out", "two.litertlm"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	for i, bare := range []string{"a.tflite", "b.tflite"} {
		if w, _ := os.ReadFile(filepath.Join(dir, "out", bare)); !bytes.Equal(sectionOf(t, out, i), w) {
			t.Errorf("section %d differs from %s", i, bare)
		}
	}
}
