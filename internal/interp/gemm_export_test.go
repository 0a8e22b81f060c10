package interp

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestMatMulF32 checks the exported float32 product against the naive loop
// (the kernels' summation order, so the bits agree) for any thread count.
func TestMatMulF32(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, sh := range [][3]int{{1, 1, 1}, {5, 7, 33}, {128, 64, 128}, {7, 300, 65}} {
		M, K, N := sh[0], sh[1], sh[2]
		a, w := fill(r, M*K, "uniform"), fill(r, N*K, "uniform")
		want := make([]float32, M*N)
		matmulNaive(want, a, M, K, N, w)
		for _, threads := range []int{0, 1, 3} {
			got := make([]float32, M*N)
			MatMulF32(threads, got, a, M, K, N, w)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%v threads %d: element %d = %v, want %v", sh, threads, i, got[i], want[i])
				}
			}
		}
	}
}
