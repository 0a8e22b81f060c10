package interp

import (
	"math"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV, AVERAGE_POOL_2D and
// MAX_POOL_2D on NHWC tensors, SAME/VALID padding as TFLite computes it.
// Sums are accumulated in float64. With int8 weights read directly (hybrid)
// the input is quantized per image as the runtime does, and the sums run
// over the integers, scaled back per output channel.

// convGeom is one spatial dimension of a convolution.
type convGeom struct{ in, k, stride, dil, out, pad int }

// samePad returns the output size and leading padding of a dimension.
func geometry(in, k, stride, dil int, pad fb.Padding) convGeom {
	ek := (k-1)*dil + 1
	g := convGeom{in: in, k: k, stride: stride, dil: dil}
	if pad == fb.PaddingSAME {
		g.out = (in + stride - 1) / stride
		total := max((g.out-1)*stride+ek-in, 0)
		g.pad = total / 2
	} else {
		g.out = (in - ek + stride) / stride
		if g.out < 0 {
			g.out = 0
		}
	}
	return g
}

type convParams struct {
	padding          fb.Padding
	strideH, strideW int
	dilH, dilW       int
	act              fb.ActivationFunctionType
	mult             int // depthwise multiplier
}

func convOptions(op *fb.OperatorT) convParams {
	p := convParams{strideH: 1, strideW: 1, dilH: 1, dilW: 1}
	switch o := builtinOptions(op).(type) {
	case *fb.Conv2DOptionsT:
		p.padding, p.strideH, p.strideW, p.dilH, p.dilW, p.act = o.Padding, int(o.StrideH), int(o.StrideW), int(o.DilationHFactor), int(o.DilationWFactor), o.FusedActivationFunction
	case *fb.DepthwiseConv2DOptionsT:
		p.padding, p.strideH, p.strideW, p.dilH, p.dilW, p.act, p.mult = o.Padding, int(o.StrideH), int(o.StrideW), int(o.DilationHFactor), int(o.DilationWFactor), o.FusedActivationFunction, int(o.DepthMultiplier)
	case *fb.TransposeConvOptionsT:
		p.padding, p.strideH, p.strideW, p.act = o.Padding, int(o.StrideH), int(o.StrideW), o.FusedActivationFunction
	case *fb.Pool2DOptionsT:
		p.padding, p.strideH, p.strideW, p.act = o.Padding, int(o.StrideH), int(o.StrideW), o.FusedActivationFunction
	}
	p.dilH, p.dilW = max(p.dilH, 1), max(p.dilW, 1)
	return p
}

func (c *opCtx) checkConvOptions(p convParams) error {
	if p.strideH <= 0 || p.strideW <= 0 {
		return c.unsupported("stride %dx%d", p.strideH, p.strideW)
	}
	if p.padding != fb.PaddingSAME && p.padding != fb.PaddingVALID {
		return c.unsupported("padding %d", p.padding)
	}
	return c.checkActivation(p.act)
}

// convInput is the float input, or for a hybrid op its per-image quantized
// integers (as floats) and scales.
type convInput struct {
	x      []float32 // values fed to the sums
	scales []float32 // per image (hybrid), nil for float
}

func (c *opCtx) convInput(x *Tensor, hybrid bool) convInput {
	if !hybrid {
		return convInput{x: x.F32}
	}
	N := x.Shape[0]
	per := numElements(x.Shape[1:])
	ci := convInput{x: make([]float32, len(x.F32)), scales: make([]float32, N)}
	q := make([]int8, per)
	for n := 0; n < N; n++ {
		rq := quantizeRowAsym(q, x.F32[n*per:(n+1)*per])
		for i, v := range q {
			ci.x[n*per+i] = float32(int32(v) - rq.zp)
		}
		ci.scales[n] = rq.scale
	}
	return ci
}

// convWeights returns the weights as floats: dequantized values, or for a
// hybrid op the stored integers, and the per-output-channel scales.
func (c *opCtx) convWeights(k int, outAxis int) ([]float32, []int, []float32, bool, error) {
	w, err := c.weight(k)
	if err != nil {
		return nil, nil, nil, false, err
	}
	v := make([]float32, w.numElements())
	if !w.quantized {
		w.decode(v, 0)
		return v, w.shape, nil, false, nil
	}
	for i := range v {
		v[i] = float32(w.int8At(i))
	}
	if outAxis >= len(w.shape) {
		return nil, nil, nil, false, c.errf("weights of shape %v", w.shape)
	}
	cout := w.shape[outAxis]
	st := strides(w.shape)[outAxis]
	sc := make([]float32, cout)
	for o := range sc {
		sc[o], _ = w.channel(o * st)
	}
	return v, w.shape, sc, true, nil
}

// finish turns a sum into the output value: hybrid sums are scaled by the
// image's and the channel's scales, as float32 products.
func finish(sum float64, ci convInput, wsc []float32, n, oc int) float32 {
	if ci.scales == nil {
		return float32(sum)
	}
	return float32(float32(sum)*ci.scales[n]) * wsc[oc]
}

// convDims is a convolution's shapes: input NHWC, filter OHWI (depthwise
// 1HWO), the output geometry and the channel grouping.
type convDims struct {
	N, H, W, C, Cout, KH, KW, Cf int
	gh, gw                       convGeom
	mult, perGroup               int // depthwise multiplier; output channels per group
}

// convDims checks that input shape xs and filter shape ws fit and returns
// the dimensions (the output's size checked).
func (c *opCtx) convDims(xs, ws []int, depthwise bool, p convParams) (convDims, error) {
	var d convDims
	if len(xs) != 4 || len(ws) != 4 {
		return d, c.errf("input %v and filter %v must both be 4-D (NHWC, OHWI)", xs, ws)
	}
	d.N, d.H, d.W, d.C = xs[0], xs[1], xs[2], xs[3]
	if depthwise {
		d.KH, d.KW, d.Cout = ws[1], ws[2], ws[3]
		if ws[0] != 1 || d.C == 0 || d.Cout%d.C != 0 {
			return d, c.errf("depthwise filter %v does not fit %d input channels", ws, d.C)
		}
		d.mult, d.perGroup = d.Cout/d.C, d.Cout
	} else {
		d.Cout, d.KH, d.KW, d.Cf = ws[0], ws[1], ws[2], ws[3]
		if d.Cf == 0 || d.C%d.Cf != 0 || d.Cout%(d.C/d.Cf) != 0 {
			return d, c.errf("filter %v does not fit %d input channels", ws, d.C)
		}
		d.mult, d.perGroup = 1, d.Cout/(d.C/d.Cf)
	}
	d.gh = geometry(d.H, d.KH, p.strideH, p.dilH, p.padding)
	d.gw = geometry(d.W, d.KW, p.strideW, p.dilW, p.padding)
	return d, c.checkSize([]int{d.N, d.gh.out, d.gw.out, d.Cout})
}

// poolDims is a pooling's input dimensions (NHWC) and output geometry.
func (c *opCtx) poolDims(xs []int) (N, H, W, C int, gh, gw convGeom, err error) {
	o := builtinOptions(c.p.op).(*fb.Pool2DOptionsT)
	p := convOptions(c.p.op)
	if len(xs) != 4 {
		return 0, 0, 0, 0, gh, gw, c.errf("input %v is not 4-D (NHWC)", xs)
	}
	N, H, W, C = xs[0], xs[1], xs[2], xs[3]
	gh = geometry(H, int(o.FilterHeight), p.strideH, 1, p.padding)
	gw = geometry(W, int(o.FilterWidth), p.strideW, 1, p.padding)
	return N, H, W, C, gh, gw, c.checkSize([]int{N, gh.out, gw.out, C})
}

func convKernel(depthwise bool) *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			axis := axis0
			if depthwise {
				axis = func(int) int { return 3 }
			}
			return first(c.arity(2, 3, 1), c.typeIn(0, f32Only...), c.typeIn(2, f32Only...), c.checkWeight(1, true), c.checkHybrid(1, axis, false), c.checkConvOptions(convOptions(c.p.op)))
		},
		run: func(c *opCtx) error {
			x, err := c.f32(0)
			if err != nil {
				return err
			}
			outAxis := 0
			if depthwise {
				outAxis = 3
			}
			wv, ws, wsc, hybrid, err := c.convWeights(1, outAxis)
			if err != nil {
				return err
			}
			var bias []float32
			if b, err := c.opt(2); err != nil {
				return err
			} else if b != nil {
				bias = b.F32
			}
			p := convOptions(c.p.op)
			d, err := c.convDims(x.Shape, ws, depthwise, p)
			if err != nil {
				return err
			}
			N, H, W, C, Cout, KH, KW, Cf := d.N, d.H, d.W, d.C, d.Cout, d.KH, d.KW, d.Cf
			gh, gw, mult, perGroup := d.gh, d.gw, d.mult, d.perGroup
			if bias != nil && len(bias) != Cout {
				return c.errf("bias has %d elements, want %d", len(bias), Cout)
			}
			out := NewTensor(fb.TensorTypeFLOAT32, []int{N, gh.out, gw.out, Cout})
			ci := c.convInput(x, hybrid)
			parallel(c.sg.in.threads, N*gh.out, 1, func(_, lo, hi int) {
				for r := lo; r < hi; r++ {
					n, oy := r/gh.out, r%gh.out
					for ox := 0; ox < gw.out; ox++ {
						for oc := 0; oc < Cout; oc++ {
							var s float64
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
										ic := oc / mult
										s += float64(float64(ci.x[base+ic]) * float64(wv[(ky*KW+kx)*Cout+oc]))
										continue
									}
									g := oc / perGroup
									wb := ((oc*KH+ky)*KW + kx) * Cf
									for j := 0; j < Cf; j++ {
										s += float64(float64(ci.x[base+g*Cf+j]) * float64(wv[wb+j]))
									}
								}
							}
							y := finish(s, ci, wsc, n, oc)
							if bias != nil {
								y += bias[oc]
							}
							out.F32[((n*gh.out+oy)*gw.out+ox)*Cout+oc] = y
						}
					}
				}
			})
			activation(p.act, out.F32)
			c.set(0, out)
			return nil
		},
	}
}

func transposeConvKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			return first(c.arity(3, 4, 1), c.typeIn(0, fb.TensorTypeINT32), c.typeIn(2, f32Only...), c.typeIn(3, f32Only...), c.checkWeight(1, true), c.checkHybrid(1, axis0, false), c.checkConvOptions(convOptions(c.p.op)))
		},
		run: func(c *opCtx) error {
			osh, err := c.intsIn(0)
			if err != nil {
				return err
			}
			x, err := c.f32(2)
			if err != nil {
				return err
			}
			wv, ws, wsc, hybrid, err := c.convWeights(1, 0)
			if err != nil {
				return err
			}
			var bias []float32
			if b, err := c.opt(3); err != nil {
				return err
			} else if b != nil {
				bias = b.F32
			}
			p := convOptions(c.p.op)
			if len(x.Shape) != 4 || len(ws) != 4 || len(osh) != 4 {
				return c.errf("input %v, filter %v and output shape %v must be 4-D", x.Shape, ws, osh)
			}
			N, H, W, C := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
			Cout, KH, KW := ws[0], ws[1], ws[2]
			if ws[3] != C || osh[0] != N || osh[3] != Cout || osh[1] < 0 || osh[2] < 0 {
				return c.errf("filter %v, input %v and output shape %v do not fit", ws, x.Shape, osh)
			}
			OH, OW := osh[1], osh[2]
			if err := c.checkSize([]int{N, OH, OW, Cout}); err != nil {
				return err
			}
			if bias != nil && len(bias) != Cout {
				return c.errf("bias has %d elements, want %d", len(bias), Cout)
			}
			padH, padW := 0, 0
			if p.padding == fb.PaddingSAME {
				padH = max((H-1)*p.strideH+KH-OH, 0) / 2
				padW = max((W-1)*p.strideW+KW-OW, 0) / 2
			}
			ci := c.convInput(x, hybrid)
			acc := make([]float64, N*OH*OW*Cout)
			for n := 0; n < N; n++ {
				for iy := 0; iy < H; iy++ {
					for ix := 0; ix < W; ix++ {
						base := ((n*H+iy)*W + ix) * C
						for ky := 0; ky < KH; ky++ {
							oy := iy*p.strideH + ky - padH
							if oy < 0 || oy >= OH {
								continue
							}
							for kx := 0; kx < KW; kx++ {
								ox := ix*p.strideW + kx - padW
								if ox < 0 || ox >= OW {
									continue
								}
								ob := ((n*OH+oy)*OW + ox) * Cout
								for oc := 0; oc < Cout; oc++ {
									wb := ((oc*KH+ky)*KW + kx) * C
									var s float64
									for ic := 0; ic < C; ic++ {
										s += float64(float64(ci.x[base+ic]) * float64(wv[wb+ic]))
									}
									acc[ob+oc] += s
								}
							}
						}
					}
				}
			}
			out := NewTensor(fb.TensorTypeFLOAT32, []int{N, OH, OW, Cout})
			for i, s := range acc {
				oc := i % Cout
				y := finish(s, ci, wsc, i/(OH*OW*Cout), oc)
				if bias != nil {
					y += bias[oc]
				}
				out.F32[i] = y
			}
			activation(p.act, out.F32)
			c.set(0, out)
			return nil
		},
	}
}

func poolKernel(maxPool bool) *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			if err := c.arity(1, 1, 1); err != nil {
				return err
			}
			if err := c.typeIn(0, f32Only...); err != nil {
				return err
			}
			o, ok := builtinOptions(c.p.op).(*fb.Pool2DOptionsT)
			if !ok || o == nil || o.FilterHeight <= 0 || o.FilterWidth <= 0 {
				return c.unsupported("missing or invalid Pool2DOptions")
			}
			return c.checkConvOptions(convOptions(c.p.op))
		},
		run: func(c *opCtx) error {
			x, err := c.f32(0)
			if err != nil {
				return err
			}
			p := convOptions(c.p.op)
			N, H, W, C, gh, gw, err := c.poolDims(x.Shape)
			if err != nil {
				return err
			}
			out := NewTensor(fb.TensorTypeFLOAT32, []int{N, gh.out, gw.out, C})
			for n := 0; n < N; n++ {
				for oy := 0; oy < gh.out; oy++ {
					for ox := 0; ox < gw.out; ox++ {
						for ch := 0; ch < C; ch++ {
							s, cnt := 0.0, 0
							m := math.Inf(-1)
							y0, x0 := oy*gh.stride-gh.pad, ox*gw.stride-gw.pad
							for iy := max(y0, 0); iy < min(y0+gh.k, H); iy++ {
								for ix := max(x0, 0); ix < min(x0+gw.k, W); ix++ {
									v := float64(x.F32[((n*H+iy)*W+ix)*C+ch])
									s += v
									m = max(m, v)
									cnt++
								}
							}
							y := float32(m)
							if !maxPool {
								y = float32(s / float64(max(cnt, 1)))
							}
							out.F32[((n*gh.out+oy)*gw.out+ox)*C+ch] = y
						}
					}
				}
			}
			activation(p.act, out.F32)
			c.set(0, out)
			return nil
		},
	}
}
