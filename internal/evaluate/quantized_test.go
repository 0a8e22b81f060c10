package evaluate

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/interp"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

const personDetect = "../../testdata/models/tflm_person_detect.tflite"

// floatEdged writes a copy of the model at path whose INT8 graph inputs
// come from a new FLOAT32 input through QUANTIZE and whose INT8 outputs
// leave through DEQUANTIZE to a new FLOAT32 output, named as the
// originals: it computes the same integers on float values.
func floatEdged(t *testing.T, path string) string {
	t.Helper()
	m, err := tflite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c, err := m.Clone()
	if err != nil {
		t.Fatal(err)
	}
	meta := c.Meta
	sg := meta.Subgraphs[0]
	code := func(op fb.BuiltinOperator) uint32 {
		meta.OperatorCodes = append(meta.OperatorCodes, &fb.OperatorCodeT{BuiltinCode: op, DeprecatedBuiltinCode: int8(op), Version: 1})
		return uint32(len(meta.OperatorCodes) - 1)
	}
	addFloat := func(like *fb.TensorT) int32 {
		meta.Buffers = append(meta.Buffers, &fb.BufferT{})
		c.Buffers = append(c.Buffers, tflite.Buffer{})
		sg.Tensors = append(sg.Tensors, &fb.TensorT{Name: like.Name, Type: fb.TensorTypeFLOAT32, Shape: like.Shape, Buffer: uint32(len(meta.Buffers) - 1)})
		like.Name += "_int"
		return int32(len(sg.Tensors) - 1)
	}
	qc, dc := code(fb.BuiltinOperatorQUANTIZE), code(fb.BuiltinOperatorDEQUANTIZE)
	var pre, post []*fb.OperatorT
	for i, ti := range sg.Inputs {
		f := addFloat(sg.Tensors[ti])
		pre = append(pre, &fb.OperatorT{OpcodeIndex: qc, Inputs: []int32{f}, Outputs: []int32{ti}})
		sg.Inputs[i] = f
	}
	for i, ti := range sg.Outputs {
		f := addFloat(sg.Tensors[ti])
		post = append(post, &fb.OperatorT{OpcodeIndex: dc, Inputs: []int32{ti}, Outputs: []int32{f}})
		sg.Outputs[i] = f
	}
	sg.Operators = append(append(pre, sg.Operators...), post...)
	out := filepath.Join(t.TempDir(), "float_edged.tflite")
	if err := tflite.WriteFile(context.Background(), out, c, tflite.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestQuantizedIO: the int8 person-detection model is evaluated on
// generated inputs quantized with its input's parameters, its outputs
// dequantized; against a copy with float edges (the same integers on
// float values) it has no distance, in either order; read inputs are real
// values.
func TestQuantizedIO(t *testing.T) {
	ctx := context.Background()
	open := func(path string) *Model {
		m, err := Open(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	im, fm := open(personDetect), open(floatEdged(t, personDetect))
	s, err := Smoke(ctx, im, Options{Samples: 2})
	if err != nil {
		t.Fatal(err)
	}
	o := s.Signatures[0].Outputs[0]
	if o.Type != "INT8" || o.Stats.Count != 4 || o.Stats.Min < 0 || o.Stats.Max > 1 {
		t.Errorf("Smoke: %+v %+v (want 4 dequantized probabilities)", o, o.Stats)
	}
	for _, pair := range [][2]*Model{{im, fm}, {fm, im}} {
		r, err := Compare(ctx, pair[0], pair[1], Options{Samples: 3, Seed: 5})
		if err != nil {
			t.Fatal(err)
		}
		d := r.Signatures[0].Outputs[0].Distance
		if d.MaxAbs != 0 || d.RelL2 != 0 {
			t.Errorf("%s against %s: %+v, want no distance", pair[0].Path, pair[1].Path, d)
		}
	}

	// Generated: the float stream's values, quantized.
	sig := im.Interp.Signatures()[0]
	l, err := PlanInputs(sig, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	in := l.Inputs[0]
	if in.Type != fb.TensorTypeINT8 || !(in.Scale > 0) {
		t.Fatalf("input %+v: want INT8 with its scale", in.IO)
	}
	g, err := l.Generate(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	fin := in
	fin.IO.Type = fb.TensorTypeFLOAT32
	fl := &Layout{Inputs: []Input{fin}}
	fg, err := fl.Generate(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	q, f := g[in.Name].I8, fg[in.Name].F32
	for i := range f {
		want := min(max(math.Round(float64(f[i])/float64(in.Scale))+float64(in.ZeroPoint), -128), 127)
		if float64(q[i]) != want {
			t.Fatalf("element %d: %d, want %g (%g quantized)", i, q[i], want, f[i])
		}
	}

	// Read: real values, quantized; the input needs a scale.
	n := 96 * 96
	var sb strings.Builder
	sb.WriteString(`{"` + in.Name + `": [`)
	for i := range n {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString([]string{"0.5", "-1", "0"}[i%3])
	}
	sb.WriteString("]}\n")
	samples, err := ParseSamples(strings.NewReader(sb.String()), "in.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Bind(samples[0], "in.jsonl", 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range b[in.Name].I8[:3] {
		x := []float64{0.5, -1, 0}[i]
		if want := min(max(math.Round(x/float64(in.Scale))+float64(in.ZeroPoint), -128), 127); float64(v) != want {
			t.Errorf("read %g as %d, want %g", x, v, want)
		}
	}
	bad := Input{IO: interp.IO{Name: "x", Type: fb.TensorTypeINT16, Shape: []int{2}}, Shape: []int{2}}
	if _, err := (&Layout{Inputs: []Input{bad}}).Generate(0, 0); err == nil || !strings.Contains(err.Error(), "without one positive scale") {
		t.Errorf("INT16 input without a scale: %v", err)
	}
}
