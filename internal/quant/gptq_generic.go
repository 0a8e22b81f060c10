//go:build !amd64

package quant

// axpy4 is y += a0·x0 + a1·x1 + a2·x2 + a3·x3, added in that order.
func axpy4(y, a []float32, x0, x1, x2, x3 []float32) { axpy4Go(y, a, x0, x1, x2, x3) }

// dot64Sums is the partial sums of the first len(a)&^15 elements.
func dot64Sums(a, b []float64, sums *[16]float64) {
	n := len(a) &^ 15
	dot64SumsGo(a[:n], b[:n], sums)
}

// axpy is y += a·x, one rounding per element.
func axpy(y []float32, a float32, x []float32) { axpyGo(y, a, x[:len(y)]) }

// dot32Sums is the partial sums of the first len(a)&^31 elements.
func dot32Sums(a, b []float32, sums *[32]float32) {
	n := len(a) &^ 31
	dot32SumsGo(a[:n], b[:n], sums)
}

// hessRow is h[j] += xi·float64(x[j]) for every j.
func hessRow(h []float64, x []float32, xi float64) { hessRowGo(h, x[:len(h)], xi) }

// hessRow4 is hessRow of x0..x3 (by a[0]..a[3]) in that order.
func hessRow4(h []float64, a *[4]float64, x0, x1, x2, x3 []float32) {
	hessRow4Go(h, a, x0, x1, x2, x3)
}

// lazy4x16 is lazy1x16Go of rows r = 0..3 (lazyUpdate calls it only with
// AVX2).
func lazy4x16(t []float32, ldt int, e []float32, lde int, p []float32, k int) {
	for r := range 4 {
		lazy1x16Go(t[r*ldt:r*ldt+16], e[r*lde:r*lde+k], p)
	}
}

// lazy1x16 is lazy1x16Go.
func lazy1x16(t, e, p []float32) { lazy1x16Go(t, e, p) }

// cholTile is cholTileGo.
func cholTile(a [][]float64, b *[4][]float64, n int, s []float64) { cholTileGo(a, b, n, s) }

// cholTile16 is cholTile16Go.
func cholTile16(a [][]float64, b *[16][]float64, n int, s []float64) { cholTile16Go(a, b, n, s) }
