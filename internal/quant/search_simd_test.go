//go:build amd64

package quant

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// The AVX2 search must give the bytes of the scalar one. The kernels are
// compared with their Go forms bit for bit (the model's choice, the big
// elements, the sums: a difference in the sums' last bit rarely shows in
// the output, so the output alone would not catch it), then the whole
// search both ways on inputs aimed at one of its branches, comparing
// scales, packed values, the tiny count, the row errors and the error.
// search_golden_test.go compares them on the golden test's input.

type searchResult struct {
	packed []byte
	scales []uint16
	tiny   int
	errs   []RowErrors
	err    error
}

func searchFree(src []float32, cols, bs int, clampTiny, report bool) searchResult {
	res := searchResult{packed: make([]byte, len(src)/2), scales: make([]uint16, len(src)/bs)}
	if report {
		res.errs = make([]RowErrors, len(src)/cols)
	}
	res.tiny, res.err = SearchBlocksInt4(res.packed, res.scales, src, cols, bs, clampTiny, nil, res.errs)
	return res
}

// checkSearchSIMD compares the search with AVX2 and without on src.
func checkSearchSIMD(t *testing.T, name string, src []float32, cols, bs int) {
	t.Helper()
	if !HasAVX2 {
		t.Skip("no AVX2 on this machine (or QPIPE_SIMD=off)")
	}
	for _, clampTiny := range []bool{true, false} {
		for _, report := range []bool{false, true} {
			SetAVX2(false)
			want := searchFree(src, cols, bs, clampTiny, report)
			SetAVX2(true)
			got := searchFree(src, cols, bs, clampTiny, report)
			where := fmt.Sprintf("%s, block %d, cols %d, clampTiny %v, report %v", name, bs, cols, clampTiny, report)
			if (got.err == nil) != (want.err == nil) || got.err != nil && got.err.Error() != want.err.Error() {
				t.Fatalf("%s: error %v, scalar %v", where, got.err, want.err)
			}
			if got.err != nil {
				continue // the output is not specified
			}
			if got.tiny != want.tiny {
				t.Fatalf("%s: %d tiny, scalar %d", where, got.tiny, want.tiny)
			}
			for k := range want.scales {
				if got.scales[k] != want.scales[k] {
					x := src[k*bs : (k+1)*bs]
					t.Fatalf("%s: block %d scale %#04x, scalar %#04x; block %v", where, k, got.scales[k], want.scales[k], x)
				}
			}
			if string(got.packed) != string(want.packed) {
				t.Fatalf("%s: packed values differ", where)
			}
			for r := range want.errs {
				if got.errs[r] != want.errs[r] {
					t.Fatalf("%s: row %d errors %+v, scalar %+v", where, r, got.errs[r], want.errs[r])
				}
			}
		}
	}
}

// TestSearchSIMDBlockSizes: random blocks of every block size 32..256,
// with rows of 1 to 19 blocks (groups of fewer than 8 blocks, and of a
// number that is not a multiple of 8), each block of its own spread.
func TestSearchSIMDBlockSizes(t *testing.T) {
	defer SetAVX2(SetAVX2(true))
	r := rand.New(rand.NewPCG(7, 8))
	for bs := 32; bs <= 256; bs += 32 {
		for _, nb := range []int{1, 2, 3, 7, 8, 9, 16, 17, 19} {
			cols := nb * bs
			src := make([]float32, 6*cols)
			for k := 0; k < len(src); k += bs {
				sigma := math.Pow(10, -5+6*r.Float64())
				for i := k; i < k+bs; i++ {
					src[i] = float32(r.NormFloat64() * sigma)
					if r.IntN(40) == 0 {
						src[i] *= float32(1 + 4*r.Float64())
					}
				}
			}
			checkSearchSIMD(t, "random", src, cols, bs)
		}
	}
}

// searchEdgeBlocks returns blocks of 32 built to hit the edges of the
// search: all zeros, a single non-zero, constant blocks (every element
// big), exact multiples and half-multiples of the candidate scales
// (rounding ties under every candidate), magnitudes where the smallest
// candidates fall below 2^-14 (candidates repeated as padding), clamped
// blocks, the largest scales a float16 holds, and gaussian blocks of
// every spread with outliers.
func searchEdgeBlocks(r *rand.Rand) []float32 {
	const bs = 32
	var src []float32
	add := func(f func(i int) float32) {
		for i := range bs {
			src = append(src, f(i))
		}
	}
	add(func(int) float32 { return 0 })
	add(func(i int) float32 {
		if i == 5 {
			return -3
		}
		return 0
	})
	for _, c := range []float32{1, -1, 0.001, -7e-4, 1e-9, 4e5, -4.5e5} {
		add(func(int) float32 { return c })
		add(func(i int) float32 { return c * float32(i%3-1) })
	}
	// Multiples and half-multiples of each candidate scale of a block of
	// largest magnitude m.
	for _, m := range []float64{1, 0.02, 3.3e-3, 6e-4, 123.4} {
		for _, ratio := range searchRatios {
			s := float64(BFloat16Round(float32(m * float64(ratio) / 7)))
			add(func(i int) float32 {
				if i == 0 {
					return float32(m)
				}
				return float32(s * float64(r.IntN(17)-8) / 2)
			})
		}
	}
	// Elements at the big threshold, 7.49·s_7, and a few ulps either side.
	for _, m := range []float64{1, 0.0173, 42} {
		s7 := BFloat16Round(float32(float32(m)*searchRatios[7]) / 7)
		thr := math.Float32bits(7.49 * s7)
		add(func(i int) float32 {
			switch {
			case i == 0:
				return float32(m)
			case i < 12:
				return math.Float32frombits(thr + uint32(i) - 6)
			case i < 24:
				return -math.Float32frombits(thr + uint32(i) - 18)
			}
			return float32(r.NormFloat64() * m / 4)
		})
	}
	// Around the smallest normal candidates: absMax·0.72/7 near 2^-14.
	for m := 4e-4; m < 9e-4; m *= 1.01 {
		add(func(i int) float32 {
			if i == 31 {
				return float32(-m)
			}
			return float32(r.NormFloat64() * m / 3)
		})
	}
	// Tiny blocks (clamped, or subnormal scales without clampTiny).
	for _, m := range []float64{1e-12, 1e-7, 1e-5, 4.3e-4} {
		add(func(int) float32 { return float32(r.NormFloat64() * m) })
	}
	// Large: scales near the top of float16.
	for _, m := range []float64{1e5, 4.5e5} {
		add(func(int) float32 { return float32((r.Float64()*2 - 1) * m) })
	}
	for range 200 {
		sigma := math.Pow(10, -5+6*r.Float64())
		add(func(int) float32 {
			v := float32(r.NormFloat64() * sigma)
			if r.IntN(20) == 0 {
				v *= float32(1 + 4*r.Float64())
			}
			return v
		})
	}
	return src
}

// TestSearchSIMDEdges compares the whole search on searchEdgeBlocks, in
// rows of 1, 4 and all of them.
func TestSearchSIMDEdges(t *testing.T) {
	defer SetAVX2(SetAVX2(true))
	src := searchEdgeBlocks(rand.New(rand.NewPCG(9, 10)))
	for _, cols := range []int{32, 4 * 32, len(src)} {
		n := len(src) / cols * cols
		checkSearchSIMD(t, "edges", src[:n], cols, 32)
	}
}

// TestSearchModelAVX2 compares searchModelAVX2 with searchModel on every
// block of searchEdgeBlocks (as blocks of 32 to 256): the chosen
// candidate's scale and reciprocal, its stored value, the big elements.
// A block it leaves out must be one whose candidates are not all normal
// float16 values.
func TestSearchModelAVX2(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2")
	}
	src := searchEdgeBlocks(rand.New(rand.NewPCG(13, 14)))
	for bs := 32; bs <= 256; bs += 32 {
		x := src[:len(src)/bs*bs]
		big, bigGo := make([]float32, maxSearchGroup*bs), make([]float32, bs)
		for g := 0; g < len(x)/bs; g += maxSearchGroup {
			n := min(maxSearchGroup, len(x)/bs-g)
			var ms [maxSearchGroup]uint32
			var hs [maxSearchGroup]uint16
			for k := range n {
				ms[k] = absMaxBits(x[(g+k)*bs : (g+k+1)*bs])
				hs[k], _, _ = absMaxScale(ms[k], true)
			}
			var st searchState
			searchModelAVX2(&x[g*bs], bs, n, &ms[0], &hs[0], &big[0], &st)
			for k := range n {
				b := x[(g+k)*bs : (g+k+1)*bs]
				if hs[k] < 0x400 || hs[k] >= 0x7c00 {
					if st.best[k] != 0 {
						t.Fatalf("block %d of %d: min-max %#04x searched", g+k, bs, hs[k])
					}
					continue
				}
				cd, bc, bigs := searchModel(b, math.Float32frombits(ms[k]), hs[k], bigGo)
				if st.best[k] == 0 {
					if s7 := cd.s[len(cd.s)-1]; s7 != BFloat16Round(float32(max(math.Float32frombits(ms[k]), scaleFloor)*searchRatios[7])/7) {
						continue // padded: searchBlock's
					}
					t.Fatalf("block %d of %d: left to searchBlock, candidates %v", g+k, bs, cd.s)
				}
				want := hs[k]
				if bc > 0 {
					want = bf16ToFloat16(cd.s[bc])
				}
				if st.best[k] != want || st.s[k] != cd.s[bc] || st.r[k] != cd.r[bc] {
					t.Fatalf("block %d of %d: chose %#04x (s %g, r %g), Go %#04x (s %g, r %g)",
						g+k, bs, st.best[k], st.s[k], st.r[k], want, cd.s[bc], cd.r[bc])
				}
				got := big[k*bs : k*bs+int(st.nbig[k])]
				if len(got) != len(bigs) {
					t.Fatalf("block %d of %d: %d big elements, Go %d", g+k, bs, len(got), len(bigs))
				}
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(bigs[i]) {
						t.Fatalf("block %d of %d: big element %d %g, Go %g", g+k, bs, i, got[i], bigs[i])
					}
				}
			}
		}
	}
}

// TestLsSumsAVX2 compares lsSumsAVX2 with lsSums bit for bit, 8 blocks
// of each size from 32 to 256 at a time, each with the reciprocal of
// one of its candidate scales (so that up to about a third of its
// elements round beyond the int4 range) or of a much smaller scale.
func TestLsSumsAVX2(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2")
	}
	r := rand.New(rand.NewPCG(15, 16))
	src := searchEdgeBlocks(r)
	for bs := 32; bs <= 256; bs += 32 {
		x := src[:len(src)/bs*bs]
		for k0 := 0; k0+8 <= len(x)/bs; k0 += 8 {
			var p [8]*float32
			var rs, c, g [8]float32
			for l := range p {
				b := x[(k0+l)*bs : (k0+l+1)*bs]
				p[l] = &b[0]
				s := BFloat16Round(float32(max(math.Float32frombits(absMaxBits(b)), scaleFloor)*searchRatios[r.IntN(8)]) / 7)
				if r.IntN(4) == 0 {
					s /= 64
				}
				rs[l] = 1 / max(s, MinNormalFloat16)
			}
			lsSumsAVX2(&p, bs, &rs[0], &c[0], &g[0])
			for l := range p {
				wc, wg := lsSums(x[(k0+l)*bs:(k0+l+1)*bs], rs[l])
				if math.Float32bits(c[l]) != math.Float32bits(wc) || math.Float32bits(g[l]) != math.Float32bits(wg) {
					t.Fatalf("block %d of %d, r %g: sums %g, %g, Go %g, %g", k0+l, bs, rs[l], c[l], g[l], wc, wg)
				}
			}
		}
	}
}

// TestSearchSIMDNotFinite: NaN, Inf and blocks whose scale overflows
// float16 give the same error both ways, wherever they are in the group.
func TestSearchSIMDNotFinite(t *testing.T) {
	defer SetAVX2(SetAVX2(true))
	r := rand.New(rand.NewPCG(11, 12))
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 1e6} {
		for _, at := range []int{0, 33, 500, 1023} {
			src := make([]float32, 4*1024)
			for i := range src {
				src[i] = float32(r.NormFloat64() * 0.02)
			}
			src[at] = bad
			checkSearchSIMD(t, fmt.Sprint(bad), src, 1024, 32)
			SetAVX2(true)
			_, err := SearchBlocksInt4(make([]byte, len(src)/2), make([]uint16, len(src)/32), src, 1024, 32, true, nil, nil)
			if ve := (*ValueError)(nil); !errors.As(err, &ve) {
				t.Fatalf("%g at %d: error %v, want a *ValueError", bad, at, err)
			}
		}
	}
}

// TestLsSteps8AVX2 compares lsSteps8AVX2 with lsStep on the state the
// kernels before it leave for searchEdgeBlocks (blocks of 32 to 256), and
// checks that it leaves alone the blocks the model did not choose for.
func TestLsSteps8AVX2(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2")
	}
	src := searchEdgeBlocks(rand.New(rand.NewPCG(17, 18)))
	for bs := 32; bs <= 256; bs += 32 {
		x := src[:len(src)/bs*bs]
		big := make([]float32, maxSearchGroup*bs)
		for g := 0; g < len(x)/bs; g += 8 {
			n := min(8, len(x)/bs-g)
			var ms [maxSearchGroup]uint32
			var hs [maxSearchGroup]uint16
			for k := range n {
				ms[k] = absMaxBits(x[(g+k)*bs : (g+k+1)*bs])
				hs[k], _, _ = absMaxScale(ms[k], true)
			}
			var st searchState
			searchModelAVX2(&x[g*bs], bs, n, &ms[0], &hs[0], &big[0], &st)
			var p [8]*float32
			for l := range p {
				p[l] = &x[(g+min(l, n-1))*bs]
			}
			lsSumsAVX2(&p, bs, &st.r[0], &st.c[0], &st.g[0])
			got := hs
			lsSteps8AVX2(&st, 0, &big[0], bs, &got[0])
			for k := range n {
				want := hs[k]
				if st.best[k] != 0 {
					want = lsStep(st.best[k], st.s[k], st.r[k], st.c[k], st.g[k], big[k*bs:k*bs+int(st.nbig[k])])
				}
				if got[k] != want {
					t.Fatalf("block %d of %d: %#04x, lsStep %#04x", g+k, bs, got[k], want)
				}
			}
		}
	}
}

// TestMomentsAVX2 compares the calibrated search's kernel with moments bit
// for bit, every sum of every lane, on the edge blocks (ties, zeros,
// clamped and tiny scales, outliers) under statistics with zero and large
// variances, zero, negative and positive means, with the block's own
// candidates, scales far too small (everything clipped, q·s far from x)
// and random ones, at every block size.
func TestMomentsAVX2(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2")
	}
	defer SetAVX2(SetAVX2(true))
	r := rand.New(rand.NewPCG(21, 22))
	src := searchEdgeBlocks(r)
	src = append(src, heavyTailedBlocks(r, 4096)...)
	stats := func(n int, kind int) (mu, v []float32) {
		mu, v = make([]float32, n), make([]float32, n)
		for j := range n {
			switch kind {
			case 0: // zero variance, zero mean
			case 1: // negative means, small variances
				mu[j], v[j] = float32(-1-r.Float64()), float32(r.Float64()*1e-3)
			case 2: // ReLU-like: means of one sign, varied spreads
				if j%2 == 0 {
					mu[j] = float32(1 + r.Float64())
				}
				v[j] = float32(0.1 + r.Float64()*r.Float64()*4)
			default: // wide ranges of both
				mu[j] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(9)-4)))
				v[j] = float32(math.Pow(10, float64(r.IntN(13)-6)) * r.Float64())
			}
		}
		return mu, v
	}
	same := func(a, b [8]float64) bool {
		for c := range a {
			if math.Float64bits(a[c]) != math.Float64bits(b[c]) {
				return false
			}
		}
		return true
	}
	n := 0
	for bs := 32; bs <= 256; bs += 32 {
		for k := 0; k+bs <= len(src); k += bs {
			x := src[k : k+bs]
			mu, v := stats(bs, (k/bs+bs)%4)
			mu64, v64 := make([]float64, bs), make([]float64, bs)
			for j := range bs {
				mu64[j], v64[j] = float64(mu[j]), float64(v[j])
			}
			h0, _, ok := blockScale(x, true)
			if !ok || h0 < 0x400 {
				continue
			}
			var hs [8]uint16
			var ss [8]float32
			calibCandidates(&hs, math.Float32frombits(absMaxBits(x)), h0)
			for c, h := range hs {
				ss[c] = Float32FromBits16(h)
				switch r.IntN(6) {
				case 0:
					ss[c] = MinNormalFloat16 * float32(1+r.IntN(4))
				case 1:
					ss[c] = BFloat16Round(float32(r.Float64() * 2 * float64(ss[c])))
					ss[c] = max(ss[c], MinNormalFloat16)
				}
			}
			var got, want candMoments
			candidateMoments(x, mu, v, mu64, v64, &ss, &got)
			candidateMomentsGo(x, mu, v, &ss, &want)
			for _, f := range []struct {
				name      string
				got, want [8]float64
			}{{"err", got.err, want.err}, {"mean", got.mean, want.mean}, {"plain", got.plain, want.plain},
				{"a", got.a, want.a}, {"c", got.c, want.c}, {"dd", got.dd, want.dd}} {
				if !same(f.got, f.want) {
					t.Fatalf("block at %d of %d, scales %v: %s %v, Go %v", k, bs, ss, f.name, f.got, f.want)
				}
			}
			n++
		}
	}
	if n < 1000 {
		t.Fatalf("only %d blocks compared", n)
	}
}

// heavyTailedBlocks are n gaussian weights of varied spreads with a few
// large outliers, as trained layers have.
func heavyTailedBlocks(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	sigma := 0.02
	for i := range x {
		if i%32 == 0 {
			sigma = math.Pow(10, -3+3*r.Float64())
		}
		x[i] = float32(r.NormFloat64() * sigma)
		if r.IntN(50) == 0 {
			x[i] *= 8
		}
	}
	return x
}
