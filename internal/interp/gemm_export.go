package interp

// MatMulF32 computes out[m·N+n] = Σ_k a[m·K+k]·w[n·K+k] (a [M, K] times the
// transpose of w [N, K], FULLY_CONNECTED's layout) with the interpreter's
// float32 kernels: the vector tiles where the CPU has them, the Go kernels
// otherwise (QPIPE_SIMD=off), the same bits either way and for any threads
// (0 or less: one). tools/train builds its forward and backward passes on it.
func MatMulF32(threads int, out, a []float32, M, K, N int, w []float32) {
	if len(a) < M*K || len(w) < N*K || len(out) < M*N {
		panic("interp: MatMulF32: slices shorter than the shapes")
	}
	if M == 0 || N == 0 {
		return
	}
	if K == 0 {
		clear(out[:M*N])
		return
	}
	wt := &weight{kind: wFloat32, f32: w[:N*K], shape: []int{N, K}}
	matmulF32(max(threads, 1), out, a, M, K, N, wt, 0)
}
