package interp

import (
	"fmt"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// Tensor is a dense value. Exactly one of the slices is set, matching Type
// (FLOAT32: F32, INT32: I32, INT64: I64, BOOL: Bool, INT8: I8, INT16:
// I16). INT8 and INT16 values are the stored integers of a quantized
// activation; its scale and zero point are the model tensor's.
type Tensor struct {
	Type  fb.TensorType
	Shape []int
	F32   []float32
	I32   []int32
	I64   []int64
	Bool  []bool
	I8    []int8
	I16   []int16
}

// maxElements bounds the element count of any value the interpreter makes.
const maxElements = 1 << 40

// numElements is the product of shape, or -1 when a dimension is negative
// or the product exceeds maxElements.
func numElements(shape []int) int {
	n := 1
	for _, d := range shape {
		if d < 0 || (d > 0 && n > maxElements/d) {
			return -1
		}
		n *= d
	}
	return n
}

// Len is the number of elements the tensor's slice holds.
func (t *Tensor) Len() int {
	switch t.Type {
	case fb.TensorTypeFLOAT32:
		return len(t.F32)
	case fb.TensorTypeINT32:
		return len(t.I32)
	case fb.TensorTypeINT64:
		return len(t.I64)
	case fb.TensorTypeBOOL:
		return len(t.Bool)
	case fb.TensorTypeINT8:
		return len(t.I8)
	case fb.TensorTypeINT16:
		return len(t.I16)
	}
	return -1
}

// check reports a tensor whose data does not fit its type and shape.
func (t *Tensor) check() error {
	n := numElements(t.Shape)
	if n < 0 {
		return fmt.Errorf("invalid shape %v", t.Shape)
	}
	l := t.Len()
	if l < 0 {
		return fmt.Errorf("element type %s is not supported", tflite.TypeName(t.Type))
	}
	if l != n {
		return fmt.Errorf("%s tensor of shape %v holds %d elements, want %d", tflite.TypeName(t.Type), t.Shape, l, n)
	}
	return nil
}

// NewTensor returns a zero tensor of the type and shape.
func NewTensor(typ fb.TensorType, shape []int) *Tensor {
	n := numElements(shape)
	t := &Tensor{Type: typ, Shape: append([]int{}, shape...)}
	switch typ {
	case fb.TensorTypeFLOAT32:
		t.F32 = make([]float32, n)
	case fb.TensorTypeINT32:
		t.I32 = make([]int32, n)
	case fb.TensorTypeINT64:
		t.I64 = make([]int64, n)
	case fb.TensorTypeBOOL:
		t.Bool = make([]bool, n)
	case fb.TensorTypeINT8:
		t.I8 = make([]int8, n)
	case fb.TensorTypeINT16:
		t.I16 = make([]int16, n)
	}
	return t
}

// F32Tensor returns a float32 tensor holding v (not copied).
func F32Tensor(shape []int, v []float32) *Tensor {
	return &Tensor{Type: fb.TensorTypeFLOAT32, Shape: shape, F32: v}
}

// I32Tensor returns an int32 tensor holding v (not copied).
func I32Tensor(shape []int, v []int32) *Tensor {
	return &Tensor{Type: fb.TensorTypeINT32, Shape: shape, I32: v}
}

// ints returns an integer tensor's values as ints.
func (t *Tensor) ints() ([]int, bool) {
	switch t.Type {
	case fb.TensorTypeINT32:
		r := make([]int, len(t.I32))
		for i, v := range t.I32 {
			r[i] = int(v)
		}
		return r, true
	case fb.TensorTypeINT64:
		r := make([]int, len(t.I64))
		for i, v := range t.I64 {
			r[i] = int(v)
		}
		return r, true
	}
	return nil, false
}

// withShape returns a tensor sharing t's data under another shape.
func (t *Tensor) withShape(shape []int) *Tensor {
	c := *t
	c.Shape = shape
	return &c
}

// gather returns a tensor of the given shape whose element i is t's element
// idx[i] (every data movement op is an index map).
func (t *Tensor) gather(shape []int, idx []int) *Tensor {
	out := &Tensor{Type: t.Type, Shape: shape}
	switch t.Type {
	case fb.TensorTypeFLOAT32:
		out.F32 = pick(t.F32, idx)
	case fb.TensorTypeINT32:
		out.I32 = pick(t.I32, idx)
	case fb.TensorTypeINT64:
		out.I64 = pick(t.I64, idx)
	case fb.TensorTypeBOOL:
		out.Bool = pick(t.Bool, idx)
	case fb.TensorTypeINT8:
		out.I8 = pick(t.I8, idx)
	case fb.TensorTypeINT16:
		out.I16 = pick(t.I16, idx)
	}
	return out
}

func pick[T any](src []T, idx []int) []T {
	out := make([]T, len(idx))
	for i, j := range idx {
		out[i] = src[j]
	}
	return out
}

// strides returns row-major strides of shape.
func strides(shape []int) []int {
	s := make([]int, len(shape))
	n := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = n
		n *= shape[i]
	}
	return s
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// broadcastShape is numpy broadcasting of a and b.
func broadcastShape(a, b []int) ([]int, bool) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := 0; i < n; i++ {
		da, db := 1, 1
		if j := len(a) - n + i; j >= 0 {
			da = a[j]
		}
		if j := len(b) - n + i; j >= 0 {
			db = b[j]
		}
		switch {
		case da == db:
			out[i] = da
		case da == 1:
			out[i] = db
		case db == 1:
			out[i] = da
		default:
			return nil, false
		}
	}
	return out, true
}

// broadcastIndex maps every element of out (row-major) to the element of a
// tensor of shape in that broadcasts to it.
func broadcastIndex(in, out []int) []int {
	n := numElements(out)
	idx := make([]int, n)
	if sameShape(in, out) {
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	st := strides(in)
	// effective stride per output dim (0 where broadcast)
	eff := make([]int, len(out))
	for i := range out {
		j := len(in) - len(out) + i
		if j >= 0 && in[j] != 1 {
			eff[i] = st[j]
		}
	}
	counter := make([]int, len(out))
	pos := 0
	for i := 0; i < n; i++ {
		idx[i] = pos
		for d := len(out) - 1; d >= 0; d-- {
			counter[d]++
			pos += eff[d]
			if counter[d] < out[d] {
				break
			}
			pos -= eff[d] * counter[d]
			counter[d] = 0
		}
	}
	return idx
}
