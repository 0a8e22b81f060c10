package static

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/digits"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

func open(t *testing.T, path string) *tflite.Model {
	t.Helper()
	m, err := tflite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// The reference quantizer's parameter formulas (uniform_quantize_tensor.py:492-586).
func TestActParams(t *testing.T) {
	for _, tc := range []struct {
		mn, mx float64
		bits   int
		sym    bool
		scale  float32
		zp     int64
	}{
		{0, 1, 8, false, float32(1.0 / 255), -128},
		{-1, 1, 8, false, float32(2.0 / 255), 0},
		{-0.5, 1.5, 8, false, float32(2.0 / 255), -64},
		{0.5, 2, 8, false, float32(2.0 / 255), -128}, // 0 stays in the range
		{-3, 1, 8, true, float32(3.0 / 127), 0},
		{-3, 1, 16, true, float32(3.0 / 32767), 0},
		{0, 0, 8, false, float32(1e-9 / 255), -128},
	} {
		p := actParams(tc.mn, tc.mx, tc.bits, tc.sym)
		if p.scale != tc.scale || p.zp != tc.zp {
			t.Errorf("[%g, %g] %d-bit sym=%t: scale %g zp %d, want %g %d", tc.mn, tc.mx, tc.bits, tc.sym, p.scale, p.zp, tc.scale, tc.zp)
		}
	}
}

// Both estimators over the MNIST model's generated inputs: min/max
// contains the moving average, every activation tensor has a range, and
// the ranges survive the cache file.
func TestCalibrateEstimators(t *testing.T) {
	m := open(t, mnistModel)
	cal := &config.Calibration{Samples: 8, Inputs: writeInputs(t, "conv2d_input", digits.Images(3, 8))}
	mm, err := Calibrate(context.Background(), m, cal, EstimatorMinMax, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ema, err := Calibrate(context.Background(), m, cal, EstimatorMovingAverage, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	// The input and the 6 op outputs.
	if len(mm) != 7 || len(ema) != 7 {
		t.Fatalf("%d and %d ranges, want 7", len(mm), len(ema))
	}
	for k, r := range mm {
		e := ema[k]
		if r.Samples != 8 || e.Samples != 8 || e.Min < r.Min-1e-9 || e.Max > r.Max+1e-9 {
			t.Errorf("%v: min/max %+v, moving average %+v", k, r, e)
		}
	}
	if in := mm[Key{0, 0}]; in.Min != 0 || in.Max != 1 {
		t.Errorf("input range %+v, want [0, 1]", in)
	}
	file := filepath.Join(t.TempDir(), "r.json")
	if err := writeRanges(file, "k", mm); err != nil {
		t.Fatal(err)
	}
	back, err := readRanges(file, "k")
	if err != nil || len(back) != len(mm) {
		t.Fatalf("read back %d ranges, %v", len(back), err)
	}
	for k, r := range mm {
		if *back[k] != *r {
			t.Errorf("%v: %+v read back as %+v", k, r, back[k])
		}
	}
	if _, err := readRanges(file, "other key"); err == nil {
		t.Error("a file of another key was read")
	}
}

// The moving average is the reference quantizer's: first sample, then
// 0.95·old + 0.05·new, in sample order.
func TestMovingAverageOrder(t *testing.T) {
	m := open(t, mnistModel)
	imgs := digits.Images(4, 3)
	// Scale the images so that the input's maxima are 1, 0.5, 0.25.
	for i, img := range imgs {
		for k := range img {
			img[k] = img[k] * float32(math.Pow(0.5, float64(i)))
		}
	}
	cal := &config.Calibration{Samples: 3, Inputs: writeInputs(t, "conv2d_input", imgs)}
	r, err := Calibrate(context.Background(), m, cal, EstimatorMovingAverage, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	want := 0.95*(0.95*1+0.05*0.5) + 0.05*0.25
	if got := r[Key{0, 0}].Max; math.Abs(got-want) > 1e-12 {
		t.Errorf("input max %v, want %v", got, want)
	}
}

// Bad input is refused naming the tensor, the op or the file line.
func TestRefusals(t *testing.T) {
	t.Run("already quantized", func(t *testing.T) {
		m := open(t, "../../testdata/models/aeq_mnist_quantized.tflite")
		_, err := Rewrite(m, Ranges{}, Options{Bits: 8})
		if err == nil || !strings.Contains(err.Error(), `"arith.constant"`) || !strings.Contains(err.Error(), "already quantized") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("int16 op without kernel", func(t *testing.T) {
		m := open(t, "../../testdata/models/tiny_decoder.tflite")
		// Make the MEANs SUMs: LiteRT has no int16 SUM.
		sum := m.OperatorCodeIndex(fb.BuiltinOperatorSUM, 1)
		for _, op := range m.Meta.Subgraphs[0].Operators {
			if m.OpCode(op) == fb.BuiltinOperatorMEAN {
				op.OpcodeIndex = sum
			}
		}
		_, err := Rewrite(m, Ranges{}, Options{Bits: 16, Ops: []string{"FULLY_CONNECTED", "SUM"}})
		if err == nil || !strings.Contains(err.Error(), "SUM (output") || !strings.Contains(err.Error(), "RMSNorm") {
			t.Fatalf("got %v", err)
		}
		// Without asking for it, SUM just stays float.
		if _, err := Rewrite(m, Ranges{}, Options{Bits: 16}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("calibration file does not fit", func(t *testing.T) {
		m := open(t, mnistModel)
		path := filepath.Join(t.TempDir(), "bad.jsonl")
		if err := os.WriteFile(path, []byte("{\"conv2d_input\": [0.5, 0.5]}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Calibrate(context.Background(), m, &config.Calibration{Inputs: path}, EstimatorMinMax, zerolog.Nop())
		if err == nil || !strings.Contains(err.Error(), "bad.jsonl:1") || !strings.Contains(err.Error(), "conv2d_input") {
			t.Fatalf("got %v", err)
		}
		if err := os.WriteFile(path, []byte("{\"pixels\": [0.5]}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = Calibrate(context.Background(), m, &config.Calibration{Inputs: path}, EstimatorMinMax, zerolog.Nop())
		if err == nil || !strings.Contains(err.Error(), "pixels") {
			t.Fatalf("got %v", err)
		}
	})
}

// rewritten is the MNIST model after a static rewrite at bits.
func rewritten(t *testing.T, bits int) *tflite.Model {
	m := open(t, mnistModel)
	cal := &config.Calibration{Samples: 4, Inputs: writeInputs(t, "conv2d_input", digits.Images(5, 4))}
	r, err := Calibrate(context.Background(), m, cal, EstimatorMinMax, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Rewrite(m, r, Options{Bits: bits}); err != nil {
		t.Fatal(err)
	}
	if err := Check(m); err != nil {
		t.Fatalf("a fresh rewrite fails Check: %v", err)
	}
	return m
}

func tensorNamed(m *tflite.Model, name string) *fb.TensorT {
	for _, t := range m.Meta.Subgraphs[0].Tensors {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Check finds what LiteRT's Prepare refuses, naming operator and tensor.
func TestCheck(t *testing.T) {
	const (
		conv    = "sequential/conv2d/Conv2D"
		bias    = "sequential/conv2d/Relu;sequential/conv2d/BiasAdd;sequential/conv2d/Conv2D;sequential/conv2d/BiasAdd/ReadVariableOp"
		convOut = bias + "1"
		softmax = "StatefulPartitionedCall:0"
	)
	for _, tc := range []struct {
		name   string
		bits   int
		mutate func(m *tflite.Model)
		want   []string
	}{
		{"softmax zero point", 8, func(m *tflite.Model) { tensorNamed(m, softmax).Quantization.ZeroPoint[0] = 0 }, []string{"SOFTMAX", softmax, "1/256 and -128"}},
		{"softmax scale 16", 16, func(m *tflite.Model) { tensorNamed(m, softmax).Quantization.Scale[0] = 1.0 / 256 }, []string{"SOFTMAX", "1/32768"}},
		{"filter zero point", 8, func(m *tflite.Model) { tensorNamed(m, conv).Quantization.ZeroPoint[3] = 1 }, []string{"CONV_2D", conv, "filter zero point 1"}},
		{"filter axis", 8, func(m *tflite.Model) { tensorNamed(m, conv).Quantization.QuantizedDimension = 3 }, []string{"CONV_2D", conv, "dimension 3"}},
		{"int8 bias type", 8, func(m *tflite.Model) { tensorNamed(m, bias).Type = fb.TensorTypeINT64 }, []string{"CONV_2D", bias, "int32"}},
		{"int16 bias type", 16, func(m *tflite.Model) { tensorNamed(m, bias).Type = fb.TensorTypeINT32 }, []string{"CONV_2D", bias, "quantized_bias_type"}},
		{"bias scale", 8, func(m *tflite.Model) { tensorNamed(m, bias).Quantization.Scale[0] *= 2 }, []string{bias, "input scale × filter scale"}},
		{"int16 zero point", 16, func(m *tflite.Model) { tensorNamed(m, convOut).Quantization.ZeroPoint[0] = 3 }, []string{"CONV_2D", convOut, "int16 zero point 3"}},
		{"per-channel activation", 8, func(m *tflite.Model) {
			q := tensorNamed(m, convOut).Quantization
			q.Scale, q.ZeroPoint = append(q.Scale, q.Scale[0]), append(q.ZeroPoint, 0)
		}, []string{convOut, "per tensor"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := rewritten(t, tc.bits)
			tc.mutate(m)
			err := Check(m)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q: %v", w, err)
				}
			}
		})
	}
}

// With integer I/O the signature's input and output tensors themselves
// become int8: no QUANTIZE or DEQUANTIZE at the boundary.
func TestIntegerIO(t *testing.T) {
	m := open(t, mnistModel)
	cal := &config.Calibration{Samples: 4, Inputs: writeInputs(t, "conv2d_input", digits.Images(6, 4))}
	r, err := Calibrate(context.Background(), m, cal, EstimatorMinMax, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	res, err := Rewrite(m, r, Options{Bits: 8, IntegerIO: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(m); err != nil {
		t.Fatal(err)
	}
	if res.Quantize != 0 || res.Dequantize != 0 {
		t.Errorf("inserted %d QUANTIZE, %d DEQUANTIZE; want none", res.Quantize, res.Dequantize)
	}
	sd := m.Meta.SignatureDefs[0]
	sg := m.Meta.Subgraphs[0]
	in, out := sg.Tensors[sd.Inputs[0].TensorIndex], sg.Tensors[sd.Outputs[0].TensorIndex]
	if in.Type != fb.TensorTypeINT8 || out.Type != fb.TensorTypeINT8 {
		t.Errorf("input %s, output %s; want INT8", tflite.TypeName(in.Type), tflite.TypeName(out.Type))
	}
	if q := out.Quantization; q.Scale[0] != 1.0/256 || q.ZeroPoint[0] != -128 {
		t.Errorf("softmax output %v %v", q.Scale, q.ZeroPoint)
	}
}

// The percentile estimator's per-sample range and the estimator names.
func TestPercentile(t *testing.T) {
	x := make([]float32, 1000)
	for i := range x {
		x[i] = float32(i) // 0..999
	}
	x[0], x[999] = -math.MaxFloat32, 1e6 // a mask value, an outlier
	// 999 finite values 1..998, 1e6; nearest rank: the 990th smallest
	// and the 990th largest.
	lo, hi, clipped, ok := percentileRange(x, 99)
	if !ok || !clipped || lo != 10 || hi != 990 {
		t.Errorf("99: [%g, %g] clipped=%t ok=%t, want [10, 990] clipped", lo, hi, clipped, ok)
	}
	if lo, hi, _, _ := percentileRange(x, 100); lo != 1 || hi != 1e6 {
		t.Errorf("100: [%g, %g]", lo, hi)
	}
	for _, bad := range []string{"percentile", "percentile:50", "percentile:101", "percentile:x", "minmax:3", "median"} {
		if _, _, err := parseEstimator(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if k, p, err := parseEstimator("percentile:99.99"); err != nil || k != EstimatorPercentile || p != 99.99 {
		t.Errorf("percentile:99.99: %s %g %v", k, p, err)
	}
}

// Signature inputs and outputs named alike in several signatures (a KV
// cache read by one and written by another) get one range: the union.
func TestSharedSignatureTensors(t *testing.T) {
	m := &tflite.Model{Meta: &fb.ModelT{SignatureDefs: []*fb.SignatureDefT{
		{SignatureKey: "prefill", SubgraphIndex: 0, Inputs: []*fb.TensorMapT{{Name: "tokens", TensorIndex: 0}}, Outputs: []*fb.TensorMapT{{Name: "kv", TensorIndex: 5}}},
		{SignatureKey: "decode", SubgraphIndex: 1, Inputs: []*fb.TensorMapT{{Name: "kv", TensorIndex: 2}}, Outputs: []*fb.TensorMapT{{Name: "kv", TensorIndex: 7}, {Name: "logits", TensorIndex: 9}}},
	}}}
	r := Ranges{
		{0, 5}: {Min: -1, Max: 2}, {1, 2}: {Min: -3, Max: 1}, {1, 7}: {Min: 0, Max: 4, Clipped: true},
		{1, 9}: {Min: -9, Max: 9}, {0, 0}: {Min: 0, Max: 1},
	}
	unifyShared(m, r)
	for _, k := range []Key{{0, 5}, {1, 2}, {1, 7}} {
		if e := r[k]; e.Min != -3 || e.Max != 4 || !e.Clipped {
			t.Errorf("%v: %+v, want [-3, 4] clipped", k, e)
		}
	}
	if e := r[Key{1, 9}]; e.Min != -9 || e.Max != 9 {
		t.Errorf("logits changed: %+v", e)
	}
}
