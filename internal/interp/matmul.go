package interp

import (
	"sync"
	"sync/atomic"
)

// The matrix multiplies: out[m][n] = Σ_k a[m][k]·W[n][k] with W addressed
// as rows of a weight view ("NT" layout: FULLY_CONNECTED's [out, in]).
//
// Work is split by blocks of nBlock weight rows (output columns), claimed
// by Threads workers; every output element is computed by one worker with
// one fixed summation order (k ascending, one accumulator), so the result
// is bit-identical for any thread count. A worker dequantizes its block of
// weight rows into scratch (a float32 weight of the mapped file is read in
// place) and multiplies it with every row of a, 2×4 outputs at a time.

// nBlock is how many weight rows a worker takes at a time.
const nBlock = 16

// parallel calls f on the blocks [lo, hi) of [0, n) of size grain, from up
// to threads goroutines.
func parallel(threads, n, grain int, f func(worker, lo, hi int)) {
	blocks := (n + grain - 1) / grain
	if threads > blocks {
		threads = blocks
	}
	if threads <= 1 {
		for lo := 0; lo < n; lo += grain {
			f(0, lo, min(lo+grain, n))
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < threads; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				b := int(next.Add(1) - 1)
				if b >= blocks {
					return
				}
				lo := b * grain
				f(w, lo, min(lo+grain, n))
			}
		}(w)
	}
	wg.Wait()
}

// matmulF32 computes out[m·N+n] = Σ_k a[m·K+k]·W[wOff+n·K+k] for m < M,
// n < N, where W is w's elements decoded as floats.
func matmulF32(threads int, out, a []float32, M, K, N int, w *weight, wOff int) {
	if useSIMD && M > 0 && K > 0 {
		matmulF32Vec(threads, out, a, M, K, N, w, wOff)
		return
	}
	scratch := make([][]float32, max(threads, 1))
	parallel(threads, N, nBlock, func(worker, lo, hi int) {
		var rows []float32
		if w.kind == wFloat32 {
			rows = w.f32[wOff+lo*K : wOff+hi*K]
		} else {
			if scratch[worker] == nil {
				scratch[worker] = make([]float32, nBlock*K)
			}
			rows = scratch[worker][:(hi-lo)*K]
			w.decode(rows, wOff+lo*K)
		}
		for m := 0; m < M; m++ {
			clear(out[m*N+lo : m*N+hi])
		}
		gemm(out[lo:], N, a, M, K, rows, lo, hi, 0, K)
	})
}

// dotF32 is Σ a[k]·b[k], k ascending, one accumulator: the order every
// matmul path uses.
func dotF32(a, b []float32) float32 {
	b = b[:len(a)]
	var s float32
	for k, x := range a {
		s += float32(x * b[k])
	}
	return s
}

// matmulNaive is the reference loop the benchmarks compare with.
func matmulNaive(out, a []float32, M, K, N int, w []float32) {
	for m := 0; m < M; m++ {
		for n := 0; n < N; n++ {
			out[m*N+n] = dotF32(a[m*K:m*K+K], w[n*K:n*K+K])
		}
	}
}

// gemm adds the dot products of a's rows (M rows of K, int8 activations or
// float32) with weight rows b (rows lo..hi of the weight, each K long) over
// k in [k0, k1) to c[m·ldc + n−lo]: int32 sums for the hybrid kernels,
// float32 for the float ones. Each sum runs k ascending in one accumulator,
// 2 rows × 4 columns at a time; the tails take the same order, so every
// element has one summation order whatever the blocking.
func gemm[E int8 | float32, A int32 | float32](c []A, ldc int, a []E, M, K int, b []E, lo, hi, k0, k1 int) {
	n := lo
	for ; n+4 <= hi; n += 4 {
		b0 := b[(n-lo)*K+k0 : (n-lo)*K+k1]
		b1 := b[(n-lo+1)*K+k0 : (n-lo+1)*K+k1]
		b2 := b[(n-lo+2)*K+k0 : (n-lo+2)*K+k1]
		b3 := b[(n-lo+3)*K+k0 : (n-lo+3)*K+k1]
		m := 0
		for ; m+2 <= M; m += 2 {
			a0 := a[m*K+k0 : m*K+k1]
			a1 := a[(m+1)*K+k0 : (m+1)*K+k1]
			s00, s01, s02, s03, s10, s11, s12, s13 := dot2x4[E, A](a0, a1, b0, b1, b2, b3)
			o := c[m*ldc+n-lo : m*ldc+n-lo+4]
			o[0] += s00
			o[1] += s01
			o[2] += s02
			o[3] += s03
			o = c[(m+1)*ldc+n-lo : (m+1)*ldc+n-lo+4]
			o[0] += s10
			o[1] += s11
			o[2] += s12
			o[3] += s13
		}
		for ; m < M; m++ {
			a0 := a[m*K+k0 : m*K+k1]
			b0, b1, b2, b3 := b0[:len(a0)], b1[:len(a0)], b2[:len(a0)], b3[:len(a0)]
			var s0, s1, s2, s3 A
			for k := range a0 {
				x0 := A(a0[k])
				s0 += A(x0 * A(b0[k]))
				s1 += A(x0 * A(b1[k]))
				s2 += A(x0 * A(b2[k]))
				s3 += A(x0 * A(b3[k]))
			}
			o := c[m*ldc+n-lo : m*ldc+n-lo+4]
			o[0] += s0
			o[1] += s1
			o[2] += s2
			o[3] += s3
		}
	}
	for ; n < hi; n++ {
		b0 := b[(n-lo)*K+k0 : (n-lo)*K+k1]
		for m := 0; m < M; m++ {
			a0 := a[m*K+k0 : m*K+k1]
			b0 := b0[:len(a0)]
			var s A
			for k, x := range a0 {
				s += A(A(x) * A(b0[k]))
			}
			c[m*ldc+n-lo] += s
		}
	}
}

// dot2x4 is gemm's inner loop: the 8 dot products of rows a0, a1 with
// b0..b3, each k ascending in one accumulator. It is kept out of line so
// that the accumulators stay in registers.
//
//go:noinline
func dot2x4[E int8 | float32, A int32 | float32](a0, a1, b0, b1, b2, b3 []E) (s00, s01, s02, s03, s10, s11, s12, s13 A) {
	a1, b0, b1, b2, b3 = a1[:len(a0)], b0[:len(a0)], b1[:len(a0)], b2[:len(a0)], b3[:len(a0)]
	for k := range a0 {
		x0, x1 := A(a0[k]), A(a1[k])
		y0, y1, y2, y3 := A(b0[k]), A(b1[k]), A(b2[k]), A(b3[k])
		s00 += A(x0 * y0)
		s01 += A(x0 * y1)
		s02 += A(x0 * y2)
		s03 += A(x0 * y3)
		s10 += A(x1 * y0)
		s11 += A(x1 * y1)
		s12 += A(x1 * y2)
		s13 += A(x1 * y3)
	}
	return
}
