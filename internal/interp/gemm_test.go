package interp

import (
	"math/rand/v2"
	"testing"
)

// TestGemmInt8Exact checks the packed int8 kernel against plain int32 sums,
// including the extreme products (−128·−128 over long rows), odd row counts
// and column tails, a K range inside the rows, and rows longer than one
// packed sum may take.
func TestGemmInt8Exact(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		name                 string
		M, K, lo, hi, k0, k1 int
		fill                 func() int8
	}{
		{"random", 5, 70, 3, 10, 0, 70, func() int8 { return int8(r.IntN(256) - 128) }},
		{"block", 3, 64, 0, 8, 32, 64, func() int8 { return int8(r.IntN(256) - 128) }},
		{"min", 2, 4096, 0, 4, 0, 4096, func() int8 { return -128 }},
		{"alternating", 3, 1000, 0, 6, 0, 1000, func() int8 { return int8(127 - 255*r.IntN(2)) }},
		{"long", 2, maxPackedK + 3, 0, 4, 0, maxPackedK + 3, func() int8 { return -128 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			N := tc.hi - tc.lo
			a := make([]int8, tc.M*tc.K)
			b := make([]int8, N*tc.K)
			for i := range a {
				a[i] = tc.fill()
			}
			for i := range b {
				b[i] = tc.fill()
			}
			got := make([]int32, tc.M*N)
			for i := range got {
				got[i] = int32(i) // the kernel adds to c
			}
			gemmInt8(got, N, a, tc.M, tc.K, b, tc.lo, tc.hi, tc.k0, tc.k1, make([]int64, 2*min(tc.K, maxPackedK)))
			for m := 0; m < tc.M; m++ {
				for n := 0; n < N; n++ {
					want := int32(m*N + n)
					for k := tc.k0; k < tc.k1; k++ {
						want += int32(a[m*tc.K+k]) * int32(b[n*tc.K+k])
					}
					if g := got[m*N+n]; g != want {
						t.Fatalf("c[%d][%d] = %d, want %d", m, n, g, want)
					}
				}
			}
		})
	}
}
