package tflite

import (
	"fmt"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// maxElements bounds a tensor's element count so that its size in bytes
// (at most 16 per element) fits in an int64.
const maxElements = 1 << 58

// typeBits is the storage size of one element of t in bits, or 0 when t has
// no fixed size (STRING, RESOURCE, VARIANT) or is unknown to this schema.
func typeBits(t fb.TensorType) int64 {
	switch t {
	case fb.TensorTypeINT2:
		return 2
	case fb.TensorTypeINT4, fb.TensorTypeUINT4:
		return 4
	case fb.TensorTypeUINT8, fb.TensorTypeINT8, fb.TensorTypeBOOL,
		fb.TensorTypeFLOAT8_E4M3FN, fb.TensorTypeFLOAT8_E5M2:
		return 8
	case fb.TensorTypeFLOAT16, fb.TensorTypeINT16, fb.TensorTypeUINT16, fb.TensorTypeBFLOAT16:
		return 16
	case fb.TensorTypeFLOAT32, fb.TensorTypeINT32, fb.TensorTypeUINT32:
		return 32
	case fb.TensorTypeINT64, fb.TensorTypeUINT64, fb.TensorTypeFLOAT64, fb.TensorTypeCOMPLEX64:
		return 64
	case fb.TensorTypeCOMPLEX128:
		return 128
	}
	return 0
}

// DataSize is the number of bytes n elements of type t occupy in a dense
// constant buffer: n times the element size, rounded up for the packed
// types (INT4 and UINT4: ceil(n/2), INT2: ceil(n/4)), as the runtime's
// BytesRequired computes it. ok is false for types without a fixed size
// (STRING, RESOURCE, VARIANT) and types this schema does not know.
func DataSize(t fb.TensorType, n int64) (size int64, ok bool) {
	bits := typeBits(t)
	if bits == 0 || n < 0 || n > maxElements {
		return 0, false
	}
	return (n*bits + 7) / 8, true
}

// NumElements is the element count of a tensor of the given shape: the
// product of its dimensions, 1 for a scalar (empty or absent shape). It
// fails on a negative dimension or when the count exceeds 2^58.
func NumElements(shape []int32) (int64, error) {
	n := int64(1)
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v: dimension %d is negative", shape, i)
		}
		if d != 0 && n > maxElements/int64(d) {
			return 0, fmt.Errorf("shape %v: element count overflows (more than 2^58)", shape)
		}
		n *= int64(d)
	}
	return n, nil
}

// TypeName is t's schema name, or "TYPE_<n>" for a type this schema does
// not know.
func TypeName(t fb.TensorType) string {
	if s, ok := fb.EnumNamesTensorType[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE_%d", int8(t))
}
