package stages

import (
	"bytes"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// openModel opens a model for the duration of the test.
func openModel(t testing.TB, path string) *tflite.Model {
	t.Helper()
	m, err := tflite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func bufferBytes(t testing.TB, m *tflite.Model, b uint32) []byte {
	t.Helper()
	if int(b) >= len(m.Buffers) || m.Buffers[b].Data == nil {
		return nil
	}
	data, err := tflite.ReadAll(m.Buffers[b].Data)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func opNames(m *tflite.Model, sg int) []string {
	var out []string
	for _, op := range m.Meta.Subgraphs[sg].Operators {
		out = append(out, fb.EnumNamesBuiltinOperator[m.OpCode(op)])
	}
	return out
}

// tensorNames lists the names of op's tensors (−1 as "-").
func tensorNames(sg *fb.SubGraphT, idx []int32) []string {
	out := make([]string, len(idx))
	for i, x := range idx {
		if x < 0 {
			out[i] = "-"
		} else {
			out[i] = sg.Tensors[x].Name
		}
	}
	return out
}

// TestGoldenMNISTWeightOnlyAsym compares qpipe's weight_only_int8_asym
// output for aeq_conv_fc_mnist with the reference quantizer's own output
// aeq_mnist_quantized, tensor by tensor by name (SEMANTICS.md §6.1, §7).
// What "bit for bit" excludes (SEMANTICS.md §11: OperatorCode versions,
// tensor and buffer order, layout) is not compared.
func TestGoldenMNISTWeightOnlyAsym(t *testing.T) {
	out, _, err := quantizeFile(t, filepath.Join(models, "aeq_conv_fc_mnist.tflite"), "weight_only_int8_asym", false)
	if err != nil {
		t.Fatal(err)
	}
	got := openModel(t, out)
	want := openModel(t, filepath.Join(models, "aeq_mnist_quantized.tflite"))
	if len(got.Meta.Subgraphs) != 1 || len(want.Meta.Subgraphs) != 1 {
		t.Fatalf("subgraphs: got %d, want %d", len(got.Meta.Subgraphs), len(want.Meta.Subgraphs))
	}
	gsg, wsg := got.Meta.Subgraphs[0], want.Meta.Subgraphs[0]

	// The op sequence, in the golden's order.
	wantOps := []string{"DEQUANTIZE", "CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "DEQUANTIZE", "FULLY_CONNECTED", "DEQUANTIZE", "FULLY_CONNECTED", "SOFTMAX"}
	if w := opNames(want, 0); !slices.Equal(w, wantOps) {
		t.Fatalf("the golden's ops are %v, not %v: the test's premise is wrong", w, wantOps)
	}
	if g := opNames(got, 0); !slices.Equal(g, wantOps) {
		t.Errorf("ops %v, want %v", g, wantOps)
	}

	// The graph: each op reads and writes the same tensors, by name.
	for i := range min(len(gsg.Operators), len(wsg.Operators)) {
		g, w := gsg.Operators[i], wsg.Operators[i]
		if a, b := tensorNames(gsg, g.Inputs), tensorNames(wsg, w.Inputs); !slices.Equal(a, b) {
			t.Errorf("op %d (%s) inputs %q, want %q", i, wantOps[i], a, b)
		}
		if a, b := tensorNames(gsg, g.Outputs), tensorNames(wsg, w.Outputs); !slices.Equal(a, b) {
			t.Errorf("op %d (%s) outputs %q, want %q", i, wantOps[i], a, b)
		}
		if a, b := optionsString(g), optionsString(w); a != b {
			t.Errorf("op %d (%s): options %s, want %s", i, wantOps[i], a, b)
		}
	}
	if a, b := tensorNames(gsg, gsg.Inputs), tensorNames(wsg, wsg.Inputs); !slices.Equal(a, b) {
		t.Errorf("subgraph inputs %q, want %q", a, b)
	}
	if a, b := tensorNames(gsg, gsg.Outputs), tensorNames(wsg, wsg.Outputs); !slices.Equal(a, b) {
		t.Errorf("subgraph outputs %q, want %q", a, b)
	}

	// The tensors, by name: the same set, types, shapes, data and
	// quantization parameters.
	byName := func(sg *fb.SubGraphT) map[string]*fb.TensorT {
		out := map[string]*fb.TensorT{}
		for _, tt := range sg.Tensors {
			if _, dup := out[tt.Name]; dup {
				t.Fatalf("duplicate tensor name %q", tt.Name)
			}
			out[tt.Name] = tt
		}
		return out
	}
	gt, wt := byName(gsg), byName(wsg)
	var dequant, int8s int
	for name, w := range wt {
		g, ok := gt[name]
		if !ok {
			t.Errorf("tensor %q missing", name)
			continue
		}
		if len(name) > 8 && name[len(name)-8:] == "_dequant" {
			dequant++
		}
		if g.Type != w.Type || !slices.Equal(g.Shape, w.Shape) {
			t.Errorf("%q: %s %v, want %s %v", name, g.Type, g.Shape, w.Type, w.Shape)
			continue
		}
		if g.HasRank != w.HasRank || !slices.Equal(g.ShapeSignature, w.ShapeSignature) || g.IsVariable != w.IsVariable {
			t.Errorf("%q: has_rank %v shape_signature %v variable %v, want %v %v %v", name, g.HasRank, g.ShapeSignature, g.IsVariable, w.HasRank, w.ShapeSignature, w.IsVariable)
		}
		if gb, wb := bufferBytes(t, got, g.Buffer), bufferBytes(t, want, w.Buffer); !bytes.Equal(gb, wb) {
			t.Errorf("%q: data differ (%d bytes, want %d; first difference at %d)", name, len(gb), len(wb), firstDiff(gb, wb))
		}
		if w.Type == fb.TensorTypeINT8 {
			int8s++
		}
		compareQuant(t, name, g.Quantization, w.Quantization)
	}
	for name := range gt {
		if _, ok := wt[name]; !ok {
			t.Errorf("extra tensor %q", name)
		}
	}
	if dequant != 3 || int8s != 3 {
		t.Errorf("%d _dequant tensors and %d int8 weights compared, want 3 and 3", dequant, int8s)
	}

	// Operator codes: the same set. Versions are excluded from the
	// comparison (SEMANTICS.md §11) except that the weight-only form must
	// leave the float ops' versions as they were: they read float tensors.
	// Found: qpipe's DEQUANTIZE code is version 5 (per-channel int8 input,
	// FORMAT.md §5) with deprecated_builtin_code 6; the reference writes
	// version 1 and deprecated_builtin_code 0. Both are the allowed
	// differences; nothing else differs, not even the tensor order.
	codes := func(m *tflite.Model) map[fb.BuiltinOperator]int32 {
		out := map[fb.BuiltinOperator]int32{}
		for _, oc := range m.Meta.OperatorCodes {
			out[tflite.BuiltinCode(oc)] = oc.Version
		}
		return out
	}
	gc, wc := codes(got), codes(want)
	if len(gc) != len(wc) {
		t.Errorf("operator codes %v, want %v", gc, wc)
	}
	for code, v := range wc {
		gv, ok := gc[code]
		switch {
		case !ok:
			t.Errorf("operator code %s missing", code)
		case code == fb.BuiltinOperatorDEQUANTIZE:
			if gv != RequiredVersion(code, FormDequantInt8PerChannel, false, false) {
				t.Errorf("DEQUANTIZE version %d, want %d", gv, RequiredVersion(code, FormDequantInt8PerChannel, false, false))
			}
		case gv != v:
			t.Errorf("%s version %d, want %d: a float op's version changed", code, gv, v)
		}
	}

	// Signatures name the same tensors.
	if len(got.Meta.SignatureDefs) != len(want.Meta.SignatureDefs) {
		t.Fatalf("%d signatures, want %d", len(got.Meta.SignatureDefs), len(want.Meta.SignatureDefs))
	}
	for i, ws := range want.Meta.SignatureDefs {
		gs := got.Meta.SignatureDefs[i]
		for _, pair := range [][2][]*fb.TensorMapT{{gs.Inputs, ws.Inputs}, {gs.Outputs, ws.Outputs}} {
			if len(pair[0]) != len(pair[1]) {
				t.Errorf("signature %q: %d tensors, want %d", ws.SignatureKey, len(pair[0]), len(pair[1]))
				continue
			}
			for j := range pair[1] {
				g, w := pair[0][j], pair[1][j]
				if g.Name != w.Name || gsg.Tensors[g.TensorIndex].Name != wsg.Tensors[w.TensorIndex].Name {
					t.Errorf("signature %q: %s→%q, want %s→%q", ws.SignatureKey, g.Name, gsg.Tensors[g.TensorIndex].Name, w.Name, wsg.Tensors[w.TensorIndex].Name)
				}
			}
		}
	}
}

func optionsString(op *fb.OperatorT) string {
	if op.BuiltinOptions == nil {
		return "none"
	}
	return fmt.Sprintf("%d %+v", op.BuiltinOptions.Type, op.BuiltinOptions.Value)
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// compareQuant compares quantization parameters: scales by float32 bits,
// zero points, the quantized dimension. Absent and empty are the same.
func compareQuant(t *testing.T, name string, g, w *fb.QuantizationParametersT) {
	t.Helper()
	empty := func(q *fb.QuantizationParametersT) bool {
		return q == nil || (len(q.Scale) == 0 && len(q.ZeroPoint) == 0 && len(q.Min) == 0 && len(q.Max) == 0 &&
			(q.Details == nil || q.Details.Type == fb.QuantizationDetailsNONE))
	}
	if empty(g) || empty(w) {
		if empty(g) != empty(w) {
			t.Errorf("%q: quantization %+v, want %+v", name, g, w)
		}
		return
	}
	bits := func(s []float32) []uint32 {
		out := make([]uint32, len(s))
		for i, x := range s {
			out[i] = math.Float32bits(x)
		}
		return out
	}
	if !slices.Equal(bits(g.Scale), bits(w.Scale)) {
		t.Errorf("%q: scales differ: %v, want %v", name, g.Scale, w.Scale)
	}
	if !slices.Equal(g.ZeroPoint, w.ZeroPoint) {
		t.Errorf("%q: zero points %v, want %v", name, g.ZeroPoint, w.ZeroPoint)
	}
	if g.QuantizedDimension != w.QuantizedDimension {
		t.Errorf("%q: quantized_dimension %d, want %d", name, g.QuantizedDimension, w.QuantizedDimension)
	}
	if !slices.Equal(g.Min, w.Min) || !slices.Equal(g.Max, w.Max) {
		t.Errorf("%q: min/max %v/%v, want %v/%v", name, g.Min, g.Max, w.Min, w.Max)
	}
}
