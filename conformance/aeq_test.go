package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/litert"
)

// TestAEQSchemesOnRuntime runs the schemes only AI Edge Quantizer recipes
// reach — tensorwise int8 (TENSORWISE) and weight-only int4 per channel or
// per tensor — on LiteRT.js like the presets:
// each quantized model must load, stay within its family's bounds against
// its dequantized reference and the float model, and pass the static checks.
func TestAEQSchemesOnRuntime(t *testing.T) {
	s := &suite{runner: litert.Require(t), mutants: map[string][]*mutantResult{}}
	const rule = `[{"regex": ".*", "operation": "*", "algorithm_key": "min_max_uniform_quantize", "op_config": {"weight_tensor_config": {"num_bits": %d, "symmetric": %t, "granularity": %q, "dtype": "INT"}, "compute_precision": %q, "explicit_dequantize": %t}}]`
	dir := t.TempDir()
	var recipes []*config.Recipe
	families := map[string]Family{}
	for _, c := range []struct {
		name        string
		bits        int
		symmetric   bool
		granularity string
		weightOnly  bool
		family      Family
	}{
		{"aeq_dynamic_int8_tensorwise", 8, true, "TENSORWISE", false, FamilyDynamicInt8PerTensor},
		{"aeq_weight_only_int8_tensorwise", 8, true, "TENSORWISE", true, FamilyWeightOnlyInt8PerTensor},
		{"aeq_weight_only_int8_asym_tensorwise", 8, false, "TENSORWISE", true, FamilyWeightOnlyInt8PerTensor},
		{"aeq_weight_only_int4_channelwise", 4, true, "CHANNELWISE", true, FamilyWeightOnlyInt4},
		{"aeq_weight_only_int4_asym_channelwise", 4, false, "CHANNELWISE", true, FamilyWeightOnlyInt4},
		{"aeq_weight_only_int4_asym_tensorwise", 4, false, "TENSORWISE", true, FamilyWeightOnlyInt4PerTensor},
	} {
		compute := "INTEGER"
		if c.weightOnly {
			compute = "FLOAT"
		}
		path := filepath.Join(dir, c.name+".json")
		if err := os.WriteFile(path, []byte(fmt.Sprintf(rule, c.bits, c.symmetric, c.granularity, compute, c.weightOnly)), 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := config.LoadAEQRecipe(path)
		if err != nil {
			t.Fatal(err)
		}
		recipes = append(recipes, r)
		families[r.Name] = c.family
	}
	paths, err := filepath.Glob(filepath.Join(modelsDir, "*.tflite"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no test models in %s", modelsDir)
	}
	for _, path := range paths {
		m, err := s.loadModel(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recipes {
			res, err := s.runRecipe(m, r, families[r.Name])
			if err != nil {
				t.Fatalf("%s/%s: %v", m.short(), r.Name, err)
			}
			if res.notApplicable != "" {
				// Only a hybrid per-tensor depthwise convolution is refused:
				// LiteRT computes it wrong (stages.pick).
				if !strings.Contains(res.notApplicable, "DEPTHWISE_CONV_2D") {
					t.Errorf("%s: not applicable: %s", res.name(), res.notApplicable)
				}
				continue
			}
			t.Logf("%-60s quantized %2d  vs float rel L2 %.3g max %.3g  vs ref rel L2 %.3g max %.3g  %s", res.name(), res.quantized,
				res.vsFloat.RelL2, res.vsFloat.RelMax, res.vsRef.RelL2, res.vsRef.RelMax, m.refused)
			for _, bad := range res.verdict() {
				t.Errorf("%s: %s", res.name(), bad)
			}
		}
	}
}
