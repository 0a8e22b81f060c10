package interp

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/qpipe/qpipe/internal/litert"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// LiteRT.js takes and returns only float32, int32 and uint8 tensors, so an
// integer model is compared through a copy with float edges: every INT8 or
// INT16 graph input gets a QUANTIZE from a new FLOAT32 input, every such
// output a DEQUANTIZE to a new FLOAT32 output. The float inputs fed are
// (q − zp)·s for integers q drawn from the whole type range, which QUANTIZE
// maps back to q exactly; DEQUANTIZE is exact and invertible. So both
// runtimes compute the integer graph on the same integers, and the output
// integers are recovered as round(y/s) + zp.

// floatEdges returns a copy of m with float inputs and outputs (see above)
// and the quantization of each original integer output, in order.
func floatEdges(t testing.TB, m *tflite.Model) (*tflite.Model, []qparam, []fb.TensorType) {
	t.Helper()
	c, err := m.Clone()
	if err != nil {
		t.Fatal(err)
	}
	meta := c.Meta
	sg := meta.Subgraphs[0]
	code := func(op fb.BuiltinOperator) uint32 {
		for i, oc := range meta.OperatorCodes {
			if tflite.BuiltinCode(oc) == op {
				return uint32(i)
			}
		}
		meta.OperatorCodes = append(meta.OperatorCodes, &fb.OperatorCodeT{BuiltinCode: op, DeprecatedBuiltinCode: int8(min(int32(op), 127)), Version: 1})
		return uint32(len(meta.OperatorCodes) - 1)
	}
	addFloat := func(like *fb.TensorT, name string) int32 {
		meta.Buffers = append(meta.Buffers, &fb.BufferT{})
		c.Buffers = append(c.Buffers, tflite.Buffer{})
		sg.Tensors = append(sg.Tensors, &fb.TensorT{Name: name, Type: fb.TensorTypeFLOAT32, Shape: like.Shape, ShapeSignature: like.ShapeSignature, Buffer: uint32(len(meta.Buffers) - 1)})
		return int32(len(sg.Tensors) - 1)
	}
	// The TFLM person-detection model gives its rank-1 biases
	// quantized_dimension 3, which LiteRT refuses at load; no kernel reads
	// the bias scales, so the copy says 0.
	for _, tm := range sg.Tensors {
		if q := tm.Quantization; q != nil && int(q.QuantizedDimension) >= max(len(tm.Shape), 1) {
			q.QuantizedDimension = 0
		}
	}
	var pre, post []*fb.OperatorT
	for i, ti := range sg.Inputs {
		tm := sg.Tensors[ti]
		if !isIntAct(tm.Type) {
			continue
		}
		f := addFloat(tm, tm.Name+"_float")
		pre = append(pre, &fb.OperatorT{OpcodeIndex: code(fb.BuiltinOperatorQUANTIZE), Inputs: []int32{f}, Outputs: []int32{ti}})
		sg.Inputs[i] = f
	}
	var qs []qparam
	var types []fb.TensorType
	for i, ti := range sg.Outputs {
		tm := sg.Tensors[ti]
		qp := qparam{scale: 1}
		if isIntAct(tm.Type) {
			qp = qparam{scale: tm.Quantization.Scale[0], zp: int32(tm.Quantization.ZeroPoint[0])}
			f := addFloat(tm, tm.Name+"_float")
			post = append(post, &fb.OperatorT{OpcodeIndex: code(fb.BuiltinOperatorDEQUANTIZE), Inputs: []int32{ti}, Outputs: []int32{f}})
			sg.Outputs[i] = f
		}
		qs = append(qs, qp)
		types = append(types, tm.Type)
	}
	sg.Operators = append(append(pre, sg.Operators...), post...)
	if len(meta.SignatureDefs) > 0 {
		t.Fatal("floatEdges: models with signatures are not handled")
	}
	return c, qs, types
}

// allOutputs returns a copy of m where every integer activation an
// operator computes is a graph output too, so that agreement is measured
// layer by layer.
func allOutputs(t testing.TB, m *tflite.Model) *tflite.Model {
	c, err := m.Clone()
	if err != nil {
		t.Fatal(err)
	}
	sg := c.Meta.Subgraphs[0]
	isOut := map[int32]bool{}
	for _, o := range sg.Outputs {
		isOut[o] = true
	}
	for _, op := range sg.Operators {
		for _, o := range op.Outputs {
			if !isOut[o] && isIntAct(sg.Tensors[o].Type) {
				sg.Outputs = append(sg.Outputs, o)
				isOut[o] = true
			}
		}
	}
	return c
}

// intInputs draws integers over each integer input's whole range (seeded)
// and returns them for the integer model and as floats for its copy.
func intInputs(m *tflite.Model, seed int64) (ints, floats map[string]*Tensor, err error) {
	in, err := New(m, Options{})
	if err != nil {
		return nil, nil, err
	}
	sg := m.Meta.Subgraphs[0]
	ints, floats = map[string]*Tensor{}, map[string]*Tensor{}
	for k, io := range in.Signatures()[0].Inputs {
		tm := sg.Tensors[io.Tensor]
		if !isIntAct(tm.Type) {
			return nil, nil, fmt.Errorf("input %q is %s", tm.Name, tflite.TypeName(tm.Type))
		}
		n := numElements(io.Shape)
		lo, hi := qrange(tm.Type)
		if q := tm.Quantization; len(q.Min) == 1 {
			// A recorded minimum bounds the draw (RSQRT takes no
			// negative values).
			lo = max(lo, int32(math.Round(float64(q.Min[0]/q.Scale[0])))+int32(q.ZeroPoint[0]))
		}
		q := NewTensor(tm.Type, io.Shape)
		f := NewTensor(fb.TensorTypeFLOAT32, io.Shape)
		s, zp := tm.Quantization.Scale[0], int32(tm.Quantization.ZeroPoint[0])
		st := uint64(seed)*0x9E3779B97F4A7C15 + uint64(k+1)
		for i := 0; i < n; i++ {
			st ^= st << 13
			st ^= st >> 7
			st ^= st << 17
			v := lo + int32(st%uint64(hi-lo+1))
			q.setInt(i, v)
			f.F32[i] = float32(float64(s) * float64(v-zp))
		}
		ints[io.Name], floats[io.Name+"_float"] = q, f
	}
	return ints, floats, nil
}

// intAgreement runs the integer model at path on the interpreter and its
// float-edged copy on LiteRT.js over seeds, and returns the share of
// output integers that are equal and within one step, and the largest
// difference.
func intAgreement(t *testing.T, r *litert.Runner, path string, seeds []int64, all bool, opt Options) (exact, within1 float64, worst int32, n int) {
	t.Helper()
	m, err := tflite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	src := m
	if all {
		src = allOutputs(t, m)
	}
	fm, qs, types := floatEdges(t, src)
	fpath := filepath.Join(t.TempDir(), "float_edges.tflite")
	if err := tflite.WriteFile(context.Background(), fpath, fm, tflite.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	in, err := New(src, opt)
	if err != nil {
		t.Fatal(err)
	}
	fin, err := New(fm, opt)
	if err != nil {
		t.Fatal(err)
	}
	sig := in.Signatures()[0]
	var eq, near int
	for _, seed := range seeds {
		ints, floats, err := intInputs(src, seed)
		if err != nil {
			t.Fatal(err)
		}
		got, err := in.Run(context.Background(), "", ints)
		if err != nil {
			t.Fatal(err)
		}
		// The interpreter on the float-edged copy gives the same integers.
		fgot, err := fin.Run(context.Background(), "", floats)
		if err != nil {
			t.Fatal(err)
		}
		var lin []litert.Tensor
		for _, io := range fin.Signatures()[0].Inputs {
			v := floats[io.Name]
			lin = append(lin, litert.NewFloat32(io.Name, v.Shape, v.F32))
		}
		lout, err := r.Run(fpath, lin)
		if err != nil {
			t.Fatalf("%s: LiteRT.js: %v", path, err)
		}
		for i, io := range sig.Outputs {
			var teq, tn int
			defer func() {
				if testing.Verbose() && seed == seeds[0] {
					t.Logf("output %d %q: %d/%d equal", i, io.Name, teq, tn)
				}
			}()
			g := got[io.Name]
			want := lout[i].Float32s()
			fo := fgot[fin.Signatures()[0].Outputs[i].Name]
			if g == nil || !isIntAct(g.Type) || g.Type != types[i] || g.Len() != len(want) {
				t.Fatalf("%s: output %q: interp %v, runtime %d values", path, io.Name, g, len(want))
			}
			for j, w := range want {
				rq := int32(math.Round(float64(w/qs[i].scale))) + qs[i].zp
				gq := g.intAt(j)
				if float32(float64(qs[i].scale)*float64(gq-qs[i].zp)) != fo.F32[j] {
					t.Fatalf("%s: output %q element %d: the integer model gives %d, its float-edged copy %g", path, io.Name, j, gq, fo.F32[j])
				}
				d := gq - rq
				if d < 0 {
					d = -d
				}
				worst = max(worst, d)
				if d == 0 {
					eq++
					teq++
				}
				tn++
				if d <= 1 {
					near++
				}
				n++
			}
		}
	}
	return float64(eq) / float64(n), float64(near) / float64(n), worst, n
}

// TestIntModelsMatchLiteRT: the real full-integer models run on the
// interpreter as on LiteRT.js: output integers equal on ≥ 99.9 % of
// elements ... (see the per-model bounds).
func TestIntModelsMatchLiteRT(t *testing.T) {
	r := litert.Require(t)
	for _, tc := range []struct {
		model         string
		all           bool
		arith         IntArithmetic
		exact, within float64
	}{
		{"tflm_person_detect", false, IntReference, 0, 0.999},
		{"tflm_person_detect", true, IntReference, 0, 0.95},
		{"tflm_person_detect", false, IntXNNPACK, 1, 1},
		{"tflm_person_detect", true, IntXNNPACK, 1, 1},
	} {
		t.Run(fmt.Sprintf("%s/all=%v/arith=%d", tc.model, tc.all, tc.arith), func(t *testing.T) {
			exact, within, worst, n := intAgreement(t, r, "../../testdata/models/"+tc.model+".tflite", []int64{1, 2, 3, 4, 5, 6, 7, 8}, tc.all, Options{IntArithmetic: tc.arith})
			t.Logf("%d output integers: %.4f equal, %.4f within one step, largest difference %d", n, exact, within, worst)
			if exact < tc.exact || within < tc.within {
				t.Errorf("agreement %.4f equal / %.4f within one step, want ≥ %.4f / %.4f", exact, within, tc.exact, tc.within)
			}
		})
	}
}
