package quant

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"unsafe"
)

// Error-compensating rounding (GPTQ, Frantar et al. 2022).
//
// A weight row w (one output channel, cols inputs) is quantized column by
// column; the error each column's rounding leaves is pushed onto the
// columns not yet quantized, so that the row's output error on the
// calibration inputs, E‖Δw·x‖² = Δw H Δwᵀ with H = Σ_t x_t x_tᵀ, is small
// rather than each weight's own error. The rows are independent given H,
// so a weight is quantized a chunk of rows at a time like every other
// kernel.
//
// The paper's sweep uses the upper Cholesky factor Ug of H⁻¹: after column
// i, err = (w'_i − q_i)/Ug_ii and w'_j −= err·Ug_ij for j > i. With
// U = Ug⁻¹ (upper, H = U Uᵀ) the same targets read
//
//	w'_j = w_j + Σ_{i<j} (w_i − q_i)·U_ij/U_jj
//
// (expand w' in the paper's recursion; the errors here are against the
// original weights): the nearest-plane form of the same algorithm. It
// needs only the Cholesky factor of H, taken on the reversed matrix (no
// inverse), and the same matrix products: GPTQFactor holds
// A_ij = U_ij/U_jj. The update is lazy as in the paper: within a batch of
// columns (gptqBatch, a multiple of the block) it is applied column by
// column, and to the columns after the batch once per batch.
//
// Damping: λ = damp·mean(diag H) is added to the diagonal (damp 0.01 by
// default, the paper's and the reference quantizer's). A dead column (no
// calibration input ever non-zero, H_jj = 0) gets diagonal 1 before
// damping; its row and column of H are zero, so it neither gives nor takes
// compensation: it is rounded to nearest.
//
// Every sum runs in a fixed order (float64 for H and its factor, float32
// for the sweep, each product rounded on its own), and the work is split
// over row ranges only, so the bytes do not depend on the worker count.

// DefaultDamp is the default relative damping of H's diagonal.
const DefaultDamp = 0.01

// gptqBatch is the lazy batch width in columns (rounded up to a whole
// number of blocks).
const gptqBatch = 128

// gptqTile is the grain, in rows, of the sweep's split between workers.
const gptqTile = 8

// GPTQFactor is the compensation matrix of one input covariance.
type GPTQFactor struct {
	N    int
	A    []float32 // A_ij = U_ij/U_jj for i < j, packed by rows (Row)
	mem  []float64 // the covariance's memory, which holds A
	Damp float64   // λ added to the diagonal
	Dead int       // columns without calibration input
	// Diag is H's damped diagonal, each column's weight in the sweep's
	// block-scale choice.
	Diag []float32
	// Pivot2 holds U_jj², the weight of column j's remaining error
	// (t_j − ŵ_j)² in the output error: (w−ŵ)(H+λI)(w−ŵ)ᵀ = Σ_j U_jj²
	// (t_j − ŵ_j)² for the sweep's targets t, so the sweep measures what
	// it leaves for free.
	Pivot2 []float32
}

// ErrNoCalibration is returned for a covariance without any input.
var ErrNoCalibration = errors.New("no calibration input reached this weight (every column of its input covariance is zero)")

// Covariance is a symmetric n×n input covariance H = Σ_t x_t x_tᵀ
// (float64), stored as one triangle: the lower triangle of H with its rows
// and columns reversed, G_ab = H_{n−1−a, n−1−b} for b ≤ a at a(a+1)/2 + b,
// the order in which NewGPTQFactor factors it. That is half the bytes of
// the full matrix (the 11,264-column covariance of a 7B model's
// feed-forward: 508 MB instead of 1 GB) and the factor is formed in place.
type Covariance struct {
	N int
	g []float64
}

// NewCovariance returns a zero n×n covariance.
func NewCovariance(n int) *Covariance {
	return &Covariance{N: n, g: make([]float64, n*(n+1)/2)}
}

// CovarianceOf is Σ x xᵀ over the rows of every matrix of xs (n columns
// each), in order.
func CovarianceOf(n int, xs [][]float32) *Covariance {
	c := NewCovariance(n)
	for _, x := range xs {
		c.Add(x)
	}
	return c
}

// CovarianceBytes is the memory of an n×n Covariance.
func CovarianceBytes(n int) int64 { return 8 * int64(n) * int64(n+1) / 2 }

// row is G's row a, columns 0..a.
func (c *Covariance) row(a int) []float64 {
	o := a * (a + 1) / 2
	return c.g[o : o+a+1]
}

// At is H_ij.
func (c *Covariance) At(i, j int) float64 {
	a, b := c.N-1-i, c.N-1-j
	if b > a {
		a, b = b, a
	}
	return c.g[a*(a+1)/2+b]
}

// Trace is Σ_i H_ii, summed in i's order.
func (c *Covariance) Trace() float64 {
	var tr float64
	for i := range c.N {
		tr += c.At(i, i)
	}
	return tr
}

// AddDiagonal adds v to every diagonal entry.
func (c *Covariance) AddDiagonal(v float64) {
	for a := range c.N {
		c.g[a*(a+1)/2+a] += v
	}
}

// ScaleDiagonal multiplies every diagonal entry by v.
func (c *Covariance) ScaleDiagonal(v float64) {
	for a := range c.N {
		c.g[a*(a+1)/2+a] *= v
	}
}

// Add adds Σ_t x_t x_tᵀ for the rows x_t of x (len(x) a multiple of N).
// Each entry sums the rows in order; every product of two float32 values
// is exact in float64, so the entries are those of the full matrix summed
// row by row.
func (c *Covariance) Add(x []float32) {
	n := c.N
	if len(x)%n != 0 {
		panicf("Covariance.Add: len(x) = %d, n = %d", len(x), n)
	}
	rows := len(x) / n
	// Split the rows of G so that each part has about the same triangle
	// area: bounds at n·sqrt(p/parts).
	parts := workerCount()
	if n < 256 {
		parts = 1
	}
	bounds := make([]int, parts+1)
	for p := range bounds {
		bounds[p] = int(float64(n) * math.Sqrt(float64(p)/float64(parts)))
	}
	bounds[parts] = n
	const tb = 64 // tokens at a time: G's rows stay in cache
	forParts(bounds, func(_, lo, hi int) {
		rev := make([]float32, min(tb, rows)*n) // the tokens, reversed
		for t0 := 0; t0 < rows; t0 += tb {
			t1 := min(rows, t0+tb)
			for t := t0; t < t1; t++ {
				src, dst := x[t*n:(t+1)*n], rev[(t-t0)*n:(t-t0+1)*n]
				for k, v := range src {
					dst[n-1-k] = v
				}
			}
			for a := lo; a < hi; a++ {
				ga := c.row(a)
				xrow := func(t int) []float32 { return rev[(t-t0)*n : (t-t0)*n+a+1] }
				t := t0
				for ; t+4 <= t1; t += 4 {
					// Four tokens per pass over G's row (its loads and
					// stores once, not four times), unless one of them
					// is zero there: then one at a time.
					xs := [4]float64{float64(xrow(t)[a]), float64(xrow(t + 1)[a]), float64(xrow(t + 2)[a]), float64(xrow(t + 3)[a])}
					if xs[0] != 0 && xs[1] != 0 && xs[2] != 0 && xs[3] != 0 {
						hessRow4(ga, &xs, xrow(t), xrow(t+1), xrow(t+2), xrow(t+3))
						continue
					}
					for k := range 4 {
						if xs[k] != 0 { // adds zeros: the entries never hold −0
							hessRow(ga, xrow(t+k), xs[k])
						}
					}
				}
				for ; t < t1; t++ {
					if xa := float64(xrow(t)[a]); xa != 0 {
						hessRow(ga, xrow(t), xa)
					}
				}
			}
		}
	})
}

// ErrNotPositiveDefinite is returned by NewGPTQFactor when the damped
// covariance does not factor in floating point; the factor overwrote it, so
// the caller forms it again and retries with more damping.
var ErrNotPositiveDefinite = errors.New("not positive definite")

// NewGPTQFactor computes the compensation matrix of the covariance h,
// damped by damp·mean of its live diagonal. h is consumed: its memory holds
// the factor afterwards, and on ErrNotPositiveDefinite a partial one.
// It stops with ctx's error once ctx is done.
func NewGPTQFactor(ctx context.Context, h *Covariance, damp float64) (*GPTQFactor, error) {
	n := h.N
	f := &GPTQFactor{N: n}
	var sum float64
	live := 0
	for j := range n { // H's column order
		a := n - 1 - j
		d := h.g[a*(a+1)/2+a]
		if math.IsNaN(d) || math.IsInf(d, 0) || d < 0 {
			return nil, fmt.Errorf("input covariance: diagonal entry %d is %v", j, d)
		}
		if d == 0 {
			f.Dead++
			h.g[a*(a+1)/2+a] = 1
			continue
		}
		sum += d
		live++
	}
	if live == 0 {
		return nil, ErrNoCalibration
	}
	lambda := damp * sum / float64(live)
	if !(lambda > 0) {
		lambda = 1e-12 * sum / float64(live)
	}
	f.Damp = lambda
	f.Diag = make([]float32, n)
	for j := range n {
		a := n - 1 - j
		h.g[a*(a+1)/2+a] += lambda
		f.Diag[j] = float32(h.g[a*(a+1)/2+a])
	}
	if err := cholesky(ctx, h.g, n); err != nil {
		return nil, err
	}
	// L's diagonal, before its rows' storage is reused for A.
	diag := make([]float64, n)
	for b := range n {
		diag[b] = h.g[b*(b+1)/2+b]
	}
	f.Pivot2 = make([]float32, n)
	for j := range n {
		u := diag[n-1-j]
		f.Pivot2[j] = float32(u * u)
	}
	// U_ij = L[n-1-i][n-1-j]; A_ij = U_ij/U_jj for i < j. A's row i
	// comes from L's row a = n−1−i and is stored, float32 and packed, in
	// the covariance's own memory at float32 offset a(a−1)/2 (Row): taking
	// a in increasing order, that lands below L's row a and only over rows
	// already read, so the factor needs no second n² array (a 7B model's
	// 11,264-column factor: 254 MB less at its peak).
	f.mem = h.g
	a32 := unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(h.g))), n*(n-1)/2)
	for a := range n {
		la := h.g[a*(a+1)/2 : a*(a+1)/2+a]
		dst := a32[a*(a-1)/2 : a*(a-1)/2+a]
		for p := range dst {
			b := a - 1 - p
			dst[p] = float32(la[b] / diag[b])
		}
	}
	f.A = a32
	h.g = nil // consumed
	return f, nil
}

// Row is row i of the compensation matrix, A_ij for j = i+1..N−1.
func (f *GPTQFactor) Row(i int) []float32 {
	a := f.N - 1 - i
	o := a * (a - 1) / 2
	return f.A[o : o+a]
}

// Bytes is the factor's memory.
func (f *GPTQFactor) Bytes() int64 { return 8*int64(len(f.mem)) + 16*int64(f.N) }

// GPTQFactorBytes is the memory forming an n-column factor takes at its
// peak: its covariance, which then holds the factor.
func GPTQFactorBytes(n int) int64 { return CovarianceBytes(n) + 24*int64(n) }

// cholesky factors the symmetric positive definite matrix whose lower
// triangle g holds packed by rows (row i at i(i+1)/2) in place into L
// (lower, g = L Lᵀ), row by row in panels of cholPanel rows: the rows of a
// panel against the earlier panels in parallel (cholPanelRows, each row on
// its own), then the sums of the panel's own entries over the earlier
// columns in parallel (cholPanelSums), then the rest of the panel's own
// triangle in order. Every entry is L_ij = (g_ij − dot64(L_i[:j],
// L_j[:j]))/L_jj and L_ii = √(g_ii − dot64(L_i[:i], L_i[:i])), the same
// operations in the same order however the work is divided or blocked, so
// the result does not depend on the worker count, and AVX2 gives the
// scalar form's bits. It checks ctx once per panel.
func cholesky(ctx context.Context, g []float64, n int) error {
	const panel = cholPanel
	row := func(i, k int) []float64 { o := i * (i + 1) / 2; return g[o : o+k] }
	var scratch [][]float64
	// tri: the panel's entries' partial sums over the earlier columns,
	// sixteen columns j0.. at a time, entry (i, j) at
	// ((j−p0)/16·panel + i−p0)·256 + 16(j mod 16).
	tri := make([]float64, (min(n, panel)+15)/16*panel*256)
	for p0 := 0; p0 < n; p0 += panel {
		if err := ctx.Err(); err != nil {
			return err
		}
		p1 := min(n, p0+panel)
		clear(tri)
		if p0 > 0 {
			// A row's work is p0² multiply-adds: split counts it as
			// p0²/64 elements, so panels from p0 ≈ 180 on are shared.
			w := max(1, p0*p0/64)
			bounds := split((p1-p0)*w, w)
			for len(scratch) < len(bounds)-1 {
				scratch = append(scratch, make([]float64, panel*256))
			}
			forParts(bounds, func(part, lo, hi int) {
				cholPanelRows(g, p0+lo/w, p0+hi/w, p0, scratch[part])
			})
			forParts(bounds, func(_, lo, hi int) {
				cholPanelSums(g, p0+lo/w, p0+hi/w, p0, p1, tri)
			})
		}
		for i := p0; i < p1; i++ {
			ri := row(i, i+1)
			for j := p0; j <= i; j++ {
				rj := row(j, j+1)
				j16 := j &^ 15
				sum := (*[16]float64)(tri[((j-p0)/16*panel+i-p0)*256+16*(j%16):])
				dot64Add(ri[p0:j16], rj[p0:j16], sum)
				r := dot64Fold(sum)
				for k := j16; k < j; k++ {
					r += float64(ri[k] * rj[k])
				}
				if j < i {
					ri[j] = (ri[j] - r) / rj[j]
					continue
				}
				d := ri[i] - r
				if !(d > 0) || math.IsInf(d, 0) {
					return fmt.Errorf("input covariance: %w at column %d (pivot %v)", ErrNotPositiveDefinite, n-1-i, d)
				}
				ri[i] = math.Sqrt(d)
			}
		}
	}
	return nil
}

// cholPanel is the rows cholesky factors at a time (a multiple of 16);
// cholBlock the terms of a dot product cholGroupSums adds at a time (a
// multiple of 16).
const cholPanel, cholBlock = 64, 128

// cholPanelRows computes L_ij for rows i0 ≤ i < i1 and columns j < p0 (a
// multiple of 16), sixteen columns j0.. at a time: dot64's sixteen
// partial sums over the terms k < j0 these entries share (cholGroupSums,
// kept in s: rows·256 values), then each entry folds its sums and adds its
// own terms k = j0..j−1 in order, as dot64 does, which needs L_ik from the
// entries before it.
func cholPanelRows(g []float64, i0, i1, p0 int, s []float64) {
	row := func(i, k int) []float64 { o := i * (i + 1) / 2; return g[o : o+k] }
	rows := i1 - i0
	s = s[:rows*256]
	for j0 := 0; j0 < p0; j0 += 16 {
		clear(s)
		cholGroupSums(g, i0, i1, j0, p0-1, j0, s)
		// Two rows at a time: their chains of dependent operations
		// (each entry waits for the one before it) overlap.
		for x := 0; x < rows; x += 2 {
			x1 := min(x+1, rows-1) // x itself for a last odd row
			r0, r1 := row(i0+x, j0+16), row(i0+x1, j0+16)
			for y := range 16 {
				j := j0 + y
				rj := row(j, j+1)
				u := dot64Fold((*[16]float64)(s[256*x+16*y:]))
				w := dot64Fold((*[16]float64)(s[256*x1+16*y:]))
				for k := j0; k < j; k++ {
					u += float64(r0[k] * rj[k])
					w += float64(r1[k] * rj[k])
				}
				v0, v1 := (r0[j]-u)/rj[j], (r1[j]-w)/rj[j]
				r0[j], r1[j] = v0, v1 // the same entry, for an odd row
			}
		}
	}
}

// cholPanelSums adds to tri (cholesky's) the partial sums over the terms
// k < p0 of the panel p0..p1−1's own entries (i, j), p0 ≤ j ≤ i, for rows
// i0 ≤ i < i1; the rows' columns k < p0 are done.
func cholPanelSums(g []float64, i0, i1, p0, p1 int, tri []float64) {
	for j0 := p0; j0 < i1; j0 += 16 {
		cholGroupSums(g, i0, i1, j0, p1-1, p0, tri[((j0-p0)/16*cholPanel+i0-p0)*256:])
	}
}

// cholGroupSums adds to s[256x+16y:][:16] dot64's sixteen partial sums of
// L_i[:kEnd]·L_j[:kEnd] (kEnd a multiple of 16) for the rows i = i0+x of
// [i0, i1) and the columns j = j0+y, y < 16, two rows at a time against
// the sixteen columns (cholTile16; near the diagonal four columns at a
// time, cholTile), cholBlock terms at a time, so that the columns' block
// (16 KB) stays in the first-level cache while every pair of rows reuses
// it. Columns past jMax read row jMax (sums no one uses), and tiles wholly
// above the diagonal (j > i) are left out.
func cholGroupSums(g []float64, i0, i1, j0, jMax, kEnd int, s []float64) {
	row := func(i, k int) []float64 { o := i * (i + 1) / 2; return g[o : o+k] }
	rows := i1 - i0
	var a [2][]float64
	var b [16][]float64
	for kb := 0; kb < kEnd; kb += cholBlock {
		kl := min(cholBlock, kEnd-kb)
		for y := range b {
			b[y] = row(min(j0+y, jMax), kb+kl)[kb:]
		}
		for x := 0; x < rows; x += 2 {
			r := min(2, rows-x)
			for t := range r {
				a[t] = row(i0+x+t, kb+kl)[kb:]
			}
			if j0+15 <= i0+x {
				cholTile16(a[:r], &b, kl, s[256*x:])
				continue
			}
			for y := 0; y < 16 && j0+y < i0+x+r; y += 4 {
				cholTile(a[:r], (*[4][]float64)(b[y:]), kl, s[256*x+16*y:])
			}
		}
	}
}

// cholTile16Go is cholTileGo for the sixteen rows b, four at a time.
func cholTile16Go(a [][]float64, b *[16][]float64, n int, s []float64) {
	for y := 0; y < 16; y += 4 {
		cholTile(a, (*[4][]float64)(b[y:]), n, s[16*y:])
	}
}

// cholTileGo adds, for each row a[x] (x < len(a)) and b[y] (y < 4), dot64's
// sixteen partial sums of their first n terms (a multiple of 16) to
// s[256x+16y:][:16], each lane's terms in order.
func cholTileGo(a [][]float64, b *[4][]float64, n int, s []float64) {
	for x, ax := range a {
		for y, by := range b {
			dot64Add(ax[:n], by[:n], (*[16]float64)(s[256*x+16*y:]))
		}
	}
}

// dot64Add adds dot64's sixteen partial sums of len(a) (a multiple of 16)
// terms to s.
func dot64Add(a, b []float64, s *[16]float64) {
	b = b[:len(a)]
	for k := 0; k+16 <= len(a); k += 16 {
		for i := range 16 {
			s[i] += float64(a[k+i] * b[k+i])
		}
	}
}

// dot64 is Σ a_k·b_k over len(a) float64 terms, the Cholesky factor's
// inner product: sixteen partial sums (term k to sum k mod 16, in order,
// each product rounded on its own; AVX2 runs them as four accumulators of
// four lanes), folded lane-wise as (s_i + s_{i+4}) + (s_{i+8} + s_{i+12}),
// then (v_0 + v_1) + (v_2 + v_3), then the tail of fewer than sixteen
// terms in order. The same bits with and without AVX2.
func dot64(a, b []float64) float64 {
	b = b[:len(a)]
	var s [16]float64
	dot64Sums(a, b, &s)
	r := dot64Fold(&s)
	for k := len(a) &^ 15; k < len(a); k++ {
		r += float64(a[k] * b[k])
	}
	return r
}

// dot64Fold is dot64's sum of its sixteen partial sums: lane-wise
// (s_i + s_{i+4}) + (s_{i+8} + s_{i+12}), then (v_0 + v_1) + (v_2 + v_3).
func dot64Fold(s *[16]float64) float64 {
	var v [4]float64
	for i := range v {
		v[i] = (s[i] + s[i+4]) + (s[i+8] + s[i+12])
	}
	return (v[0] + v[1]) + (v[2] + v[3])
}

// dot64SumsGo is dot64's sixteen partial sums over len(a) (a multiple of
// 16) terms.
func dot64SumsGo(a, b []float64, s *[16]float64) {
	*s = [16]float64{}
	b = b[:len(a)]
	for k := 0; k+16 <= len(a); k += 16 {
		for i := range 16 {
			s[i] += float64(a[k+i] * b[k+i])
		}
	}
}

// RowObjectives writes, for each row of src (N columns) and its
// reconstruction got, the row's output error (w−ŵ)(H+λI)(w−ŵ)ᵀ with
// H = Σ_t x_t x_tᵀ over the rows of xs (each a [tokens, N] matrix) and
// the damping GPTQFactor added: Σ_t (x_t·e)² + Σ_j extra_j e_j², extra_j
// being f.Diag_j less Σ_t x_tj² (what the factor's diagonal holds beyond
// the rows). Each row sums in a fixed order.
func (f *GPTQFactor) RowObjectives(out []float64, src, got []float32, xs [][]float32) {
	n := f.N
	extra := make([]float64, n)
	for j := range n {
		extra[j] = float64(f.Diag[j])
	}
	for _, x := range xs {
		for t := 0; t < len(x); t += n {
			for j, v := range x[t : t+n] {
				extra[j] -= float64(float64(v) * float64(v))
			}
		}
	}
	rowErrors(out, src, got, n, xs, extra)
}

// HeldOutErrors writes, for each row of src (n columns) and its
// reconstruction got, Σ_t ((w−ŵ)·x_t)² over the rows of xs: the output
// error on inputs the factor did not see (gptq's held-out check).
func HeldOutErrors(out []float64, src, got []float32, n int, xs [][]float32) {
	rowErrors(out, src, got, n, xs, nil)
}

// rowErrors is Σ_j extra_j e_j² (extra nil: none) plus Σ_t (x_t·e)² for
// each row's error e, in that order.
func rowErrors(out []float64, src, got []float32, n int, xs [][]float32, extra []float64) {
	if len(src) != len(got) || len(src) != len(out)*n {
		panicf("rowErrors: len(src) = %d, len(got) = %d, %d rows of %d", len(src), len(got), len(out), n)
	}
	// A tile of rows at a time, so that each token's row x_t, read from
	// memory once, serves all of them; each row's sum keeps its order
	// (its own terms, then the tokens in order).
	const tile = 8
	parallelFor(len(src), n, func(lo, hi int) {
		e := make([]float32, tile*n)
		var acc [tile]float64
		for r0 := lo / n; r0 < hi/n; r0 += tile {
			rows := min(tile, hi/n-r0)
			for k := range rows {
				r := r0 + k
				er := e[k*n : (k+1)*n]
				acc[k] = 0
				for j := range er {
					er[j] = src[r*n+j] - got[r*n+j]
					if extra != nil {
						d := float64(er[j])
						acc[k] += float64(extra[j] * float64(d*d))
					}
				}
			}
			for _, x := range xs {
				for t := 0; t < len(x); t += n {
					xt := x[t : t+n]
					for k := range rows {
						d := float64(dot32(xt, e[k*n:(k+1)*n]))
						acc[k] += float64(d * d)
					}
				}
			}
			copy(out[r0:r0+rows], acc[:rows])
		}
	})
}

// gptqGrid is how one row's elements are quantized: group columns share
// a scale; codes are clip(rint(t/s)+zp, lo, hi), dequantized as
// float32(q−zp)·s.
type gptqGrid struct {
	group  int
	lo, hi float32
	// scale returns the scale of row r's group g whose current targets
	// are t (fixed scales ignore t), and the zero point.
	scale func(r, g int, t []float32) (s, zp float32)
}

// gptqRows runs the sweep over rows of src (cols each), writing codes and,
// when obj is not nil, each row's output error (see Pivot2). Each worker
// sweeps its rows a lazy batch at a time: the batch's columns one by one
// (a row of A serves all the worker's rows), then the later columns'
// update as one product (lazyUpdate). A row's operations and their order
// do not depend on which rows share a worker.
func gptqRows(codes []int8, src []float32, cols int, f *GPTQFactor, grid *gptqGrid, obj []float64) {
	if f.N != cols {
		panicf("GPTQ: factor of %d columns for rows of %d", f.N, cols)
	}
	batch := grid.group * max(1, (gptqBatch+grid.group-1)/grid.group)
	if grid.group >= cols {
		batch = gptqBatch
	}
	parallelFor(len(src), cols*gptqTile, func(lo, hi int) {
		r0, rows := lo/cols, (hi-lo)/cols
		var o []float64
		if obj != nil {
			o = obj[r0 : r0+rows]
		}
		sw := &gptqSweep{
			codes: codes[lo:hi], src: src[lo:hi], cols: cols, batch: batch, r0: r0, rows: rows,
			t: slices.Clone(src[lo:hi]), e: make([]float32, rows*batch),
			s: make([]float32, rows), zp: make([]float32, rows), f: f, grid: grid, obj: o,
		}
		sw.run()
	})
}

// gptqSweep is one worker's rows of a sweep: t the targets (the rows,
// compensated as the sweep goes), e the current batch's errors.
type gptqSweep struct {
	codes            []int8
	src, t, e, s, zp []float32
	cols, batch, r0  int
	rows             int
	f                *GPTQFactor
	grid             *gptqGrid
	obj              []float64
}

func (w *gptqSweep) run() {
	clear(w.obj)
	cols, batch, f, grid := w.cols, w.batch, w.f, w.grid
	var pack []float32
	for b0 := 0; b0 < cols; b0 += batch {
		b1 := min(cols, b0+batch)
		for j := b0; j < b1; j++ {
			arow := f.Row(j)[:b1-j-1]
			newGroup := j%grid.group == 0
			for r := range w.rows {
				tr := w.t[r*cols : (r+1)*cols]
				if newGroup {
					w.s[r], w.zp[r] = grid.scale(w.r0+r, j/grid.group, tr[j:min(cols, j+grid.group)])
				}
				q := quantizeOne(tr[j], w.s[r], w.zp[r], grid.lo, grid.hi)
				w.codes[r*cols+j] = int8(q)
				deq := float32(float32(q-w.zp[r]) * w.s[r])
				if w.obj != nil {
					left := float64(tr[j] - deq)
					w.obj[r] += float64(float64(f.Pivot2[j]) * float64(left*left))
				}
				d := w.src[r*cols+j] - deq
				w.e[r*batch+j-b0] = d
				axpy(tr[j+1:b1], d, arow)
			}
		}
		if b1 == cols {
			break
		}
		if pack == nil && useAVX2 {
			pack = make([]float32, batch*lazyWidth)
		}
		lazyUpdate(w.t, w.rows, cols, w.e, batch, f, b0, b1, pack)
	}
}

// lazyWidth is how many later columns of A lazyUpdate packs at a time:
// a batch's 128 rows of them are 128 KB, which stay in L2 while every row
// of the worker uses them.
const lazyWidth = 256

// lazyUpdate adds the batch's compensation to the later columns:
// t[r][c] += Σ_i e[r][i]·A[b0+i][c] for every row r and c in [b1, cols),
// each product rounded and added in i order: the float32 operations of
// b1−b0 axpys in order, so the bits do not depend on the form.
//
// With AVX2 it packs A's batch rows lazyWidth columns at a time, in
// contiguous panels of sixteen columns, and four rows of t at a time keep
// a panel's sums in registers (lazy4x16AVX2; lazy1x16AVX2 for the rows
// left over): every row reads the panel from L1, and the worker reads A
// from memory once. Columns left over (fewer than sixteen) run as axpys.
// Without AVX2 (the scalar form, other architectures) each row takes four
// rows of A at a time (axpy4), streaming A from memory for every row.
// Four rows by sixteen columns in registers without the packing ran 40 %
// slower than axpy4 in the 1 GB decoder's sweep: each sixteen columns
// touched the batch's 128 rows of A in memory.
func lazyUpdate(t []float32, rows, cols int, e []float32, batch int, f *GPTQFactor, b0, b1 int, pack []float32) {
	k := b1 - b0
	if !useAVX2 {
		for r := range rows {
			tr := t[r*cols+b1 : (r+1)*cols]
			er := e[r*batch : r*batch+k]
			i := 0
			for ; i+4 <= k; i += 4 {
				a := b0 + i
				axpy4(tr, er[i:i+4], f.Row(a)[b1-a-1:], f.Row(a + 1)[b1-a-2:], f.Row(a + 2)[b1-a-3:], f.Row(a + 3)[b1-a-4:])
			}
			for ; i < k; i++ {
				a := b0 + i
				axpy(tr, er[i], f.Row(a)[b1-a-1:])
			}
		}
		return
	}
	for c0 := b1; c0 < cols; c0 += lazyWidth {
		w := min(lazyWidth, cols-c0)
		w16 := w &^ 15
		for i := range k {
			a := b0 + i
			arow := f.Row(a)[c0-a-1 : c0-a-1+w16]
			for q := 0; q < w16; q += 16 {
				*(*[16]float32)(pack[q*k+i*16:]) = [16]float32(arow[q : q+16])
			}
		}
		for q := 0; q < w16; q += 16 {
			p := pack[q*k : q*k+16*k]
			r := 0
			for ; r+4 <= rows; r += 4 {
				lazy4x16(t[r*cols+c0+q:], cols, e[r*batch:], batch, p, k)
			}
			for ; r < rows; r++ {
				lazy1x16(t[r*cols+c0+q:r*cols+c0+q+16], e[r*batch:r*batch+k], p)
			}
		}
		if w16 < w {
			for r := range rows {
				tr := t[r*cols+c0+w16 : r*cols+c0+w]
				for i := range k {
					a := b0 + i
					axpy(tr, e[r*batch+i], f.Row(a)[c0+w16-a-1:])
				}
			}
		}
	}
}

// lazy1x16Go is one row's part of lazy4x16: y[l] += e[i]·p[16i+l] for i in
// order.
func lazy1x16Go(y, e, p []float32) {
	for i, ei := range e {
		pi := p[16*i : 16*i+16]
		for l := range y {
			y[l] += float32(ei * pi[l])
		}
	}
}

// quantizeOne is clip(rint(t/s)+zp, lo, hi) (s = 0: the sign's extreme).
func quantizeOne(t, s, zp, lo, hi float32) float32 {
	if s == 0 {
		switch {
		case t > 0:
			return hi
		case t < 0:
			return lo
		}
		return zp
	}
	q := float32(math.RoundToEven(float64(t/s))) + zp
	return min(hi, max(lo, q))
}

// axpy is y += a·x (each product rounded on its own).
func axpyGo(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	for k := range y {
		y[k] += float32(a * x[k])
	}
}

// hessRowGo is hessRow's scalar form.
func hessRowGo(h []float64, x []float32, xi float64) {
	x = x[:len(h)]
	for j, v := range x {
		h[j] += float64(xi * float64(v))
	}
}

// hessRow4Go is hessRow4's scalar form.
func hessRow4Go(h []float64, a *[4]float64, x0, x1, x2, x3 []float32) {
	x0, x1, x2, x3 = x0[:len(h)], x1[:len(h)], x2[:len(h)], x3[:len(h)]
	for j := range h {
		h[j] = h[j] + float64(a[0]*float64(x0[j])) + float64(a[1]*float64(x1[j])) + float64(a[2]*float64(x2[j])) + float64(a[3]*float64(x3[j]))
	}
}

// dot32 is Σ a_k·b_k over len(a) float32 terms, the row objectives' inner
// product: thirty-two partial sums (term k to sum k mod 32, in order, each
// product rounded; AVX2 runs them as four accumulators of eight lanes),
// folded lane-wise as (s_i + s_{i+8}) + (s_{i+16} + s_{i+24}), then pairwise
// ((v_0+v_4)+(v_2+v_6)) + ((v_1+v_5)+(v_3+v_7)), then the tail of fewer
// than 32 terms in order. The same bits with and without AVX2.
func dot32(a, b []float32) float32 {
	b = b[:len(a)]
	var s [32]float32
	dot32Sums(a, b, &s)
	var v [8]float32
	for i := range v {
		v[i] = (s[i] + s[i+8]) + (s[i+16] + s[i+24])
	}
	r := ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]))
	for k := len(a) &^ 31; k < len(a); k++ {
		r += float32(a[k] * b[k])
	}
	return r
}

// dot32SumsGo is dot32's partial sums over len(a) (a multiple of 32)
// terms.
func dot32SumsGo(a, b []float32, s *[32]float32) {
	*s = [32]float32{}
	b = b[:len(a)]
	for k := 0; k+32 <= len(a); k += 32 {
		for i := range 32 {
			s[i] += float32(a[k+i] * b[k+i])
		}
	}
}

// axpy4Go is four axpys in order, with y read and written once (axpy4:
// the AVX2 form where there is one, same bits).
func axpy4Go(y, a []float32, x0, x1, x2, x3 []float32) {
	a0, a1, a2, a3 := a[0], a[1], a[2], a[3]
	x0, x1, x2, x3 = x0[:len(y)], x1[:len(y)], x2[:len(y)], x3[:len(y)]
	for k := range y {
		y[k] = y[k] + float32(a0*x0[k]) + float32(a1*x1[k]) + float32(a2*x2[k]) + float32(a3*x3[k])
	}
}

// GPTQSweepScales selects the int4 variant whose block scales are chosen
// during the sweep (at each block's first column, from the compensated
// weights) rather than fixed beforehand.
const GPTQSweepScales = true

// GPTQBlocksInt4 quantizes rows of src (cols each) to packed int4 blocks
// like QuantizeBlocksInt4, with error compensation under f. With sweep
// false, scales holds each block's stored scale on entry (any method,
// from the original weights) and is kept. With sweep true, each block's
// scale is chosen when the sweep reaches it, from the compensated
// weights, by SignedScaleInt4's rule, and written to scales. It returns
// the count of clamped scales (sweep only) and a *ValueError for
// non-finite weights or scales beyond float16.
//
// obj, when not nil, receives each row's output error (w−ŵ)(H+λI)(w−ŵ)ᵀ.
func GPTQBlocksInt4(dst []byte, scales []uint16, src []float32, cols, blockSize int, clampTiny bool, f *GPTQFactor, sweep bool, obj []float64) (clamped int, err error) {
	blocks := checkBlocks("GPTQBlocksInt4", len(src), cols, blockSize)
	if len(scales) != blocks || len(dst) != len(src)/2 {
		panicf("GPTQBlocksInt4: %d blocks, len(scales) = %d, len(src) = %d, len(dst) = %d", blocks, len(scales), len(src), len(dst))
	}
	if err := CheckFinite(src); err != nil {
		return 0, err
	}
	per := cols / blockSize
	var nTiny, nBad atomicCount
	grid := &gptqGrid{group: blockSize, lo: -8, hi: 7}
	grid.scale = func(r, g int, t []float32) (float32, float32) {
		k := r*per + g
		if sweep {
			c0 := g * blockSize
			h, c, ok := searchScaleInt4(t, f.Diag[c0:c0+blockSize], clampTiny)
			if !ok {
				nBad.add(1)
				h = 0x3c00
			} else if c {
				nTiny.add(1)
			}
			scales[k] = h
		}
		return Float32FromBits16(scales[k]), 0
	}
	codes := make([]int8, len(src))
	gptqRows(codes, src, cols, f, grid, obj)
	if nBad.load() > 0 {
		return 0, &ValueError{Kind: ScaleOverflow, Count: nBad.load()}
	}
	PackInt4(dst, codes)
	return nTiny.load(), nil
}

// SignedScaleInt4 is the positive scale that maps a block's
// largest-magnitude element onto an int4 level: −8 when that element is
// negative (s = max|x|/8), 7 otherwise (s = max|x|/7), stored as bfloat16
// then float16 like min-max's; clamped and ok as for BlockParamsInt4.
// Using −8 costs nothing in the format and lowers the step by 1/8 for
// about half the blocks.
func SignedScaleInt4(blk []float32, clampTiny bool) (h uint16, clamped, ok bool) {
	var m float32
	neg := false
	for _, x := range blk {
		if a := abs32(x); a > m {
			m, neg = a, x < 0
		}
	}
	if math.IsNaN(float64(m)) || math.IsInf(float64(m), 0) {
		return 0x7e00, false, false
	}
	div := float32(7)
	if neg {
		div = 8
	}
	h = Float16Bits(BFloat16Round(max(m, scaleFloor) / div))
	switch {
	case h >= 0x7c00:
		return h, false, false
	case h < 0x400 && clampTiny:
		return 0x400, true, true
	}
	return h, false, true
}

// searchScaleInt4 is the block scale of lowest weighted squared error
// Σ d_j (t_j − s·q_j)² among SignedScaleInt4's and its fractions
// searchRatios (each as stored), for the compensated targets t weighted
// by d (H's diagonal): importance-weighted rounding as llama.cpp's
// imatrix quantization, on the weights error compensation left.
func searchScaleInt4(t, d []float32, clampTiny bool) (h uint16, clamped, ok bool) {
	h, clamped, ok = SignedScaleInt4(t, clampTiny)
	if !ok || clamped {
		return h, clamped, ok
	}
	s0 := Float32FromBits16(h)
	best, bestErr := h, weightedErr(t, d, s0)
	for _, r := range searchRatios[1:] {
		c := stored(float32(s0 * r))
		if c == 0 || c == best {
			continue
		}
		if e := weightedErr(t, d, Float32FromBits16(c)); e < bestErr {
			best, bestErr = c, e
		}
	}
	return best, false, true
}

// weightedErr is Σ d_j (t_j − s·clip(rint(t_j/s), −8, 7))².
func weightedErr(t, d []float32, s float32) float32 {
	var e float32
	for j, x := range t {
		q := quantizeOne(x, s, 0, -8, 7)
		r := x - float32(q*s)
		e += float32(d[j] * float32(r*r))
	}
	return e
}

// SignedParamsInt4 is BlockParamsInt4 with SignedScaleInt4's rule.
func SignedParamsInt4(scales []uint16, src []float32, cols, blockSize int, clampTiny bool) (clamped int, err error) {
	blocks := checkBlocks("SignedParamsInt4", len(src), cols, blockSize)
	if len(scales) != blocks {
		panicf("SignedParamsInt4: %d blocks, len(scales) = %d", blocks, len(scales))
	}
	if err := CheckFinite(src); err != nil {
		return 0, err
	}
	for k := range scales {
		h, c, ok := SignedScaleInt4(src[k*blockSize:(k+1)*blockSize], clampTiny)
		if !ok {
			return 0, blockError(scales, src, blockSize)
		}
		if c {
			clamped++
		}
		scales[k] = h
	}
	return clamped, nil
}

// GPTQRowsInt8 re-quantizes rows of src (cols each) with error
// compensation under f against the per-row scales and zero points already
// computed (QuantizeRowsInt8's), writing the codes to dst: symmetric rows
// use −127..127, asymmetric −128..127.
func GPTQRowsInt8(dst []int8, scales []float32, zeroPoints []int64, src []float32, cols int, symmetric bool, f *GPTQFactor, obj []float64) {
	if len(dst) != len(src) || len(src)%cols != 0 || len(scales) != len(src)/cols || len(zeroPoints) != len(scales) {
		panicf("GPTQRowsInt8: len(dst) = %d, len(src) = %d, cols = %d, %d scales, %d zero points", len(dst), len(src), cols, len(scales), len(zeroPoints))
	}
	grid := &gptqGrid{group: cols, lo: -128, hi: 127}
	if symmetric {
		grid.lo = -127
	}
	grid.scale = func(r, _ int, _ []float32) (float32, float32) {
		return scales[r], float32(zeroPoints[r])
	}
	gptqRows(dst, src, cols, f, grid, obj)
}

// ShrinkageDamp is the relative damping that turns the sample covariance
// h = Σ_t x_t x_tᵀ (over the rows of xs) into its Ledoit–Wolf
// shrinkage towards a multiple of the identity (Ledoit and Wolf, "A
// well-conditioned estimator for large-dimensional covariance matrices",
// 2004, with the second moment in place of the centred covariance, as GPTQ
// uses it): with S = h/T, μ = tr(S)/n, d² = ‖S − μI‖², and
// b² = min(d², (Σ_t ‖x_t‖⁴ − T‖S‖²)/T²) the expected distance of S from the
// true second moment, the estimator (1−α)S + αμI with α = b²/d² is the
// closest to the truth in expected Frobenius distance. GPTQ does not
// depend on h's scale, so it equals h + λI with λ = α/(1−α)·mean(diag h):
// the returned value is α/(1−α) (at most maxDamp).
//
// Where the calibration tokens are few against the columns, or the inputs
// carry no structure beyond noise (α near 1), the damping grows until
// error compensation falls back to nearest rounding; where the covariance
// has real structure (a trained model's outlier channels), α is small and
// the damping stays near the paper's 1 %. Sums run in a fixed order.
func ShrinkageDamp(h *Covariance, xs [][]float32) float64 {
	n := h.N
	tokens, s4, _ := tokenMoments(xs, n)
	if tokens < 2 {
		return maxShrink
	}
	// ‖H‖² from the stored triangle: each row's off-diagonal squares
	// twice, then its diagonal square, row by row.
	tr := h.Trace()
	var fro float64
	for a := range n {
		ga := h.row(a)
		var off float64
		for _, v := range ga[:a] {
			off += float64(v * v)
		}
		fro += float64(2*off) + float64(ga[a]*ga[a])
	}
	T := float64(tokens)
	mu := tr / T / float64(n)
	fs := fro / (T * T) // ‖S‖²
	d2 := fs - float64(float64(n)*mu*mu)
	return shrinkRatio((s4/T-fs)/T, d2)
}

// maxShrink is the largest damping ShrinkageDamp and ShrinkageOffDiagonal
// return: compensation is then nearest rounding.
const maxShrink = 1e6

// tokenMoments counts the rows of xs (n columns) and sums ‖x_t‖⁴ and
// Σ_i x_ti⁴ over them, in order.
func tokenMoments(xs [][]float32, n int) (tokens int, s4, q4 float64) {
	if n == 0 {
		panicf("shrinkage of a covariance of 0 columns")
	}
	for _, x := range xs {
		for t := 0; t+n <= len(x); t += n {
			var r, q float64
			for _, v := range x[t : t+n] {
				v2 := float64(float64(v) * float64(v))
				r += v2
				q += float64(v2 * v2)
			}
			s4 += float64(r * r)
			q4 += q
			tokens++
		}
	}
	return tokens, s4, q4
}

// shrinkRatio is α/(1−α) for the shrinkage intensity α = b²/d² clipped to
// [0, 1] (maxShrink at most, and where d² is not positive).
func shrinkRatio(b2, d2 float64) float64 {
	if !(d2 > 0) {
		return maxShrink
	}
	alpha := min(1, max(0, b2/d2))
	if alpha >= 1 {
		return maxShrink
	}
	return min(maxShrink, alpha/(1-alpha))
}

// ShrinkageOffDiagonal is the Ledoit–Wolf shrinkage of the sample second
// moment S = h/T towards its own diagonal (the "diagonal, unequal
// variance" target of Schäfer and Strimmer, 2005): only the correlations
// between columns are shrunk, which are all that error compensation uses
// (with a diagonal H the sweep is nearest rounding). With
// d² = Σ_{i≠j} S_ij² and b² = Σ_t Σ_{i≠j} (x_ti x_tj − S_ij)²/T²
// = (Σ_t (‖x_t‖⁴ − Σ_i x_ti⁴)/T − d²)/T, the estimator is
// (1−α)S + α·diag(S), α = b²/d², which is proportional to
// h + δ·diag(h) with δ = α/(1−α) (returned). Inputs whose correlations
// are noise at this many tokens get α near 1, and compensation falls back
// to nearest rounding; real correlations keep α small. A measurement
// switch (QPIPE_GPTQ_SHRINK=diagonal, METHODS.md §5.7). Sums run in a
// fixed order.
func ShrinkageOffDiagonal(h *Covariance, xs [][]float32) float64 {
	n := h.N
	tokens, s4, q4 := tokenMoments(xs, n)
	if tokens < 2 {
		return maxShrink
	}
	var off float64 // Σ_{i≠j} H_ij², from the triangle: each off-diagonal entry twice
	for a := range n {
		var o float64
		for _, v := range h.row(a)[:a] {
			o += float64(v * v)
		}
		off += float64(2 * o)
	}
	T := float64(tokens)
	d2 := off / (T * T)
	return shrinkRatio(((s4-q4)/T-d2)/T, d2)
}
