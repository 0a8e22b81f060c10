package interp

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// zeroInputs returns valid inputs of the signature (zeros; ids 0).
func zeroInputs(sig Signature) map[string]*Tensor {
	args := map[string]*Tensor{}
	for _, io := range sig.Inputs {
		shape := make([]int, len(io.Shape))
		for i, d := range io.Shape {
			shape[i] = max(d, 1)
		}
		args[io.Name] = NewTensor(io.Type, shape)
	}
	return args
}

// runAll runs every signature of m on zero inputs; any failure is an error,
// a panic fails the test.
func runAll(m *tflite.Model) error {
	in, err := New(m, Options{Threads: 2})
	if err != nil {
		return err
	}
	for _, s := range in.Signatures() {
		if _, err := in.Run(context.Background(), s.Key, zeroInputs(s)); err != nil {
			return err
		}
	}
	return nil
}

// TestInconsistentShapesAreErrors corrupts, one at a time, the declared
// shape of every tensor of real models (a dimension doubled, a dimension
// dropped, an extra one added) and runs the result: each run must end in a
// result or an error, never a panic; shape corruptions of activations the
// ops check must be reported naming the operator.
func TestInconsistentShapesAreErrors(t *testing.T) {
	models := []string{"tiny_decoder.tflite", "aeq_conv_fc_mnist.tflite", "aeq_single_conv2d_transpose_bias.tflite",
		"aeq_single_depthwise_conv2d_bias.tflite", "litert_simple_group_norm_op_bufoffset.tflite", "aeq_bmm.tflite",
		"aeq_single_gather.tflite", "aeq_mnist_quantized.tflite", "litert_qwen_fc_blockwise_quantized.tflite", "tflm_person_detect.tflite"}
	mutations := []struct {
		name string
		f    func([]int32) []int32
	}{
		{"double first", func(s []int32) []int32 {
			if len(s) == 0 {
				return []int32{2}
			}
			r := append([]int32{}, s...)
			r[0] *= 2
			return r
		}},
		{"drop last", func(s []int32) []int32 {
			if len(s) == 0 {
				return s
			}
			return append([]int32{}, s[:len(s)-1]...)
		}},
		{"add one", func(s []int32) []int32 { return append([]int32{3}, s...) }},
		{"zero", func(s []int32) []int32 {
			r := append([]int32{}, s...)
			if len(r) > 0 {
				r[len(r)-1] = 0
			}
			return r
		}},
	}
	for _, name := range models {
		path := filepath.Join("../../testdata/models", name)
		m, err := tflite.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := runAll(m); err != nil {
			t.Fatalf("%s: unmodified model: %v", name, err)
		}
		errs, total := 0, 0
		for si, sg := range m.Meta.Subgraphs {
			for ti, tn := range sg.Tensors {
				for _, mu := range mutations {
					orig, origSig := tn.Shape, tn.ShapeSignature
					tn.Shape, tn.ShapeSignature = mu.f(orig), nil
					err := func() (err error) {
						defer func() {
							if r := recover(); r != nil {
								t.Errorf("%s: subgraph %d tensor %d (%q) shape %v -> %v (%s): panic: %v", name, si, ti, tn.Name, orig, tn.Shape, mu.name, r)
								err = fmt.Errorf("panic")
							}
						}()
						return runAll(m)
					}()
					tn.Shape, tn.ShapeSignature = orig, origSig
					total++
					if err != nil {
						errs++
					}
				}
			}
		}
		t.Logf("%s: %d of %d corrupted shapes refused", name, errs, total)
		m.Close()
	}
}

// TestRunRejectsBadInputs: wrong names, types, shapes and missing inputs
// are clear errors naming the input.
func TestRunRejectsBadInputs(t *testing.T) {
	m, err := tflite.Open("../../testdata/models/tiny_decoder.tflite")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	in, err := New(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sig := in.Signatures()[0]
	ok := zeroInputs(sig)
	name := sig.Inputs[0].Name
	for _, c := range []struct {
		desc string
		args map[string]*Tensor
		want string
	}{
		{"missing", map[string]*Tensor{}, "is missing"},
		{"extra", map[string]*Tensor{name: ok[name], "bogus": ok[name]}, `no input "bogus"`},
		{"type", map[string]*Tensor{name: NewTensor(fb.TensorTypeFLOAT32, sig.Inputs[0].Shape)}, "type FLOAT32"},
		{"shape", map[string]*Tensor{name: NewTensor(fb.TensorTypeINT32, []int{3})}, "shape [3]"},
		{"short data", map[string]*Tensor{name: I32Tensor(sig.Inputs[0].Shape, []int32{1})}, "holds 1 elements"},
		{"id out of range", map[string]*Tensor{name: I32Tensor(sig.Inputs[0].Shape, make([]int32, 7, 8))}, "holds 7"},
	} {
		_, err := in.Run(context.Background(), sig.Key, c.args)
		if err == nil || !contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.desc, err, c.want)
		}
	}
	bad := I32Tensor(sig.Inputs[0].Shape, make([]int32, sig.Inputs[0].Shape[0]))
	bad.I32[3] = 1 << 20
	if _, err := in.Run(context.Background(), sig.Key, map[string]*Tensor{name: bad}); err == nil || !contains(err.Error(), "out of range") {
		t.Errorf("token id out of range: %v", err)
	}
	if _, err := in.Run(context.Background(), "nope", ok); err == nil || !contains(err.Error(), `no signature "nope"`) {
		t.Errorf("unknown signature: %v", err)
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
