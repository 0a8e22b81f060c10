package quant

import "os"

// simdAllowed is false when the environment sets QPIPE_SIMD=off: every
// kernel then runs its scalar Go form. The output is the same bytes either
// way; the switch is there to check that (CI runs the tests both ways) and
// to take the vector code out of the picture when chasing a problem.
var simdAllowed = os.Getenv("QPIPE_SIMD") != "off"

// VectorKernels reports whether the int8 and int4 quantize kernels run
// their vector forms (AVX2) on this machine: callers that arrange memory
// around a kernel's speed may choose differently.
func VectorKernels() bool { return useAVX2 }

// CPU reports what this machine's processor can run, whatever QPIPE_SIMD
// says: AVX2 (with the OS saving the YMM state) and FMA3. It is the one
// place CPU features are detected; packages with their own vector kernels
// (internal/interp) choose with it and VectorKernels, and their tests use
// it to run the vector form even where QPIPE_SIMD=off.
func CPU() (avx2, fma bool) { return hasAVX2, hasAVX2 && hasFMA }
