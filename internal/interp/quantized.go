package interp

import (
	"math"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// Fixed-point arithmetic of LiteRT's integer kernels (the default build:
// double rounding). See doc.go, "Integer models", for the upstream files.

// quantizeMultiplier encodes a real multiplier m as q·2^(shift−31) with q
// in [2^30, 2^31) (tflite/kernels/internal/quantization_util.cc,
// QuantizeMultiplier): the frexp fraction rounded half away from zero to
// 31 bits; a fraction that rounds to 2^31 is halved; a shift under −31
// flushes to zero.
func quantizeMultiplier(m float64) (int32, int) {
	if m == 0 {
		return 0, 0
	}
	frac, shift := math.Frexp(m)
	q := int64(math.Round(frac * (1 << 31)))
	if q == 1<<31 {
		q /= 2
		shift++
	}
	if shift < -31 {
		return 0, 0
	}
	return int32(q), shift
}

// srdhm is gemmlowp's SaturatingRoundingDoublingHighMul: the high 32 bits
// of 2·a·b, rounded half away from zero, saturating the one overflow case.
func srdhm(a, b int32) int32 {
	if a == b && a == math.MinInt32 {
		return math.MaxInt32
	}
	ab := int64(a) * int64(b)
	nudge := int64(1 << 30)
	if ab < 0 {
		nudge = 1 - 1<<30
	}
	return int32((ab + nudge) / (1 << 31)) // Go's division truncates, as C's
}

// rdbpot is gemmlowp's RoundingDivideByPOT: x / 2^e rounded half away from
// zero.
func rdbpot(x int32, e int) int32 {
	mask := int32(int64(1)<<e - 1)
	rem := x & mask
	thr := mask >> 1
	if x < 0 {
		thr++
	}
	r := x >> e
	if rem > thr {
		r++
	}
	return r
}

// mbqm is MultiplyByQuantizedMultiplier(int32) of the double-rounding
// build (tflite/kernels/internal/common.cc): x·q·2^(shift−31).
func mbqm(x, q int32, shift int) int32 {
	left, right := max(shift, 0), max(-shift, 0)
	return rdbpot(srdhm(x*(1<<left), q), right)
}

// mbqmRuy is ruy's MultiplyByQuantizedMultiplier (ruy/apply_multiplier.cc),
// which the optimized kernels' cpu_backend_gemm applies: x·q·2^(shift−31)
// with one rounding, half up.
func mbqmRuy(x, q int32, shift int) int32 {
	total := 31 - shift
	return int32((int64(x)*int64(q) + int64(1)<<(total-1)) >> total)
}

// mbqm64 is the int64-accumulator overload (16x8 kernels with an int64
// bias): the multiplier reduced to 16 bits, one rounding.
func mbqm64(x int64, q int32, shift int) int32 {
	reduced := int64(0x7FFF)
	if q < 0x7FFF0000 {
		reduced = int64((q + 1<<15) >> 16)
	}
	total := 15 - shift
	return int32((x*reduced + int64(1)<<(total-1)) >> total)
}

// qparam is a per-tensor scale and zero point.
type qparam struct {
	scale float32
	zp    int32
}

// qrange is the storable range of an integer activation type.
func qrange(t fb.TensorType) (int32, int32) {
	if t == fb.TensorTypeINT16 {
		return math.MinInt16, math.MaxInt16
	}
	return math.MinInt8, math.MaxInt8
}

func isIntAct(t fb.TensorType) bool { return t == fb.TensorTypeINT8 || t == fb.TensorTypeINT16 }

// integerOp reports whether operator p runs on quantized activations: an
// INT8/INT16 output, or an INT8/INT16 input that is not a constant.
func (s *subgraph) integerOp(p *opPlan) bool {
	for _, o := range p.op.Outputs {
		if o >= 0 && isIntAct(s.sg.Tensors[o].Type) {
			return true
		}
	}
	for _, t := range p.op.Inputs {
		if t >= 0 && isIntAct(s.sg.Tensors[t].Type) && !s.isConst(int(t)) {
			return true
		}
	}
	return false
}

// tensorQuant reads a per-tensor scale and zero point, refusing what the
// runtime's Prepare refuses or what would make the arithmetic meaningless:
// no parameters, several scales, a scale that is not a positive finite
// float, a zero point outside the type's range. what names the operand.
func (c *opCtx) tensorQuant(meta *fb.TensorT, what string) (qparam, error) {
	q := meta.Quantization
	if q == nil || len(q.Scale) == 0 {
		return qparam{}, c.errf("%s %q (%s) has no quantization parameters", what, meta.Name, tflite.TypeName(meta.Type))
	}
	if len(q.Scale) != 1 {
		return qparam{}, c.unsupported("%s %q has %d scales: activations are quantized per tensor", what, meta.Name, len(q.Scale))
	}
	s := q.Scale[0]
	if !(s > 0) || math.IsInf(float64(s), 0) {
		return qparam{}, c.errf("%s %q has scale %g: want a positive finite number", what, meta.Name, s)
	}
	var zp int64
	if len(q.ZeroPoint) > 0 {
		zp = q.ZeroPoint[0]
	}
	lo, hi := qrange(meta.Type)
	if meta.Type == fb.TensorTypeINT32 || meta.Type == fb.TensorTypeINT64 {
		lo, hi = 0, 0
	}
	if zp < int64(lo) || zp > int64(hi) {
		return qparam{}, c.errf("%s %q (%s) has zero point %d outside [%d, %d]", what, meta.Name, tflite.TypeName(meta.Type), zp, lo, hi)
	}
	return qparam{scale: s, zp: int32(zp)}, nil
}

// inQuant and outQuant are tensorQuant of input k and output k.
func (c *opCtx) inQuant(k int) (qparam, error) {
	m := c.meta(k)
	if m == nil {
		return qparam{}, c.errf("input %d is missing", k)
	}
	return c.tensorQuant(m, "input")
}

func (c *opCtx) outQuant(k int) (qparam, error) { return c.tensorQuant(c.outMeta(k), "output") }

// ioQuant reads input 0's and output 0's parameters; with sym16, INT16
// ones must have zero point 0 (the int16 kernels' symmetric activations).
func (c *opCtx) ioQuant(sym16 bool) (in, out qparam, err error) {
	if in, err = c.inQuant(0); err != nil {
		return
	}
	if out, err = c.outQuant(0); err != nil {
		return
	}
	if sym16 {
		err = first(c.zeroPointZero(c.meta(0), in), c.zeroPointZero(c.outMeta(0), out))
	}
	return
}

// zeroPointZero enforces the int16 kernels' symmetric activations.
func (c *opCtx) zeroPointZero(meta *fb.TensorT, p qparam) error {
	if meta.Type == fb.TensorTypeINT16 && p.zp != 0 {
		return c.unsupported("INT16 tensor %q has zero point %d: int16 kernels take symmetric activations (zero point 0)", meta.Name, p.zp)
	}
	return nil
}

// activationRange is CalculateActivationRangeQuantized
// (tflite/kernels/kernel_util.cc): the fused activation's bounds in the
// output's integers, within the type's range.
func activationRange(act fb.ActivationFunctionType, out qparam, t fb.TensorType) (int32, int32) {
	lo, hi := qrange(t)
	q := func(f float32) int32 {
		// Clamped before the conversion so that a hostile scale gives
		// the same bound on every machine (the runtime refuses it).
		r := min(max(math.Round(float64(f/out.scale)), math.MinInt32), math.MaxInt32)
		return int32(min(max(int64(out.zp)+int64(r), math.MinInt32), math.MaxInt32))
	}
	switch act {
	case fb.ActivationFunctionTypeRELU:
		lo = max(lo, q(0))
	case fb.ActivationFunctionTypeRELU6:
		lo, hi = max(lo, q(0)), min(hi, q(6))
	case fb.ActivationFunctionTypeRELU_N1_TO_1:
		lo, hi = max(lo, q(-1)), min(hi, q(1))
	}
	return lo, hi
}

// checkIntActivation accepts the fused activations the integer kernels
// implement (TANH is float-only there).
func (c *opCtx) checkIntActivation(a fb.ActivationFunctionType) error {
	switch a {
	case fb.ActivationFunctionTypeNONE, fb.ActivationFunctionTypeRELU, fb.ActivationFunctionTypeRELU_N1_TO_1, fb.ActivationFunctionTypeRELU6:
		return nil
	}
	return c.unsupported("fused activation %s on integer activations", fb.EnumNamesActivationFunctionType[a])
}

// intAt and setInt read and write element i of an INT8/INT16 tensor.
func (t *Tensor) intAt(i int) int32 {
	if t.Type == fb.TensorTypeINT16 {
		return int32(t.I16[i])
	}
	return int32(t.I8[i])
}

func (t *Tensor) setInt(i int, v int32) {
	if t.Type == fb.TensorTypeINT16 {
		t.I16[i] = int16(v)
		return
	}
	t.I8[i] = int8(v)
}

// intValues returns an INT8/INT16 tensor's values as int32.
func (t *Tensor) intValues() []int32 {
	r := make([]int32, t.Len())
	switch t.Type {
	case fb.TensorTypeINT8:
		for i, v := range t.I8 {
			r[i] = int32(v)
		}
	case fb.TensorTypeINT16:
		for i, v := range t.I16 {
			r[i] = int32(v)
		}
	}
	return r
}

// intIn returns required input k, which must be INT8 or INT16.
func (c *opCtx) intIn(k int) (*Tensor, error) {
	v, err := c.in(k)
	if err != nil {
		return nil, err
	}
	if !isIntAct(v.Type) || v.Type != c.inType(k) {
		return nil, c.errf("input %d is %s, the model declares %s", k, tflite.TypeName(v.Type), tflite.TypeName(c.inType(k)))
	}
	return v, nil
}
