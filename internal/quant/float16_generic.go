//go:build !amd64

package quant

// hasF16C reports whether toFloat16 converts with F16C; not on this
// architecture.
const hasF16C = false

// useF16C is hasF16C unless a test turns the vector conversion off.
var useF16C = false

// toFloat16 is Float16Bits over a slice; it returns how many inputs were
// NaN, Inf or rounded to Inf.
func toFloat16(dst []uint16, src []float32) (bad int) {
	return toFloat16Go(dst, src)
}
