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

// dot64AVX2 writes dot64Go's sixteen partial sums of n elements (a
// multiple of 16) to sums, four lanes at a time, in the same order.
//
//go:noescape
func dot64AVX2(a, b *float64, n int, sums *[16]float64)

// dot64Sums is the partial sums of the first len(a)&^15 elements.
func dot64Sums(a, b []float64, sums *[16]float64) {
	n := len(a) &^ 15
	if useAVX2 && n > 0 {
		_ = b[n-1]
		dot64AVX2(&a[0], &b[0], n, sums)
		return
	}
	dot64SumsGo(a[:n], b[:n], sums)
}

//go:noescape
func axpyAVX2(y *float32, n int, a float32, x *float32)

//go:noescape
func dot32AVX2(a, b *float32, n int, sums *[32]float32)

//go:noescape
func hessRowAVX2(h *float64, x *float32, n int, xi float64)

//go:noescape
func hessRow4AVX2(h *float64, n int, a *[4]float64, x0, x1, x2, x3 *float32)

// axpy is y += a·x, one rounding per element (eight lanes where AVX2 is
// on, the same bits).
func axpy(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	n := len(y) &^ 7
	if useAVX2 && n > 0 {
		axpyAVX2(&y[0], n, a, &x[0])
		y, x = y[n:], x[n:]
	}
	axpyGo(y, a, x)
}

// dot32Sums is the partial sums of the first len(a)&^31 elements.
func dot32Sums(a, b []float32, sums *[32]float32) {
	n := len(a) &^ 31
	if useAVX2 && n > 0 {
		_ = b[n-1]
		dot32AVX2(&a[0], &b[0], n, sums)
		return
	}
	dot32SumsGo(a[:n], b[:n], sums)
}

// hessRow is h[j] += xi·float64(x[j]) for every j (Covariance.Add's inner
// loop), four lanes where AVX2 is on, the same bits.
func hessRow(h []float64, x []float32, xi float64) {
	x = x[:len(h)]
	n := len(h) &^ 3
	if useAVX2 && n > 0 {
		hessRowAVX2(&h[0], &x[0], n, xi)
		h, x = h[n:], x[n:]
	}
	hessRowGo(h, x, xi)
}

// hessRow4 is hessRow of x0..x3 (by a[0]..a[3]) in that order, with the
// same bits: every product of two float32 values is exact in float64, so
// only the order of the additions counts, and it is kept.
func hessRow4(h []float64, a *[4]float64, x0, x1, x2, x3 []float32) {
	n := len(h) &^ 3
	if useAVX2 && n > 0 {
		_, _, _, _ = x0[n-1], x1[n-1], x2[n-1], x3[n-1]
		hessRow4AVX2(&h[0], n, a, &x0[0], &x1[0], &x2[0], &x3[0])
		h, x0, x1, x2, x3 = h[n:], x0[n:], x1[n:], x2[n:], x3[n:]
	}
	hessRow4Go(h, a, x0, x1, x2, x3)
}

// lazy4x16AVX2 is lazy1x16Go for four rows of t (ldt floats apart) and
// their errors (lde floats apart), k terms: the sixteen columns of each
// row in two registers, each product rounded and added in i order (no
// FMA), so the bits are lazy1x16Go's.
//
//go:noescape
func lazy4x16AVX2(t *float32, ldt int, e *float32, lde int, p *float32, k int)

// lazy4x16 is lazy1x16Go of rows r = 0..3: t[r·ldt:][:16] with
// e[r·lde:][:k], the panel p of k×16.
func lazy4x16(t []float32, ldt int, e []float32, lde int, p []float32, k int) {
	_, _, _ = t[3*ldt+15], e[3*lde+k-1], p[16*k-1]
	lazy4x16AVX2(&t[0], ldt, &e[0], lde, &p[0], k)
}

//go:noescape
func lazy1x16AVX2(t *float32, e *float32, p *float32, k int)

// lazy1x16 is lazy1x16Go (eight lanes at a time where AVX2 is on, the same
// bits).
func lazy1x16(t, e, p []float32) {
	if !useAVX2 || len(e) == 0 {
		lazy1x16Go(t, e, p)
		return
	}
	_, _ = t[15], p[16*len(e)-1]
	lazy1x16AVX2(&t[0], &e[0], &p[0], len(e))
}

//go:noescape
func cholTile2x4AVX2(a0, a1, b0, b1, b2, b3 *float64, n int, s *float64)

//go:noescape
func cholTile1x4AVX2(a0, b0, b1, b2, b3 *float64, n int, s *float64)

// cholTile is cholTileGo (two rows of a by four of b in registers where
// AVX2 is on, the same bits).
func cholTile(a [][]float64, b *[4][]float64, n int, s []float64) {
	if !useAVX2 || n == 0 || len(a) > 2 {
		cholTileGo(a, b, n, s)
		return
	}
	_, _, _, _ = b[0][n-1], b[1][n-1], b[2][n-1], b[3][n-1]
	_ = s[256*(len(a)-1)+63]
	if len(a) == 2 {
		_, _ = a[0][n-1], a[1][n-1]
		cholTile2x4AVX2(&a[0][0], &a[1][0], &b[0][0], &b[1][0], &b[2][0], &b[3][0], n, &s[0])
		return
	}
	_ = a[0][n-1]
	cholTile1x4AVX2(&a[0][0], &b[0][0], &b[1][0], &b[2][0], &b[3][0], n, &s[0])
}

//go:noescape
func cholTile2x16AVX2(a0, a1 *float64, b *[16]*float64, n int, s *float64)

// cholTile16 is cholTile16Go (two rows of a by sixteen of b, four at a time
// in registers, where AVX2 is on: the same bits).
func cholTile16(a [][]float64, b *[16][]float64, n int, s []float64) {
	if !useAVX2 || n == 0 || len(a) != 2 {
		cholTile16Go(a, b, n, s)
		return
	}
	var p [16]*float64
	for y := range b {
		_ = b[y][n-1]
		p[y] = &b[y][0]
	}
	_, _, _ = a[0][n-1], a[1][n-1], s[511]
	cholTile2x16AVX2(&a[0][0], &a[1][0], &p, n, &s[0])
}
