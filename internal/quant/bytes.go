package quant

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// Byte-level views and encodings for writing quantized buffers and reading
// float32 ones. TFLite buffers are little-endian.

// littleEndian reports whether this machine stores integers little-endian,
// in which case the in-memory bytes of []uint16 / []float32 are already the
// file encoding.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// Int8Bytes returns the bytes of s without copying (int8 and byte have the
// same size and no byte order).
func Int8Bytes(s []int8) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s))
}

// Uint16View returns b viewed as []uint16 without copying when this machine
// is little-endian and b is 2-byte aligned, so that values written to the
// view are b's little-endian encoding; nil otherwise (then encode with
// EncodeUint16LE).
func Uint16View(b []byte) []uint16 {
	if !littleEndian || len(b) < 2 || uintptr(unsafe.Pointer(&b[0]))%2 != 0 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&b[0])), len(b)/2)
}

// BytesInt8 returns b viewed as []int8, without copying.
func BytesInt8(b []byte) []int8 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*int8)(unsafe.Pointer(&b[0])), len(b))
}

// Uint16Bytes returns the little-endian encoding of s: a view of s's memory
// on little-endian machines, a new slice otherwise. Either way the caller must
// not modify s while it uses the result.
func Uint16Bytes(s []uint16) []byte {
	if len(s) == 0 {
		return nil
	}
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 2*len(s))
	}
	b := make([]byte, 2*len(s))
	EncodeUint16LE(b, s)
	return b
}

// EncodeUint16LE writes the little-endian encoding of src to dst
// (len(dst) = 2·len(src)).
func EncodeUint16LE(dst []byte, src []uint16) {
	if len(dst) != 2*len(src) {
		panicf("EncodeUint16LE: len(dst) = %d, want 2·%d", len(dst), len(src))
	}
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], v)
	}
}

// DecodeUint16LE reads little-endian uint16s (len(src) = 2·len(dst)).
func DecodeUint16LE(dst []uint16, src []byte) {
	if len(src) != 2*len(dst) {
		panicf("DecodeUint16LE: len(src) = %d, want 2·%d", len(src), len(dst))
	}
	for i := range dst {
		dst[i] = binary.LittleEndian.Uint16(src[2*i:])
	}
}

// Float32Bytes returns the little-endian encoding of s: a view of s's memory
// on little-endian machines, a new slice otherwise.
func Float32Bytes(s []float32) []byte {
	if len(s) == 0 {
		return nil
	}
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 4*len(s))
	}
	b := make([]byte, 4*len(s))
	for i, v := range s {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// Float32s returns the little-endian float32s in b (len(b) a multiple of 4):
// a view of b's memory, without copying, when this machine is little-endian
// and b is 4-byte aligned; a decoded copy otherwise. A view aliases b: writes
// to one show in the other.
func Float32s(b []byte) []float32 {
	if len(b)%4 != 0 {
		panicf("Float32s: %d bytes is not a whole number of float32s", len(b))
	}
	if len(b) == 0 {
		return nil
	}
	if littleEndian && uintptr(unsafe.Pointer(&b[0]))%unsafe.Alignof(float32(0)) == 0 {
		return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
	}
	f := make([]float32, len(b)/4)
	DecodeFloat32LE(f, b)
	return f
}

// DecodeFloat32LE copies little-endian float32s from src into dst
// (len(src) = 4·len(dst)).
func DecodeFloat32LE(dst []float32, src []byte) {
	if len(src) != 4*len(dst) {
		panicf("DecodeFloat32LE: len(src) = %d, want 4·%d", len(src), len(dst))
	}
	if littleEndian && len(dst) > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), 4*len(dst)), src)
		return
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

// Transpose writes the transpose of the rows×cols row-major matrix src to
// dst (cols×rows), in 16×16 tiles, each column of a tile written
// contiguously. On the 2-vCPU VM a 2048×2048 float32 matrix moves at
// 0.8–1.7 GB/s whichever tiling (8 to 64, or none): bound by memory.
func Transpose[T any](dst, src []T, rows, cols int) {
	const tile = 16
	if rows*cols == 0 {
		return
	}
	_, _ = dst[rows*cols-1], src[rows*cols-1]
	for r0 := 0; r0 < rows; r0 += tile {
		r1 := min(rows, r0+tile)
		for c0 := 0; c0 < cols; c0 += tile {
			for c := c0; c < min(cols, c0+tile); c++ {
				d := dst[c*rows : c*rows+r1]
				for r := r0; r < r1; r++ {
					d[r] = src[r*cols+c]
				}
			}
		}
	}
}
