package interp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/litert"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// fromLiteRT converts a runner tensor to an interpreter value.
func fromLiteRT(t litert.Tensor) (*Tensor, error) {
	switch t.DType {
	case "float32":
		return F32Tensor(append([]int{}, t.Shape...), t.Float32s()), nil
	case "int32":
		return I32Tensor(append([]int{}, t.Shape...), t.Int32s()), nil
	}
	return nil, fmt.Errorf("tensor %q: dtype %s", t.Name, t.DType)
}

// relL2 is ‖got − want‖₂ / ‖want‖₂ (0 when both are zero).
func relL2(want, got []float32) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// compareWithLiteRT runs every signature of the model at path on both the
// interpreter and LiteRT.js over seeds, and returns the worst rel L2 per
// output ("sig/output" → rel L2). skip is the reason the runtime or the
// interpreter cannot run the model.
func compareWithLiteRT(t testing.TB, r *litert.Runner, path string, seeds []int64) (worst map[string]float64, skip string) {
	t.Helper()
	info, err := r.Info(path)
	if err != nil {
		return nil, "runtime: " + err.Error()
	}
	m, err := tflite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	in, err := New(m, Options{})
	var ue *UnsupportedError
	if errors.As(err, &ue) {
		return nil, "interp: " + err.Error()
	}
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	vocab := litert.VocabSize(m.Meta)
	sigs := info.Signatures
	if len(sigs) == 0 {
		sigs = []litert.Signature{{Inputs: info.Inputs, Outputs: info.Outputs}}
	}
	worst = map[string]float64{}
	for _, sig := range sigs {
		isig := findSig(in, sig.Key)
		if isig == nil {
			t.Fatalf("%s: the interpreter has no signature %q", path, sig.Key)
		}
		for _, seed := range seeds {
			lin := litert.RandomTensors(sig.Inputs, seed, vocab)
			args := map[string]*Tensor{}
			for i, x := range lin {
				v, err := fromLiteRT(x)
				if err != nil {
					t.Fatal(err)
				}
				args[isig.Inputs[i].Name] = v
			}
			lout, err := r.RunSignature(path, sig.Key, lin)
			if err != nil {
				return nil, "runtime: " + err.Error()
			}
			got, err := in.Run(context.Background(), isig.Key, args)
			if err != nil {
				t.Fatalf("%s: signature %q seed %d: %v", path, sig.Key, seed, err)
			}
			for i, lo := range lout {
				name := isig.Outputs[i].Name
				g := got[name]
				if g == nil || g.Type != fb.TensorTypeFLOAT32 || lo.DType != "float32" {
					t.Fatalf("%s: output %q: interp %v, runtime %s", path, name, g, lo.DType)
				}
				want := lo.Float32s()
				if len(want) != len(g.F32) {
					t.Fatalf("%s: output %q: %d elements, runtime %d (%v vs %v)", path, name, len(g.F32), len(want), g.Shape, lo.Shape)
				}
				key := sig.Key + "/" + name
				worst[key] = max(worst[key], relL2(want, g.F32))
			}
		}
	}
	return worst, ""
}

func findSig(in *Interpreter, key string) *Signature {
	for i, s := range in.Signatures() {
		if s.Key == key {
			return &in.Signatures()[i]
		}
	}
	return nil
}

// TestFloatModelsMatchLiteRT: on every model in testdata/models that
// LiteRT.js runs, the interpreter's outputs match the runtime's to rel L2
// <= 1e-5 (every signature, seeds 1..3). The hybrid model among them
// (litert_qwen_fc_blockwise_quantized: int4 blockwise weights) checks the
// activation quantization emulation.
func TestFloatModelsMatchLiteRT(t *testing.T) {
	r := litert.Require(t)
	paths, _ := filepath.Glob("../../testdata/models/*.tflite")
	if len(paths) == 0 {
		t.Fatal("no test models")
	}
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".tflite")
		t.Run(name, func(t *testing.T) {
			worst, skip := compareWithLiteRT(t, r, p, []int64{1, 2, 3})
			if skip != "" {
				t.Skip(skip)
			}
			for k, v := range worst {
				t.Logf("%s: rel L2 %.3g", k, v)
				if v > 1e-5 {
					t.Errorf("%s: rel L2 %.3g vs LiteRT.js, want <= 1e-5", k, v)
				}
			}
		})
	}
}
