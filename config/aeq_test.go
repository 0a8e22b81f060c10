package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// aeqRule writes one rule of a recipe file with a weight_tensor_config.
func aeqRule(regex, op, alg, wcfg, rest string) string {
	return fmt.Sprintf(`{"regex": %q, "operation": %q, "algorithm_key": %q, "op_config": {"weight_tensor_config": %s%s}}`, regex, op, alg, wcfg, rest)
}

const (
	dyn     = `, "compute_precision": "INTEGER", "explicit_dequantize": false`
	wo      = `, "compute_precision": "FLOAT", "explicit_dequantize": true`
	int8CW  = `{"num_bits": 8, "symmetric": true, "granularity": "CHANNELWISE", "dtype": "INT"}`
	int8TW  = `{"num_bits": 8, "symmetric": true, "granularity": "TENSORWISE", "dtype": "INT"}`
	int8AT  = `{"num_bits": 8, "symmetric": false, "granularity": "TENSORWISE", "dtype": "INT"}`
	int8AC  = `{"num_bits": 8, "symmetric": false, "granularity": "CHANNELWISE", "dtype": "INT"}`
	int4B32 = `{"num_bits": 4, "symmetric": true, "granularity": "BLOCKWISE_32", "dtype": "INT"}`
	fp16W   = `{"num_bits": 16, "dtype": "FLOAT"}`
)

// TestAEQMapping: every configuration that maps onto a qpipe scheme gives
// that scheme, with its op filter and min_weight_elements.
func TestAEQMapping(t *testing.T) {
	for _, c := range []struct {
		rule, scheme, op string
		minElems         int64
		skip             bool
	}{
		{aeqRule(".*", "*", AEQMinMax, int8CW, dyn), "dynamic_int8", "", 0, false},
		{aeqRule(".*", "*", AEQMinMax, int8TW, dyn), "dynamic_int8_per_tensor", "", 0, false},
		{aeqRule(".*", "*", AEQMinMax, int8CW, wo), "weight_only_int8", "", 0, false},
		{aeqRule(".*", "*", AEQMinMax, int8AC, wo), "weight_only_int8_asym", "", 0, false},
		{aeqRule(".*", "*", AEQMinMax, int8TW, wo), "weight_only_int8_per_tensor", "", 0, false},
		{aeqRule(".*", "*", AEQMinMax, int8AT, wo), "weight_only_int8_asym_per_tensor", "", 0, false},
		{aeqRule(".*", "FULLY_CONNECTED", AEQMinMax, int4B32, dyn), "dynamic_int4_block32", "FULLY_CONNECTED", 0, false},
		{aeqRule(".*", "*", AEQMinMax, `{"num_bits": 4, "granularity": "BLOCKWISE_256"}`, dyn), "dynamic_int4_block256", "", 0, false},
		// Legacy block_size, with and without the old BLOCKWISE granularity.
		{aeqRule(".*", "*", AEQMinMax, `{"num_bits": 4, "granularity": "BLOCKWISE", "block_size": 64}`, dyn), "dynamic_int4_block64", "", 0, false},
		{aeqRule(".*", "*", AEQMinMax, `{"num_bits": 4, "block_size": 128}`, dyn), "dynamic_int4_block128", "", 0, false},
		{aeqRule(".*", "*", AEQMinMax, `{"num_bits": 4, "granularity": "BLOCKWISE_32", "block_size": 32}`, dyn), "dynamic_int4_block32", "", 0, false},
		// block_size 0 and algorithm_params are no-ops for min-max.
		{aeqRule(".*", "*", AEQMinMax, `{"num_bits": 8, "granularity": "CHANNELWISE", "block_size": 0, "algorithm_params": {"max_hadamard_size": 0}}`, dyn), "dynamic_int8", "", 0, false},
		{aeqRule(".*", "*", AEQMinMax, `{"num_bits": 4, "symmetric": false, "granularity": "CHANNELWISE", "dtype": "INT"}`, wo), "weight_only_int4_asym", "", 0, false},
		{aeqRule(".*", "*", AEQMinMax, `{"num_bits": 4, "granularity": "CHANNELWISE"}`, wo), "weight_only_int4", "", 0, false},
		{aeqRule(".*", "*", AEQMinMax, `{"num_bits": 4}`, wo), "weight_only_int4_per_tensor", "", 0, false},
		{aeqRule(".*", "*", AEQMinMax, `{"num_bits": 4, "symmetric": false, "granularity": "TENSORWISE"}`, wo), "weight_only_int4_asym_per_tensor", "", 0, false},
		{aeqRule(".*", "BATCH_MATMUL", AEQMinMax, `{"num_bits": 4, "granularity": "CHANNELWISE"}`, wo), "weight_only_int4", "BATCH_MATMUL", 0, false},
		{aeqRule(".*", "*", AEQFloatCast, fp16W, `, "compute_precision": "FLOAT", "explicit_dequantize": true`), "fp16", "", 0, false},
		// Float casting reads neither symmetric nor granularity.
		{aeqRule(".*", "*", AEQFloatCast, `{"num_bits": 16, "symmetric": false, "granularity": "CHANNELWISE", "dtype": "FLOAT"}`, `, "compute_precision": "FLOAT"`), "fp16", "", 0, false},
		{aeqRule(".*", "*", AEQMinMax, int8CW, dyn+`, "min_weight_elements": 1024, "skip_checks": false`), "dynamic_int8", "", 1024, false},
		{aeqRule(".*", "*", AEQMinMax, int8CW, dyn+`, "skip_checks": true`), "dynamic_int8", "", 0, true},
		{aeqRule(".*", "CONV_2D_TRANSPOSE", AEQMinMax, int8CW, wo), "weight_only_int8", "TRANSPOSE_CONV", 0, false},
		{`{"regex": "x", "operation": "CONV_2D", "algorithm_key": "no_quantize"}`, "none", "CONV_2D", 0, false},
		{`{"regex": "x", "operation": "*", "algorithm_key": "no_quantize", "op_config": {"weight_tensor_config": {"num_bits": 3}}}`, "none", "", 0, false},
	} {
		r, err := ParseAEQRecipe("r.json", []byte("["+c.rule+"]"))
		if err != nil {
			t.Errorf("%s: %v", c.rule, err)
			continue
		}
		if len(r.Rules) != 1 {
			t.Fatalf("%s: %d rules", c.rule, len(r.Rules))
		}
		got := r.Rules[0]
		if got.Scheme.Name != c.scheme || got.Op != c.op || got.MinWeightElements != c.minElems || got.SkipChecks != c.skip {
			t.Errorf("%s: got %s op %q min %d skip %t; want %s op %q min %d skip %t", c.rule, got.Scheme.Name, got.Op, got.MinWeightElements, got.SkipChecks, c.scheme, c.op, c.minElems, c.skip)
		}
		if r.Name != "r" || r.Suffix != "r" || r.AEQ != "r.json" {
			t.Errorf("name %q suffix %q file %q", r.Name, r.Suffix, r.AEQ)
		}
	}
}

// TestAEQEffectiveOrder: rules are filed under their regex in order of
// first appearance; "*" replaces the regex's rules, an op rule replaces the
// same op's rule or is appended (recipe_manager.py).
func TestAEQEffectiveOrder(t *testing.T) {
	rules := []string{
		aeqRule(".*", "*", AEQMinMax, int8CW, dyn),                                 // 0: replaced by 4
		aeqRule("attn", "FULLY_CONNECTED", AEQMinMax, int4B32, dyn),                // 1: replaced in place by 3
		aeqRule("attn", "EMBEDDING_LOOKUP", AEQMinMax, int8CW, dyn),                // 2
		aeqRule("attn", "FULLY_CONNECTED", AEQMinMax, int8CW, wo),                  // 3
		aeqRule(".*", "*", AEQFloatCast, fp16W, wo),                                // 4: stays first
		aeqRule("mlp", "*", AEQMinMax, int8CW, dyn),                                // 5
		`{"regex": "mlp", "operation": "CONV_2D", "algorithm_key": "no_quantize"}`, // 6: appended to 5
	}
	r, err := ParseAEQRecipe("r.json", []byte("["+strings.Join(rules, ",\n")+"]"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rule := range r.Rules {
		got = append(got, fmt.Sprintf("%d:%s", rule.Index, rule.Scheme.Name))
	}
	want := "4:fp16 3:weight_only_int8 2:dynamic_int8 5:dynamic_int8 6:none"
	if strings.Join(got, " ") != want {
		t.Errorf("order %s, want %s", strings.Join(got, " "), want)
	}
	if !r.Rules[1].Matches("FULLY_CONNECTED", "a/attn/b;") || r.Rules[1].Matches("CONV_2D", "attn;") || r.Rules[1].Matches("FULLY_CONNECTED", "mlp;") {
		t.Error("Matches ignores the op filter or the regex")
	}
}

// TestAEQRejections: what qpipe cannot do, and malformed files, are errors
// at the line and column of the offending field, naming the rule.
func TestAEQRejections(t *testing.T) {
	for _, c := range []struct {
		name, src, pos string
		subs           []string
	}{
		{"per-channel activations", "[\n" + aeqRule(".*", "*", AEQMinMax, int8CW, dyn+`, "activation_tensor_config": {"num_bits": 8, "symmetric": false, "granularity": "CHANNELWISE", "dtype": "INT"}`) + "]",
			"2:341", []string{"rules[0].op_config.activation_tensor_config.granularity", "per tensor"}},
		{"mse", `[` + aeqRule(".*", "*", "MSE", int8CW, dyn) + `]`, "1:53", []string{"rules[0].algorithm_key", "rule 0: algorithm MSE", "not one qpipe runs"}},
		{"octav", `[` + aeqRule(".*", "*", "OCTAV", int4B32, dyn) + `]`, "1:53", []string{"algorithm OCTAV"}},
		{"gptq", `[` + aeqRule(".*", "*", "GPTQ", int8CW, dyn) + `]`, "1:53", []string{"GPTQ (needs calibration data)"}},
		{"hadamard", `[` + aeqRule(".*", "*", "DECOMPOSED_HADAMARD_ROTATION", int8CW, dyn) + `]`, "1:53", []string{"DECOMPOSED_HADAMARD_ROTATION"}},
		{"unknown algorithm", `[` + aeqRule(".*", "*", "min_max_uniform_quantise", int8CW, dyn) + `]`, "1:53", []string{`unknown algorithm "min_max_uniform_quantise"`, `did you mean "min_max_uniform_quantize"?`}},
		{"points at a file", `{"default": "dynamic_wi8_afp32_recipe.json"}`, "1:1", []string{"names another recipe file", "dynamic_wi8_afp32_recipe.json"}},
		{"dynamic int4 channelwise", `[` + aeqRule(".*", "*", AEQMinMax, `{"num_bits": 4, "granularity": "CHANNELWISE"}`, dyn) + `]`, "1:150", []string{"rules[0].op_config.weight_tensor_config.granularity", "dynamic-range int4 CHANNELWISE", "weight-only"}},
		{"int2", `[` + aeqRule(".*", "*", AEQMinMax, `{"num_bits": 2, "granularity": "CHANNELWISE"}`, dyn) + `]`, "1:132", []string{"num_bits", "2-bit"}},
		{"num_bits 5", `[` + aeqRule(".*", "*", AEQMinMax, `{"num_bits": 5, "granularity": "CHANNELWISE"}`, dyn) + `]`, "1:132", []string{"num_bits 5"}},
		{"int16 weights", `[` + aeqRule(".*", "*", AEQMinMax, `{"num_bits": 16, "granularity": "CHANNELWISE"}`, dyn) + `]`, "1:132", []string{"16-bit integer weights"}},
		{"missing num_bits", `[` + aeqRule(".*", "*", AEQMinMax, `{"granularity": "CHANNELWISE"}`, dyn) + `]`, "1:119", []string{"missing num_bits"}},
		{"dynamic asymmetric", `[` + aeqRule(".*", "*", AEQMinMax, int8AC, dyn) + `]`, "1:94", []string{"must be symmetric"}},
		{"int8 blockwise", `[` + aeqRule(".*", "*", AEQMinMax, `{"num_bits": 8, "granularity": "BLOCKWISE_32"}`, dyn) + `]`, "1:150", []string{"blockwise is int4 only"}},
		{"int4 weight-only blockwise", `[` + aeqRule(".*", "*", AEQMinMax, int4B32, wo) + `]`, "1:223", []string{"dynamic-range only"}},
		{"int4 asymmetric", `[` + aeqRule(".*", "*", AEQMinMax, `{"num_bits": 4, "symmetric": false, "granularity": "BLOCKWISE_32"}`, dyn) + `]`, "1:94", []string{"int4 blockwise weights must be symmetric"}},
		{"float compute without dequantize", `[` + aeqRule(".*", "*", AEQMinMax, int8CW, `, "compute_precision": "FLOAT"`) + `]`, "1:94", []string{"explicit_dequantize", "quantize nothing"}},
		{"integer compute with dequantize", `[` + aeqRule(".*", "*", AEQMinMax, int8CW, `, "compute_precision": "INTEGER", "explicit_dequantize": true`) + `]`, "1:256", []string{"INTEGER with explicit_dequantize true"}},
		{"min-max float dtype", `[` + aeqRule(".*", "*", AEQMinMax, `{"num_bits": 16, "dtype": "FLOAT"}`, wo) + `]`, "1:145", []string{"needs dtype INT", "float_casting"}},
		{"float casting int8", `[` + aeqRule(".*", "*", AEQFloatCast, int8CW, wo) + `]`, "1:121", []string{"num_bits must be 16"}},
		{"float casting integer compute", `[` + aeqRule(".*", "*", AEQFloatCast, fp16W, dyn) + `]`, "1:165", []string{"only with compute_precision FLOAT"}},
		{"block size 48", `[` + aeqRule(".*", "*", AEQMinMax, `{"num_bits": 4, "block_size": 48}`, dyn) + `]`, "1:149", []string{"block_size 48", "32, 64, 128 or 256"}},
		{"block size contradicts", `[` + aeqRule(".*", "*", AEQMinMax, `{"num_bits": 4, "granularity": "BLOCKWISE_32", "block_size": 64}`, dyn) + `]`, "1:180", []string{"block_size 64 contradicts granularity BLOCKWISE_32"}},
		{"BLOCKWISE without size", `[` + aeqRule(".*", "*", AEQMinMax, `{"num_bits": 4, "granularity": "BLOCKWISE"}`, dyn) + `]`, "1:150", []string{"BLOCKWISE needs a block size"}},
		{"op refuses scheme", `[` + aeqRule(".*", "CONV_2D", AEQMinMax, int4B32, dyn) + `]`, "1:31", []string{"rules[0].operation", "refuses dynamic_int4_block32 on CONV_2D"}},
		{"unknown op", `[` + aeqRule(".*", "FULLY_CONECTED", AEQMinMax, int8CW, dyn) + `]`, "1:31", []string{"unknown operation", `did you mean "FULLY_CONNECTED"?`}},
		{"TFL spelling of transpose conv", `[` + aeqRule(".*", "TRANSPOSE_CONV", AEQMinMax, int8CW, dyn) + `]`, "1:31", []string{"unknown operation", "CONV_2D_TRANSPOSE"}},
		{"lookahead", `[` + aeqRule("(?=attn).*", "*", AEQMinMax, int8CW, dyn) + `]`, "1:12", []string{"rules[0].regex", "RE2", "lookarounds"}},
		{"unknown field", `[{"regex": ".*", "operation": "*", "algorithm_key": "no_quantize", "op_confg": {}}]`, "1:68", []string{`unknown field "op_confg"`, `did you mean "op_config"?`}},
		{"channel_wise", `[` + aeqRule(".*", "*", AEQMinMax, `{"num_bits": 8, "channel_wise": true}`, dyn) + `]`, "1:135", []string{`unknown field "channel_wise"`, "granularity"}},
		{"op_scope_regex", `[{"op_scope_regex": ".*", "operations": ["*"], "algorithm_key": "no_quantize"}]`, "1:3", []string{`unknown field "op_scope_regex"`, "write regex"}},
		{"missing keys", `[{"algorithm_key": "no_quantize"}]`, "1:2", []string{"missing regex and operation"}},
		{"missing op_config", `[{"regex": ".*", "operation": "*", "algorithm_key": "min_max_uniform_quantize"}]`, "1:2", []string{"missing op_config"}},
		{"missing weight config", `[{"regex": ".*", "operation": "*", "algorithm_key": "min_max_uniform_quantize", "op_config": {"compute_precision": "INTEGER"}}]`, "1:94", []string{"missing weight_tensor_config"}},
		{"duplicate key", "[{\"regex\": \".*\",\n \"regex\": \"x\", \"operation\": \"*\", \"algorithm_key\": \"no_quantize\"}]", "2:2", []string{`duplicate key "regex" (first at line 1, column 3)`}},
		{"wrong type", `[` + aeqRule(".*", "*", AEQMinMax, `{"num_bits": "8"}`, dyn) + `]`, "1:132", []string{"expected an integer, got the string \"8\""}},
		{"bool as string", `[` + aeqRule(".*", "*", AEQMinMax, `{"num_bits": 8, "symmetric": "true"}`, dyn) + `]`, "1:148", []string{"expected true or false"}},
		{"lower-case enum", `[` + aeqRule(".*", "*", AEQMinMax, `{"num_bits": 8, "granularity": "channelwise"}`, dyn) + `]`, "1:150", []string{`unknown value "channelwise"`, `did you mean "CHANNELWISE"?`}},
		{"negative min elements", `[` + aeqRule(".*", "*", AEQMinMax, int8CW, dyn+`, "min_weight_elements": -1`) + `]`, "1:286", []string{"must not be negative"}},
		{"empty list", `[]`, "1:1", []string{"no rules"}},
		{"not a list", `"dynamic_wi8_afp32"`, "1:1", []string{"expected a list of rules", "the string"}},
		{"rule not an object", `[1]`, "1:2", []string{"rules[0]", "expected an object, got the number 1"}},
		{"syntax: trailing comma", "[\n  {\"regex\": \".*\",}\n]", "2:18", []string{"invalid JSON"}},
		{"syntax: truncated", "[\n  {\"regex\": ", "2:13", []string{"ends before the value is complete"}},
		{"syntax: comment", "[\n// note\n]", "2:1", []string{"invalid JSON", "invalid character '/'"}},
		{"trailing data", "[{\"regex\": \"x\", \"operation\": \"*\", \"algorithm_key\": \"no_quantize\"}]\n[]", "2:1", []string{"after top-level value"}},
		{"too deep", strings.Repeat("[", 40) + strings.Repeat("]", 40), "1:33", []string{"nested more than 32 levels"}},
		{"column counts characters", "[{\"regex\": \"é\", \"operation\": \"é\", \"algorithm_key\": \"no_quantize\"}]", "1:30", []string{`unknown operation "é"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseAEQRecipe("r.json", []byte(c.src))
			if err == nil {
				t.Fatal("accepted")
			}
			var ds Diagnostics
			if !errors.As(err, &ds) || len(ds) == 0 {
				t.Fatalf("error %T %v is not Diagnostics", err, err)
			}
			if got := ds[0].Pos.String(); got != "r.json:"+c.pos {
				t.Errorf("at %s, want r.json:%s (%v)", got, c.pos, err)
			}
			for _, sub := range c.subs {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("%q lacks %q", err, sub)
				}
			}
		})
	}
}

// TestAEQEveryProblemReported: several bad rules are reported together.
func TestAEQEveryProblemReported(t *testing.T) {
	src := "[\n" + aeqRule(".*", "*", "MSE", int8CW, dyn) + ",\n" + aeqRule(".*", "*", AEQMinMax, `{"num_bits": 4}`, dyn) + "\n]"
	_, err := ParseAEQRecipe("r.json", []byte(src))
	var ds Diagnostics
	if !errors.As(err, &ds) || len(ds) != 2 || !strings.Contains(ds[0].Error(), "rule 0") || !strings.Contains(ds[1].Error(), "rule 1") {
		t.Fatalf("want two problems, rule 0 and rule 1: %v", err)
	}
}

// TestAEQExportEveryPreset: every preset exports to rules that import back
// to the same scheme for every op (the stages test compares the outputs).
func TestAEQExportEveryPreset(t *testing.T) {
	for _, p := range Presets() {
		r, err := Preset(p.Name)
		if err != nil {
			t.Fatal(err)
		}
		rules, err := r.AEQRules()
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		data, err := MarshalAEQ(rules)
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		back, err := ParseAEQRecipe(p.Name+".json", data)
		if err != nil {
			t.Fatalf("%s: export does not import:\n%s\n%v", p.Name, data, err)
		}
		if r.Static != nil {
			if back.Static == nil || back.Static.String() != r.Static.String() {
				t.Fatalf("%s: imports as %v, want static %v", p.Name, back, r.Static)
			}
			rules, err := back.AEQRules()
			if err != nil {
				t.Fatal(err)
			}
			if again, err := MarshalAEQ(rules); err != nil || string(again) != string(data) {
				t.Errorf("%s: export is not stable:\n%s\n%s", p.Name, data, again)
			}
			continue
		}
		if len(back.Rules) != 1 || back.Rules[0].Pattern != ".*" || back.Rules[0].Op != "" {
			t.Fatalf("%s: rules %+v", p.Name, back.Rules)
		}
		want := r.Resolve(RoleDefault, -1)
		got := back.Rules[0].Scheme
		if want == nil && !got.IsNone() || want != nil && got.Name != want.Name {
			t.Errorf("%s: round trip gives %s", p.Name, got.Name)
		}
		again, err := MarshalAEQ(back.Rules)
		if err != nil || string(again) != string(data) {
			t.Errorf("%s: export is not stable:\n%s\n%s", p.Name, data, again)
		}
	}
}

func TestAEQExportRefusals(t *testing.T) {
	r, err := Preset("dynamic_int4_block96")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := r.AEQRules()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := MarshalAEQ(rules); err == nil || !strings.Contains(err.Error(), "blocks are 32, 64, 128 or 256") {
		t.Errorf("block 96: %v", err)
	}
	s, err := ParseScheme("dynamic_int8")
	if err != nil {
		t.Fatal(err)
	}
	custom := &Recipe{Name: "custom", Default: &RoleRecipe{All: s}, Attention: &RoleRecipe{All: s}}
	if _, err := custom.AEQRules(); err == nil || !strings.Contains(err.Error(), "qpipe plan JOB --export-aeq") {
		t.Errorf("role slots: %v", err)
	}
}

// TestAEQJobRecipe: `recipe: {aeq: FILE}` reads the file relative to the
// job file; its problems are reported in the recipe file.
func TestAEQJobRecipe(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "recipes"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("recipes/wo.json", "["+aeqRule(".*", "*", AEQMinMax, int8AC, wo)+"]")
	write("recipes/bad.json", "[\n"+aeqRule(".*", "*", "OCTAV", int8CW, dyn)+"]")
	job := func(recipe string) string {
		return "version: 1\nstages:\n  - load: {path: m.tflite}\n  - quantize: {recipe: " + recipe + "}\n  - serialize: {path: \"out/{name}_{suffix}.tflite\"}\n"
	}
	j, err := ParseJob(filepath.Join(dir, "job.yaml"), []byte(job("{aeq: recipes/wo.json}")))
	if err != nil {
		t.Fatal(err)
	}
	r := j.Quantize().Recipes[0]
	if r.Name != "wo" || len(r.Rules) != 1 || r.Rules[0].Scheme.Name != "weight_only_int8_asym" || r.AEQ != filepath.Join(dir, "recipes/wo.json") {
		t.Fatalf("recipe %+v", r)
	}
	if got := j.Outputs()[0].Path; got != filepath.Join(dir, "out/job_wo.tflite") {
		t.Errorf("output %s", got)
	}
	j, err = ParseJob(filepath.Join(dir, "job.yaml"), []byte(job("{aeq: recipes/wo.json, name: mine, suffix: q8_aeq}")))
	if err != nil || j.Outputs()[0].Path != filepath.Join(dir, "out/job_q8_aeq.tflite") || j.Quantize().Recipes[0].Name != "mine" {
		t.Fatalf("name/suffix: %v", err)
	}
	for _, c := range []struct{ recipe, want string }{
		{"{aeq: recipes/bad.json}", filepath.Join(dir, "recipes/bad.json") + ":2:52: rules[0].algorithm_key: rule 0: algorithm OCTAV"},
		{"{aeq: recipes/missing.json}", "job.yaml:4:30: quantize.recipe.aeq: config: read AI Edge Quantizer recipe"},
		{"{aeq: recipes/wo.json, default: dynamic_int8}", `job.yaml:4:47: quantize.recipe: unknown key "default"`},
		{"{aeq: \"\"}", "quantize.recipe.aeq: "},
	} {
		_, err := ParseJob(filepath.Join(dir, "job.yaml"), []byte(job(c.recipe)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want %q", c.recipe, err, c.want)
		}
	}
}

// FuzzParseAEQRecipe: arbitrary bytes never panic; an error is positioned
// Diagnostics; an accepted recipe exports and imports back to the same
// rules.
func FuzzParseAEQRecipe(f *testing.F) {
	f.Add([]byte("[" + aeqRule(".*", "*", AEQMinMax, int8CW, dyn) + "]"))
	f.Add([]byte("[" + aeqRule("attn", "FULLY_CONNECTED", AEQMinMax, int4B32, dyn+`, "min_weight_elements": 10`) + "," + aeqRule(".*", "*", AEQFloatCast, fp16W, wo) + "]"))
	f.Add([]byte(`[{"regex": "x", "operation": "CONV_2D", "algorithm_key": "no_quantize"}]`))
	f.Add([]byte(`{"default": "a.json"}`))
	f.Add([]byte("[\n  {\"regex\": \".*\",}\n]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseAEQRecipe("f.json", data)
		if err != nil {
			var ds Diagnostics
			if !errors.As(err, &ds) || len(ds) == 0 {
				t.Fatalf("error %T %v is not Diagnostics", err, err)
			}
			for _, d := range ds {
				if d.Pos.File != "f.json" || d.Pos.Line < 1 || d.Pos.Col < 1 || d.Msg == "" {
					t.Fatalf("bad diagnostic %+v", d)
				}
			}
			return
		}
		out, err := MarshalAEQ(r.Rules)
		if err != nil {
			t.Fatalf("accepted recipe does not export: %v", err)
		}
		back, err := ParseAEQRecipe("g.json", out)
		if err != nil {
			t.Fatalf("export does not import: %v\n%s", err, out)
		}
		if len(back.Rules) != len(r.Rules) {
			t.Fatalf("%d rules came back as %d", len(r.Rules), len(back.Rules))
		}
		for i := range r.Rules {
			a, b := r.Rules[i], back.Rules[i]
			if a.Pattern != b.Pattern || a.Op != b.Op || a.Scheme.Name != b.Scheme.Name || a.MinWeightElements != b.MinWeightElements || a.SkipChecks != b.SkipChecks {
				t.Fatalf("rule %d: %+v came back as %+v", i, a, b)
			}
		}
	})
}

// The reference quantizer's static recipes import as qpipe's static
// recipes: default_a8w8 / default_a16w8 as written (integer I/O), and
// with INPUT and OUTPUT kept float, an op type and a scope kept float.
func TestAEQStaticImport(t *testing.T) {
	rule := func(bits int, sym bool) string {
		return fmt.Sprintf(`{"regex": ".*", "operation": "*", "algorithm_key": "min_max_uniform_quantize",
 "op_config": {"activation_tensor_config": {"num_bits": %d, "symmetric": %t, "granularity": "TENSORWISE", "dtype": "INT"},
               "weight_tensor_config": {"num_bits": 8, "symmetric": true, "granularity": "CHANNELWISE", "dtype": "INT"},
               "compute_precision": "INTEGER", "explicit_dequantize": false, "skip_checks": false, "min_weight_elements": 0}}`, bits, sym)
	}
	noq := func(re, op string) string {
		return fmt.Sprintf(`{"regex": %q, "operation": %q, "algorithm_key": "no_quantize"}`, re, op)
	}
	for _, tc := range []struct{ name, text, want string }{
		{"default_a8w8_recipe", "[" + rule(8, false) + "]", "int8 asymmetric activations, integer I/O, minmax"},
		{"default_a16w8_recipe", "[" + rule(16, true) + "]", "int16 symmetric activations, integer I/O, minmax"},
		{"float_io", "[" + rule(8, true) + "," + noq(".*", "INPUT") + "," + noq(".*", "OUTPUT") + "," + noq(".*", "SOFTMAX") + "," + noq("lm_head", "*") + "]",
			"int8 symmetric activations, float I/O, minmax, float SOFTMAX, float outputs /lm_head/"},
	} {
		r, err := ParseAEQRecipe(tc.name+".json", []byte(tc.text))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.Static == nil || r.Static.String() != tc.want || r.Name != tc.name {
			t.Errorf("%s: %s %v, want static %s", tc.name, r.Name, r.Static, tc.want)
		}
	}
	for _, tc := range []struct{ name, text, want string }{
		{"int16 asymmetric", "[" + rule(16, false) + "]", "asymmetric int16 activations"},
		{"mixed", "[" + rule(8, false) + "," + strings.Replace(rule(8, false), `"activation_tensor_config": {"num_bits": 8, "symmetric": false, "granularity": "TENSORWISE", "dtype": "INT"},`, "", 1) + "]", "mixing"},
		{"one of the I/O", "[" + rule(8, false) + "," + noq(".*", "INPUT") + "]", "only one of INPUT and OUTPUT"},
	} {
		_, err := ParseAEQRecipe(tc.name+".json", []byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}
