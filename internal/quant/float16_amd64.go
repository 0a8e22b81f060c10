//go:build amd64

package quant

// useF16C is hasF16C (cpu_amd64.go) unless a test or QPIPE_SIMD=off turns
// the vector conversion off.
var useF16C = hasF16C && simdAllowed

// toFloat16F16C converts n float32 values at src to float16 at dst, n a
// multiple of 8, with VCVTPS2PH rounding to nearest even (immediate 0),
// which gives Float16Bits bit for bit. It returns how many inputs have
// |bits| >= f16Overflow (NaN, Inf or rounding to Inf).
//
//go:noescape
func toFloat16F16C(dst *uint16, src *float32, n int) (bad int)

// toFloat16 is Float16Bits over a slice; it returns how many inputs were
// NaN, Inf or rounded to Inf. With F16C the multiple of 8 elements at the
// front goes through VCVTPS2PH, the rest through toFloat16Go.
func toFloat16(dst []uint16, src []float32) (bad int) {
	dst = dst[:len(src)]
	n := 0
	if useF16C {
		if n = len(src) &^ 7; n > 0 {
			bad = toFloat16F16C(&dst[0], &src[0], n)
		}
	}
	return bad + toFloat16Go(dst[n:], src[n:])
}
