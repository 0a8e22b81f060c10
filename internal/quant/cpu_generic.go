//go:build !amd64

package quant

// hasAVX2 reports whether the AVX2 kernels exist and the CPU runs them: not
// on this architecture.
const hasAVX2 = false

// hasFMA reports whether the CPU has FMA3 (x86 only).
const hasFMA = false

// useAVX2 is hasAVX2 unless a test turns the AVX2 kernels off.
var useAVX2 = false
