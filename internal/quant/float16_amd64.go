//go:build amd64

package quant

// hasF16C reports whether the CPU has F16C and AVX and the OS saves the YMM
// registers (OSXSAVE, and XCR0 enables the SSE and AVX state): then
// toFloat16 converts 8 floats at a time with VCVTPS2PH. POPCNT, which the
// kernel counts out-of-range inputs with, is checked too (every F16C CPU
// has it).
var hasF16C = detectF16C()

// useF16C is hasF16C unless a test turns the vector conversion off.
var useF16C = hasF16C

func detectF16C() bool {
	const (
		popcnt  = 1 << 23
		osxsave = 1 << 27
		avx     = 1 << 28
		f16c    = 1 << 29
		need    = popcnt | osxsave | avx | f16c
		ymmSave = 1<<1 | 1<<2 // XCR0: SSE (XMM) and AVX (upper YMM) state
	)
	if maxLeaf, _, _, _ := cpuid(0, 0); maxLeaf < 1 {
		return false
	}
	_, _, ecx, _ := cpuid(1, 0)
	return ecx&need == need && xgetbv0()&ymmSave == ymmSave
}

// cpuid executes CPUID with EAX = leaf and ECX = sub.
//
//go:noescape
func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

// xgetbv0 returns the low half of XCR0. Only call it when CPUID reports
// OSXSAVE.
//
//go:noescape
func xgetbv0() (eax uint32)

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
