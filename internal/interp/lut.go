package interp

import (
	"math"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// Lookup tables of LiteRT's integer activations (LUTPopulate and
// LUTLookup, tflite/kernels/internal/common.h), recomputed from their
// definitions.

// lutInt8 maps every int8 input q to clamp(round(f(s_in·(q − zp_in)) ·
// (1/s_out)) + zp_out), all in float32 as LUTPopulateInt8 computes it.
// The table is indexed by q + 128.
func lutInt8(in, out qparam, f func(float32) float32) [256]int8 {
	var t [256]int8
	inv := 1 / out.scale
	for q := int32(-128); q <= 127; q++ {
		y := f(in.scale * float32(q-in.zp))
		r := float32(math.Round(float64(y * inv)))
		v := int32(r + float32(out.zp)) // truncation, as the C cast
		if math.IsNaN(float64(r)) {
			v = 0
		}
		t[q+128] = int8(min(max(v, -128), 127))
	}
	return t
}

// lutInt16 is LUTPopulateInt16 in float type F: 512 samples of f over the
// input's whole int16 range, each lowered by half the error of linear
// interpolation at the interval's midpoint, plus the end point; 513
// entries for lutLookup16.
func lutInt16[F float32 | float64](inScale F, inZP int32, outScale F, outZP int32, f func(F) F) []int16 {
	rnd := func(x F) F { return F(math.Round(float64(x))) }
	inMin := F(inScale * F(math.MinInt16-inZP))
	inMax := F(inScale * F(math.MaxInt16-inZP))
	outMin := F(outScale * F(math.MinInt16-outZP))
	outMax := F(outScale * F(math.MaxInt16-outZP))
	const steps = 512
	step := (inMax - inMin) / steps
	half := F(step / 2)
	inv := F(65536) / (outMax - outMin)
	clamp := func(x F) int16 { return int16(min(max(x, math.MinInt16), math.MaxInt16)) }
	t := make([]int16, steps+1)
	// xs[i] = input_min + i·step, the product rounded (no fused add).
	xs := make([]F, steps+1)
	for i := range xs {
		xs[i] = inMin + F(F(i)*step)
	}
	for i := 0; i < steps; i++ {
		x := xs[i]
		val := f(x)
		mid := f(x + half)
		next := f(xs[i+1])
		sample := rnd(F(val * inv))
		interp := rnd((F(next*inv) + rnd(F(val*inv))) / 2)
		midVal := rnd(F(mid * inv))
		bias := rnd((interp - midVal) / 2)
		t[i] = clamp(sample - bias)
	}
	t[steps] = clamp(rnd(F(f(inMax) * inv)))
	return t
}

// lutLookup16 is LUTLookup for int16: the high 9 bits index the table, the
// low 7 interpolate linearly to the next entry, rounded.
func lutLookup16(t []int16, v int16) int16 {
	idx := int(uint16(256 + int32(v>>7)))
	off := int32(v & 0x7f)
	base := int32(t[idx])
	slope := int32(t[idx+1]) - base
	return int16(base + (slope*off+64)>>7)
}

// lutQ is a LUT operator's table for its width.
type lutQ struct {
	t8  [256]int8
	t16 []int16
	s16 *sigmoid16Q // int16 LOGISTIC and TANH
}

func (q *lutQ) apply(x, out *Tensor) {
	if x.Type == fb.TensorTypeINT8 {
		for i, v := range x.I8 {
			out.I8[i] = q.t8[int(v)+128]
		}
		return
	}
	if q.s16 != nil {
		for i, v := range x.I16 {
			out.I16[i] = q.s16.apply(v)
		}
		return
	}
	for i, v := range x.I16 {
		out.I16[i] = lutLookup16(q.t16, v)
	}
}

// lutKernel is an element-wise integer activation computed through a
// table built at New by build (which also checks the parameters).
func lutKernel(build func(c *opCtx, t fb.TensorType, in, out qparam) (*lutQ, error)) *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			t := c.inType(0)
			if err := first(c.arity(1, 1, 1), c.typeIn(0, fb.TensorTypeINT8, fb.TensorTypeINT16), c.typeOut(0, t)); err != nil {
				return err
			}
			in, out, err := c.ioQuant(false)
			if err != nil {
				return err
			}
			q, err := build(c, t, in, out)
			c.p.q = q
			return err
		},
		run: func(c *opCtx) error {
			x, err := c.intIn(0)
			if err != nil {
				return err
			}
			out := NewTensor(x.Type, x.Shape)
			c.p.q.(*lutQ).apply(x, out)
			c.set(0, out)
			return nil
		},
	}
}

// f32 wraps a float64 function as a float32 one (the result rounded
// once; libm's float functions are within an ulp of it).
func f32fn(f func(float64) float64) func(float32) float32 {
	return func(x float32) float32 { return float32(f(float64(x))) }
}

// logisticLUT: LOGISTIC int8 through a table of 1/(1+exp(−x)) (the
// runtime's generic kernel; the output must be scale 1/256 exactly);
// int16 through the runtime's interpolated sigmoid table (sigmoid16Q).
func logisticLUT(c *opCtx, t fb.TensorType, in, out qparam) (*lutQ, error) {
	if t == fb.TensorTypeINT16 {
		return sigmoid16(c, in, out, false)
	}
	if out.scale != 1.0/256 {
		return nil, c.unsupported("INT8 LOGISTIC output %q has scale %g: the runtime requires exactly 1/256", c.outMeta(0).Name, out.scale)
	}
	return &lutQ{t8: lutInt8(in, out, func(x float32) float32 { return 1 / (1 + float32(math.Exp(float64(-x)))) })}, nil
}

// tanhLUT: TANH int8 through a table of tanh; int16 through the
// runtime's interpolated sigmoid table (sigmoid16Q).
func tanhLUT(c *opCtx, t fb.TensorType, in, out qparam) (*lutQ, error) {
	if t == fb.TensorTypeINT16 {
		return sigmoid16(c, in, out, true)
	}
	return &lutQ{t8: lutInt8(in, out, f32fn(math.Tanh))}, nil
}

// sigmoidTable16 is the 256-entry uint16 table of LiteRT's int16
// LOGISTIC and TANH kernels (sigmoid_table_uint16,
// tflite/kernels/internal/common.h), recomputed: entry i is sigmoid(i/24)
// in 0.16 fixed point, raised by half the error of linear interpolation
// at the interval's midpoint (so the interpolated curve errs equally
// above and below), rounded; the last entry is 65535, the saturation
// value the kernels use past the table. TestSigmoidTable16 pins the
// derivation; the int16 differential tests run all 65,536 inputs.
var sigmoidTable16 = func() [256]uint32 {
	var t [256]uint32
	s := func(x float64) float64 { return 65536 / (1 + math.Exp(-x/24)) }
	for i := range 255 {
		x := float64(i)
		mid := s(x + 0.5)
		lin := float64((s(x) + s(x+1)) / 2)
		t[i] = uint32(math.Round(s(x) + float64((mid-lin)/2)))
	}
	t[255] = 65535
	return t
}()

// sigmoid16Q is LOGISTIC or TANH int16 (activations.cc SigmoidPrepare,
// TanhPrepare; reference_integer_ops/logistic.h, tanh.h): the input is
// rescaled to 1/(3·4096) by an integer multiplier and a rounding right
// shift, its absolute value interpolates sigmoidTable16 (9 fractional
// bits for LOGISTIC; 8 for TANH, as tanh(x) = 2·sigmoid(2x) − 1), and the
// sign applies the functions' symmetry.
type sigmoid16Q struct {
	mult, shift int32
	tanh        bool
}

// sigmoid16 checks the runtime's Prepare conditions and computes the
// multiplier. Power-of-two input scales (2^-12, and 2^-11 for TANH) take
// the runtime's separate fixed-point kernel, which is not implemented.
func sigmoid16(c *opCtx, in, out qparam, tanh bool) (*lutQ, error) {
	name := "LOGISTIC"
	if tanh {
		name = "TANH"
	}
	if err := first(c.zeroPointZero(c.meta(0), in), c.zeroPointZero(c.outMeta(0), out)); err != nil {
		return nil, err
	}
	if !isPOT(out.scale) || math.Round(math.Log2(float64(out.scale))) != -15 {
		return nil, c.unsupported("INT16 %s output %q has scale %g: the runtime requires 2^-15", name, c.outMeta(0).Name, out.scale)
	}
	if isPOT(in.scale) {
		shift := 12 + int(math.Round(math.Log2(float64(in.scale))))
		if shift == 0 || (tanh && shift == 1) {
			return nil, c.unsupported("INT16 %s input %q has scale %g: the runtime's power-of-two fixed-point kernel is not implemented", name, c.meta(0).Name, in.scale)
		}
	}
	// To scale 1/(3·4096), with as many bits as fit in 15.
	m := float64(in.scale) * 4096 * 3
	shift := int32(0)
	for m <= 32767.0/2 && shift <= 30 {
		shift++
		m *= 2
	}
	if !(m <= 65535) { // the runtime's int32 product overflows
		return nil, c.unsupported("INT16 %s input %q has scale %g: too large for the runtime's 16-bit multiplier", name, c.meta(0).Name, in.scale)
	}
	return &lutQ{s16: &sigmoid16Q{mult: int32(m), shift: shift, tanh: tanh}}, nil
}

func (q *sigmoid16Q) apply(v int16) int16 {
	x := (int32(v)*q.mult + q.round()) >> q.shift
	a := uint32(x)
	if x < 0 {
		a = uint32(-x)
	}
	if !q.tanh {
		var r uint32
		if uh := a >> 9; uh >= 255 {
			r = 0x7fff << 10
		} else {
			ua, ub := sigmoidTable16[uh], sigmoidTable16[uh+1]
			r = ua<<9 + (a&0x1ff)*(ub-ua)
		}
		if x >= 0 {
			r += 1 << 9
		} else {
			r = 1<<25 - r + 1<<9 - 1
		}
		return int16(r >> 10)
	}
	var r int32
	if uh := a >> 8; uh >= 255 {
		r = 0xffff << 8
	} else {
		ua, ub := sigmoidTable16[uh], sigmoidTable16[uh+1]
		r = int32(ua<<8 + (a&0xff)*(ub-ua))
	}
	if x >= 0 {
		r = r - 1<<23 + 1<<7
	} else {
		r = -r + 1<<23 + 1<<7 - 1
	}
	return int16(r >> 8)
}

func (q *sigmoid16Q) round() int32 {
	if q.shift > 0 {
		return 1 << (q.shift - 1)
	}
	return 0
}

// geluLUT: GELU int8 (256 entries) and int16 (513, interpolated) through
// tables of reference/gelu.h's transforms: 0.5·x·erfc(−x/√2), or with
// approximate 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), in float32.
func geluLUT(c *opCtx, t fb.TensorType, in, out qparam) (*lutQ, error) {
	approx := false
	if o, ok := builtinOptions(c.p.op).(*fb.GeluOptionsT); ok && o != nil {
		approx = o.Approximate
	}
	f := func(x float32) float32 {
		return float32(0.5*x) * float32(math.Erfc(float64(x*float32(-math.Sqrt2/2))))
	}
	if approx {
		const k = float32(0.7978845608028654) // √(2/π)
		f = func(x float32) float32 {
			inner := x + float32(float32(float32(0.044715*x)*x)*x)
			return float32(0.5*x) * (1 + float32(math.Tanh(float64(k*inner))))
		}
	}
	if t == fb.TensorTypeINT8 {
		return &lutQ{t8: lutInt8(in, out, f)}, nil
	}
	return &lutQ{t16: lutInt16(in.scale, in.zp, out.scale, out.zp, f)}, nil
}
