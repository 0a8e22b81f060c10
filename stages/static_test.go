package stages

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// A static job writes an integer model that reads back and passes verify;
// its plan notes list the integer ops and the ops kept float, with why.
func TestStaticJob(t *testing.T) {
	t.Setenv("QPIPE_CACHE_DIR", "off")
	dir, branches, err := runJobFile(t, `version: 1
stages:
  - load: {path: `+absModel(t, "tiny_decoder.tflite")+`}
  - quantize:
      recipe: {static: {activations: int16, float_ops: [LOGISTIC], float_outputs: 'final_norm'}}
      calibration: {samples: 4}
  - verify: {}
  - serialize: {path: "out_{suffix}.tflite"}
`)
	if err != nil {
		t.Fatal(err)
	}
	m, err := tflite.Open(filepath.Join(dir, "out_custom.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ints := 0
	for _, tt := range m.Meta.Subgraphs[0].Tensors {
		if tt.Type == fb.TensorTypeINT16 {
			ints++
		}
	}
	if ints == 0 {
		t.Error("no int16 tensor written")
	}
	notes := strings.Join(branches[0].Plan.Notes, "\n")
	for _, want := range []string{"integer ops: ", "LOGISTIC (output", "kept float by the job (op type)", `kept float by the job (output regex "final_norm")`, "EMBEDDING_LOOKUP", "its table int8 per row"} {
		if !strings.Contains(notes, want) {
			t.Errorf("plan notes do not say %q:\n%s", want, notes)
		}
	}
}

// Bad input is refused with the job file's line or the tensor, and
// nothing is written.
func TestStaticRefusals(t *testing.T) {
	t.Setenv("QPIPE_CACHE_DIR", "off")
	// A decoder whose MEANs are SUMs: LiteRT has no int16 SUM.
	m, err := tflite.Open(absModel(t, "tiny_decoder.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	sum := m.OperatorCodeIndex(fb.BuiltinOperatorSUM, 1)
	for _, op := range m.Meta.Subgraphs[0].Operators {
		if m.OpCode(op) == fb.BuiltinOperatorMEAN {
			op.OpcodeIndex = sum
		}
	}
	sums := filepath.Join(t.TempDir(), "sums.tflite")
	if err := tflite.WriteFile(context.Background(), sums, m, tflite.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	if err := os.WriteFile(bad, []byte("{\"tokens\": [1, 2, 3]}\n{\"tokens\": [1, 2, 3, 4, 5, 6, 7, 8, 9]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, model, quantize string
		want                  []string
	}{
		{"int16 op without kernel", sums, "recipe: {static: {activations: int16, ops: [FULLY_CONNECTED, SUM]}}",
			[]string{"job.yaml:5:", "SUM (output", "RMSNorm", "no int16 kernel"}},
		{"already quantized", absModel(t, "aeq_mnist_quantized.tflite"), "recipe: static_int8",
			[]string{`"arith.constant"`, "already quantized"}},
		{"calibration file", absModel(t, "tiny_decoder.tflite"), "recipe: static_int8\n      calibration: {inputs: " + bad + "}",
			[]string{"bad.jsonl:1", "tokens"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _, err := runJobFile(t, `version: 1
stages:
  - load: {path: `+tc.model+`}
  - quantize:
      `+tc.quantize+`
  - serialize: {path: "out.tflite"}
`)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q: %v", w, err)
				}
			}
			if _, serr := os.Stat(filepath.Join(dir, "out.tflite")); serr == nil {
				t.Error("an output was written")
			}
		})
	}
}

// Static and weight-only recipes in one job: each branch rewrites its own
// copy, so the dynamic_int8 output is the bytes of a job of its own.
func TestStaticBesideOtherRecipes(t *testing.T) {
	t.Setenv("QPIPE_CACHE_DIR", "off")
	model := absModel(t, "aeq_conv_fc_mnist.tflite")
	dir, _, err := runJobFile(t, `version: 1
stages:
  - load: {path: `+model+`}
  - quantize:
      recipes: [static_int8, static_int16x8, dynamic_int8]
      calibration: {samples: 4}
  - serialize: {path: "out_{suffix}.tflite"}
`)
	if err != nil {
		t.Fatal(err)
	}
	alone, _, err := runJobFile(t, `version: 1
stages:
  - load: {path: `+model+`}
  - quantize: {recipe: dynamic_int8}
  - serialize: {path: "out_{suffix}.tflite"}
`)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := fileSum(t, filepath.Join(dir, "out_q8.tflite")), fileSum(t, filepath.Join(alone, "out_q8.tflite")); a != b {
		t.Errorf("dynamic_int8 beside static recipes %s, alone %s", a, b)
	}
	for _, s := range []string{"a8w8", "a16w8"} {
		m, err := tflite.Open(filepath.Join(dir, "out_"+s+".tflite"))
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
	}
}
