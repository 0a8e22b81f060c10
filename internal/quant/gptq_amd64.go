//go:build amd64

package quant

// axpy4AVX2 is axpy4Go on n elements (a multiple of 8), eight lanes at a
// time: each lane multiplies and adds in axpy4Go's order, one rounding
// each (no FMA), so the bits are the same.
//
//go:noescape
func axpy4AVX2(y *float32, n int, a *float32, x0, x1, x2, x3 *float32)

// axpy4 is y += a0·x0 + a1·x1 + a2·x2 + a3·x3, added in that order.
func axpy4(y, a []float32, x0, x1, x2, x3 []float32) {
	n := len(y) &^ 7
	if useAVX2 && n > 0 {
		_, _, _, _, _ = a[3], x0[n-1], x1[n-1], x2[n-1], x3[n-1]
		axpy4AVX2(&y[0], n, &a[0], &x0[0], &x1[0], &x2[0], &x3[0])
		y, x0, x1, x2, x3 = y[n:], x0[n:], x1[n:], x2[n:], x3[n:]
	}
	axpy4Go(y, a, x0, x1, x2, x3)
}
