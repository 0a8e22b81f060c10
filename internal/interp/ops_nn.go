package interp

import (
	"fmt"

	"github.com/qpipe/qpipe/internal/quant"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// FULLY_CONNECTED, BATCH_MATMUL, EMBEDDING_LOOKUP, DEQUANTIZE and
// STABLEHLO_COMPOSITE.

// hybridWeight reports whether input k is a quantized constant the op reads
// directly (not through DEQUANTIZE).
func (c *opCtx) hybridWeight(k int) bool {
	if !c.weightLike(k) {
		return false
	}
	meta, _, deq := c.weightMeta(k)
	return !deq && (meta.Type == fb.TensorTypeINT8 || meta.Type == fb.TensorTypeINT4)
}

// checkHybrid validates a hybrid weight (input k read quantized by the
// op): zero points must be 0 (the runtime's CPU path, XNNPACK, rejects
// others), per-channel scales must run along the op's output-channel axis
// (axis(rank)), and blockwise scales are accepted only where blockOK (the
// runtime has a blockwise kernel for FULLY_CONNECTED only).
func (c *opCtx) checkHybrid(k int, axis func(rank int) int, blockOK bool) error {
	if !c.hybridWeight(k) {
		return nil
	}
	meta, t, _ := c.weightMeta(k)
	w, err := c.sg.weightView(t)
	if err != nil {
		return c.unsupported("%v", err)
	}
	if w.block > 0 {
		if !blockOK {
			return c.unsupported("blockwise quantized weight %q (hybrid blockwise kernels exist for FULLY_CONNECTED only)", meta.Name)
		}
		return nil
	}
	for i, z := range w.zp {
		if z != 0 {
			return c.unsupported("hybrid weight %q has zero point %d in channel %d (the runtime accepts only 0)", meta.Name, z, i)
		}
	}
	if len(w.scale) > 1 {
		if want := axis(len(w.shape)); int(meta.Quantization.QuantizedDimension) != want {
			return c.unsupported("hybrid weight %q is quantized along dimension %d, the op's channels are dimension %d", meta.Name, meta.Quantization.QuantizedDimension, want)
		}
	}
	return nil
}

func axis0(int) int { return 0 }

func fcKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			if err := c.arity(2, 3, 1); err != nil {
				return err
			}
			o, _ := builtinOptions(c.p.op).(*fb.FullyConnectedOptionsT)
			if o != nil {
				if o.WeightsFormat != fb.FullyConnectedOptionsWeightsFormatDEFAULT {
					return c.unsupported("weights_format %s", fb.EnumNamesFullyConnectedOptionsWeightsFormat[o.WeightsFormat])
				}
				if err := c.checkActivation(o.FusedActivationFunction); err != nil {
					return err
				}
			}
			return first(c.typeIn(0, f32Only...), c.typeIn(2, f32Only...), c.checkWeight(1, true), c.checkHybrid(1, axis0, true), c.typeOut(0, f32Only...))
		},
		run: func(c *opCtx) error {
			fc, err := prepareFC(c)
			if err != nil {
				return err
			}
			out := NewTensor(fb.TensorTypeFLOAT32, fc.shape)
			fc.compute(c.sg.in.threads, out.F32, fc.x.F32, fc.M)
			c.set(0, out)
			return nil
		},
		// Samples run as one GEMM over all their rows: every output element
		// is computed as for one sample (one summation order, per-row
		// activation quantization), and the weight is decoded once.
		runBatch: func(cs []*opCtx) error {
			fcs := make([]*fcCall, len(cs))
			rows := 0
			for b, c := range cs {
				fc, err := prepareFC(c)
				if err != nil {
					return fmt.Errorf("sample %d: %w", b, err)
				}
				fcs[b] = fc
				rows += fc.M
			}
			K, N := fcs[0].K, fcs[0].N
			x := make([]float32, rows*K)
			at := 0
			for _, fc := range fcs {
				at += copy(x[at:], fc.x.F32[:fc.M*K])
			}
			out := make([]float32, rows*N)
			fcs[0].compute(cs[0].sg.in.threads, out, x, rows)
			at = 0
			for b, fc := range fcs {
				t := NewTensor(fb.TensorTypeFLOAT32, fc.shape)
				at += copy(t.F32, out[at:at+fc.M*N])
				cs[b].set(0, t)
			}
			return nil
		},
	}
}

// fcCall is one FULLY_CONNECTED's operands, checked.
type fcCall struct {
	x       *Tensor
	w       *weight
	bias    []float32
	act     fb.ActivationFunctionType
	M, K, N int
	shape   []int
}

func prepareFC(c *opCtx) (*fcCall, error) {
	x, err := c.f32(0)
	if err != nil {
		return nil, err
	}
	w, err := c.weight(1)
	if err != nil {
		return nil, err
	}
	var bias []float32
	if b, err := c.opt(2); err != nil {
		return nil, err
	} else if b != nil {
		bias = b.F32
	}
	o, _ := builtinOptions(c.p.op).(*fb.FullyConnectedOptionsT)
	if o == nil {
		o = &fb.FullyConnectedOptionsT{}
	}
	if len(w.shape) != 2 {
		return nil, c.errf("weights have shape %v, want [out, in]", w.shape)
	}
	N, K := w.shape[0], w.shape[1]
	n := numElements(x.Shape)
	if K == 0 || n%K != 0 || len(x.Shape) == 0 {
		return nil, c.errf("input %v does not divide into rows of %d (weights %v)", x.Shape, K, w.shape)
	}
	M := n / K
	if o.KeepNumDims && x.Shape[len(x.Shape)-1] != K {
		return nil, c.errf("keep_num_dims: input's last dimension %d is not the weights' %d", x.Shape[len(x.Shape)-1], K)
	}
	if bias != nil && len(bias) != N {
		return nil, c.errf("bias has %d elements, want %d", len(bias), N)
	}
	shape := []int{M, N}
	if o.KeepNumDims {
		shape = append(append([]int{}, x.Shape[:len(x.Shape)-1]...), N)
	}
	if err := c.checkSize(shape); err != nil {
		return nil, err
	}
	return &fcCall{x: x, w: w, bias: bias, act: o.FusedActivationFunction, M: M, K: K, N: N, shape: shape}, nil
}

// compute writes the M rows of x times the weight (plus bias, activated)
// to out.
func (fc *fcCall) compute(threads int, out, x []float32, M int) {
	if fc.w.quantized {
		hybridFC(threads, out, x, M, fc.K, fc.N, fc.w, fc.bias)
	} else {
		matmulF32(threads, out, x, M, fc.K, fc.N, fc.w, 0)
		addBias(out, fc.bias)
	}
	activation(fc.act, out)
}

func addBias(out, bias []float32) {
	if len(bias) == 0 {
		return
	}
	for i := range out {
		out[i] += bias[i%len(bias)]
	}
}

func bmmKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			if err := c.arity(2, 2, 1); err != nil {
				return err
			}
			if err := c.typeIn(0, f32Only...); err != nil {
				return err
			}
			if c.weightLike(0) {
				if err := c.checkWeight(0, false); err != nil {
					return err
				}
			}
			o, _ := builtinOptions(c.p.op).(*fb.BatchMatMulOptionsT)
			adjY := o != nil && o.AdjY
			axis := func(r int) int {
				if adjY {
					return r - 2
				}
				return r - 1
			}
			return first(c.checkWeight(1, true), c.checkHybrid(1, axis, false), c.typeOut(0, f32Only...))
		},
		run: func(c *opCtx) error {
			a, err := c.f32(0)
			if err != nil {
				return err
			}
			w, err := c.weight(1)
			if err != nil {
				return err
			}
			o, _ := builtinOptions(c.p.op).(*fb.BatchMatMulOptionsT)
			if o == nil {
				o = &fb.BatchMatMulOptionsT{}
			}
			out, err := batchMatMul(c.sg.in.threads, a, w, o.AdjX, o.AdjY)
			if err != nil {
				return c.errf("%v", err)
			}
			c.set(0, out)
			return nil
		},
	}
}

// BatchPairs broadcasts the batch dimensions a and b of BATCH_MATMUL's
// operands: batch is the output's, and output batch i (row-major) reads
// batch ia[i] of the first operand and ib[i] of the second. ok is false
// when they do not broadcast.
func BatchPairs(a, b []int) (batch, ia, ib []int, ok bool) {
	if batch, ok = broadcastShape(a, b); !ok {
		return nil, nil, nil, false
	}
	return batch, broadcastIndex(a, batch), broadcastIndex(b, batch), true
}

// batchMatMul multiplies a [..., M, K] (adjX: [..., K, M]) by b [..., K, N]
// (adjY: [..., N, K]) with broadcast batch dimensions.
func batchMatMul(threads int, a *Tensor, b *weight, adjX, adjY bool) (*Tensor, error) {
	ra, rb := len(a.Shape), len(b.shape)
	if ra < 2 || rb < 2 {
		return nil, fmt.Errorf("operands of shape %v and %v: both need rank 2 or more", a.Shape, b.shape)
	}
	M, K := a.Shape[ra-2], a.Shape[ra-1]
	if adjX {
		M, K = K, M
	}
	Kb, N := b.shape[rb-2], b.shape[rb-1]
	if adjY {
		Kb, N = N, Kb
	}
	if K != Kb {
		return nil, fmt.Errorf("shapes %v (adj_x %v) and %v (adj_y %v) do not multiply", a.Shape, adjX, b.shape, adjY)
	}
	batch, ia, ib, ok := BatchPairs(a.Shape[:ra-2], b.shape[:rb-2])
	if !ok {
		return nil, fmt.Errorf("batch dimensions of %v and %v do not broadcast", a.Shape, b.shape)
	}
	oshape := append(append([]int{}, batch...), M, N)
	if n := numElements(oshape); n < 0 || n > elementLimit {
		return nil, fmt.Errorf("output shape %v has more than %d elements", oshape, elementLimit)
	}
	out := NewTensor(fb.TensorTypeFLOAT32, oshape)
	lhs := make([]float32, M*K)
	var rhsNT []float32 // b's batch as [N, K] when it must be transposed
	for bi := range ia {
		src := a.F32[ia[bi]*M*K : (ia[bi]+1)*M*K]
		if adjX {
			quant.Transpose(lhs, src, K, M)
		} else {
			copy(lhs, src)
		}
		o := out.F32[bi*M*N : (bi+1)*M*N]
		boff := ib[bi] * K * N
		switch {
		case b.quantized:
			qb := b
			if !adjY {
				qb = b.transposedInts(boff, K, N)
				boff = 0
			}
			sub := *qb
			sub.raw, sub.shape = nil, []int{N, K}
			if qb.kind == wInt8 {
				sub.raw = qb.raw[boff : boff+N*K]
			} else {
				tmp := make([]int8, N*K)
				qb.ints(tmp, boff)
				sub.raw, sub.kind = int8Bytes(tmp), wInt8
			}
			if len(qb.scale) > 1 {
				sub.scale, sub.zp, sub.axisStride, sub.axisDim = qb.channelScales(boff, N, K, adjY)
			}
			hybridFC(threads, o, lhs, M, K, N, &sub, nil)
		case adjY:
			matmulF32(threads, o, lhs, M, K, N, b, boff)
		case useSIMD && M > 0 && K > 0:
			// The vector GEMM packs its panels from [K, N] directly.
			matmulF32VecLayout(threads, o, lhs, M, K, N, b, boff, true)
		default:
			if rhsNT == nil {
				rhsNT = make([]float32, N*K)
			}
			tmp := make([]float32, K*N)
			b.decode(tmp, boff)
			quant.Transpose(rhsNT, tmp, K, N)
			matmulF32(threads, o, lhs, M, K, N, &weight{shape: []int{N, K}, kind: wFloat32, f32: rhsNT}, 0)
		}
	}
	return out, nil
}

// transposedInts returns a copy of the [K, N] int block at off as [N, K]
// int8 with the same channel parameters.
func (w *weight) transposedInts(off, K, N int) *weight {
	src := make([]int8, K*N)
	w.ints(src, off)
	dst := make([]int8, K*N)
	quant.Transpose(dst, src, K, N)
	c := *w
	c.kind, c.raw, c.block = wInt8, int8Bytes(dst), 0
	return &c
}

// channelScales returns per-output-column scales of a [.., K, N] (or
// [.., N, K] when adjY) weight as a per-row table of an [N, K] view.
func (w *weight) channelScales(off, N, K int, adjY bool) ([]float32, []int32, int, int) {
	s := make([]float32, N)
	z := make([]int32, N)
	for n := 0; n < N; n++ {
		i := off + n // element (0, n) of [K, N]
		if adjY {
			i = off + n*K
		}
		s[n], z[n] = w.channel(i)
	}
	return s, z, K, N
}

func int8Bytes(s []int8) []byte {
	b := make([]byte, len(s))
	for i, v := range s {
		b[i] = byte(v)
	}
	return b
}

func embeddingKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			return first(c.arity(2, 2, 1), c.typeIn(0, fb.TensorTypeINT32), c.checkWeight(1, true), c.typeOut(0, f32Only...))
		},
		run: func(c *opCtx) error {
			ids, err := c.in(0)
			if err != nil {
				return err
			}
			w, err := c.weight(1)
			if err != nil {
				return err
			}
			if ids.Type != fb.TensorTypeINT32 || len(ids.Shape) != 1 {
				return c.errf("ids are %s %v, want a 1-D INT32 tensor", tflite.TypeName(ids.Type), ids.Shape)
			}
			if len(w.shape) < 2 {
				return c.errf("table has shape %v, want rank 2 or more", w.shape)
			}
			V := w.shape[0]
			D := numElements(w.shape[1:])
			oshape := append([]int{len(ids.I32)}, w.shape[1:]...)
			if err := c.checkSize(oshape); err != nil {
				return err
			}
			out := NewTensor(fb.TensorTypeFLOAT32, oshape)
			for i, id := range ids.I32 {
				if id < 0 || int(id) >= V {
					return c.errf("id %d at position %d out of range [0, %d)", id, i, V)
				}
				w.decode(out.F32[i*D:(i+1)*D], int(id)*D)
			}
			c.set(0, out)
			return nil
		},
	}
}

func dequantizeKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			if err := c.arity(1, 1, 1); err != nil {
				return err
			}
			if err := c.typeOut(0, f32Only...); err != nil {
				return err
			}
			if !c.weightLike(0) {
				return c.unsupported("DEQUANTIZE of a computed tensor (only constants)")
			}
			switch c.inType(0) {
			case fb.TensorTypeINT8, fb.TensorTypeINT4, fb.TensorTypeFLOAT16:
			default:
				return c.unsupported("DEQUANTIZE of %s", tflite.TypeName(c.inType(0)))
			}
			if _, err := c.sg.weightView(c.tensorIdx(0)); err != nil {
				return c.unsupported("%v", err)
			}
			return nil
		},
		run: func(c *opCtx) error {
			w, err := c.sg.weightView(c.tensorIdx(0))
			if err != nil {
				return c.errf("%v", err)
			}
			out := NewTensor(fb.TensorTypeFLOAT32, w.shape)
			w.decode(out.F32, 0)
			c.set(0, out)
			return nil
		},
	}
}

// compositeKernel runs a STABLEHLO_COMPOSITE's decomposition subgraph on the
// op's inputs.
func compositeKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			// The decomposition's own ops are checked by New.
			if c.p.call >= len(c.sg.in.sgs) {
				return c.unsupported("decomposition subgraph %d out of range (model has %d)", c.p.call, len(c.sg.in.sgs))
			}
			sub := c.sg.in.sgs[c.p.call].sg
			if len(sub.Inputs) != len(c.p.op.Inputs) || len(sub.Outputs) != len(c.p.op.Outputs) {
				return c.unsupported("decomposition subgraph %d takes %d inputs and gives %d outputs; the op has %d and %d",
					c.p.call, len(sub.Inputs), len(sub.Outputs), len(c.p.op.Inputs), len(c.p.op.Outputs))
			}
			return nil
		},
		run: func(c *opCtx) error {
			sub := c.sg.in.sgs[c.p.call]
			if len(sub.sg.Inputs) != len(c.p.op.Inputs) || len(sub.sg.Outputs) != len(c.p.op.Outputs) {
				return c.errf("decomposition subgraph %d takes %d inputs and gives %d outputs; the op has %d and %d",
					c.p.call, len(sub.sg.Inputs), len(sub.sg.Outputs), len(c.p.op.Inputs), len(c.p.op.Outputs))
			}
			f := sub.newFrame()
			for k, t := range sub.sg.Inputs {
				v, err := c.in(k)
				if err != nil {
					return err
				}
				f.vals[t] = v
			}
			if err := sub.run(c.ctx, f, c.depth+1); err != nil {
				return err
			}
			for k, t := range sub.sg.Outputs {
				v, err := f.value(int(t))
				if err != nil {
					return err
				}
				if v == nil {
					return c.errf("decomposition subgraph %d did not compute output %d", c.p.call, k)
				}
				c.set(k, v)
			}
			return nil
		},
	}
}
