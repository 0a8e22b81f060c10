package conformance

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// StaticStructure is how a static model qpipe wrote differs from the
// reference quantizer's static output of the same float model, operator
// by operator and input/output slot by slot (docs/SEMANTICS.md §16.6).
// qpipe's float I/O (a QUANTIZE after each float32 subgraph input, a
// DEQUANTIZE before each output) is mapped onto the reference's integer
// inputs and outputs before the comparison.
type StaticStructure struct {
	// Ops counts the operators compared; Boundary the QUANTIZE and
	// DEQUANTIZE ops of float I/O mapped away.
	Ops, Boundary int
	// Problems are the structural differences: the op sequence, tensor
	// types, per-channel versus per-tensor, quantized dimensions, zero
	// points where they are not calibrated, bias types, fixed output
	// parameters, parameters an op ties together in the reference but not
	// in qpipe's model, weight scales and values, constants; with Exact
	// also activation scales and zero points.
	Problems []string
	// Versions are the builtin codes whose OperatorCode.version differs:
	// "CODE reference R, qpipe Q".
	Versions []string
	// Scales are qpipe's over the reference's scale of every non-constant
	// activation tensor with calibrated parameters (not fixed outputs),
	// each tensor once, in graph order.
	Scales []ScaleRatio
	// ZeroPoints counts those tensors whose zero points differ;
	// ZeroPointMax is the largest difference.
	ZeroPoints, ZeroPointMax int
	// Weights counts the int8 weight elements compared, WeightDiffs those
	// that differ, WeightMax the largest difference (in steps).
	Weights, WeightDiffs int
	WeightMax            int64
	// Biases counts the bias elements compared; BiasMax is the largest
	// difference of the dequantized values in units of the larger of the
	// two bias scales (each value is within half its step of the float
	// bias, so ≤ 1 whatever the input scales).
	Biases  int
	BiasMax float64
}

// ScaleRatio is one activation tensor's scale in qpipe's model over the
// reference's.
type ScaleRatio struct {
	Tensor string
	Ratio  float64
}

// Ratios returns the scale ratios sorted.
func (s *StaticStructure) Ratios() []float64 {
	r := make([]float64, len(s.Scales))
	for i, x := range s.Scales {
		r[i] = x.Ratio
	}
	sort.Float64s(r)
	return r
}

// scaleTol is how far two float32 scales computed from the same range may
// differ relatively (float64 arithmetic rounded to float32 twice).
const scaleTol = 1e-6

// CompareStatic compares got, a static model qpipe wrote, with ref, the
// reference quantizer's output of the same float model (subgraphs, ops
// and slots by position; the reference keeps the float model's graph).
// With exact (got was written from the reference's own ranges) the
// activation scales and zero points must be equal too; otherwise their
// ratios are recorded.
func CompareStatic(ref, got *tflite.Model, exact bool) *StaticStructure {
	s := &StaticStructure{}
	c := &staticCompare{s: s, ref: ref, got: got, exact: exact, seen: map[[2]int]bool{}, versions: map[fb.BuiltinOperator]bool{}}
	if len(ref.Meta.SignatureDefs) != len(got.Meta.SignatureDefs) {
		c.problem("%d signatures, the reference %d", len(got.Meta.SignatureDefs), len(ref.Meta.SignatureDefs))
	}
	if len(ref.Meta.Subgraphs) != len(got.Meta.Subgraphs) {
		c.problem("%d subgraphs, the reference %d", len(got.Meta.Subgraphs), len(ref.Meta.Subgraphs))
		return s
	}
	for si := range ref.Meta.Subgraphs {
		c.subgraph(si)
	}
	return s
}

type staticCompare struct {
	s        *StaticStructure
	ref, got *tflite.Model
	exact    bool
	si       int
	rs, gs   *fb.SubGraphT
	seen     map[[2]int]bool // reference tensors compared: (subgraph, tensor)
	versions map[fb.BuiltinOperator]bool
}

func (c *staticCompare) problem(format string, args ...any) {
	c.s.Problems = append(c.s.Problems, fmt.Sprintf(format, args...))
}

// withoutBoundary returns sg's operators without the QUANTIZE ops that
// read a float32 subgraph input and the DEQUANTIZE ops that write a
// subgraph output, and how many it left out.
func withoutBoundary(m *tflite.Model, sg *fb.SubGraphT) ([]*fb.OperatorT, int) {
	var ops []*fb.OperatorT
	for _, op := range sg.Operators {
		code := m.OpCode(op)
		if len(op.Inputs) == 1 && len(op.Outputs) == 1 {
			in, out := op.Inputs[0], op.Outputs[0]
			if code == fb.BuiltinOperatorQUANTIZE && slices.Contains(sg.Inputs, in) && sg.Tensors[in].Type == fb.TensorTypeFLOAT32 ||
				code == fb.BuiltinOperatorDEQUANTIZE && slices.Contains(sg.Outputs, out) {
				continue
			}
		}
		ops = append(ops, op)
	}
	return ops, len(sg.Operators) - len(ops)
}

func opNames(m *tflite.Model, ops []*fb.OperatorT) []string {
	names := make([]string, len(ops))
	for i, op := range ops {
		names[i] = fb.EnumNamesBuiltinOperator[m.OpCode(op)]
	}
	return names
}

func (c *staticCompare) subgraph(si int) {
	c.si, c.rs, c.gs = si, c.ref.Meta.Subgraphs[si], c.got.Meta.Subgraphs[si]
	gops, n := withoutBoundary(c.got, c.gs)
	c.s.Boundary += n
	if len(c.rs.Inputs) != len(c.gs.Inputs) || len(c.rs.Outputs) != len(c.gs.Outputs) {
		c.problem("subgraph %d: %d inputs and %d outputs, the reference %d and %d", si, len(c.gs.Inputs), len(c.gs.Outputs), len(c.rs.Inputs), len(c.rs.Outputs))
	}
	if !slices.Equal(opNames(c.ref, c.rs.Operators), opNames(c.got, gops)) {
		c.problem("subgraph %d: ops %v, the reference %v", si, opNames(c.got, gops), opNames(c.ref, c.rs.Operators))
		return
	}
	for oi, rop := range c.rs.Operators {
		gop := gops[oi]
		code := c.ref.OpCode(rop)
		c.s.Ops++
		rv, gv := c.ref.Meta.OperatorCodes[rop.OpcodeIndex].Version, c.got.Meta.OperatorCodes[gop.OpcodeIndex].Version
		if rv != gv && !c.versions[code] {
			c.versions[code] = true
			c.s.Versions = append(c.s.Versions, fmt.Sprintf("%s reference %d, qpipe %d", fb.EnumNamesBuiltinOperator[code], rv, gv))
		}
		if len(rop.Inputs) != len(gop.Inputs) || len(rop.Outputs) != len(gop.Outputs) {
			c.problem("subgraph %d op %d (%s): %d inputs and %d outputs, the reference %d and %d", si, oi, fb.EnumNamesBuiltinOperator[code],
				len(gop.Inputs), len(gop.Outputs), len(rop.Inputs), len(rop.Outputs))
			continue
		}
		for k := range rop.Inputs {
			c.slot(oi, code, "input", k, rop.Inputs[k], gop.Inputs[k])
		}
		for k := range rop.Outputs {
			c.slot(oi, code, "output", k, rop.Outputs[k], gop.Outputs[k])
		}
		c.ties(oi, code, rop, gop)
	}
}

// ties checks that every input and output an op gives the same parameters
// in the reference (same-as-input and same-as-output constraints) has them
// in qpipe's model too.
func (c *staticCompare) ties(oi int, code fb.BuiltinOperator, rop, gop *fb.OperatorT) {
	slots := append(append([]int32(nil), rop.Inputs...), rop.Outputs...)
	gslots := append(append([]int32(nil), gop.Inputs...), gop.Outputs...)
	for a := range slots {
		for b := a + 1; b < len(slots); b++ {
			ra, rb := c.actParams(c.ref, c.rs, slots[a]), c.actParams(c.ref, c.rs, slots[b])
			if ra == nil || rb == nil || *ra != *rb {
				continue
			}
			ga, gb := c.actParams(c.got, c.gs, gslots[a]), c.actParams(c.got, c.gs, gslots[b])
			if ga == nil || gb == nil || *ga != *gb {
				c.problem("subgraph %d op %d (%s): the reference gives %q and %q the same parameters, qpipe does not (%v, %v)", c.si, oi,
					fb.EnumNamesBuiltinOperator[code], c.rs.Tensors[slots[a]].Name, c.rs.Tensors[slots[b]].Name, ga, gb)
			}
		}
	}
}

type actParam struct {
	scale float32
	zp    int64
}

// actParams are the per-tensor parameters of a non-constant integer
// tensor, nil for anything else.
func (c *staticCompare) actParams(m *tflite.Model, sg *fb.SubGraphT, t int32) *actParam {
	if t < 0 {
		return nil
	}
	tt := sg.Tensors[t]
	q := tt.Quantization
	if constant(m, tt) || q == nil || len(q.Scale) != 1 || len(q.ZeroPoint) != 1 {
		return nil
	}
	return &actParam{q.Scale[0], q.ZeroPoint[0]}
}

func fixedOutput(code fb.BuiltinOperator) bool {
	switch code {
	case fb.BuiltinOperatorSOFTMAX, fb.BuiltinOperatorLOGISTIC, fb.BuiltinOperatorTANH:
		return true
	}
	return false
}

// slot compares one input or output of op oi.
func (c *staticCompare) slot(oi int, code fb.BuiltinOperator, kind string, k int, ri, gi int32) {
	where := fmt.Sprintf("subgraph %d op %d (%s) %s %d", c.si, oi, fb.EnumNamesBuiltinOperator[code], kind, k)
	if ri < 0 || gi < 0 {
		if ri != gi {
			c.problem("%s: tensor %d, the reference %d", where, gi, ri)
		}
		return
	}
	rt, gt := c.rs.Tensors[ri], c.gs.Tensors[gi]
	where += fmt.Sprintf(" %q", rt.Name)
	key := [2]int{c.si, int(ri)}
	if c.seen[key] {
		return
	}
	c.seen[key] = true
	if rt.Type != gt.Type {
		c.problem("%s: %s, the reference %s", where, tflite.TypeName(gt.Type), tflite.TypeName(rt.Type))
		return
	}
	rq, gq := quantParams(rt), quantParams(gt)
	rc, gc := constant(c.ref, rt), constant(c.got, gt)
	if rc != gc {
		c.problem("%s: constant %t, the reference %t", where, gc, rc)
		return
	}
	if (rq == nil) != (gq == nil) {
		c.problem("%s: quantized %t, the reference %t", where, gq != nil, rq != nil)
		return
	}
	if rq == nil {
		if rc && !c.sameBytes(rt, gt) {
			c.problem("%s: the constant's bytes differ", where)
		}
		return
	}
	if len(rq.Scale) != len(gq.Scale) {
		c.problem("%s: %s, the reference %s", where, granularity(gq), granularity(rq))
		return
	}
	if len(rq.Scale) > 1 && rq.QuantizedDimension != gq.QuantizedDimension {
		c.problem("%s: quantized dimension %d, the reference %d", where, gq.QuantizedDimension, rq.QuantizedDimension)
	}
	switch {
	case rc && rt.Type == fb.TensorTypeINT8 && len(rq.Scale) > 1:
		c.weight(where, rt, gt, rq, gq)
	case rc && (rt.Type == fb.TensorTypeINT32 || rt.Type == fb.TensorTypeINT64):
		c.bias(where, rt, gt, rq, gq)
	case rc:
		c.constAct(where, rt, gt, rq, gq)
	default:
		c.activation(where, code, kind == "output", rt, rq, gq)
	}
}

// quantParams is t's quantization when it has scales.
func quantParams(t *fb.TensorT) *fb.QuantizationParametersT {
	if q := t.Quantization; q != nil && len(q.Scale) > 0 {
		return q
	}
	return nil
}

func granularity(q *fb.QuantizationParametersT) string {
	if len(q.Scale) == 1 {
		return "per-tensor"
	}
	return fmt.Sprintf("per-channel (%d scales)", len(q.Scale))
}

func (c *staticCompare) sameBytes(rt, gt *fb.TensorT) bool {
	a, errA := tflite.ReadAll(c.ref.Buffers[rt.Buffer].Data)
	b, errB := tflite.ReadAll(c.got.Buffers[gt.Buffer].Data)
	return errA == nil && errB == nil && string(a) == string(b)
}

// ints reads constant t's integers (int8, int16, int32 or int64).
func ints(m *tflite.Model, t *fb.TensorT) ([]int64, error) {
	b, err := tflite.ReadAll(m.Buffers[t.Buffer].Data)
	if err != nil {
		return nil, err
	}
	var out []int64
	switch t.Type {
	case fb.TensorTypeINT8:
		for _, x := range b {
			out = append(out, int64(int8(x)))
		}
	case fb.TensorTypeINT16:
		for i := 0; i+1 < len(b); i += 2 {
			out = append(out, int64(int16(binary.LittleEndian.Uint16(b[i:]))))
		}
	case fb.TensorTypeINT32:
		for i := 0; i+3 < len(b); i += 4 {
			out = append(out, int64(int32(binary.LittleEndian.Uint32(b[i:]))))
		}
	case fb.TensorTypeINT64:
		for i := 0; i+7 < len(b); i += 8 {
			out = append(out, int64(binary.LittleEndian.Uint64(b[i:])))
		}
	default:
		return nil, fmt.Errorf("tensor %q: %s is not an integer type", t.Name, tflite.TypeName(t.Type))
	}
	return out, nil
}

// bothInts reads the two constants' integers, which must be as many.
func (c *staticCompare) bothInts(where string, rt, gt *fb.TensorT) (r, g []int64, ok bool) {
	r, err := ints(c.ref, rt)
	if err == nil {
		g, err = ints(c.got, gt)
	}
	switch {
	case err != nil:
		c.problem("%s: %v", where, err)
		return nil, nil, false
	case len(r) != len(g):
		c.problem("%s: %d values, the reference %d", where, len(g), len(r))
		return nil, nil, false
	}
	return r, g, true
}

func relDiff(a, b float64) float64 {
	if a == b {
		return 0
	}
	return math.Abs(a-b) / math.Max(math.Abs(a), math.Abs(b))
}

// weight compares an int8 per-channel weight: the same scales (they depend
// on the weights alone), zero points 0, values within one step.
func (c *staticCompare) weight(where string, rt, gt *fb.TensorT, rq, gq *fb.QuantizationParametersT) {
	for ch := range rq.Scale {
		if relDiff(float64(rq.Scale[ch]), float64(gq.Scale[ch])) > scaleTol {
			c.problem("%s: channel %d scale %g, the reference %g", where, ch, gq.Scale[ch], rq.Scale[ch])
			return
		}
	}
	if !slices.Equal(rq.ZeroPoint, gq.ZeroPoint) {
		c.problem("%s: zero points %v, the reference %v", where, gq.ZeroPoint, rq.ZeroPoint)
	}
	r, g, ok := c.bothInts(where, rt, gt)
	if !ok {
		return
	}
	var worst int64
	for i := range r {
		d := r[i] - g[i]
		if d != 0 {
			c.s.WeightDiffs++
			worst = max(worst, d, -d)
		}
	}
	c.s.Weights += len(r)
	c.s.WeightMax = max(c.s.WeightMax, worst)
	if worst > 1 {
		c.problem("%s: int8 values differ by up to %d steps at the same scales", where, worst)
	}
}

// bias compares an integer bias: type (checked by the caller), zero
// points 0 in both, and the dequantized values.
func (c *staticCompare) bias(where string, rt, gt *fb.TensorT, rq, gq *fb.QuantizationParametersT) {
	if !slices.Equal(rq.ZeroPoint, gq.ZeroPoint) {
		c.problem("%s: zero points %v, the reference %v", where, gq.ZeroPoint, rq.ZeroPoint)
	}
	r, g, ok := c.bothInts(where, rt, gt)
	if !ok || len(r) != len(rq.Scale) {
		return
	}
	var worst float64
	for i := range r {
		sr, sg := float64(rq.Scale[i]), float64(gq.Scale[i])
		if c.exact && relDiff(sr, sg) > scaleTol {
			c.problem("%s: channel %d scale %g, the reference %g", where, i, sg, sr)
			return
		}
		worst = max(worst, math.Abs(float64(r[i])*sr-float64(g[i])*sg)/math.Max(sr, sg))
	}
	c.s.Biases += len(r)
	c.s.BiasMax = max(c.s.BiasMax, worst)
	if worst > 1+1e-6 {
		c.problem("%s: dequantized values differ by %.3g steps", where, worst)
	}
}

// constAct compares a constant quantized per tensor as an activation (the
// other operand of ADD or MUL): parameters as an activation's, dequantized
// values within half a step of each other's plus rounding.
func (c *staticCompare) constAct(where string, rt, gt *fb.TensorT, rq, gq *fb.QuantizationParametersT) {
	sr, sg := float64(rq.Scale[0]), float64(gq.Scale[0])
	if relDiff(sr, sg) > scaleTol || rq.ZeroPoint[0] != gq.ZeroPoint[0] {
		c.problem("%s: constant quantized with scale %g zero point %d, the reference %g and %d", where, sg, gq.ZeroPoint[0], sr, rq.ZeroPoint[0])
		return
	}
	r, g, ok := c.bothInts(where, rt, gt)
	if !ok {
		return
	}
	for i := range r {
		if d := r[i] - g[i]; d > 1 || d < -1 {
			c.problem("%s: element %d is %d, the reference %d", where, i, g[i], r[i])
			return
		}
	}
}

// activation compares a non-constant integer tensor's parameters.
func (c *staticCompare) activation(where string, code fb.BuiltinOperator, output bool, rt *fb.TensorT, rq, gq *fb.QuantizationParametersT) {
	sr, sg := float64(rq.Scale[0]), float64(gq.Scale[0])
	zr, zg := rq.ZeroPoint[0], gq.ZeroPoint[0]
	if output && fixedOutput(code) {
		if sr != sg || zr != zg {
			c.problem("%s: fixed output scale %g zero point %d, the reference %g and %d", where, sg, zg, sr, zr)
		}
		return
	}
	if rt.Type == fb.TensorTypeINT16 && (zr != 0 || zg != 0) {
		c.problem("%s: int16 zero point %d, the reference %d (both must be 0)", where, zg, zr)
	}
	c.s.Scales = append(c.s.Scales, ScaleRatio{Tensor: rt.Name, Ratio: sg / sr})
	if zr != zg {
		c.s.ZeroPoints++
		c.s.ZeroPointMax = max(c.s.ZeroPointMax, int(max(zr-zg, zg-zr)))
	}
	if c.exact && (relDiff(sr, sg) > scaleTol || zr != zg) {
		c.problem("%s: scale %g zero point %d from the reference's own range, the reference %g and %d", where, sg, zg, sr, zr)
	}
}
