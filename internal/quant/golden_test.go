package quant_test

import (
	"math"
	"os"
	"testing"

	"github.com/qpipe/qpipe/internal/quant"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// tensorData is one constant tensor of a .tflite file, read through the raw
// flatbuffer bindings (the kernels must not depend on the format package).
type tensorData struct {
	name      string
	typ       fb.TensorType
	shape     []int
	data      []byte
	scales    []float32
	zeros     []int64
	quantAxis int
}

type modelData struct {
	tensors map[string]*tensorData
	// weightAxis maps a weight tensor name to the channel axis its consumer
	// implies (CONV_2D and FULLY_CONNECTED input 1: axis 0).
	weightAxis map[string]int
}

func readModel(t *testing.T, path string) modelData {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := fb.GetRootAsModel(raw, 0)
	if m.SubgraphsLength() != 1 {
		t.Fatalf("%s: %d subgraphs, want 1", path, m.SubgraphsLength())
	}
	var sg fb.SubGraph
	m.Subgraphs(&sg, 0)
	md := modelData{tensors: map[string]*tensorData{}, weightAxis: map[string]int{}}
	var tensorNames []string
	for i := range sg.TensorsLength() {
		var tn fb.Tensor
		sg.Tensors(&tn, i)
		td := &tensorData{name: string(tn.Name()), typ: tn.Type()}
		for j := range tn.ShapeLength() {
			td.shape = append(td.shape, int(tn.Shape(j)))
		}
		var buf fb.Buffer
		if m.Buffers(&buf, int(tn.Buffer())) {
			td.data = buf.DataBytes()
		}
		if q := tn.Quantization(nil); q != nil {
			for j := range q.ScaleLength() {
				td.scales = append(td.scales, q.Scale(j))
			}
			for j := range q.ZeroPointLength() {
				td.zeros = append(td.zeros, q.ZeroPoint(j))
			}
			td.quantAxis = int(q.QuantizedDimension())
		}
		if _, dup := md.tensors[td.name]; dup {
			t.Fatalf("%s: duplicate tensor name %q", path, td.name)
		}
		md.tensors[td.name] = td
		tensorNames = append(tensorNames, td.name)
	}
	for i := range sg.OperatorsLength() {
		var op fb.Operator
		sg.Operators(&op, i)
		var oc fb.OperatorCode
		m.OperatorCodes(&oc, int(op.OpcodeIndex()))
		code := max(fb.BuiltinOperator(oc.DeprecatedBuiltinCode()), oc.BuiltinCode())
		switch code {
		case fb.BuiltinOperatorCONV_2D, fb.BuiltinOperatorFULLY_CONNECTED:
			if w := op.Inputs(1); w >= 0 {
				md.weightAxis[tensorNames[w]] = 0
			}
		}
	}
	return md
}

func float32s(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	quant.DecodeFloat32LE(out, b)
	return out
}

// TestGoldenMNISTWeightOnlyInt8 quantizes the float MNIST model's weights
// asymmetrically per channel and compares every value and parameter with the
// reference quantizer's output.
func TestGoldenMNISTWeightOnlyInt8(t *testing.T) {
	float := readModel(t, "../../testdata/models/aeq_conv_fc_mnist.tflite")
	golden := readModel(t, "../../testdata/models/aeq_mnist_quantized.tflite")

	values, weights := 0, 0
	for name, want := range golden.tensors {
		if want.typ != fb.TensorTypeINT8 || len(want.data) == 0 {
			continue
		}
		weights++
		src, ok := float.tensors[name]
		if !ok || src.typ != fb.TensorTypeFLOAT32 {
			t.Errorf("golden weight %q has no FLOAT32 tensor of that name in the float model", name)
			continue
		}
		axis, ok := float.weightAxis[name]
		if !ok {
			t.Errorf("%q: not the weight of a CONV_2D or FULLY_CONNECTED", name)
			continue
		}
		if want.quantAxis != axis {
			t.Errorf("%q: golden quantized_dimension %d, consumer implies %d", name, want.quantAxis, axis)
		}
		x := float32s(src.data)
		channels := src.shape[axis]
		scales, zeros := make([]float32, channels), make([]int64, channels)
		if err := quant.ChannelParamsInt8(scales, zeros, x, src.shape, axis, false); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		q := make([]int8, len(x))
		quant.QuantizeInt8(q, x, src.shape, axis, scales, zeros, false)

		if len(want.scales) != channels || len(want.zeros) != channels {
			t.Fatalf("%q: golden has %d scales, %d zero points; want %d", name, len(want.scales), len(want.zeros), channels)
		}
		for c := range channels {
			if math.Float32bits(scales[c]) != math.Float32bits(want.scales[c]) {
				t.Errorf("%q channel %d: scale %g (%#08x), golden %g (%#08x)", name, c,
					scales[c], math.Float32bits(scales[c]), want.scales[c], math.Float32bits(want.scales[c]))
			}
			if zeros[c] != want.zeros[c] {
				t.Errorf("%q channel %d: zero point %d, golden %d", name, c, zeros[c], want.zeros[c])
			}
		}
		if len(want.data) != len(q) {
			t.Fatalf("%q: %d values, golden has %d", name, len(q), len(want.data))
		}
		mismatches := 0
		for i, b := range want.data {
			if int8(b) != q[i] {
				if mismatches < 5 {
					t.Errorf("%q[%d]: %d, golden %d (x = %g)", name, i, q[i], int8(b), x[i])
				}
				mismatches++
			}
		}
		if mismatches > 0 {
			t.Errorf("%q: %d of %d values differ", name, mismatches, len(q))
		}
		values += len(q)
	}
	// Three weights (the conv kernel and two FC matrices), 50,568 values.
	if weights != 3 || values != 50568 {
		t.Errorf("compared %d weights and %d values, want 3 and 50568", weights, values)
	}
}
