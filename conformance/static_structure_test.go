package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/digits"
	"github.com/qpipe/qpipe/internal/litert"
	"github.com/qpipe/qpipe/internal/quant"
	"github.com/qpipe/qpipe/internal/static"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// refDir holds the reference quantizer's own static outputs of test
// models (testdata/models/ORIGIN.tsv); they are not run by the suite.
const refDir = modelsDir + "/reference"

// staticRefModel is a float test model with the reference quantizer's
// static_wi8_ai8 output of it (AEQ tests/models). lo and hi bound the
// calibration inputs, uniform, as the reference's were: AEQ's MNIST
// tests calibrate conv_fc_mnist on uniform [0, 1) images
// (tests/mnist_test.py _get_dummy_data); two_signatures_a8w8 was written
// from hand-set ranges, inputs in [−2, 2] (quantizer_test.py
// QuantizerMultiSignatureModelTest).
//
// AEQ does not ship the float model conv_fc_mnist_srq_a8w8 was quantized
// from: its weights are not those of tests/models/conv_fc_mnist.tflite
// (same graph and tensor names; the dequantized weights have cosine
// similarity 0.03–0.05 with its, channel scales differ by 1.18–1.21×).
// images says the input is an MNIST image: qpipe is calibrated on
// digit-like images (internal/digits) as well, and both models run on
// such images rather than uniform noise.
//
// With rebuild, the float original is rebuilt as that graph holding the
// reference's dequantized weights and biases, within half a step of the
// unknown original's.
type staticRefModel struct {
	float, ref string
	lo, hi     float32
	images     bool
	rebuild    bool
	// like is the qpipe variant and calibration set closest to how the
	// reference was calibrated; its activation scales must be within
	// staticScaleTol of the reference's, except handSet's (tensor → why).
	like    staticRun
	handSet map[string]string
}

// staticRun is one variant calibrated on one set.
type staticRun struct{ variant, data string }

var staticRefModels = []staticRefModel{
	{"aeq_conv_fc_mnist.tflite", "aeq_conv_fc_mnist_srq_a8w8.tflite", 0, 1, true, true,
		staticRun{variantEMA, dataDigits}, nil},
	{"aeq_two_signatures.tflite", "aeq_two_signatures_a8w8.tflite", -2, 2, false, false,
		staticRun{variantPreset, dataUniform}, map[string]string{
			"PartitionedCall:0": "set by hand to [−8, 12]; x in [−2, 2] plus 10 gives [8, 12]"}},
}

// staticRefSamples is the number of calibration samples: AEQ's MNIST
// test's 256.
const staticRefSamples = 256

// staticRefRuns is the number of inputs per signature both models run on
// LiteRT.js.
const staticRefRuns = 64

// The variants of qpipe's model compared with the reference's.
const (
	// variantRanges: internal/static.Rewrite with the ranges the
	// reference's own activation parameters encode, integer I/O: isolates
	// the rewrite from calibration.
	variantRanges = "reference's ranges, io: integer"
	// variantPreset: the static_int8 preset as shipped (min/max, float I/O),
	// calibrated like the reference.
	variantPreset = "static_int8"
	// variantEMA: static_int8 with the reference's moving average.
	variantEMA = "static_int8, estimator: moving_average"
)

// staticScaleTol is how far (as a factor) an activation scale of the
// variant calibrated like the reference may be from the reference's
// (measured 0.997–1.071); staticLikeL2 bounds that variant's outputs'
// rel L2 from the reference's on LiteRT.js (measured 0.084 MNIST, 0.0054
// two_signatures) and staticLikeTop1 their argmax agreement (measured 1).
const (
	staticScaleTol = 1.1
	staticLikeL2   = 0.15
	staticLikeTop1 = 0.95
)

// Calibration sets.
const (
	dataUniform = "uniform"
	dataDigits  = "digit images"
)

// staticRefResult is one variant on one model.
type staticRefResult struct {
	model, variant string
	data           string // the calibration set ("" for variantRanges)
	ref            staticRefModel
	st             *StaticStructure
	// Outputs on LiteRT.js, qpipe's model against the reference's (both
	// behind float I/O) on the same inputs.
	vsRef    Errors
	within   float64 // fraction of output elements within one output step
	equal    float64 // fraction equal
	maxSteps float64
	top1     float64 // argmax agreement (single-output signatures)
	n        int     // output elements compared
	problems []string
}

var staticRefShared struct {
	once    sync.Once
	results []*staticRefResult
	err     error
}

// staticRefResults builds and compares every variant on every reference
// model; once per test binary.
func staticRefResults(r *litert.Runner) ([]*staticRefResult, error) {
	staticRefShared.once.Do(func() {
		for _, m := range staticRefModels {
			rs, err := staticRefCase(r, m)
			if err != nil {
				staticRefShared.err = fmt.Errorf("%s: %w", m.ref, err)
				return
			}
			staticRefShared.results = append(staticRefShared.results, rs...)
		}
	})
	return staticRefShared.results, staticRefShared.err
}

func staticRefCase(r *litert.Runner, m staticRefModel) ([]*staticRefResult, error) {
	floatPath, refPath := filepath.Join(modelsDir, m.float), filepath.Join(refDir, m.ref)
	short := strings.TrimSuffix(m.float, ".tflite")
	ref, err := tflite.Open(refPath)
	if err != nil {
		return nil, err
	}
	defer ref.Close()
	if m.rebuild {
		rebuilt := filepath.Join(workDir, short+"_aeq_weights.tflite")
		if err := writeRefWeights(floatPath, ref, rebuilt); err != nil {
			return nil, err
		}
		floatPath = rebuilt
	}
	// The reference's integer I/O behind QUANTIZE/DEQUANTIZE: LiteRT.js
	// takes float32 inputs only.
	refFloatIO := filepath.Join(workDir, short+"_aeq_float_io.tflite")
	if err := writeFloatIO(refPath, refFloatIO); err != nil {
		return nil, err
	}
	inputs, err := staticRefInputs(r, refFloatIO, m)
	if err != nil {
		return nil, err
	}
	want, err := runAll(r, refFloatIO, inputs)
	if err != nil {
		return nil, fmt.Errorf("the reference's model on LiteRT.js: %w", err)
	}
	steps, err := outputSteps(refFloatIO)
	if err != nil {
		return nil, err
	}
	runs := []staticRun{{variantRanges, ""}}
	cals := map[string]*config.Calibration{}
	sets := []string{dataUniform}
	if m.images {
		sets = append(sets, dataDigits)
	}
	for _, data := range sets {
		if cals[data], err = staticRefCalibration(floatPath, m, data); err != nil {
			return nil, err
		}
		runs = append(runs, staticRun{variantPreset, data}, staticRun{variantEMA, data})
	}
	var out []*staticRefResult
	for i, rv := range runs {
		v := rv.variant
		path := filepath.Join(workDir, fmt.Sprintf("%s_variant%d.tflite", short, i))
		if err := staticRefVariant(v, floatPath, ref, path, cals[rv.data]); err != nil {
			return nil, fmt.Errorf("%s: %w", v, err)
		}
		got, err := tflite.Open(path)
		if err != nil {
			return nil, err
		}
		res := &staticRefResult{model: short, variant: v, data: rv.data, ref: m, st: CompareStatic(ref, got, v == variantRanges)}
		got.Close()
		run := path
		if v == variantRanges {
			run = strings.TrimSuffix(path, ".tflite") + "_float_io.tflite"
			if err := writeFloatIO(path, run); err != nil {
				return nil, err
			}
		}
		outs, err := runAll(r, run, inputs)
		if err != nil {
			return nil, fmt.Errorf("%s on LiteRT.js: %w", v, err)
		}
		res.agreement(outs, want, steps)
		out = append(out, res)
	}
	return out, nil
}

// staticRefVariant writes qpipe's model of variant v to out.
func staticRefVariant(v, floatPath string, ref *tflite.Model, out string, cal *config.Calibration) error {
	if v == variantRanges {
		m, err := tflite.Open(floatPath)
		if err != nil {
			return err
		}
		defer m.Close()
		if _, err := static.Rewrite(m, rangesOf(ref, m), static.Options{Bits: 8, IntegerIO: true}); err != nil {
			return err
		}
		if err := static.Check(m); err != nil {
			return err
		}
		return tflite.WriteFile(context.Background(), out, m, tflite.WriteOptions{})
	}
	rec, err := config.Preset("static_int8")
	if err != nil {
		return err
	}
	if v == variantEMA {
		c, st := *rec, *rec.Static
		st.Estimator = static.EstimatorMovingAverage
		c.Static, c.Name, c.Suffix = &st, rec.Name+"_ema", rec.Suffix+"_ema"
		rec = &c
	}
	_, err = QuantizeCalibrated(context.Background(), floatPath, out, rec, cal)
	return err
}

// rangesOf are the activation ranges the reference's per-tensor
// parameters encode, for the tensors of the float model m of the same
// name: asymmetric int8 [(−128−zp)·s, (127−zp)·s], from which qpipe's
// formula gives the same scale and zero point back.
func rangesOf(ref, m *tflite.Model) static.Ranges {
	r := static.Ranges{}
	for si, sg := range m.Meta.Subgraphs {
		byName := map[string]*fb.TensorT{}
		for _, t := range ref.Meta.Subgraphs[si].Tensors {
			byName[t.Name] = t
		}
		for ti, t := range sg.Tensors {
			rt := byName[t.Name]
			if rt == nil || constant(ref, rt) || rt.Quantization == nil || len(rt.Quantization.Scale) != 1 {
				continue
			}
			s, zp := float64(rt.Quantization.Scale[0]), float64(rt.Quantization.ZeroPoint[0])
			r[static.Key{Subgraph: si, Tensor: ti}] = &static.Range{Min: (-128 - zp) * s, Max: (127 - zp) * s, Samples: 1}
		}
	}
	return r
}

// writeRefWeights writes the float model at floatPath with every float32
// constant the reference quantized per channel or as an integer bias
// replaced by the reference's dequantized values (q·s along the quantized
// dimension; tensors matched by name).
func writeRefWeights(floatPath string, ref *tflite.Model, out string) error {
	m, err := tflite.Open(floatPath)
	if err != nil {
		return err
	}
	defer m.Close()
	for si, sg := range m.Meta.Subgraphs {
		byName := map[string]*fb.TensorT{}
		for _, t := range ref.Meta.Subgraphs[si].Tensors {
			byName[t.Name] = t
		}
		for _, t := range sg.Tensors {
			rt := byName[t.Name]
			if t.Type != fb.TensorTypeFLOAT32 || !constant(m, t) || rt == nil || !constant(ref, rt) || rt.Quantization == nil ||
				!(len(rt.Quantization.Scale) > 1 || rt.Type == fb.TensorTypeINT32) {
				continue
			}
			q, err := ints(ref, rt)
			if err != nil {
				return err
			}
			scales, axis := rt.Quantization.Scale, int(rt.Quantization.QuantizedDimension)
			inner := 1
			for _, d := range rt.Shape[axis+1:] {
				inner *= int(d)
			}
			x := make([]float32, len(q))
			for i, v := range q {
				x[i] = float32(float64(v) * float64(scales[(i/inner)%len(scales)]))
			}
			if n, _ := tflite.ReadAll(m.Buffers[t.Buffer].Data); len(n) != 4*len(x) {
				return fmt.Errorf("%s: tensor %q has %d bytes, the reference's %d values", floatPath, t.Name, len(n), len(x))
			}
			m.Buffers[t.Buffer].Data = tflite.Bytes(quant.Float32Bytes(x))
		}
	}
	return tflite.WriteFile(context.Background(), out, m, tflite.WriteOptions{})
}

// staticRefCalibration writes staticRefSamples inputs for every float32
// input of the model's signatures (one JSON line each): uniform in
// [lo, hi), or digit images.
func staticRefCalibration(floatPath string, m staticRefModel, data string) (*config.Calibration, error) {
	fm, err := tflite.Open(floatPath)
	if err != nil {
		return nil, err
	}
	defer fm.Close()
	sizes := map[string]int{}
	for _, sd := range fm.Meta.SignatureDefs {
		sg := fm.Meta.Subgraphs[sd.SubgraphIndex]
		for _, tm := range sd.Inputs {
			n := 1
			for _, d := range sg.Tensors[tm.TensorIndex].Shape {
				n *= int(max(d, 1))
			}
			sizes[tm.Name] = n
		}
	}
	names := make([]string, 0, len(sizes))
	for n := range sizes {
		names = append(names, n)
	}
	slices.Sort(names)
	path := filepath.Join(workDir, strings.TrimSuffix(m.float, ".tflite")+"_"+strings.ReplaceAll(data, " ", "_")+".jsonl")
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(23, 1))
	imgs := digits.Images(23, staticRefSamples)
	enc := json.NewEncoder(f)
	for i := range staticRefSamples {
		line := map[string][]float32{}
		for _, n := range names {
			line[n] = uniform(rng, sizes[n], m.lo, m.hi)
			if data == dataDigits {
				line[n] = imgs[i]
			}
		}
		if err := enc.Encode(line); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return &config.Calibration{Samples: staticRefSamples, Inputs: path}, nil
}

func uniform(rng *rand.Rand, n int, lo, hi float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = lo + (hi-lo)*rng.Float32()
	}
	return v
}

// staticRefInputs are staticRefRuns inputs per signature, uniform in
// [lo, hi) or digit images, seeded apart from the calibration sets.
func staticRefInputs(r *litert.Runner, path string, m staticRefModel) (map[string][][]litert.Tensor, error) {
	info, err := r.Info(path)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(29, 2))
	imgs := digits.Images(29, staticRefRuns)
	in := map[string][][]litert.Tensor{}
	for _, sig := range info.Signatures {
		for i := range staticRefRuns {
			var ts []litert.Tensor
			for _, ti := range sig.Inputs {
				n := 1
				for _, d := range ti.Shape {
					n *= max(d, 1)
				}
				x := uniform(rng, n, m.lo, m.hi)
				if m.images {
					x = imgs[i]
				}
				ts = append(ts, litert.NewFloat32(ti.Name, ti.Shape, x))
			}
			in[sig.Key] = append(in[sig.Key], ts)
		}
	}
	return in, nil
}

func runAll(r *litert.Runner, path string, inputs map[string][][]litert.Tensor) (map[string][][]litert.Tensor, error) {
	out := map[string][][]litert.Tensor{}
	for key, runs := range inputs {
		for i, in := range runs {
			o, err := r.RunSignature(path, key, in)
			if err != nil {
				return nil, fmt.Errorf("signature %q, input %d: %w", key, i, err)
			}
			out[key] = append(out[key], o)
		}
	}
	return out, nil
}

// agreement measures got against want, both on the same inputs: the
// distance, the fractions of elements equal and within one step of the
// reference's output grid, and the argmax agreement.
func (res *staticRefResult) agreement(got, want map[string][][]litert.Tensor, steps map[string]float64) {
	c := &Comparison{}
	var equal, within, top, runs int
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		for i := range want[key] {
			c.Add(key, got[key][i], want[key][i])
			if len(want[key][i]) != len(got[key][i]) {
				continue
			}
			for k, w := range want[key][i] {
				g := got[key][i][k]
				if g.DType != "float32" || w.DType != "float32" || len(g.Data) != len(w.Data) {
					continue
				}
				a, b := g.Float32s(), w.Float32s()
				step := steps[w.Name]
				for j := range b {
					d := math.Abs(float64(a[j]) - float64(b[j]))
					res.n++
					if d == 0 {
						equal++
					}
					if d <= step*1.0001 {
						within++
					}
					if step > 0 {
						res.maxSteps = max(res.maxSteps, d/step)
					}
				}
				if len(want[key][i]) == 1 && len(b) > 1 {
					runs++
					if argmax(a) == argmax(b) {
						top++
					}
				}
			}
		}
	}
	res.vsRef, res.problems = c.Errors(), c.Problems
	res.equal = float64(equal) / float64(max(res.n, 1))
	res.within = float64(within) / float64(max(res.n, 1))
	res.top1 = math.NaN()
	if runs > 0 {
		res.top1 = float64(top) / float64(runs)
	}
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// writeFloatIO writes the model at in with its integer signature inputs
// and outputs behind float32 ones: a QUANTIZE after each input and a
// DEQUANTIZE before each output, with the tensors' own parameters (what
// the reference quantizer writes with no_quantize INPUT and OUTPUT rules).
func writeFloatIO(in, out string) error {
	m, err := tflite.Open(in)
	if err != nil {
		return err
	}
	defer m.Close()
	for _, sd := range m.Meta.SignatureDefs {
		sg := m.Meta.Subgraphs[sd.SubgraphIndex]
		float := func(t int32) int32 {
			tt := sg.Tensors[t]
			sg.Tensors = append(sg.Tensors, &fb.TensorT{Name: tt.Name + "_float", Type: fb.TensorTypeFLOAT32,
				Shape: slices.Clone(tt.Shape), ShapeSignature: slices.Clone(tt.ShapeSignature), HasRank: tt.HasRank})
			return int32(len(sg.Tensors) - 1)
		}
		integer := func(t int32) bool {
			tt := sg.Tensors[t]
			return (tt.Type == fb.TensorTypeINT8 || tt.Type == fb.TensorTypeINT16) && tt.Quantization != nil && len(tt.Quantization.Scale) == 1
		}
		repoint := func(maps []*fb.TensorMapT, from, to int32) {
			for _, tm := range maps {
				if tm.TensorIndex == uint32(from) {
					tm.TensorIndex = uint32(to)
				}
			}
		}
		var head, tail []*fb.OperatorT
		for k, t := range sg.Inputs {
			if !integer(t) {
				continue
			}
			f := float(t)
			head = append(head, &fb.OperatorT{OpcodeIndex: m.OperatorCodeIndex(fb.BuiltinOperatorQUANTIZE, 1), Inputs: []int32{f}, Outputs: []int32{t}})
			sg.Inputs[k] = f
			repoint(sd.Inputs, t, f)
		}
		for k, t := range sg.Outputs {
			if !integer(t) {
				continue
			}
			f := float(t)
			tail = append(tail, &fb.OperatorT{OpcodeIndex: m.OperatorCodeIndex(fb.BuiltinOperatorDEQUANTIZE, 2), Inputs: []int32{t}, Outputs: []int32{f}})
			sg.Outputs[k] = f
			repoint(sd.Outputs, t, f)
		}
		sg.Operators = append(append(head, sg.Operators...), tail...)
	}
	return tflite.WriteFile(context.Background(), out, m, tflite.WriteOptions{})
}

// TestStaticStructureVsReference: on the float models whose static_wi8_ai8
// output the reference quantizer ships, qpipe writes the same structure
// (ops after mapping float I/O, tensor types, per-channel or per-tensor,
// zero points, bias types, fixed outputs, tied parameters, weight scales
// and values within one step). From the reference's own ranges the
// activation parameters are equal too and LiteRT.js gives the same
// outputs on almost every element; calibrated on inputs like the
// reference's, the activation scales are within staticScaleTol of its
// (MNIST; two_signatures' reference ranges were set by hand) and the
// outputs within a few output steps.
func TestStaticStructureVsReference(t *testing.T) {
	r := litert.Require(t)
	results, err := staticRefResults(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range results {
		name := res.model + "/" + res.variant
		if res.data != "" {
			name += "/" + res.data
		}
		t.Run(name, func(t *testing.T) {
			st := res.st
			rat := st.Ratios()
			t.Logf("%d ops (%d boundary ops mapped), %d activation scales: ratio min %.4g median %.4g max %.4g; zero points differing %d (max %d); weights %d elements, %d differ (max %d); biases %d, max %.3g steps; versions differ: %s",
				st.Ops, st.Boundary, len(rat), quantile(rat, 0), quantile(rat, 0.5), quantile(rat, 1), st.ZeroPoints, st.ZeroPointMax,
				st.Weights, st.WeightDiffs, st.WeightMax, st.Biases, st.BiasMax, strings.Join(st.Versions, "; "))
			for _, s := range st.Scales {
				t.Logf("  scale ratio %-8.4g %s", s.Ratio, s.Tensor)
			}
			t.Logf("LiteRT.js vs the reference's model: %d elements, equal %.4f, within one step %.4f, max %.3g steps, rel L2 %.3g, top-1 %.4f",
				res.n, res.equal, res.within, res.maxSteps, res.vsRef.RelL2, res.top1)
			for _, p := range st.Problems {
				t.Errorf("differs from the reference: %s", p)
			}
			for _, p := range res.problems {
				t.Errorf("outputs: %s", p)
			}
			if st.Ops == 0 || st.Weights == 0 && res.model == "aeq_conv_fc_mnist" {
				t.Errorf("nothing compared")
			}
			switch {
			case res.variant == variantRanges:
				// The same parameters and weights: the same integers.
				if res.equal != 1 {
					t.Errorf("%.4f of the output elements equal to the reference's, want all", res.equal)
				}
			case res.ref.like == staticRun{res.variant, res.data}:
				for _, s := range st.Scales {
					if why := res.ref.handSet[s.Tensor]; why != "" {
						t.Logf("%q: not bounded, the reference's range was %s", s.Tensor, why)
						continue
					}
					if math.Abs(math.Log(s.Ratio)) > math.Log(staticScaleTol) {
						t.Errorf("activation %q: scale %.4g× the reference's, want within %g×", s.Tensor, s.Ratio, staticScaleTol)
					}
				}
				if res.vsRef.RelL2 > staticLikeL2 || res.top1 < staticLikeTop1 {
					t.Errorf("outputs vs the reference's: rel L2 %.3g (want <= %g), top-1 %.4f (want >= %g)", res.vsRef.RelL2, staticLikeL2, res.top1, staticLikeTop1)
				}
			}
		})
	}
}

// quantile is the q-quantile of sorted x (nearest rank), NaN when empty.
func quantile(x []float64, q float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	return x[int(math.Round(q*float64(len(x)-1)))]
}

// TestCompareStaticCatches: CompareStatic finds a changed zero point, a
// per-tensor weight, a wrong fixed output, a changed weight value and a
// broken same-as-input tie in copies of the reference's own model, and
// nothing in the model itself.
func TestCompareStaticCatches(t *testing.T) {
	path := filepath.Join(refDir, "aeq_conv_fc_mnist_srq_a8w8.tflite")
	open := func() *tflite.Model {
		m, err := tflite.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	ref := open()
	if st := CompareStatic(ref, open(), true); len(st.Problems) > 0 || st.Ops != 6 || st.WeightDiffs != 0 {
		t.Fatalf("the model against itself: %d ops, %d weight differences, %v", st.Ops, st.WeightDiffs, st.Problems)
	}
	byName := func(m *tflite.Model, name string) *fb.TensorT {
		for _, tt := range m.Meta.Subgraphs[0].Tensors {
			if tt.Name == name {
				return tt
			}
		}
		t.Fatalf("no tensor %q", name)
		return nil
	}
	for _, c := range []struct {
		name, want string
		mutate     func(m *tflite.Model)
	}{
		{"zero point", "zero point", func(m *tflite.Model) { byName(m, "sequential/dense_1/MatMul").Quantization.ZeroPoint[0]++ }},
		{"per-tensor weight", "per-tensor", func(m *tflite.Model) {
			q := byName(m, "arith.constant").Quantization
			q.Scale, q.ZeroPoint = q.Scale[:1], q.ZeroPoint[:1]
		}},
		{"fixed output", "fixed output", func(m *tflite.Model) { byName(m, "StatefulPartitionedCall:0").Quantization.Scale[0] = 1.0 / 255 }},
		{"weight value", "steps", func(m *tflite.Model) {
			tt := byName(m, "sequential/conv2d/Conv2D")
			b, err := tflite.ReadAll(m.Buffers[tt.Buffer].Data)
			if err != nil {
				t.Fatal(err)
			}
			b = slices.Clone(b)
			b[0] = byte(int8(b[0]) / 2)
			b[1] ^= 0x40
			m.Buffers[tt.Buffer].Data = tflite.Bytes(b)
		}},
		{"tie", "same parameters", func(m *tflite.Model) {
			q := byName(m, "sequential/average_pooling2d/AvgPool").Quantization
			q.Scale = []float32{q.Scale[0] * 1.01}
		}},
	} {
		got := open()
		c.mutate(got)
		st := CompareStatic(ref, got, true)
		if !slices.ContainsFunc(st.Problems, func(p string) bool { return strings.Contains(p, c.want) }) {
			t.Errorf("%s: no problem naming %q: %v", c.name, c.want, st.Problems)
		}
	}
}
