//go:build !amd64

package quant

// axpy4 is y += a0·x0 + a1·x1 + a2·x2 + a3·x3, added in that order.
func axpy4(y, a []float32, x0, x1, x2, x3 []float32) { axpy4Go(y, a, x0, x1, x2, x3) }
