package stages

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// TestOnMismatchFallback: with on_mismatch: fallback, a weight whose input
// dimension the recipe's block does not divide gets the next scheme that
// fits (a smaller block that divides it, else int8 channelwise), the plan
// reports it as fallback_from, every other weight keeps the recipe's
// scheme, and the output verifies.
func TestOnMismatchFallback(t *testing.T) {
	cases := []struct {
		model, recipe string
		// fallback is the scheme a weight of input dimension dim gets.
		fallback func(dim int32) string
	}{
		{"tiny_decoder_nodiv.tflite", "dynamic_int4_block256", func(dim int32) string {
			if dim%256 == 0 {
				return "dynamic_int4_block256"
			}
			if dim%32 != 0 {
				t.Fatalf("input dimension %d is not a multiple of 32", dim)
			}
			for b := int32(128); b >= 32; b /= 2 {
				if dim%b == 0 {
					return fmt.Sprintf("dynamic_int4_block%d", b)
				}
			}
			return ""
		}},
		{"aeq_single_fc.tflite", "dynamic_int4_block32", func(dim int32) string {
			if dim%32 == 0 {
				return "dynamic_int4_block32"
			}
			return "dynamic_int8"
		}},
	}
	for _, c := range cases {
		t.Run(c.model, func(t *testing.T) {
			in := absModel(t, c.model)
			dir, branches, err := runJobFile(t, fmt.Sprintf(`version: 1
stages:
  - load: {path: %q}
  - quantize: {recipe: %s}
  - verify: {on_mismatch: fallback}
  - serialize: {path: out.tflite}
`, in, c.recipe))
			if err != nil {
				t.Fatal(err)
			}
			plan := branches[0].Plan
			m := openModel(t, filepath.Join(dir, "out.tflite"))
			fallbacks := 0
			for _, w := range plan.Weights {
				want := c.fallback(w.Shape[len(w.Shape)-1])
				if w.Scheme == nil || *w.Scheme != want {
					t.Errorf("%q %v: scheme %v, want %s", w.Name, w.Shape, w.Scheme, want)
				}
				if want != c.recipe {
					fallbacks++
					if w.Fallback != c.recipe {
						t.Errorf("%q: fallback_from %q, want %q", w.Name, w.Fallback, c.recipe)
					}
				} else if w.Fallback != "" {
					t.Errorf("%q fits %s but reports fallback_from %q", w.Name, c.recipe, w.Fallback)
				}
				// The written tensor has the planned form.
				tt := m.Meta.Subgraphs[w.Subgraph].Tensors[w.Tensor]
				switch {
				case strings.HasPrefix(want, "dynamic_int4_block"):
					var b int32
					fmt.Sscanf(strings.TrimPrefix(want, "dynamic_int4_block"), "%d", &b)
					if tt.Type != fb.TensorTypeINT4 || tt.Quantization.Details.Value.(*fb.BlockwiseQuantizationT).BlockSize != b {
						t.Errorf("%q written as %s, want INT4 block %d", w.Name, tt.Type, b)
					}
				case want == "dynamic_int8":
					if tt.Type != fb.TensorTypeINT8 || len(tt.Quantization.Scale) != int(tt.Shape[0]) {
						t.Errorf("%q written as %s, want per-channel INT8", w.Name, tt.Type)
					}
				}
				if p := verifyTensor(m, w.Subgraph, w.Tensor, true); len(p) > 0 {
					t.Errorf("%q does not verify: %v", w.Name, p)
				}
			}
			if fallbacks == 0 {
				t.Fatal("no weight needed a fallback: the test model does not exercise it")
			}
			checkVersions(t, openModel(t, in), m)
			// The JSON plan carries it under fallback_from.
			b, err := json.Marshal(plan)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(b), `"fallback_from":"`+c.recipe+`"`); n != fallbacks {
				t.Errorf("JSON plan has %d fallback_from entries, want %d", n, fallbacks)
			}
			// The output's error is measured and sane for every tensor.
			for _, x := range branches[0].Output.Tensors {
				if !(x.SQNR > 10) {
					t.Errorf("%q (%s): SQNR %.1f dB", x.Tensor, x.Scheme, x.SQNR)
				}
			}
		})
	}
}
