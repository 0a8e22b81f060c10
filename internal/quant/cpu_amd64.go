//go:build amd64

package quant

// What the vector kernels may use on this CPU. Each kernel has a scalar Go
// twin that gives the same bits (the tests compare them on every input
// class), so the choice changes speed, never output.

// hasF16C: F16C and AVX with the YMM state saved by the OS (OSXSAVE, XCR0
// SSE and AVX bits), and POPCNT: toFloat16 converts 8 floats at a time with
// VCVTPS2PH (every F16C CPU has POPCNT). hasAVX2: AVX2 with the same OS
// support: the int8 and int4 quantize kernels and the largest-magnitude
// reductions run 8 lanes wide. hasFMA: FMA3 with the same OS support (no
// kernel fuses a product into a sum; internal/interp's peak benchmark
// measures with it).
var hasF16C, hasAVX2, hasFMA = detectCPU()

func detectCPU() (f16c, avx2, fma bool) {
	const (
		fmaBit   = 1 << 12 // CPUID.1:ECX
		popcnt   = 1 << 23
		osxsave  = 1 << 27
		avx      = 1 << 28
		f16cBit  = 1 << 29
		avx2Bit  = 1 << 5      // CPUID.(7,0):EBX
		ymmSave  = 1<<1 | 1<<2 // XCR0: SSE (XMM) and AVX (upper YMM) state
		needBase = osxsave | avx
	)
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 1 {
		return false, false, false
	}
	_, _, ecx, _ := cpuid(1, 0)
	if ecx&needBase != needBase || xgetbv0()&ymmSave != ymmSave {
		return false, false, false
	}
	f16c = ecx&(popcnt|f16cBit) == popcnt|f16cBit
	fma = ecx&fmaBit != 0
	if maxLeaf >= 7 {
		_, ebx, _, _ := cpuid(7, 0)
		avx2 = ebx&avx2Bit != 0
	}
	return f16c, avx2, fma
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

// useAVX2 is hasAVX2 unless a test or QPIPE_SIMD=off turns the AVX2 kernels
// off.
var useAVX2 = hasAVX2 && simdAllowed
