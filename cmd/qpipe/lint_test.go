package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRecipeLint: job lines that do nothing on the model are warnings in
// plan and run, named with the job file's line and column, and errors with
// --strict (nothing written).
func TestRecipeLint(t *testing.T) {
	dir := t.TempDir()
	decoder := e2eCopy(t, dir, "tiny_decoder.tflite") // blocks 0 and 1
	fc := e2eCopy(t, dir, "aeq_single_fc.tflite")     // one FULLY_CONNECTED, role default
	cases := []struct {
		name  string
		model string
		body  string // the stages after load
		want  []string
	}{
		{"override of blocks the model lacks", decoder, `
  - quantize:
      recipe:
        default: fp16
        feedforward:
          all: dynamic_int8
          layers: {"14-15": dynamic_int4_block32}
`, []string{`lint.yaml:10:20: quantize.recipe.feedforward.layers.14-15: blocks 14-15: the model's feedforward weights are in blocks 0-1, so this override does nothing`}},
		{"override partly past the last block", decoder, `
  - quantize:
      recipe:
        default: fp16
        attention:
          layers:
            "1-5": dynamic_int8
`, []string{`lint.yaml:10:13: quantize.recipe.attention.layers.1-5: blocks 1-5: the model's attention weights are in blocks 0-1, so 4 of its 5 blocks do not exist`}},
		{"annotate rule matching nothing", decoder, `
  - annotate:
      rules:
        - {role: attention, match: 'my_attn_(?P<layer>\d+)'}
        - {role: feedforward, match: 'feed_forward'}
  - quantize: {recipe: dynamic_int8}
`, []string{`lint.yaml:7:11: annotate.rules[0]: match "my_attn_(?P<layer>\\d+)" (role attention) matches no op that reads a weight`}},
		{"role no weight has", fc, `
  - quantize:
      recipe:
        default: fp16
        embedding: dynamic_int8
        attention: {all: dynamic_int8, layers: {"0": fp16}}
`, []string{
			`lint.yaml:8:20: quantize.recipe.embedding: no weight of the model has the role embedding, so this does nothing (roles found: default (1))`,
			`lint.yaml:9:20: quantize.recipe.attention: no weight of the model has the role attention`,
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sub := filepath.Join(dir, fmt.Sprint(i))
			job := e2eWrite(t, filepath.Join(t.TempDir(), "lint.yaml"), fmt.Sprintf(`version: 1
name: lint
stages:
  - load: {path: %q}%s  - serialize: {path: %q}
`, c.model, c.body, filepath.Join(sub, "{name}_{suffix}.tflite")))
			check := func(what, text string) {
				t.Helper()
				for _, w := range c.want {
					w = strings.Replace(w, "lint.yaml", job, 1)
					if !strings.Contains(text, w) {
						t.Errorf("%s lacks %q:\n%s", what, w, text)
					}
				}
			}
			// plan: exit 0, the warnings after the plan.
			code, stdout, stderr := e2eRun(t, "plan", job)
			if code != 0 {
				t.Fatalf("plan: exit %d\n%s", code, stderr)
			}
			check("plan", stdout)
			if n := strings.Count(stdout, "warning: "); n != len(c.want) {
				t.Errorf("plan printed %d warnings, want %d:\n%s", n, len(c.want), stdout)
			}
			// plan --json: at the top level.
			code, stdout, _ = e2eRun(t, "plan", "--json", job)
			var pj struct{ Warnings []string }
			if code != 0 || json.Unmarshal([]byte(stdout), &pj) != nil || len(pj.Warnings) != len(c.want) {
				t.Errorf("plan --json: exit %d, warnings %q", code, pj.Warnings)
			}
			check("plan --json", strings.Join(pj.Warnings, "\n"))
			// plan --strict and run --strict: errors, nothing written.
			for _, args := range [][]string{{"plan", "--strict", job}, {"run", "--strict", job}} {
				code, _, stderr := e2eRun(t, args...)
				if code != exitFailed {
					t.Errorf("%v: exit %d, want %d\n%s", args, code, exitFailed, stderr)
				}
				check(strings.Join(args[:2], " "), stderr)
				if !strings.Contains(stderr, "--strict: the job has lines that do nothing") {
					t.Errorf("%v: stderr does not say why:\n%s", args, stderr)
				}
				if files := e2eFiles(t, dir); slices.ContainsFunc(files, func(f string) bool { return strings.HasPrefix(f, fmt.Sprint(i)+"/") }) {
					t.Errorf("%v wrote %v", args, files)
				}
			}
			// run: warns, writes, and lists the warnings in --json.
			code, stdout, stderr = e2eRun(t, "run", "--json", job)
			if code != 0 {
				t.Fatalf("run: exit %d\n%s", code, stderr)
			}
			for _, w := range c.want { // the log escapes quotes: compare up to the first
				w, _, _ = strings.Cut(strings.Replace(w, "lint.yaml", job, 1), `"`)
				if !strings.Contains(stderr, w) {
					t.Errorf("run log lacks %q:\n%s", w, stderr)
				}
			}
			var rep struct {
				Jobs []struct{ Warnings []string }
			}
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil || len(rep.Jobs) != 1 {
				t.Fatalf("run --json: %v\n%s", err, stdout)
			}
			check("run --json", strings.Join(rep.Jobs[0].Warnings, "\n"))
		})
	}

	// A job whose every line applies: no warning, --strict passes.
	job := e2eWrite(t, filepath.Join(dir, "clean.yaml"), fmt.Sprintf(`version: 1
stages:
  - load: {path: %q}
  - annotate:
      rules:
        - {role: feedforward, match: 'blocks\[(?P<layer>\d+)\][^;]*feed_forward'}
  - quantize:
      recipe:
        default: fp16
        feedforward: {all: dynamic_int8, layers: {"1": fp16}}
  - serialize: {path: %q}
`, decoder, filepath.Join(dir, "clean", "{name}.tflite")))
	code, stdout, stderr := e2eRun(t, "plan", "--strict", job)
	if code != 0 || strings.Contains(stdout, "warning:") {
		t.Fatalf("clean job: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// TestAEQRuleLint: a rule of an AI Edge Quantizer recipe that matches no op
// is a warning naming the recipe file's line and column, and an error with
// --strict (quantize writes nothing).
func TestAEQRuleLint(t *testing.T) {
	dir := t.TempDir()
	in := e2eCopy(t, dir, "aeq_conv_fc_mnist.tflite")
	recipe := e2eWrite(t, filepath.Join(dir, "r.json"), `[
  {
    "regex": ".*",
    "operation": "*",
    "algorithm_key": "min_max_uniform_quantize",
    "op_config": {"weight_tensor_config": {"num_bits": 8, "symmetric": true, "granularity": "CHANNELWISE", "dtype": "INT"}, "compute_precision": "INTEGER", "explicit_dequantize": false}
  },
  {
    "regex": "no_such_scope",
    "operation": "FULLY_CONNECTED",
    "algorithm_key": "no_quantize",
    "op_config": {}
  }
]
`)
	want := recipe + `:8:3: rule 1 (regex "no_such_scope", operation FULLY_CONNECTED) matches no op that reads a weight, so it does nothing`
	out := filepath.Join(dir, "out", "q.tflite")
	code, _, stderr := e2eRun(t, "quantize", "--aeq-recipe", recipe, in, out)
	if code != 0 || !strings.Contains(stderr, `rule 1 (regex \"no_such_scope\"`) {
		t.Fatalf("quantize: exit %d, want 0 and a warning:\n%s", code, stderr)
	}
	if err := os.RemoveAll(filepath.Dir(out)); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"quantize", "--strict", "--aeq-recipe", recipe, in, out},
		{"plan", "--strict", "--aeq-recipe", recipe, in},
	} {
		code, _, stderr := e2eRun(t, args...)
		if code != exitFailed || !strings.Contains(stderr, want) {
			t.Errorf("%v: exit %d, want %d and %q:\n%s", args[:2], code, exitFailed, want, stderr)
		}
		if _, err := os.Stat(filepath.Dir(out)); !os.IsNotExist(err) {
			t.Errorf("%v wrote %s", args[:2], filepath.Dir(out))
		}
	}
	code, stdout, _ := e2eRun(t, "plan", "--aeq-recipe", recipe, in)
	if code != 0 || !strings.Contains(stdout, "warning: "+want) {
		t.Errorf("plan: exit %d, no warning:\n%s", code, stdout)
	}
}
