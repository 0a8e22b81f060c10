package quant

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// spdPacked is a packed lower triangle (row i at i(i+1)/2) of B·Bᵀ plus
// 1 % of its mean diagonal, B being n×rank normal: a covariance of few
// tokens, damped, as NewGPTQFactor factors.
func spdPacked(seed uint64, n, rank int) []float64 {
	rng := rand.New(rand.NewPCG(seed, 7))
	b := make([]float64, n*rank)
	for k := range b {
		b[k] = rng.NormFloat64()
	}
	g := make([]float64, n*(n+1)/2)
	var tr float64
	for i := range n {
		for j := 0; j <= i; j++ {
			var s float64
			for k := range rank {
				s += b[i*rank+k] * b[j*rank+k]
			}
			g[i*(i+1)/2+j] = s
		}
		tr += g[i*(i+1)/2+i]
	}
	for i := range n {
		g[i*(i+1)/2+i] += 0.01 * tr / float64(n)
	}
	return g
}

// choleskyRef is the factor's definition, entry by entry: L_ij = (g_ij −
// dot64(L_i[:j], L_j[:j]))/L_jj, L_ii = √(g_ii − dot64(L_i[:i], L_i[:i])).
func choleskyRef(g []float64, n int) {
	row := func(i, k int) []float64 { o := i * (i + 1) / 2; return g[o : o+k] }
	for i := range n {
		ri := row(i, i+1)
		for j := range i {
			rj := row(j, j+1)
			ri[j] = (ri[j] - dot64(ri[:j], rj[:j])) / rj[j]
		}
		ri[i] = math.Sqrt(ri[i] - dot64(ri[:i], ri[:i]))
	}
}

// TestCholeskyVector: the blocked, tiled factor gives the bits of its
// definition (choleskyRef, scalar) with AVX2 on and off and for 1, 2 and
// 3 workers, on sizes that are not multiples of the tiles (four columns
// by two rows), the sixteen-column groups, the panels or the term blocks;
// from 700 on, the panels' rows split among the workers (from p0 = 256 on,
// three workers' parts of 21, 21 and 22 rows).
func TestCholeskyVector(t *testing.T) {
	sizes := []int{1, 2, 17, 31, 32, 33, 100, 257, 700, 1101}
	if testing.Short() {
		sizes = sizes[:len(sizes)-1]
	}
	defer SetWorkers(SetWorkers(0))
	was := useAVX2
	defer SetAVX2(was)
	for _, n := range sizes {
		g := spdPacked(uint64(n), n, 64)
		want := slices.Clone(g)
		SetAVX2(false)
		choleskyRef(want, n)
		for _, avx := range []bool{false, true} {
			if avx && !hasAVX2 {
				continue
			}
			for _, w := range []int{1, 2, 3} {
				SetAVX2(avx)
				SetWorkers(w)
				got := slices.Clone(g)
				if err := cholesky(context.Background(), got, n); err != nil {
					t.Fatalf("n %d: %v", n, err)
				}
				for k := range got {
					if math.Float64bits(got[k]) != math.Float64bits(want[k]) {
						i := int((math.Sqrt(8*float64(k)+1) - 1) / 2)
						t.Fatalf("n %d, AVX2 %v, %d workers: L[%d][%d] = %v, definition %v", n, useAVX2, w, i, k-i*(i+1)/2, got[k], want[k])
					}
				}
			}
		}
	}
}

// TestCholeskyReproduces: L·Lᵀ is the input to within the backward error
// of Cholesky in floating point, (n+1)·ε·(|L|·|Lᵀ|)_ij entry by entry.
func TestCholeskyReproduces(t *testing.T) {
	for _, n := range []int{1, 2, 17, 33, 100, 257, 1101} {
		if testing.Short() && n > 300 {
			continue
		}
		g := spdPacked(uint64(n)+100, n, n/3+1)
		l := slices.Clone(g)
		if err := cholesky(context.Background(), l, n); err != nil {
			t.Fatalf("n %d: %v", n, err)
		}
		eps := math.Nextafter(1, 2) - 1
		for i := range n {
			ri := l[i*(i+1)/2:][:i+1]
			for j := 0; j <= i; j++ {
				rj := l[j*(j+1)/2:][:j+1]
				var s, abs float64
				for k := 0; k <= j; k++ {
					s += ri[k] * rj[k]
					abs += math.Abs(ri[k] * rj[k])
				}
				if d := math.Abs(s - g[i*(i+1)/2+j]); d > float64(n+1)*eps*abs {
					t.Fatalf("n %d: (L·Lᵀ)[%d][%d] = %v, input %v (off by %.3g of |L|·|Lᵀ| %.3g)", n, i, j, s, g[i*(i+1)/2+j], d, abs)
				}
			}
		}
	}
}
