package interp

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/qpipe/qpipe/internal/quant"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// weightKind is how a weight's elements are stored.
type weightKind int

const (
	wFloat32 weightKind = iota // f32 holds the values (a view of the file or an activation)
	wFloat16                   // raw holds binary16
	wInt8                      // raw holds int8 with per-tensor or per-channel scale/zero point
	wInt4                      // raw holds packed int4 (element 2k low nibble of byte k); channel or block scales
)

// weight is a matrix operand read in place: from the memory-mapped model
// when constant (quantized or not), never dequantized as a whole. Elements
// are addressed by their row-major flat index in shape.
type weight struct {
	name  string
	shape []int
	kind  weightKind
	f32   []float32
	raw   []byte
	// Per-channel (or per-tensor: one entry) parameters along axis.
	scale      []float32
	zp         []int32
	axisStride int // elements between consecutive channels of axis
	axisDim    int
	// Blockwise int4: block scale i/block scales element i (blocks run
	// along the last axis, which block divides). The scales are read from
	// the mapped scale tensor when used (float16, or float32 when
	// bscaleF32).
	block     int
	bscaleRaw []byte
	bscaleF32 bool
	// quantized is true when the tensor is read by the op directly (the
	// op's hybrid kernel), false for a float weight or a folded
	// DEQUANTIZE (float semantics).
	quantized bool
}

func (w *weight) numElements() int { return numElements(w.shape) }

// channel returns the scale and zero point of element i.
func (w *weight) channel(i int) (float32, int32) {
	if len(w.scale) == 1 {
		return w.scale[0], w.zp[0]
	}
	ch := (i / w.axisStride) % w.axisDim
	return w.scale[ch], w.zp[ch]
}

// int8At returns the stored integer of element i (int8 or int4 kinds).
func (w *weight) int8At(i int) int8 {
	if w.kind == wInt8 {
		return int8(w.raw[i])
	}
	b := w.raw[i>>1]
	if i&1 == 0 {
		return int8(b<<4) >> 4
	}
	return int8(b) >> 4
}

// ints writes the stored integers of elements [off, off+len(dst)).
func (w *weight) ints(dst []int8, off int) {
	if w.kind == wInt8 {
		copy(dst, quant.BytesInt8(w.raw[off:off+len(dst)]))
		return
	}
	i := 0
	if off&1 == 1 && len(dst) > 0 {
		dst[0] = w.int8At(off)
		i = 1
	}
	for ; i+1 < len(dst); i += 2 {
		b := w.raw[(off+i)>>1]
		dst[i] = int8(b<<4) >> 4
		dst[i+1] = int8(b) >> 4
	}
	if i < len(dst) {
		dst[i] = w.int8At(off + i)
	}
}

// decode writes the float values of elements [off, off+len(dst)): the
// DEQUANTIZE values (q − zero point)·scale, or q·block scale for blockwise
// int4.
func (w *weight) decode(dst []float32, off int) {
	switch w.kind {
	case wFloat32:
		copy(dst, w.f32[off:off+len(dst)])
	case wFloat16:
		for i := range dst {
			dst[i] = quant.Float32FromBits16(binary.LittleEndian.Uint16(w.raw[2*(off+i):]))
		}
	case wInt8, wInt4:
		if w.block > 0 {
			for i := range dst {
				dst[i] = float32(w.int8At(off+i)) * w.blockScale((off+i)/w.block)
			}
			return
		}
		for i := range dst {
			s, z := w.channel(off + i)
			dst[i] = float32(int32(w.int8At(off+i))-z) * s
		}
	}
}

// weightLike reports whether input k is read through a weight view: a
// constant, or the output of a folded DEQUANTIZE.
func (c *opCtx) weightLike(k int) bool {
	t := c.tensorIdx(k)
	if t < 0 {
		return false
	}
	if c.sg.isConst(t) {
		return true
	}
	if p := c.sg.producer[t]; p >= 0 && c.sg.ops[p].folded {
		return true
	}
	return false
}

// weightType is the element type input k is stored as (through a folded
// DEQUANTIZE, the quantized constant's type) and whether it is read
// dequantized (float semantics).
func (c *opCtx) weightMeta(k int) (meta *fb.TensorT, tensor int, dequantized bool) {
	t := c.tensorIdx(k)
	if t < 0 {
		return nil, -1, false
	}
	if p := c.sg.producer[t]; p >= 0 && c.sg.ops[p].folded {
		src := int(c.sg.ops[p].op.Inputs[0])
		return c.sg.sg.Tensors[src], src, true
	}
	return c.sg.sg.Tensors[t], t, false
}

// weight returns input k as a weight view: constants (any storage, read in
// place) and folded DEQUANTIZE outputs; an activation input is wrapped as a
// float32 weight.
func (c *opCtx) weight(k int) (*weight, error) {
	if !c.weightLike(k) {
		v, err := c.f32(k)
		if err != nil {
			return nil, err
		}
		return &weight{name: c.meta(k).Name, shape: v.Shape, kind: wFloat32, f32: v.F32}, nil
	}
	_, t, deq := c.weightMeta(k)
	w, err := c.sg.weightView(t)
	if err != nil {
		return nil, c.errf("input %d: %v", k, err)
	}
	if deq == w.quantized && w.kind != wFloat32 && w.kind != wFloat16 {
		// The same tensor read both ways: make a view with the other flag.
		v := *w
		v.quantized = !deq
		return &v, nil
	}
	return w, nil
}

// checkWeight validates input k's storage when it is weight-like (at New).
func (c *opCtx) checkWeight(k int, hybridOK bool) error {
	if !c.weightLike(k) {
		return c.typeIn(k, fb.TensorTypeFLOAT32)
	}
	meta, t, deq := c.weightMeta(k)
	switch meta.Type {
	case fb.TensorTypeFLOAT32:
		if deq {
			return c.unsupported("DEQUANTIZE of a FLOAT32 tensor")
		}
		return nil
	case fb.TensorTypeFLOAT16:
		if !deq {
			return c.unsupported("FLOAT16 weight %q read without DEQUANTIZE", meta.Name)
		}
	case fb.TensorTypeINT8, fb.TensorTypeINT4:
		if !deq && !hybridOK {
			return c.unsupported("hybrid (quantized %s weight %q) form", tflite.TypeName(meta.Type), meta.Name)
		}
	default:
		return c.unsupported("weight %q of type %s", meta.Name, tflite.TypeName(meta.Type))
	}
	if _, err := c.sg.weightView(t); err != nil {
		return c.unsupported("input %d: %v", k, err)
	}
	return nil
}

// weightView builds (once) the view of constant tensor t.
func (s *subgraph) weightView(t int) (*weight, error) {
	if w, ok := s.weights[t]; ok {
		return w, nil
	}
	meta := s.sg.Tensors[t]
	w := &weight{name: meta.Name, quantized: true}
	for _, d := range meta.Shape {
		w.shape = append(w.shape, int(d))
	}
	n := numElements(w.shape)
	b, err := s.constBytes(t)
	if err != nil {
		return nil, err
	}
	size, ok := tflite.DataSize(meta.Type, int64(n))
	if !ok || int64(len(b)) < size {
		return nil, fmt.Errorf("tensor %q: %d bytes for %s %v", meta.Name, len(b), tflite.TypeName(meta.Type), w.shape)
	}
	b = b[:size]
	q := meta.Quantization
	switch meta.Type {
	case fb.TensorTypeFLOAT32:
		w.kind, w.f32, w.quantized = wFloat32, quant.Float32s(b), false
	case fb.TensorTypeFLOAT16:
		w.kind, w.raw, w.quantized = wFloat16, b, false
	case fb.TensorTypeINT8, fb.TensorTypeINT4:
		w.kind, w.raw = wInt8, b
		if meta.Type == fb.TensorTypeINT4 {
			w.kind = wInt4
		}
		if err := s.quantParams(w, meta, q); err != nil {
			return nil, fmt.Errorf("tensor %q: %v", meta.Name, err)
		}
	default:
		return nil, fmt.Errorf("tensor %q: weights of type %s are not supported", meta.Name, tflite.TypeName(meta.Type))
	}
	s.weights[t] = w
	return w, nil
}

// quantParams reads per-tensor / per-channel affine or blockwise
// parameters into w.
func (s *subgraph) quantParams(w *weight, meta *fb.TensorT, q *fb.QuantizationParametersT) error {
	if q == nil {
		return fmt.Errorf("quantized %s without quantization parameters", tflite.TypeName(meta.Type))
	}
	if q.Details != nil && q.Details.Type != fb.QuantizationDetailsNONE {
		bq, ok := q.Details.Value.(*fb.BlockwiseQuantizationT)
		if !ok || bq == nil {
			return fmt.Errorf("%s quantization details are not supported", fb.EnumNamesQuantizationDetails[q.Details.Type])
		}
		if bq.ZeroPoints >= 0 {
			return fmt.Errorf("blockwise quantization with zero points is not supported")
		}
		B := int(bq.BlockSize)
		last := 1
		if len(w.shape) > 0 {
			last = w.shape[len(w.shape)-1]
		}
		if B <= 0 || last%B != 0 {
			return fmt.Errorf("block size %d does not divide the last dimension %d", B, last)
		}
		st := s.sg.Tensors[bq.Scales]
		if !s.isConst(int(bq.Scales)) || (st.Type != fb.TensorTypeFLOAT16 && st.Type != fb.TensorTypeFLOAT32) {
			return fmt.Errorf("block scales tensor %d is not a constant FLOAT16/FLOAT32 tensor", bq.Scales)
		}
		nb := w.numElements() / B
		sb, err := s.constBytes(int(bq.Scales))
		if err != nil {
			return err
		}
		w.block = B
		size := 2 * nb
		if st.Type == fb.TensorTypeFLOAT32 {
			size, w.bscaleF32 = 4*nb, true
		}
		if len(sb) < size {
			return fmt.Errorf("block scales tensor %d holds %d bytes, want %d", bq.Scales, len(sb), size)
		}
		w.bscaleRaw = sb[:size]
		return nil
	}
	if len(q.Scale) == 0 {
		return fmt.Errorf("quantized %s without scales", tflite.TypeName(meta.Type))
	}
	w.scale = q.Scale
	w.zp = make([]int32, len(q.Scale))
	for i := range w.zp {
		if i < len(q.ZeroPoint) {
			w.zp[i] = int32(q.ZeroPoint[i])
		}
	}
	if len(q.Scale) > 1 {
		ax := int(q.QuantizedDimension)
		if ax < 0 || ax >= len(w.shape) || w.shape[ax] != len(q.Scale) {
			return fmt.Errorf("%d scales along quantized_dimension %d of shape %v", len(q.Scale), ax, w.shape)
		}
		w.axisDim = w.shape[ax]
		w.axisStride = strides(w.shape)[ax]
	}
	return nil
}

// blockScale is the scale of block b.
func (w *weight) blockScale(b int) float32 {
	if w.bscaleF32 {
		return math.Float32frombits(binary.LittleEndian.Uint32(w.bscaleRaw[4*b:]))
	}
	return quant.Float32FromBits16(binary.LittleEndian.Uint16(w.bscaleRaw[2*b:]))
}

// blockScaleBF16 is block b's scale rounded to bfloat16 (nearest even):
// what XNNPACK's blockwise GEMM multiplies by (it stores bf16 scales).
func (w *weight) blockScaleBF16(b int) float32 { return quant.BFloat16Round(w.blockScale(b)) }

// blockScalesBF16 writes blockScaleBF16(first+i) to dst[i·stride] for i < n.
func (w *weight) blockScalesBF16(dst []float32, stride, first, n int) {
	if w.bscaleF32 {
		for i := range n {
			dst[i*stride] = quant.BFloat16Round(math.Float32frombits(binary.LittleEndian.Uint32(w.bscaleRaw[4*(first+i):])))
		}
		return
	}
	raw := w.bscaleRaw[2*first : 2*(first+n)]
	for i := range n {
		dst[i*stride] = quant.BFloat16Round(quant.Float32FromBits16(uint16(raw[2*i]) | uint16(raw[2*i+1])<<8))
	}
}
