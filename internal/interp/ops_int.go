package interp

import (
	"math"
	"math/bits"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// Integer kernels: operators whose activations are INT8 or INT16
// (full-integer models). prepare picks them instead of the float kernel
// when the op has a quantized activation input or output (integerOp).
// Data movement ops (RESHAPE, TRANSPOSE, SLICE, GATHER, ...) have no entry
// here: their float kernels move the integers unchanged, as the runtime's
// byte-generic kernels do.
var intKernels map[fb.BuiltinOperator]*kernel

func init() {
	intKernels = map[fb.BuiltinOperator]*kernel{
		fb.BuiltinOperatorQUANTIZE:          quantizeKernel(),
		fb.BuiltinOperatorDEQUANTIZE:        intDequantizeKernel(),
		fb.BuiltinOperatorCONV_2D:           intConvKernel(false),
		fb.BuiltinOperatorDEPTHWISE_CONV_2D: intConvKernel(true),
		fb.BuiltinOperatorFULLY_CONNECTED:   intFCKernel(),
		fb.BuiltinOperatorAVERAGE_POOL_2D:   intPoolKernel(false),
		fb.BuiltinOperatorMAX_POOL_2D:       intPoolKernel(true),
		fb.BuiltinOperatorSOFTMAX:           intSoftmaxKernel(),
		fb.BuiltinOperatorADD:               intBinaryKernel(fb.BuiltinOperatorADD),
		fb.BuiltinOperatorSUB:               intBinaryKernel(fb.BuiltinOperatorSUB),
		fb.BuiltinOperatorMUL:               intBinaryKernel(fb.BuiltinOperatorMUL),
		fb.BuiltinOperatorMAXIMUM:           intMinMaxKernel(true),
		fb.BuiltinOperatorMINIMUM:           intMinMaxKernel(false),
		fb.BuiltinOperatorLOGISTIC:          lutKernel(logisticLUT),
		fb.BuiltinOperatorTANH:              lutKernel(tanhLUT),
		fb.BuiltinOperatorGELU:              lutKernel(geluLUT),
	}
}

// requant is a per-tensor rescaling x → zp_out + M·(x − zp_in).
type requant struct {
	in, out qparam
	mult    int32
	shift   int
	lo, hi  int32
}

// quantizeKernel: FLOAT32 → INT8/INT16 is clamp(round(x/s) + zp) with the
// division in double and round half away from zero (the int8 and int16
// specialisations of optimized_ops.h AffineQuantize that the runtime's
// kernel runs; reference/quantize.h divides in float32), or with IntXNNPACK for int8
// XNNPACK's convert (x·(1/s) rounded half to even); INT8/INT16 → INT8/INT16 is
// Requantize with M = s_in/s_out (quantize.cc Prepare,
// reference/requantize.h).
func quantizeKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			if err := first(c.arity(1, 1, 1), c.typeIn(0, fb.TensorTypeFLOAT32, fb.TensorTypeINT8, fb.TensorTypeINT16), c.typeOut(0, fb.TensorTypeINT8, fb.TensorTypeINT16)); err != nil {
				return err
			}
			out, err := c.outQuant(0)
			if err != nil {
				return err
			}
			r := &requant{out: out}
			r.lo, r.hi = qrange(c.outMeta(0).Type)
			if c.inType(0) != fb.TensorTypeFLOAT32 {
				if r.in, err = c.inQuant(0); err != nil {
					return err
				}
				if c.inType(0) == fb.TensorTypeINT16 && c.outMeta(0).Type == fb.TensorTypeINT16 {
					if err := first(c.zeroPointZero(c.meta(0), r.in), c.zeroPointZero(c.outMeta(0), r.out)); err != nil {
						return err
					}
				}
				r.mult, r.shift = quantizeMultiplier(float64(r.in.scale) / float64(r.out.scale))
			}
			c.p.q = r
			return nil
		},
		run: func(c *opCtx) error {
			r := c.p.q.(*requant)
			x, err := c.in(0)
			if err != nil {
				return err
			}
			out := NewTensor(c.outMeta(0).Type, x.Shape)
			if x.Type == fb.TensorTypeFLOAT32 {
				xnn := c.sg.in.opt.IntArithmetic == IntXNNPACK && out.Type == fb.TensorTypeINT8
				inv := 1 / r.out.scale
				for i, v := range x.F32 {
					var q float64
					if xnn {
						// XNNPACK's f32→qs8 convert: x·(1/s), clamped,
						// rounded half to even.
						f := min(max(v*inv, float32(r.lo-r.out.zp)), float32(r.hi-r.out.zp))
						q = math.RoundToEven(float64(f)) + float64(r.out.zp)
					} else {
						q = math.Round(float64(v)/float64(r.out.scale)) + float64(r.out.zp)
					}
					if q != q {
						q = float64(r.lo) // NaN: the runtime's cast gives INT_MIN, clamped
					}
					out.setInt(i, int32(min(max(q, float64(r.lo)), float64(r.hi))))
				}
			} else {
				if x.Type != c.inType(0) {
					return c.errf("input is %s, the model declares %s", tflite.TypeName(x.Type), tflite.TypeName(c.inType(0)))
				}
				n := x.Len()
				for i := 0; i < n; i++ {
					v := mbqm(x.intAt(i)-r.in.zp, r.mult, r.shift) + r.out.zp
					out.setInt(i, min(max(v, r.lo), r.hi))
				}
			}
			c.set(0, out)
			return nil
		},
	}
}

// intDequantizeKernel: (q − zp)·s, the product exact in double and
// rounded once to float32 (reference/dequantize.h).
func intDequantizeKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			if err := first(c.arity(1, 1, 1), c.typeIn(0, fb.TensorTypeINT8, fb.TensorTypeINT16), c.typeOut(0, fb.TensorTypeFLOAT32)); err != nil {
				return err
			}
			in, err := c.inQuant(0)
			c.p.q = &requant{in: in}
			return err
		},
		run: func(c *opCtx) error {
			r := c.p.q.(*requant)
			x, err := c.intIn(0)
			if err != nil {
				return err
			}
			out := NewTensor(fb.TensorTypeFLOAT32, x.Shape)
			s := float64(r.in.scale)
			for i := range out.F32 {
				out.F32[i] = float32(s * float64(x.intAt(i)-r.in.zp))
			}
			c.set(0, out)
			return nil
		},
	}
}

// intMatmulQ is what CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED derive
// from the tensors' parameters at New.
type intMatmulQ struct {
	in, out qparam
	// Per output channel (one entry when the filter is per tensor).
	mult  []int32
	shift []int
	// scaleD is s_in·s_w[c]/s_out in double, for the 16x8 FC that
	// rescales in double.
	scaleD []float64
	wzp    int32 // per-tensor filter zero point (FC only)
	lo, hi int32
	// int16: the 16x8 kernels; bias64: an INT64 bias (the int64
	// MultiplyByQuantizedMultiplier); doubleFC: the 16x8 FC's double
	// rescaling (reference FullyConnected(PerChannel) with scales); ruy:
	// the 16x8 FC's optimized kernel, whose gemm (ruy) rescales with
	// mbqmRuy.
	int16, bias64, doubleFC, ruy bool
	// xnn: IntXNNPACK rescaling with xscale per channel and the bounds
	// xlo, xhi (int8 only).
	xnn      bool
	xscale   []float32
	xlo, xhi int32
	filter   []int8
	fshape   []int
	bias     []int64
}

// prepareIntMatmul checks and precomputes an integer conv / FC: filter is
// input 1 (constant INT8, per tensor or per channel along chanAxis), bias
// input 2 (optional constant INT32, or INT64 with INT16 activations).
func (c *opCtx) prepareIntMatmul(chanAxis int, act fb.ActivationFunctionType, fc bool) (*intMatmulQ, error) {
	inT := c.inType(0)
	if err := first(c.typeIn(0, fb.TensorTypeINT8, fb.TensorTypeINT16), c.typeOut(0, inT), c.checkIntActivation(act)); err != nil {
		return nil, err
	}
	q := &intMatmulQ{int16: inT == fb.TensorTypeINT16}
	var err error
	if q.in, q.out, err = c.ioQuant(true); err != nil {
		return nil, err
	}
	fm := c.meta(1)
	if fm == nil || !c.sg.isConst(c.tensorIdx(1)) || fm.Type != fb.TensorTypeINT8 {
		return nil, c.unsupported("filter must be a constant INT8 tensor with integer activations")
	}
	w, err := c.sg.weightView(c.tensorIdx(1))
	if err != nil {
		return nil, c.errf("filter: %v", err)
	}
	if len(w.shape) == 0 || chanAxis >= len(w.shape) {
		return nil, c.errf("filter %q has shape %v", fm.Name, w.shape)
	}
	nc := w.shape[chanAxis]
	perChannel := len(w.scale) > 1
	if perChannel {
		if len(w.scale) != nc || w.axisStride != strides(w.shape)[chanAxis] {
			return nil, c.unsupported("filter %q: %d scales along quantized dimension %d, want %d along dimension %d", fm.Name, len(w.scale), fm.Quantization.QuantizedDimension, nc, chanAxis)
		}
	}
	for i, z := range w.zp {
		if z != 0 && (perChannel || !fc) {
			return nil, c.unsupported("filter %q has zero point %d at channel %d: integer kernels take symmetric filters", fm.Name, z, i)
		}
	}
	if !perChannel {
		q.wzp = w.zp[0]
	}
	q.filter = make([]int8, w.numElements())
	for i := range q.filter {
		q.filter[i] = int8(w.raw[i])
	}
	q.fshape = w.shape
	for ch := 0; ch < nc; ch++ {
		ws := w.scale[0]
		if perChannel {
			ws = w.scale[ch]
		}
		if !(ws > 0) || math.IsInf(float64(ws), 0) {
			return nil, c.errf("filter %q has scale %g at channel %d: want a positive finite number", fm.Name, ws, ch)
		}
		m := float64(q.in.scale) * float64(ws) / float64(q.out.scale)
		mq, sh := quantizeMultiplier(m)
		q.mult, q.shift, q.scaleD = append(q.mult, mq), append(q.shift, sh), append(q.scaleD, m)
		q.xscale = append(q.xscale, q.in.scale*ws/q.out.scale)
	}
	if bt := c.tensorIdx(2); bt >= 0 {
		bm := c.meta(2)
		want := []fb.TensorType{fb.TensorTypeINT32}
		if q.int16 {
			want = append(want, fb.TensorTypeINT64)
		}
		if err := c.typeIn(2, want...); err != nil {
			return nil, err
		}
		if !c.sg.isConst(bt) {
			return nil, c.unsupported("bias %q is not constant", bm.Name)
		}
		b, err := c.sg.constant(bt)
		if err != nil {
			return nil, c.errf("bias: %v", err)
		}
		if b.Len() != nc {
			return nil, c.errf("bias %q has %d elements, want %d", bm.Name, b.Len(), nc)
		}
		q.bias = make([]int64, nc)
		for i := range q.bias {
			if b.Type == fb.TensorTypeINT64 {
				q.bias[i] = b.I64[i]
			} else {
				q.bias[i] = int64(b.I32[i])
			}
		}
		q.bias64 = b.Type == fb.TensorTypeINT64
	}
	if q.int16 {
		if err := c.check16x8Bias(q, fc); err != nil {
			return nil, err
		}
	}
	q.lo, q.hi = activationRange(act, q.out, inT)
	if c.sg.in.opt.IntArithmetic == IntXNNPACK && !q.int16 && (perChannel || q.wzp == 0) {
		q.xnn = true
		q.xlo, q.xhi = xnnActivationRange(act, q.out)
	}
	return q, nil
}

// xnnActivationRange is the fused activation's bounds as the XNNPACK
// delegate passes them (float bounds quantized by xnn_qs8_quantize:
// lrintf(v/s + zp) within the int8 range).
func xnnActivationRange(act fb.ActivationFunctionType, out qparam) (int32, int32) {
	q := func(v float32) int32 {
		return int32(math.RoundToEven(float64(min(max(v/out.scale+float32(out.zp), -128), 127))))
	}
	lo, hi := int32(math.MinInt8), int32(math.MaxInt8)
	switch act {
	case fb.ActivationFunctionTypeRELU:
		lo = q(0)
	case fb.ActivationFunctionTypeRELU6:
		lo, hi = q(0), q(6)
	case fb.ActivationFunctionTypeRELU_N1_TO_1:
		lo, hi = q(-1), q(1)
	}
	return lo, hi
}

// check16x8Bias picks the 16x8 kernel LiteRT runs and refuses the bias
// types it would misread. The bias is read as INT64 unless the options'
// quantized_bias_type says INT32 (conv.cc, fully_connected.cc Prepare and
// Eval); DEPTHWISE_CONV_2D takes INT64 only. FULLY_CONNECTED rescales in
// double (the reference kernels with scales) when a zero point is not 0 or
// the bias is INT64, and otherwise runs the optimized kernel, whose gemm
// is ruy's (cpu_backend_gemm.h: gemmlowp takes only 8-bit operands):
// ruy's single-rounding multiplier (mbqmRuy).
func (c *opCtx) check16x8Bias(q *intMatmulQ, fc bool) error {
	qbt := fb.TensorTypeFLOAT32 // unset
	switch o := builtinOptions(c.p.op).(type) {
	case *fb.Conv2DOptionsT:
		if o != nil {
			qbt = o.QuantizedBiasType
		}
	case *fb.FullyConnectedOptionsT:
		if o != nil {
			qbt = o.QuantizedBiasType
		}
	}
	hasBias := q.bias != nil
	bt := fb.TensorTypeINT32
	if q.bias64 {
		bt = fb.TensorTypeINT64
	}
	if qbt != fb.TensorTypeFLOAT32 && qbt != fb.TensorTypeINT32 && qbt != fb.TensorTypeINT64 {
		return c.unsupported("quantized_bias_type %s", tflite.TypeName(qbt))
	}
	if hasBias && qbt != fb.TensorTypeFLOAT32 && qbt != bt {
		return c.errf("bias %q is %s, quantized_bias_type says %s", c.meta(2).Name, tflite.TypeName(bt), tflite.TypeName(qbt))
	}
	switch {
	case c.p.code == fb.BuiltinOperatorDEPTHWISE_CONV_2D:
		if hasBias && !q.bias64 {
			return c.unsupported("16x8 DEPTHWISE_CONV_2D with an INT32 bias %q: the runtime takes INT64", c.meta(2).Name)
		}
		q.bias64 = true
	case !fc:
		if hasBias && !q.bias64 && qbt != fb.TensorTypeINT32 {
			return c.unsupported("16x8 CONV_2D with an INT32 bias %q needs quantized_bias_type INT32 (the runtime reads the bias as INT64 otherwise)", c.meta(2).Name)
		}
		q.bias64 = qbt != fb.TensorTypeINT32
	default:
		q.doubleFC = q.bias64 || q.wzp != 0 || qbt == fb.TensorTypeINT64
		q.ruy = !q.doubleFC
		if hasBias && !q.bias64 && q.doubleFC && qbt != fb.TensorTypeINT32 {
			return c.unsupported("16x8 FULLY_CONNECTED with an INT32 bias %q and a filter zero point needs quantized_bias_type INT32", c.meta(2).Name)
		}
	}
	return nil
}

// rescale turns channel ch's accumulator (bias included) into an output
// integer.
func (q *intMatmulQ) rescale(acc int64, ch int) int32 {
	k := ch
	if len(q.mult) == 1 {
		k = 0
	}
	var v int32
	switch {
	case q.xnn:
		f := float32(acc) * q.xscale[k]
		f = min(max(f, float32(q.xlo-q.out.zp)), float32(q.xhi-q.out.zp))
		return int32(math.RoundToEven(float64(f))) + q.out.zp
	case q.doubleFC:
		r := math.Round(float64(acc) * q.scaleD[k])
		v = int32(min(max(r, math.MinInt32), math.MaxInt32))
	case q.int16 && q.bias64:
		v = mbqm64(acc, q.mult[k], q.shift[k])
	case q.ruy:
		v = mbqmRuy(int32(acc), q.mult[k], q.shift[k])
	default:
		v = mbqm(int32(acc), q.mult[k], q.shift[k])
	}
	v += q.out.zp // 0 for int16
	return min(max(v, q.lo), q.hi)
}

// intConvKernel is CONV_2D / DEPTHWISE_CONV_2D on INT8 (int32 accumulator
// and bias) or INT16 (16x8: int64 accumulator, INT64 or INT32 bias)
// activations with an INT8 filter, per channel (reference/integer_ops/
// conv.h, depthwise_conv.h; multipliers as kernel_util.cc
// PopulateConvolutionQuantizationParams computes them).
func intConvKernel(depthwise bool) *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			p := convOptions(c.p.op)
			if err := first(c.arity(2, 3, 1), c.checkConvOptions(p)); err != nil {
				return err
			}
			axis := 0
			if depthwise {
				axis = 3
			}
			q, err := c.prepareIntMatmul(axis, p.act, false)
			if err != nil {
				return err
			}
			if len(q.fshape) != 4 {
				return c.errf("filter %v is not 4-D", q.fshape)
			}
			c.p.q = q
			return nil
		},
		run: func(c *opCtx) error {
			q := c.p.q.(*intMatmulQ)
			x, err := c.intIn(0)
			if err != nil {
				return err
			}
			d, err := c.convDims(x.Shape, q.fshape, depthwise, convOptions(c.p.op))
			if err != nil {
				return err
			}
			N, H, W, C, Cout, KH, KW, Cf := d.N, d.H, d.W, d.C, d.Cout, d.KH, d.KW, d.Cf
			gh, gw, mult, perGroup := d.gh, d.gw, d.mult, d.perGroup
			out := NewTensor(x.Type, []int{N, gh.out, gw.out, Cout})
			xv := x.intValues() // centred: x − zp_in (0 for int16)
			if !q.int16 {
				for i := range xv {
					xv[i] -= q.in.zp
				}
			}
			parallel(c.sg.in.threads, N*gh.out, 1, func(_, lo, hi int) {
				for r := lo; r < hi; r++ {
					n, oy := r/gh.out, r%gh.out
					for ox := 0; ox < gw.out; ox++ {
						for oc := 0; oc < Cout; oc++ {
							var acc int64
							for ky := 0; ky < KH; ky++ {
								iy := oy*gh.stride - gh.pad + ky*gh.dil
								if iy < 0 || iy >= H {
									continue
								}
								for kx := 0; kx < KW; kx++ {
									ix := ox*gw.stride - gw.pad + kx*gw.dil
									if ix < 0 || ix >= W {
										continue
									}
									base := ((n*H+iy)*W + ix) * C
									if depthwise {
										acc += int64(int32(q.filter[(ky*KW+kx)*Cout+oc]) * xv[base+oc/mult])
										continue
									}
									g := oc / perGroup
									wb := ((oc*KH+ky)*KW + kx) * Cf
									w, xs := q.filter[wb:wb+Cf], xv[base+g*Cf:base+g*Cf+Cf]
									for j, v := range xs {
										acc += int64(int32(w[j]) * v)
									}
								}
							}
							if q.bias != nil {
								acc += q.bias[oc]
							}
							out.setInt(((n*gh.out+oy)*gw.out+ox)*Cout+oc, q.rescale(acc, oc))
						}
					}
				}
			})
			c.set(0, out)
			return nil
		},
	}
}

// intFCKernel is FULLY_CONNECTED with INT8 or INT16 activations and an
// INT8 [out, in] filter (reference/integer_ops/fully_connected.h): int8
// per tensor (filter zero point allowed) or per channel through
// MultiplyByQuantizedMultiplier; 16x8 in double where LiteRT does.
func intFCKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			o, _ := builtinOptions(c.p.op).(*fb.FullyConnectedOptionsT)
			act := fb.ActivationFunctionTypeNONE
			if o != nil {
				act = o.FusedActivationFunction
				if o.WeightsFormat != fb.FullyConnectedOptionsWeightsFormatDEFAULT {
					return c.unsupported("weights format %d", o.WeightsFormat)
				}
			}
			if err := c.arity(2, 3, 1); err != nil {
				return err
			}
			q, err := c.prepareIntMatmul(0, act, true)
			if err != nil {
				return err
			}
			if len(q.fshape) != 2 {
				return c.errf("filter %v is not 2-D", q.fshape)
			}
			c.p.q = q
			return nil
		},
		run: func(c *opCtx) error {
			q := c.p.q.(*intMatmulQ)
			x, err := c.intIn(0)
			if err != nil {
				return err
			}
			N, K := q.fshape[0], q.fshape[1]
			n := x.Len()
			if K == 0 || n%K != 0 {
				return c.errf("input %v does not fit filter %v", x.Shape, q.fshape)
			}
			M := n / K
			o, _ := builtinOptions(c.p.op).(*fb.FullyConnectedOptionsT)
			shape := []int{M, N}
			if o != nil && o.KeepNumDims {
				shape = append(append([]int{}, x.Shape[:len(x.Shape)-1]...), N)
				if x.Shape[len(x.Shape)-1] != K {
					return c.errf("input %v does not end in %d", x.Shape, K)
				}
			}
			if err := c.checkSize(shape); err != nil {
				return err
			}
			out := NewTensor(x.Type, shape)
			xc := x.intValues()
			for i := range xc {
				xc[i] -= q.in.zp
			}
			var all []int64 // every row's sums, from the vector tiles
			if intDotsVecOK(M, K, N) {
				all = make([]int64, M*N)
				intDotsVec(c.sg.in.threads, all, xc, M, K, N, q.filter, q.int16)
			}
			parallel(c.sg.in.threads, M, 1, func(_, lo, hi int) {
				acc := make([]int64, N)
				for m := lo; m < hi; m++ {
					row := xc[m*K : (m+1)*K]
					if all != nil {
						copy(acc, all[m*N:(m+1)*N])
					} else {
						dotRows(acc, q.filter, row, q.int16)
					}
					if q.wzp != 0 {
						// Σ (w − zp_w)·x = Σ w·x − zp_w·Σ x, exact.
						var sx int64
						for _, v := range row {
							sx += int64(v)
						}
						for j := range acc {
							acc[j] -= int64(q.wzp) * sx
						}
					}
					for j, a := range acc {
						if q.bias != nil {
							a += q.bias[j]
						}
						out.setInt(m*N+j, q.rescale(a, j))
					}
				}
			})
			c.set(0, out)
			return nil
		},
	}
}

// dotRows sets acc[j] to the dot product of filter row j (len(x) int8
// values) with x, four rows at a time. Integer sums are exact in any
// order; int8 activations sum in int32 as the runtime does (wide: int64,
// the 16x8 kernels' accumulator).
func dotRows(acc []int64, filter []int8, x []int32, wide bool) {
	K := len(x)
	N := len(acc)
	j := 0
	if !wide {
		for ; j+4 <= N; j += 4 {
			w0, w1, w2, w3 := filter[j*K:(j+1)*K], filter[(j+1)*K:(j+2)*K], filter[(j+2)*K:(j+3)*K], filter[(j+3)*K:(j+4)*K]
			var a0, a1, a2, a3 int32
			for k, v := range x {
				a0 += int32(w0[k]) * v
				a1 += int32(w1[k]) * v
				a2 += int32(w2[k]) * v
				a3 += int32(w3[k]) * v
			}
			acc[j], acc[j+1], acc[j+2], acc[j+3] = int64(a0), int64(a1), int64(a2), int64(a3)
		}
		for ; j < N; j++ {
			var a int32
			for k, v := range x {
				a += int32(filter[j*K+k]) * v
			}
			acc[j] = int64(a)
		}
		return
	}
	for ; j+4 <= N; j += 4 {
		w0, w1, w2, w3 := filter[j*K:(j+1)*K], filter[(j+1)*K:(j+2)*K], filter[(j+2)*K:(j+3)*K], filter[(j+3)*K:(j+4)*K]
		var a0, a1, a2, a3 int64
		for k, v := range x {
			a0 += int64(int32(w0[k]) * v)
			a1 += int64(int32(w1[k]) * v)
			a2 += int64(int32(w2[k]) * v)
			a3 += int64(int32(w3[k]) * v)
		}
		acc[j], acc[j+1], acc[j+2], acc[j+3] = a0, a1, a2, a3
	}
	for ; j < N; j++ {
		var a int64
		for k, v := range x {
			a += int64(int32(filter[j*K+k]) * v)
		}
		acc[j] = a
	}
}

// intPoolKernel is AVERAGE_POOL_2D / MAX_POOL_2D on the stored integers
// (reference/integer_ops/pooling.h): the average rounds half away from
// zero over the window's in-image cells; input and output share their
// parameters.
func intPoolKernel(maxPool bool) *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			if err := first(c.arity(1, 1, 1), c.typeIn(0, fb.TensorTypeINT8, fb.TensorTypeINT16), c.typeOut(0, c.inType(0))); err != nil {
				return err
			}
			o, ok := builtinOptions(c.p.op).(*fb.Pool2DOptionsT)
			if !ok || o == nil || o.FilterHeight <= 0 || o.FilterWidth <= 0 {
				return c.unsupported("missing or invalid Pool2DOptions")
			}
			p := convOptions(c.p.op)
			if err := first(c.checkConvOptions(p), c.checkIntActivation(p.act)); err != nil {
				return err
			}
			in, out, err := c.ioQuant(false)
			if err != nil {
				return err
			}
			if in != out {
				return c.unsupported("input %q (scale %g, zero point %d) and output %q (scale %g, zero point %d) differ: the pooling kernels keep the parameters", c.meta(0).Name, in.scale, in.zp, c.outMeta(0).Name, out.scale, out.zp)
			}
			r := &requant{in: in, out: out}
			r.lo, r.hi = activationRange(p.act, out, c.inType(0))
			c.p.q = r
			return nil
		},
		run: func(c *opCtx) error {
			r := c.p.q.(*requant)
			x, err := c.intIn(0)
			if err != nil {
				return err
			}
			N, H, W, C, gh, gw, err := c.poolDims(x.Shape)
			if err != nil {
				return err
			}
			out := NewTensor(x.Type, []int{N, gh.out, gw.out, C})
			for n := 0; n < N; n++ {
				for oy := 0; oy < gh.out; oy++ {
					for ox := 0; ox < gw.out; ox++ {
						y0, x0 := oy*gh.stride-gh.pad, ox*gw.stride-gw.pad
						for ch := 0; ch < C; ch++ {
							var acc int32
							cnt := int32(0)
							m := int32(math.MinInt32)
							for iy := max(y0, 0); iy < min(y0+gh.k, H); iy++ {
								for ix := max(x0, 0); ix < min(x0+gw.k, W); ix++ {
									v := x.intAt(((n*H+iy)*W+ix)*C + ch)
									acc += v
									m = max(m, v)
									cnt++
								}
							}
							if cnt == 0 {
								return c.errf("a pooling window lies outside the %dx%d input", H, W)
							}
							y := m
							if !maxPool {
								if acc > 0 {
									y = (acc + cnt/2) / cnt
								} else {
									y = (acc - cnt/2) / cnt
								}
							}
							out.setInt(((n*gh.out+oy)*gw.out+ox)*C+ch, min(max(y, r.lo), r.hi))
						}
					}
				}
			}
			c.set(0, out)
			return nil
		},
	}
}

// intSoftmaxKernel is SOFTMAX with INT8 activations as LiteRT's CPU
// kernel runs it on x86 and wasm (activations.cc SoftmaxPrepare /
// optimized_ops.h Softmax with PopulateSoftmaxLookupTable): a float32
// table t[v] = expf(−s_in·β·v) over the 256 distances from the row's
// maximum, a float32 sum in element order, p = t·(1/(Σ·s_out)) rounded
// half away from zero plus the output zero point. (The fixed-point
// reference kernel is used only in the reference build, and aarch64
// builds use a uint16 table instead.) The output must be scale 1/256,
// zero point −128, as the runtime checks.
func intSoftmaxKernel() *kernel {
	type softmaxQ struct {
		out   qparam
		table [256]float32 // table[d] = exp(−s_in·β·d)
	}
	return &kernel{
		check: func(c *opCtx) error {
			t := c.inType(0)
			if err := first(c.arity(1, 1, 1), c.typeIn(0, fb.TensorTypeINT8, fb.TensorTypeINT16), c.typeOut(0, t)); err != nil {
				return err
			}
			in, out, err := c.ioQuant(true)
			if err != nil {
				return err
			}
			if t == fb.TensorTypeINT16 {
				return c.prepareSoftmax16(in, out)
			}
			if out.zp != -128 || math.Abs(float64(out.scale)-1.0/256) > 0.001/256 {
				return c.unsupported("INT8 softmax output %q has scale %g zero point %d: the runtime requires 1/256 and -128", c.outMeta(0).Name, out.scale, out.zp)
			}
			beta := float32(1)
			if o, ok := builtinOptions(c.p.op).(*fb.SoftmaxOptionsT); ok && o != nil {
				beta = o.Beta
			}
			q := &softmaxQ{out: out}
			scale := -in.scale * beta
			for d := range q.table {
				q.table[d] = float32(math.Exp(float64(scale * float32(d))))
			}
			c.p.q = q
			return nil
		},
		run: func(c *opCtx) error {
			x, err := c.intIn(0)
			if err != nil {
				return err
			}
			if len(x.Shape) == 0 {
				return c.errf("softmax of a scalar")
			}
			if x.Type == fb.TensorTypeINT16 {
				c.set(0, c.p.q.(*softmax16Q).run(x))
				return nil
			}
			q := c.p.q.(*softmaxQ)
			D := x.Shape[len(x.Shape)-1]
			out := NewTensor(x.Type, x.Shape)
			for r := 0; D > 0 && r < len(x.I8)/D; r++ {
				row := x.I8[r*D : (r+1)*D]
				mx := int8(math.MinInt8)
				for _, v := range row {
					mx = max(mx, v)
				}
				var sum float32
				for _, v := range row {
					sum += q.table[int(mx)-int(v)]
				}
				inv := 1 / (sum * q.out.scale)
				for j, v := range row {
					p := int32(math.Round(float64(q.table[int(mx)-int(v)]*inv))) + q.out.zp
					out.I8[r*D+j] = int8(min(max(p, math.MinInt8), math.MaxInt8))
				}
			}
			c.set(0, out)
			return nil
		},
	}
}

// binaryQ is what the integer ADD, SUB and MUL derive at New.
type binaryQ struct {
	in1, in2, out qparam
	leftShift     int
	m1, m2, mo    int32
	s1, s2, so    int
	lo, hi        int32
	// IntXNNPACK (int8 ADD, SUB, MUL): see xnnBinary.
	xnn           bool
	xa, xb, xbias int32
	xshift        int
	xscale        float32
	xlo, xhi      int32
}

// xnnBinary prepares the XNNPACK delegate's int8 ADD/SUB and MUL
// (microparams-init.c xnn_init_qs8_add_minmax_scalar_params and
// xnn_init_qs8_mul_minmax_scalar_params; SUB is ADD with the second scale
// negated, binary-elementwise-nd.c). ADD: 21-bit multipliers of
// s_a/s_out and s_b/s_out sharing a shift from the larger one's exponent,
// a bias holding the zero points and the rounding term, an arithmetic
// right shift (rounding half up). MUL: the product of the centred integers
// times float32(s_a·s_b/s_out), rounded half to even.
func (q *binaryQ) xnnBinary(code fb.BuiltinOperator, act fb.ActivationFunctionType) {
	q.xnn = true
	q.xlo, q.xhi = xnnActivationRange(act, q.out)
	if code == fb.BuiltinOperatorMUL {
		q.xscale = q.in1.scale * q.in2.scale / q.out.scale
		return
	}
	as := q.in1.scale / q.out.scale
	bs := q.in2.scale / q.out.scale
	if code == fb.BuiltinOperatorSUB {
		bs = -bs
	}
	m := max(float32(math.Abs(float64(as))), float32(math.Abs(float64(bs))))
	exp := int32(math.Float32bits(m)>>23) - 127
	q.xshift = int(20 - exp)
	mult := func(s float32) int32 {
		a := float32(math.Abs(float64(s)))
		v := int32(math.RoundToEven(float64(math.Float32frombits(math.Float32bits(a) + uint32(q.xshift)<<23))))
		if math.Signbit(float64(s)) {
			return -v
		}
		return v
	}
	q.xa, q.xb = mult(as), mult(bs)
	q.xbias = int32(1)<<(q.xshift-1) - q.xa*q.in1.zp - q.xb*q.in2.zp
}

// xnnApply is one element of an IntXNNPACK binary op.
func (q *binaryQ) xnnApply(code fb.BuiltinOperator, a, b int32) int32 {
	var v int32
	if code == fb.BuiltinOperatorMUL {
		f := float32((a-q.in1.zp)*(b-q.in2.zp)) * q.xscale
		f = min(max(f, float32(q.xlo-q.out.zp)), float32(q.xhi-q.out.zp))
		return int32(math.RoundToEven(float64(f))) + q.out.zp
	}
	v = (q.xbias+a*q.xa+b*q.xb)>>q.xshift + q.out.zp
	return min(max(v, q.xlo), q.xhi)
}

// intBinaryKernel is ADD / SUB (the general rescaling path of
// reference/integer_ops/add.h: both inputs shifted left by 20 bits, 15
// for int16, scaled to twice the larger input scale, summed, scaled to
// the output) and MUL (zp_out + MBQM((x1−zp1)·(x2−zp2), s1·s2/s_out), the
// multiplier computed in float32 as mul.cc does), with numpy broadcasting.
func intBinaryKernel(code fb.BuiltinOperator) *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			t := c.inType(0)
			if err := first(c.arity(2, 2, 1), c.typeIn(0, fb.TensorTypeINT8, fb.TensorTypeINT16), c.typeIn(1, t), c.typeOut(0, t)); err != nil {
				return err
			}
			act := fusedActivation(c.p.op)
			if err := c.checkIntActivation(act); err != nil {
				return err
			}
			q := &binaryQ{}
			var err error
			if q.in1, err = c.inQuant(0); err != nil {
				return err
			}
			if q.in2, err = c.inQuant(1); err != nil {
				return err
			}
			if q.out, err = c.outQuant(0); err != nil {
				return err
			}
			if t == fb.TensorTypeINT16 {
				if err := first(c.zeroPointZero(c.meta(0), q.in1), c.zeroPointZero(c.meta(1), q.in2), c.zeroPointZero(c.outMeta(0), q.out)); err != nil {
					return err
				}
			}
			q.lo, q.hi = activationRange(act, q.out, t)
			if t == fb.TensorTypeINT8 && code != fb.BuiltinOperatorSQUARED_DIFFERENCE && c.sg.in.opt.IntArithmetic == IntXNNPACK && xnnBinaryOK(code, q) {
				q.xnnBinary(code, act)
			}
			if code == fb.BuiltinOperatorMUL {
				q.mo, q.so = quantizeMultiplier(float64(q.in1.scale * q.in2.scale / q.out.scale))
				c.p.q = q
				return nil
			}
			if t == fb.TensorTypeINT16 && potScaleInt16(c.p.op) && isPOT(q.in1.scale) && isPOT(q.in2.scale) && isPOT(q.out.scale) {
				return c.unsupported("int16 %s with power-of-two scales (the runtime's shift-only path) is not implemented", c.p.name)
			}
			q.leftShift = 20
			if t == fb.TensorTypeINT16 {
				q.leftShift = 15
			}
			twiceMax := 2 * float64(max(q.in1.scale, q.in2.scale))
			q.m1, q.s1 = quantizeMultiplier(float64(q.in1.scale) / twiceMax)
			q.m2, q.s2 = quantizeMultiplier(float64(q.in2.scale) / twiceMax)
			if code == fb.BuiltinOperatorSQUARED_DIFFERENCE {
				// squared_difference.cc: left shift 7, the output
				// multiplier over the squared scale.
				if t != fb.TensorTypeINT8 {
					return c.unsupported("INT16 SQUARED_DIFFERENCE (the runtime has no int16 kernel)")
				}
				q.leftShift = 7
				q.mo, q.so = quantizeMultiplier(twiceMax * twiceMax / (float64(1<<14) * float64(q.out.scale)))
				c.p.q = q
				return nil
			}
			q.mo, q.so = quantizeMultiplier(twiceMax / (float64(int64(1)<<q.leftShift) * float64(q.out.scale)))
			c.p.q = q
			return nil
		},
		run: func(c *opCtx) error {
			q := c.p.q.(*binaryQ)
			x, y, shape, ix, iy, err := c.broadcast2()
			if err != nil {
				return err
			}
			out := NewTensor(c.outMeta(0).Type, shape)
			for i := range ix {
				if q.xnn {
					out.setInt(i, q.xnnApply(code, x.intAt(ix[i]), y.intAt(iy[i])))
					continue
				}
				a, b := x.intAt(ix[i])-q.in1.zp, y.intAt(iy[i])-q.in2.zp
				var v int32
				if code == fb.BuiltinOperatorMUL {
					v = mbqm(a*b, q.mo, q.so)
				} else {
					sa := mbqm(a*(1<<q.leftShift), q.m1, q.s1)
					sb := mbqm(b*(1<<q.leftShift), q.m2, q.s2)
					switch code {
					case fb.BuiltinOperatorSUB:
						v = mbqm(sa-sb, q.mo, q.so)
					case fb.BuiltinOperatorSQUARED_DIFFERENCE:
						v = mbqm((sa-sb)*(sa-sb), q.mo, q.so)
					default:
						v = mbqm(sa+sb, q.mo, q.so)
					}
				}
				out.setInt(i, min(max(v+q.out.zp, q.lo), q.hi))
			}
			c.set(0, out)
			return nil
		},
	}
}

// xnnBinaryOK reports whether the XNNPACK delegate takes an int8 ADD/SUB
// (input/output scale ratios in [2^-10, 2^8)) or MUL (s_a·s_b/s_out in
// [2^-16, 2^8)); otherwise the builtin kernel runs it.
func xnnBinaryOK(code fb.BuiltinOperator, q *binaryQ) bool {
	if code == fb.BuiltinOperatorMUL {
		r := q.in1.scale * q.in2.scale / q.out.scale
		return r >= 1.0/65536 && r < 256
	}
	for _, s := range []float32{q.in1.scale, q.in2.scale} {
		if r := s / q.out.scale; r < 1.0/1024 || r >= 256 {
			return false
		}
	}
	return true
}

// potScaleInt16 is the ADD/SUB option pot_scale_int16 (true when absent,
// the schema default).
func potScaleInt16(op *fb.OperatorT) bool {
	switch o := builtinOptions(op).(type) {
	case *fb.AddOptionsT:
		return o == nil || o.PotScaleInt16
	case *fb.SubOptionsT:
		return o == nil || o.PotScaleInt16
	}
	return true
}

// isPOT is CheckedLog2 (kernels/internal/common.h): log2(s) within 1e-3 of
// an integer.
func isPOT(s float32) bool {
	l := math.Log2(float64(s))
	return math.Abs(l-math.Round(l)) < 1e-3
}

// intMinMaxKernel is MAXIMUM / MINIMUM on the stored integers
// (maximum_minimum.cc: no rescaling; the model keeps one scale).
func intMinMaxKernel(maximum bool) *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			t := c.inType(0)
			return first(c.arity(2, 2, 1), c.typeIn(0, fb.TensorTypeINT8, fb.TensorTypeINT16), c.typeIn(1, t), c.typeOut(0, t))
		},
		run: func(c *opCtx) error {
			x, y, shape, ix, iy, err := c.broadcast2()
			if err != nil {
				return err
			}
			out := NewTensor(x.Type, shape)
			for i := range ix {
				a, b := x.intAt(ix[i]), y.intAt(iy[i])
				if maximum {
					out.setInt(i, max(a, b))
				} else {
					out.setInt(i, min(a, b))
				}
			}
			c.set(0, out)
			return nil
		},
	}
}

// softmax16Q is SOFTMAX int16 (activations.cc SoftmaxPrepare,
// reference/softmax.h SoftmaxInt16): differences from the row maximum
// rescaled so that [−65535, 0] spans [−10, 0], exp through a 513-entry
// table, the sum's reciprocal through a table of 1/(1+x), both tables
// computed in double (LUTPopulate's double overload).
type softmax16Q struct {
	mult        int32
	shift       int
	exp, recip1 []int16
}

func (c *opCtx) prepareSoftmax16(in, out qparam) error {
	if math.Abs(float64(out.scale)-1.0/32768) > 0.001/32768 {
		return c.unsupported("INT16 softmax output %q has scale %g zero point %d: the runtime requires 1/32768 and 0", c.outMeta(0).Name, out.scale, out.zp)
	}
	beta := float32(1)
	if o, ok := builtinOptions(c.p.op).(*fb.SoftmaxOptionsT); ok && o != nil {
		beta = o.Beta
	}
	const rng = 65535.0
	q := &softmax16Q{}
	q.mult, q.shift = quantizeMultiplier(float64(in.scale*beta) / (10.0 / rng))
	q.exp = lutInt16[float64](10.0/rng, math.MaxInt16, 2.0/rng, 0, math.Exp)
	q.recip1 = lutInt16[float64](1.0/rng, math.MinInt16, 2.0/rng, 0, func(x float64) float64 { return 1 / (1 + x) })
	c.p.q = q
	return nil
}

func (q *softmax16Q) run(x *Tensor) *Tensor {
	D := x.Shape[len(x.Shape)-1]
	out := NewTensor(x.Type, x.Shape)
	for r := 0; D > 0 && r < len(x.I16)/D; r++ {
		row, o := x.I16[r*D:(r+1)*D], out.I16[r*D:(r+1)*D]
		mx := int16(math.MinInt16)
		for _, v := range row {
			mx = max(mx, v)
		}
		var sum int32
		for j, v := range row {
			d := mbqm(int32(v)-int32(mx), q.mult, q.shift) + 32767
			o[j] = lutLookup16(q.exp, int16(min(max(d, math.MinInt16), math.MaxInt16)))
			sum += int32(o[j])
		}
		head := bits.LeadingZeros32(uint32(sum))
		shifted := int32((int64(sum)<<(head-1) + 1<<13) >> 14)
		sym := shifted - (1<<15 + 1<<16)
		recip := int64(lutLookup16(q.recip1, int16(min(max(sym, math.MinInt16), math.MaxInt16))))
		rs := 31 - head
		for j := range o {
			v := int32((int64(o[j])*recip + int64(1)<<(rs-1)) >> rs)
			o[j] = int16(min(max(v, 0), math.MaxInt16))
		}
	}
	return out
}
