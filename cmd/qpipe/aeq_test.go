package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// aeqWeightOnlyAsym is a recipe in the reference quantizer's format,
// written for this test: asymmetric weight-only int8, channelwise.
const aeqWeightOnlyAsym = `[
  {
    "regex": ".*",
    "operation": "*",
    "algorithm_key": "min_max_uniform_quantize",
    "op_config": {
      "weight_tensor_config": {"num_bits": 8, "symmetric": false, "granularity": "CHANNELWISE", "dtype": "INT"},
      "compute_precision": "FLOAT",
      "explicit_dequantize": true,
      "skip_checks": false,
      "min_weight_elements": 0
    }
  }
]
`

// TestE2EAEQRecipe: qpipe quantize --aeq-recipe, a job's {aeq: FILE},
// recipes --export-aeq and plan --export-aeq agree byte for byte with the
// equivalent presets; bad recipes exit 1 naming file:line:col and the rule,
// and write nothing.
func TestE2EAEQRecipe(t *testing.T) {
	dir := t.TempDir()
	in := e2eCopy(t, dir, "aeq_conv_fc_mnist.tflite")
	recipe := e2eWrite(t, filepath.Join(dir, "wo_asym.json"), aeqWeightOnlyAsym)

	// The recipe file and the preset it spells write the same model.
	if code, _, stderr := e2eRun(t, "quantize", "--aeq-recipe", recipe, in, filepath.Join(dir, "aeq.tflite")); code != 0 {
		t.Fatalf("quantize --aeq-recipe: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := e2eRun(t, "quantize", "--recipe", "weight_only_int8_asym", in, filepath.Join(dir, "preset.tflite")); code != 0 {
		t.Fatalf("quantize --recipe: exit %d\n%s", code, stderr)
	}
	if a, b := e2eSHA(t, filepath.Join(dir, "aeq.tflite")), e2eSHA(t, filepath.Join(dir, "preset.tflite")); a != b {
		t.Errorf("--aeq-recipe wrote %s, the preset %s", a, b)
	}

	// recipes --export-aeq writes that recipe back.
	code, exported, stderr := e2eRun(t, "recipes", "--export-aeq", "weight_only_int8_asym")
	if code != 0 || exported != aeqNormalised(t, aeqWeightOnlyAsym) {
		t.Fatalf("recipes --export-aeq: exit %d\n%s\n%s", code, exported, stderr)
	}

	// A job file names the recipe relative to itself.
	job := e2eWrite(t, filepath.Join(dir, "job.yaml"), `version: 1
stages:
  - load: {path: aeq_conv_fc_mnist.tflite}
  - quantize: {recipe: {aeq: wo_asym.json}}
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`)
	if code, _, stderr := e2eRun(t, "run", job); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	if a, b := e2eSHA(t, filepath.Join(dir, "out", "job_wo_asym.tflite")), e2eSHA(t, filepath.Join(dir, "preset.tflite")); a != b {
		t.Errorf("job with {aeq: FILE} wrote %s, the preset %s", a, b)
	}

	// plan --export-aeq of a per-op job, imported again, writes the job's bytes.
	perOp := e2eWrite(t, filepath.Join(dir, "perop.yaml"), `version: 1
stages:
  - load: {path: aeq_conv_fc_mnist.tflite}
  - annotate: {rules: [{role: attention, match: "arith.constant1|sequential/dense/", ops: FULLY_CONNECTED}]}
  - quantize: {recipe: {default: dynamic_int8, attention: dynamic_int4_block32}}
  - serialize: {path: "out/perop.tflite"}
`)
	code, plan, stderr := e2eRun(t, "plan", perOp, "--export-aeq")
	if code != 0 || !strings.Contains(plan, `"granularity": "BLOCKWISE_32"`) {
		t.Fatalf("plan --export-aeq: exit %d\n%s\n%s", code, plan, stderr)
	}
	exp := e2eWrite(t, filepath.Join(dir, "perop.json"), plan)
	if code, _, stderr := e2eRun(t, "run", perOp); code != 0 {
		t.Fatalf("run perop: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := e2eRun(t, "quantize", "--aeq-recipe", exp, in, filepath.Join(dir, "perop_aeq.tflite")); code != 0 {
		t.Fatalf("quantize exported: exit %d\n%s", code, stderr)
	}
	if a, b := e2eSHA(t, filepath.Join(dir, "perop_aeq.tflite")), e2eSHA(t, filepath.Join(dir, "out", "perop.tflite")); a != b {
		t.Errorf("the exported plan wrote %s, the job %s\n%s", a, b, plan)
	}
	if code, out, _ := e2eRun(t, "plan", "--aeq-recipe", exp, in); code != 0 || !strings.Contains(out, "dynamic_int4_block32") {
		t.Errorf("plan --aeq-recipe: exit %d\n%s", code, out)
	}

	// Refusals: exit 1, file:line:col, the rule and the field; no output.
	// (The reference's a8w8 recipe itself is a static recipe, docs/SEMANTICS.md §16.1.)
	bad := e2eWrite(t, filepath.Join(dir, "a8w8.json"), `[
  {"regex": ".*", "operation": "*", "algorithm_key": "min_max_uniform_quantize",
   "op_config": {"activation_tensor_config": {"num_bits": 8, "symmetric": false, "granularity": "CHANNELWISE", "dtype": "INT"},
                 "weight_tensor_config": {"num_bits": 8, "symmetric": true, "granularity": "CHANNELWISE", "dtype": "INT"},
                 "compute_precision": "INTEGER", "explicit_dequantize": false}}
]`)
	before := e2eFiles(t, dir)
	code, _, stderr = e2eRun(t, "quantize", "--aeq-recipe", bad, in, filepath.Join(dir, "bad.tflite"))
	if code != 1 || !strings.Contains(stderr, bad+":3:97: rules[0].op_config.activation_tensor_config.granularity: CHANNELWISE activations") {
		t.Errorf("a8w8: exit %d\n%s", code, stderr)
	}
	if after := e2eFiles(t, dir); !slices.Equal(before, after) {
		t.Errorf("files changed: %v -> %v", before, after)
	}
	code, _, stderr = e2eRun(t, "quantize", "--aeq-recipe", recipe, "--recipe", "fp16", in, filepath.Join(dir, "x.tflite"))
	if code != 2 || !strings.Contains(stderr, "exclusive") {
		t.Errorf("both recipes: exit %d\n%s", code, stderr)
	}
	code, _, stderr = e2eRun(t, "recipes", "--export-aeq", "dynamic_int4_block96")
	if code != 1 || !strings.Contains(stderr, "blocks are 32, 64, 128 or 256") {
		t.Errorf("block 96: exit %d\n%s", code, stderr)
	}
}

// aeqNormalised is what qpipe writes for the single rule of a recipe: the
// same JSON with two-space indentation, one key per line.
func aeqNormalised(t *testing.T, text string) string {
	t.Helper()
	r := strings.NewReplacer(
		`"weight_tensor_config": {"num_bits": 8, "symmetric": false, "granularity": "CHANNELWISE", "dtype": "INT"},`,
		"\"weight_tensor_config\": {\n        \"num_bits\": 8,\n        \"symmetric\": false,\n        \"granularity\": \"CHANNELWISE\",\n        \"dtype\": \"INT\"\n      },")
	return r.Replace(text)
}
