package quant

// Hooks for the external tests of toFloat16's vector path.

// ToFloat16Slice is toFloat16: the vector conversion where there is one.
func ToFloat16Slice(dst []uint16, src []float32) int { return toFloat16(dst, src) }

// ToFloat16Generic is toFloat16Go, the scalar conversion.
func ToFloat16Generic(dst []uint16, src []float32) int { return toFloat16Go(dst, src) }

// HasF16C reports whether this machine converts with F16C.
var HasF16C = hasF16C && simdAllowed

// SetF16C turns the vector conversion on (where the CPU has it) or off and
// returns the previous setting.
func SetF16C(on bool) (was bool) {
	was, useF16C = useF16C, on && hasF16C
	return was
}

// HasAVX2 reports whether this machine runs the AVX2 kernels (and
// QPIPE_SIMD=off does not turn them off).
var HasAVX2 = hasAVX2 && simdAllowed

// SetAVX2 turns the AVX2 kernels on (where the CPU has them) or off and
// returns the previous setting.
func SetAVX2(on bool) (was bool) {
	was, useAVX2 = useAVX2, on && hasAVX2
	return was
}
