package interp

import (
	"math"
	"math/bits"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

func init() {
	intKernels[fb.BuiltinOperatorMEAN] = intReduceKernel(false)
	intKernels[fb.BuiltinOperatorSUM] = intReduceKernel(true)
	intKernels[fb.BuiltinOperatorBATCH_MATMUL] = intBMMKernel()
	intKernels[fb.BuiltinOperatorRSQRT] = intRsqrtKernel()
	intKernels[fb.BuiltinOperatorSQUARED_DIFFERENCE] = intBinaryKernel(fb.BuiltinOperatorSQUARED_DIFFERENCE)
	intKernels[fb.BuiltinOperatorCONCATENATION] = intConcatKernel()
}

// intReduceKernel is MEAN (reference_ops::QuantizedMeanOrSum, the
// multiplier s_in/s_out divided by the count in fixed point) and SUM (the
// runtime's optimized kernel: the integer sum rescaled in float32 and
// rounded half away from zero) on INT8/INT16. With IntXNNPACK an INT8 MEAN
// runs XNNPACK's (src/operators/reduce-nd.c, src/microparams-init.c
// xnn_update_qs8_reduce_scalar_params, src/reference/unary-elementwise.cc):
// the int32 sum converted to float32, times float32(s_in/s_out)·
// float32(1/n), plus out_zp − float32(n·in_zp)·that scale, rounded half to
// even. (An INT8 SUM computed that way is no closer to LiteRT.js: 11 of 12
// integers, as with the builtin arithmetic.)
func intReduceKernel(sum bool) *kernel {
	type reduceQ struct {
		in, out qparam
		mult    int32
		shift   int
	}
	return &kernel{
		check: func(c *opCtx) error {
			t := c.inType(0)
			if err := first(c.arity(2, 2, 1), c.typeIn(0, fb.TensorTypeINT8, fb.TensorTypeINT16), c.typeIn(1, intTypes...), c.typeOut(0, t)); err != nil {
				return err
			}
			q := &reduceQ{}
			var err error
			if q.in, q.out, err = c.ioQuant(true); err != nil {
				return err
			}
			q.mult, q.shift = quantizeMultiplier(float64(q.in.scale) / float64(q.out.scale))
			c.p.q = q
			return nil
		},
		run: func(c *opCtx) error {
			q := c.p.q.(*reduceQ)
			x, err := c.intIn(0)
			if err != nil {
				return err
			}
			axes, err := c.intsIn(1)
			if err != nil {
				return err
			}
			if !sum && x.Type == fb.TensorTypeINT8 && len(x.Shape) == 4 && len(axes) == 2 {
				a0, _ := normAxis(axes[0], 4)
				a1, _ := normAxis(axes[1], 4)
				if o, ok := builtinOptions(c.p.op).(*fb.ReducerOptionsT); ok && o != nil && o.KeepDims && a0+a1 == 3 && a0*a1 == 2 {
					return c.errf("INT8 MEAN over the spatial axes of a 4-D tensor with keep_dims runs another kernel of the runtime (not implemented)")
				}
			}
			shape, into, n, err := c.reduceShape(x.Shape, axes)
			if err != nil {
				return err
			}
			out := NewTensor(x.Type, shape)
			acc := make([]int32, out.Len())
			for i := 0; i < x.Len(); i++ {
				acc[into[i]] += x.intAt(i)
			}
			lo, hi := qrange(x.Type)
			if n == 0 {
				c.set(0, out)
				return nil
			}
			if sum {
				scale := q.in.scale / q.out.scale
				bias := float32(float32(float32(-q.in.zp)*scale) * float32(n))
				for i, a := range acc {
					v := int32(math.Round(float64(float32(float32(a)*scale)+bias))) + q.out.zp
					out.setInt(i, min(max(v, lo), hi))
				}
				c.set(0, out)
				return nil
			}
			if !sum && x.Type == fb.TensorTypeINT8 && c.sg.in.opt.IntArithmetic == IntXNNPACK {
				scale := float32(q.in.scale/q.out.scale) * (1 / float32(n))
				zp := float32(q.out.zp) - float32(float32(float32(n)*float32(q.in.zp))*scale)
				for i, a := range acc {
					v := int32(math.RoundToEven(float64(float32(float32(a)*scale) + zp)))
					out.setInt(i, min(max(v, lo), hi))
				}
				c.set(0, out)
				return nil
			}
			shift := min(63-bits.LeadingZeros64(uint64(n)), 32, 31+q.shift)
			mult := int32((int64(q.mult) << shift) / int64(n))
			for i, a := range acc {
				v := mbqm(a-q.in.zp*int32(n), mult, q.shift-shift) + q.out.zp
				out.setInt(i, min(max(v, lo), hi))
			}
			c.set(0, out)
			return nil
		},
	}
}

// intBMMKernel is BATCH_MATMUL on INT8×INT8 (int32 sums), INT16×INT16 and
// INT16×INT8 (int64 sums, the int64 MultiplyByQuantizedMultiplier), with
// one multiplier float32(s_lhs·s_rhs)/s_out (batch_matmul.cc Prepare,
// reference/batch_matmul.h). A per-channel RHS is refused: the builtin
// kernel reads its legacy per-tensor scale, which is 0.
func intBMMKernel() *kernel {
	type bmmQ struct {
		lhs, rhs, out qparam
		mult          int32
		shift         int
		wide          bool
	}
	return &kernel{
		check: func(c *opCtx) error {
			lt := c.inType(0)
			if err := first(c.arity(2, 2, 1), c.typeIn(0, fb.TensorTypeINT8, fb.TensorTypeINT16), c.typeOut(0, lt)); err != nil {
				return err
			}
			if lt == fb.TensorTypeINT8 {
				if err := c.typeIn(1, fb.TensorTypeINT8); err != nil {
					return err
				}
			} else if err := c.typeIn(1, fb.TensorTypeINT8, fb.TensorTypeINT16); err != nil {
				return err
			}
			q := &bmmQ{wide: lt == fb.TensorTypeINT16}
			var err error
			if q.lhs, err = c.inQuant(0); err != nil {
				return err
			}
			if q.rhs, err = c.inQuant(1); err != nil {
				return err
			}
			if q.out, err = c.outQuant(0); err != nil {
				return err
			}
			if q.wide && (q.lhs.zp != 0 || q.rhs.zp != 0 || q.out.zp != 0) {
				return c.unsupported("INT16 BATCH_MATMUL with a zero point that is not 0")
			}
			q.mult, q.shift = quantizeMultiplier(float64(q.lhs.scale*q.rhs.scale) / float64(q.out.scale))
			c.p.q = q
			return nil
		},
		run: func(c *opCtx) error {
			q := c.p.q.(*bmmQ)
			a, err := c.intIn(0)
			if err != nil {
				return err
			}
			b, err := c.in(1)
			if err != nil {
				return err
			}
			if !isIntAct(b.Type) {
				return c.errf("RHS is %s", tflite.TypeName(b.Type))
			}
			o, _ := builtinOptions(c.p.op).(*fb.BatchMatMulOptionsT)
			adjX, adjY := o != nil && o.AdjX, o != nil && o.AdjY
			ra, rb := len(a.Shape), len(b.Shape)
			if ra < 2 || rb < 2 {
				return c.errf("operands %v and %v must have rank ≥ 2", a.Shape, b.Shape)
			}
			M, K := a.Shape[ra-2], a.Shape[ra-1]
			if adjX {
				M, K = K, M
			}
			K2, N := b.Shape[rb-2], b.Shape[rb-1]
			if adjY {
				K2, N = N, K2
			}
			if K != K2 {
				return c.errf("operands %v and %v (adj_x %v, adj_y %v) do not multiply", a.Shape, b.Shape, adjX, adjY)
			}
			batch, ia, ib, ok := BatchPairs(a.Shape[:ra-2], b.Shape[:rb-2])
			if !ok {
				return c.errf("batch dimensions of %v and %v do not broadcast", a.Shape, b.Shape)
			}
			shape := append(append([]int{}, batch...), M, N)
			if err := c.checkSize(shape); err != nil {
				return err
			}
			out := NewTensor(a.Type, shape)
			av, bv := a.intValues(), b.intValues()
			lo, hi := qrange(a.Type)
			for bi := range ia {
				ao, bo := ia[bi]*M*K, ib[bi]*K*N
				for i := 0; i < M; i++ {
					for j := 0; j < N; j++ {
						var acc int64
						for k := 0; k < K; k++ {
							x := av[ao+i*K+k]
							if adjX {
								x = av[ao+k*M+i]
							}
							y := bv[bo+k*N+j]
							if adjY {
								y = bv[bo+j*K+k]
							}
							acc += int64(x-q.lhs.zp) * int64(y-q.rhs.zp)
						}
						var v int32
						if q.wide {
							v = mbqm64(acc, q.mult, q.shift)
						} else {
							v = mbqm(int32(acc), q.mult, q.shift)
						}
						out.setInt((bi*M+i)*N+j, min(max(v+q.out.zp, lo), hi))
					}
				}
			}
			c.set(0, out)
			return nil
		},
	}
}

// intRsqrtKernel is RSQRT (elementwise.cc): int8 through
// GetInvSqrtQuantizedMultiplierExp (a fixed-point Newton iteration) and
// two MultiplyByQuantizedMultiplier with 1/(√s_in·s_out); int16 through a
// LUTPopulate table of 1/√x (32767·s_out at x ≤ 0). Inputs below the zero
// point (negative values) are an error, as in the runtime.
func intRsqrtKernel() *kernel {
	type rsqrtQ struct {
		in, out qparam
		mult    int32
		shift   int
		t16     []int16
	}
	return &kernel{
		check: func(c *opCtx) error {
			t := c.inType(0)
			if err := first(c.arity(1, 1, 1), c.typeIn(0, fb.TensorTypeINT8, fb.TensorTypeINT16), c.typeOut(0, t)); err != nil {
				return err
			}
			q := &rsqrtQ{}
			var err error
			if q.in, q.out, err = c.ioQuant(true); err != nil {
				return err
			}
			if t == fb.TensorTypeINT16 {
				os := q.out.scale
				q.t16 = lutInt16(q.in.scale, q.in.zp, q.out.scale, q.out.zp, func(x float32) float32 {
					if x <= 0 {
						return math.MaxInt16 * os
					}
					return 1 / float32(math.Sqrt(float64(x)))
				})
			} else {
				q.mult, q.shift = quantizeMultiplier(1 / (float64(float32(math.Sqrt(float64(q.in.scale))) * q.out.scale)))
			}
			c.p.q = q
			return nil
		},
		run: func(c *opCtx) error {
			q := c.p.q.(*rsqrtQ)
			x, err := c.intIn(0)
			if err != nil {
				return err
			}
			out := NewTensor(x.Type, x.Shape)
			for i := 0; i < x.Len(); i++ {
				v := x.intAt(i)
				if v < q.in.zp {
					return c.errf("RSQRT of a negative value (element %d)", i)
				}
				if x.Type == fb.TensorTypeINT16 {
					out.I16[i] = lutLookup16(q.t16, int16(v))
					continue
				}
				d := v - q.in.zp
				if d == 0 {
					out.I8[i] = math.MaxInt8
					continue
				}
				const kShift = 20
				m, s := invSqrtMultiplier(d)
				r := mbqm(mbqm(1, m, s+kShift), q.mult, q.shift-kShift) + q.out.zp
				out.I8[i] = int8(min(max(r, math.MinInt8), math.MaxInt8))
			}
			c.set(0, out)
			return nil
		},
	}
}

// invSqrtMultiplier is GetInvSqrtQuantizedMultiplierExp with reverse
// shift −1 (kernels/internal/common.h): 1/√x as a multiplier and a left
// shift, by five Newton steps in gemmlowp fixed point with 3 integer bits.
func invSqrtMultiplier(x int32) (int32, int) {
	if x <= 1 {
		return math.MaxInt32, 0
	}
	shift := 11
	for x >= 1<<29 {
		x /= 4
		shift++
	}
	pairs := (bits.LeadingZeros32(uint32(x))-1)/2 - 1
	shift -= pairs
	x <<= 2 * pairs
	// F3 values: raw int32 with 3 integer bits; a product of Fa and Fb is
	// SRDHM of the raws with a+b integer bits.
	in := x >> 1
	halfIn := rdbpot(in, 1)
	const halfThree = 1<<28 + 1<<27 // 1.5 in F3
	one := int32(1 << 28)
	v := one
	for i := 0; i < 5; i++ {
		x3 := satShiftLeft(srdhm(srdhm(v, v), v), 6) // F9 → F3
		v = satShiftLeft(srdhm(halfThree, v)-srdhm(halfIn, x3), 3)
	}
	v = srdhm(v, 1518500250) // · √2/2 (F0)
	if shift < 0 {
		v <<= -shift
		shift = 0
	}
	return v, -shift
}

// satShiftLeft is gemmlowp's SaturatingRoundingMultiplyByPOT for a
// positive exponent: a left shift saturating at the int32 range.
func satShiftLeft(a int32, e int) int32 {
	thr := int32(1)<<(31-e) - 1
	switch {
	case a > thr:
		return math.MaxInt32
	case a < -thr:
		return math.MinInt32
	}
	return a << e
}

// intConcatKernel is CONCATENATION of INT8/INT16 values: the integers are
// joined unchanged (concatenation.cc): int8 inputs must have the output's
// scale and zero point; int16 ones zero point 0 (their scales are not
// checked by the runtime and not rescaled).
func intConcatKernel() *kernel {
	k := concatKernel()
	check := k.check
	return &kernel{
		check: func(c *opCtx) error {
			if err := check(c); err != nil {
				return err
			}
			if fusedActivation(c.p.op) != fb.ActivationFunctionTypeNONE {
				return c.unsupported("fused activation on integer CONCATENATION")
			}
			out, err := c.outQuant(0)
			if err != nil {
				return err
			}
			for i := range c.p.op.Inputs {
				in, err := c.inQuant(i)
				if err != nil {
					return err
				}
				if c.outMeta(0).Type == fb.TensorTypeINT16 {
					if err := first(c.zeroPointZero(c.meta(i), in), c.zeroPointZero(c.outMeta(0), out)); err != nil {
						return err
					}
					continue // joined unchanged whatever the scales, as the runtime does
				}
				if in != out {
					return c.unsupported("input %d %q (scale %g, zero point %d) differs from output %q (scale %g, zero point %d): integer CONCATENATION does not rescale", i, c.meta(i).Name, in.scale, in.zp, c.outMeta(0).Name, out.scale, out.zp)
				}
			}
			return nil
		},
		run: k.run,
	}
}
