//go:build amd64

package quant

import "math"

// searchState is what the AVX2 search of a group (searchBlocks) passes
// from one stage to the next, per block k of the group.
type searchState struct {
	// s and r are the scale the model chose and its reciprocal, best its
	// stored value, or 0 when the block was not searched by the kernel
	// (not a positive normal float16 min-max scale, or some candidate out
	// of the float16 normal range: searchBlock takes those). nbig counts
	// the block's big elements, copied in order to big[k·blockSize:].
	s, r [maxSearchGroup]float32
	nbig [maxSearchGroup]uint32
	best [maxSearchGroup]uint16
	// c and g are lsSums of the block under r.
	c, g [maxSearchGroup]float32
	// cs and cr are the blocks' candidates and reciprocals, thr their
	// big thresholds, from searchModelAVX2's first pass to its second.
	cs, cr [maxSearchGroup][len(searchRatios)]float32
	thr    [maxSearchGroup]float32
}

// searchModelAVX2 is the first stage of searchBlock for each of the n
// blocks at x whose min-max scale hs[k] is a positive normal float16, ms[k]
// being the block's largest magnitude as bits: the candidates (as
// candidates.set when none needs to be left out), the big elements
// (copied to big, blockSize floats per block) and the model, the 8
// candidates in the 8 lanes, and the model's choice. It fills st's s, r,
// nbig and best.
//
//go:noescape
func searchModelAVX2(x *float32, blockSize, n int, ms *uint32, hs *uint16, big *float32, st *searchState)

// lsSumsAVX2 is lsSums for 8 blocks of n elements at once, block l at p[l]
// with reciprocal r[l] in lane l: the lanes add in lsSums' own order. It
// writes the sums (c and g of lsSums) to sxq[l] and sqq[l].
//
//go:noescape
func lsSumsAVX2(p *[8]*float32, n int, r, sxq, sqq *float32)

// lsSteps8AVX2 is lsStep for the 8 blocks from k0, one per lane, for
// those the model chose for (st.best[k] != 0), their sums in st, their big
// elements at big[k·blockSize:]: it writes the scale kept to hs[k]. big
// must hold 8 blocks from k0 (they are read up to the largest nbig).
//
//go:noescape
func lsSteps8AVX2(st *searchState, k0 int, big *float32, blockSize int, hs *uint16)

// searchBlocks searches the blocks of a group (see searchBlocksGo), with
// AVX2 when the CPU has it: the model of every block (searchModelAVX2),
// then, 8 blocks at a time, one per lane, the sums (each lane adding in
// lsSums' order) and lsStep. Same bits as searchBlocksGo.
func searchBlocks(hs *[maxSearchGroup]uint16, x []float32, blockSize, n int, ms *[maxSearchGroup]uint32, big []float32) {
	if !useAVX2 {
		searchBlocksGo(hs, x, blockSize, n, ms, big)
		return
	}
	x = x[:n*blockSize]
	var st searchState
	searchModelAVX2(&x[0], blockSize, n, &ms[0], &hs[0], &big[0], &st)
	var p [8]*float32
	for k0 := 0; k0 < n; k0 += len(p) {
		// A group's last lanes may have no block: they sum block k0
		// again, unused.
		for l := range p {
			k := k0 + l
			if k >= n {
				k = k0
			}
			p[l] = &x[k*blockSize]
		}
		lsSumsAVX2(&p, blockSize, &st.r[k0], &st.c[k0], &st.g[k0])
		_ = big[(k0+len(p))*blockSize-1] // lsSteps8AVX2 reads there
		lsSteps8AVX2(&st, k0, &big[0], blockSize, &hs[0])
	}
	for k := range n {
		if h0 := hs[k]; h0 >= 0x400 && h0 < 0x7c00 && st.best[k] == 0 {
			hs[k] = searchBlock(x[k*blockSize:(k+1)*blockSize], math.Float32frombits(ms[k]), h0, big[k*blockSize:(k+1)*blockSize])
		}
	}
}

// momentsAVX2 is moments of the n elements at x (mean mu and variance v
// as float64) under the 8 scales s, reciprocals r, candidate c in lane c,
// each lane in moments' order and rounding: out gets the bits of
// candidateMomentsGo.
//
//go:noescape
func momentsAVX2(x *float32, mu, v *float64, n int, s, r *[len(searchRatios)]float32, out *candMoments)

// candidateMoments is the moments of block x under the 8 scales s (see
// candMoments), with AVX2 when the CPU has it and the statistics are also
// given as float64 (mu64, v64): the same bits either way.
func candidateMoments(x, mu, v []float32, mu64, v64 []float64, s *[len(searchRatios)]float32, out *candMoments) {
	if !useAVX2 || len(x) == 0 || len(mu64) < len(x) || len(v64) < len(x) {
		candidateMomentsGo(x, mu, v, s, out)
		return
	}
	var r [len(searchRatios)]float32
	for c, sc := range s {
		r[c] = 1 / sc // as moments
	}
	momentsAVX2(&x[0], &mu64[0], &v64[0], len(x), s, &r, out)
}
