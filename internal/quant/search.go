package quant

import (
	"math"
	"sync"
)

// Scale search for int4 blocks.
//
// Min-max gives each block the scale max|x|/7: no element is clipped, but
// the rounding step is as coarse as the largest element allows. A slightly
// smaller scale clips the few largest elements and rounds every other one
// more finely; over a block the squared error is usually lower. The search
// tries candidate scales max|x|·r/7 for r in searchRatios (min-max first),
// each as it will be stored (bfloat16 then float16 rounding, the 2^-14
// clamp), keeps the one of lowest error (data-free: as ranked by a model,
// see searchBlock), then takes one least-squares step
// from it, s* = Σx·q/Σq² with q the kept candidate's values, and keeps s*
// if it does better. The scale written is always one of those candidates,
// and the block is then quantized with it by the same exact kernel as
// min-max (quantizeBlock), so the stored values are exactly
// clip(rint(x/s)) for the stored s.
//
// Two objectives:
//
//   - data-free (stats nil): the block's squared weight error Σ(s·q−x)²;
//   - calibrated (stats set): the expected squared error that the block adds
//     to the op's output, E[(Δw·x)²] for an input x with per-column mean μ
//     and variance v, modelled as (Σ Δw_j·μ_j)² + Σ Δw_j²·v_j (the mean term
//     exactly, the covariance by its diagonal). A row's blocks all add to
//     the same output element, so their mean terms add up before squaring:
//     blocks are searched in row order, each against the mean error S the
//     earlier blocks of the row left, minimising (S + Σ_{j∈block} Δw_j μ_j)²
//     + Σ Δw_j² v_j. If a row's total expected error comes out above
//     min-max's, the row is quantized with min-max instead.
//
// Candidate errors are evaluated with q = clip(rint(x·(1/s))), which may
// differ from the stored clip(rint(x/s)) for an element within a few ulps of
// a rounding boundary, where both choices have the same error to within
// 2^-12·s: the ranking is unaffected in any way that matters, and the output
// is deterministic (each block's or row's search reads nothing else).

// searchRatios are the candidate scales as fractions of min-max's, from
// 1.00 (min-max) down to 0.72 in steps of 0.04.
var searchRatios = [...]float32{1.00, 0.96, 0.92, 0.88, 0.84, 0.80, 0.76, 0.72}

// ChannelStats describes the input activations of a weight, per input
// column (a FULLY_CONNECTED weight [out, in] has in of them): Mean is E[x_j]
// and Var is E[x_j²] − E[x_j]² (never negative).
type ChannelStats struct {
	Mean, Var []float32
}

// RowErrors are a row's squared weight errors with min-max scales and with
// the scales chosen, Σ(s·q−x)² over the row, and (calibrated only) the
// expected squared output errors of both under the statistics.
type RowErrors struct {
	MinMax, Chosen       float64
	OutMinMax, OutChosen float64
}

// SearchBlocksInt4 is QuantizeBlocksInt4 with searched scales (see above):
// same layout, same errors, same clamp (a block whose min-max scale is
// clamped or refused keeps it; no candidate below 2^-14 is tried). stats,
// when not nil, holds cols entries per field and makes the search minimise
// the expected output error. rowErrs, when not nil, receives one entry per
// row (len(src)/cols); measuring them costs extra passes and changes no
// output byte. The output does not depend on how many workers run.
func SearchBlocksInt4(dst []byte, scales []uint16, src []float32, cols, blockSize int, clampTiny bool, stats *ChannelStats, rowErrs []RowErrors) (clamped int, err error) {
	blocks := checkBlocks("SearchBlocksInt4", len(src), cols, blockSize)
	if len(scales) != blocks || len(dst) != len(src)/2 {
		panicf("SearchBlocksInt4: %d blocks, len(scales) = %d, len(src) = %d, len(dst) = %d (want %d)",
			blocks, len(scales), len(src), len(dst), len(src)/2)
	}
	if stats != nil && (len(stats.Mean) != cols || len(stats.Var) != cols) {
		panicf("SearchBlocksInt4: %d columns, len(stats.Mean) = %d, len(stats.Var) = %d", cols, len(stats.Mean), len(stats.Var))
	}
	if rowErrs != nil && len(rowErrs) != len(src)/cols {
		panicf("SearchBlocksInt4: %d rows, len(rowErrs) = %d", len(src)/cols, len(rowErrs))
	}
	var nTiny, nBad atomicCount
	parallelFor(len(src), cols, func(lo, hi int) {
		t, bad := 0, 0
		var big []float32 // scratch of the data-free search, one per part
		var st64 statsF64 // the statistics as float64 (AVX2 calibrated search)
		if stats != nil && useAVX2 {
			sp := statsPool.Get().(*[]float64)
			defer statsPool.Put(sp)
			if cap(*sp) < 2*cols {
				*sp = make([]float64, 2*cols)
			}
			st64 = statsF64{mean: (*sp)[:cols], v: (*sp)[cols : 2*cols]}
			for j := range cols {
				st64.mean[j], st64.v[j] = float64(stats.Mean[j]), float64(stats.Var[j])
			}
		}
		if stats == nil {
			bp := bigPool.Get().(*[]float32)
			defer bigPool.Put(bp)
			n := searchGroup(blockSize) * blockSize
			if cap(*bp) < n {
				*bp = make([]float32, n)
			}
			big = (*bp)[:n]
		}
		for r := lo / cols; r < hi/cols; r++ {
			x := src[r*cols : (r+1)*cols]
			sc := scales[r*cols/blockSize : (r+1)*cols/blockSize]
			out := dst[r*cols/2 : (r+1)*cols/2]
			var e RowErrors
			var rt, rb int
			if stats == nil {
				e, rt, rb = searchRowFree(out, sc, x, blockSize, clampTiny, rowErrs != nil, big)
			} else {
				e, rt, rb = searchRowCalibrated(out, sc, x, blockSize, clampTiny, stats, st64)
			}
			t += rt
			bad += rb
			if rowErrs != nil {
				rowErrs[r] = e
			}
		}
		nTiny.add(t)
		nBad.add(bad)
	})
	if nBad.load() > 0 {
		return 0, blockError(scales, src, blockSize)
	}
	return nTiny.load(), nil
}

// searchRowFree searches each block of one row for its lowest squared error.
// report asks for the row's errors (e); they cost extra passes and do not
// change the choice. big is scratch space of blockSize elements.
//
// Blocks go in groups, stage by stage: the largest magnitudes, the
// searches, the quantization. The blocks of a stage are independent, so
// the long chain of dependent steps of one block's search overlaps with
// the next block's instead of running alone.
func searchRowFree(dst []byte, scales []uint16, src []float32, blockSize int, clampTiny, report bool, big []float32) (e RowErrors, tiny, bad int) {
	var ms [maxSearchGroup]uint32
	var h0s, hs [maxSearchGroup]uint16
	group := searchGroup(blockSize)
	block := func(k int) []float32 { return src[k*blockSize : (k+1)*blockSize] }
	for g := 0; g < len(scales); g += group {
		n := min(group, len(scales)-g)
		if !absMaxBlocksVec(ms[:n], src[g*blockSize:(g+n)*blockSize], blockSize) {
			for i := range n {
				ms[i] = absMaxBits(block(g + i))
			}
		}
		for i := range n {
			h0, clamped, ok := absMaxScale(ms[i], clampTiny)
			h0s[i], hs[i] = h0, h0
			switch {
			case !ok:
				bad++ // h0 is not a normal float16: not searched
			case clamped:
				tiny++
			}
		}
		searchBlocks(&hs, src[g*blockSize:(g+n)*blockSize], blockSize, n, &ms, big)
		copy(scales[g:g+n], hs[:n])
		if report {
			for i := range n {
				x, h0, h := block(g+i), h0s[i], hs[i]
				if h0 >= 0x7c00 {
					continue // not ok
				}
				e0 := sqErr(x, Float32FromBits16(h0), nil) // min-max never clips
				eh := e0
				if h != h0 {
					s := Float32FromBits16(h)
					eh = sqErr(x, s, bigElements(x, 7.49*s, big))
				}
				e.MinMax += float64(e0)
				e.Chosen += float64(eh)
			}
		}
		if bad > 0 {
			continue // the output is not used
		}
		quantizeBlocks(dst[g*blockSize/2:(g+n)*blockSize/2], src[g*blockSize:(g+n)*blockSize], scales[g:g+n], blockSize)
	}
	return e, tiny, bad
}

// bigPool holds the data-free search's scratch between calls: allocated per
// call (a part of a 1 MiB chunk), it was garbage enough to raise the peak
// memory of a 4 GB model by 14 MiB.
var bigPool = sync.Pool{New: func() any { return new([]float32) }}

// statsF64 are a weight's ChannelStats as float64 (exact), as the AVX2
// calibrated search reads them.
type statsF64 struct{ mean, v []float64 }

// statsPool holds the statsF64 of the calibrated search between calls.
var statsPool = sync.Pool{New: func() any { return new([]float64) }}

// maxSearchGroup is the most blocks searchRowFree takes at a time.
const maxSearchGroup = 16

// searchGroup is how many blocks searchRowFree takes at a time: up to 2 KiB
// of input, which stays in the L1 cache from one stage to the next, but at
// least 8 with AVX2, whose sums take 8 blocks at a time (one per lane).
func searchGroup(blockSize int) int {
	if useAVX2 {
		return min(maxSearchGroup, max(8, 512/blockSize))
	}
	return max(1, min(maxSearchGroup, 512/blockSize))
}

// maxFloat16 is the largest finite float16.
const maxFloat16 = 65504

// candidate is the stored form of the scale bound·r/7 (see stored).
func candidate(bound, r float32) uint16 { return stored(float32(bound*r) / 7) }

// stored is the float16 bits of scale s as the runtime will read it (s
// rounded to bfloat16, then to float16), or 0 when that is not a positive
// normal float16.
func stored(s float32) uint16 {
	h := Float16Bits(BFloat16Round(s))
	if h < 0x400 || h >= 0x7c00 {
		return 0
	}
	return h
}

// searchBlock returns the best stored scale for the block: absMax is its
// largest magnitude, h0 its min-max scale (a positive normal float16). big
// is scratch space of len(x) elements.
//
// Evaluating all candidates exactly would cost a pass over the block each
// (about 8 times min-max's work). Instead a model ranks them: the elements
// that some candidate may clip (|x| > 7.49·the smallest candidate scale, a
// few per block) are evaluated exactly for every candidate, and every other
// element is counted with the mean rounding error of a uniform quantizer,
// s²/12. One pass over the block then quantizes it with the model's best
// scale s_m (rounding without clipping, no branch; the big elements are
// corrected afterwards) and gathers Σx·q and Σq². The least-squares step
// s* = Σx·q/Σq² needs no pass of its own: with q held, the error changes by
// ΔE = (s − s_m)·((s + s_m)·Σq² − 2·Σx·q), exactly, for the stored s*; if
// that is negative s* is kept, and requantizing with it can only lower the
// error further. On gaussian and heavy-tailed weights this keeps about 90%
// of the exhaustive search's gain in dB (search_test.go) at about a fifth
// of its cost.
func searchBlock(x []float32, absMax float32, h0 uint16, big []float32) uint16 {
	cd, bc, big := searchModel(x, absMax, h0, big)
	best := h0
	if bc > 0 {
		best = bf16ToFloat16(cd.s[bc])
	}
	c, g := lsSums(x, cd.r[bc])
	return lsStep(best, cd.s[bc], cd.r[bc], c, g, big)
}

// searchModel is the first part of searchBlock: the candidates, the big
// elements (in big[:0]) and the index of the candidate the model ranks
// first.
func searchModel(x []float32, absMax float32, h0 uint16, big []float32) (cd candidates, bc int, _ []float32) {
	cd.set(absMax, h0)
	ss, rs := &cd.s, &cd.r
	big = bigElements(x, 7.49*ss[len(ss)-1], big)
	rest := float32(len(x)-len(big)) / 12
	// The model of each candidate: the big elements' exact errors in
	// order, then the rest. All candidates at once, one accumulator each,
	// so that the few big elements are a single loop.
	var e0, e1, e2, e3, e4, e5, e6, e7 float32
	for _, v := range big {
		// By symmetry (rint rounds ties to even), v's error is that of
		// |v| clipped to 7 if v > 0, to 8 if v < 0 (v is not 0).
		a := math.Float32frombits(math.Float32bits(v) & f32AbsMask)
		lim := roundMagicBits + 7 + math.Float32bits(v)>>31
		e0 += modelTerm(a, lim, rs[0], ss[0])
		e1 += modelTerm(a, lim, rs[1], ss[1])
		e2 += modelTerm(a, lim, rs[2], ss[2])
		e3 += modelTerm(a, lim, rs[3], ss[3])
		e4 += modelTerm(a, lim, rs[4], ss[4])
		e5 += modelTerm(a, lim, rs[5], ss[5])
		e6 += modelTerm(a, lim, rs[6], ss[6])
		e7 += modelTerm(a, lim, rs[7], ss[7])
	}
	// The first lowest: each model value (not negative, so its bits order
	// as it does) goes with its index in the low bits of a key, and the
	// smallest key wins, by conditional moves rather than branches that
	// mispredict. Candidates repeated as padding (see candidates.set) get
	// the same value as their original and are never chosen over it.
	key := func(e float32, c int) uint64 {
		s := ss[c]
		return uint64(math.Float32bits(e+float32(float32(rest*s)*s)))<<3 | uint64(c)
	}
	bc = int(min(key(e0, 0), key(e1, 1), key(e2, 2), key(e3, 3),
		key(e4, 4), key(e5, 5), key(e6, 6), key(e7, 7)) & 7)
	return cd, bc, big
}

// lsStep is the end of searchBlock: best is the model's choice (scale sm,
// reciprocal r), c and g are lsSums of the block under r, big holds every
// element that clips under r, in order (others may be there too: they add
// exactly zero). It returns the stored scale kept, best or the stored s*.
func lsStep(best uint16, sm, r, c, g float32, big []float32) uint16 {
	sxq, sqq := float64(c), float64(g)
	// The sums counted q = rint(x·r) unclipped: correct the clipped ones.
	for _, v := range big {
		t := float32(v * r)
		q, u := q4(t), rint32(t)
		sxq += float64(v * (q - u))
		sqq += float64(q*q) - float64(u*u)
	}
	if sqq > 0 && sxq > 0 {
		// stored(s*), without its conversions: a bfloat16 in the float16
		// normal range is that float16.
		if b := BFloat16Round(float32(sxq / sqq)); b >= MinNormalFloat16 && b <= maxFloat16 {
			if h := bf16ToFloat16(b); h != best {
				s := float64(b)
				if (s-float64(sm))*(float64((s+float64(sm))*sqq)-float64(2*sxq)) < 0 {
					best = h
				}
			}
		}
	}
	return best
}

// searchBlocksGo is searchBlocks in Go: each block k of the n in x whose
// min-max scale hs[k] is a positive normal float16 gets its searched scale
// there (ms[k] is its largest magnitude, as bits).
func searchBlocksGo(hs *[maxSearchGroup]uint16, x []float32, blockSize, n int, ms *[maxSearchGroup]uint32, big []float32) {
	for k := range n {
		if h0 := hs[k]; h0 >= 0x400 && h0 < 0x7c00 {
			hs[k] = searchBlock(x[k*blockSize:(k+1)*blockSize], math.Float32frombits(ms[k]), h0, big[:blockSize])
		}
	}
}

// bf16ToFloat16 is Float16Bits(b) for a bfloat16 b in the float16 normal
// range (exact: the exponent is rebiased, the mantissa kept).
func bf16ToFloat16(b float32) uint16 {
	return uint16(math.Float32bits(b)>>13 - (127-15)<<10)
}

// candidates are the candidate scales of a block, s, and their
// reciprocals, r.
type candidates struct{ s, r [len(searchRatios)]float32 }

// set makes cd the candidates of a block (largest magnitude absMax,
// min-max scale h0, a positive normal float16) in decreasing order,
// min-max's first: the stored values of absMax·r/7 for r in searchRatios,
// leaving out those that are not normal float16 values. When some are left
// out the last one kept fills the remaining places.
func (cd *candidates) set(absMax float32, h0 uint16) {
	bound := max(absMax, scaleFloor)
	ss := &cd.s
	ss[0] = Float32FromBits16(h0)
	// A bfloat16 in the float16 normal range is exactly a float16: the
	// stored value is the bfloat16 rounding itself. The candidates
	// decrease with r (every rounding is monotonic) and no two of them are
	// equal (consecutive ratios differ by 4% or more, bfloat16 steps by
	// 0.8% at most), and none is above min-max's, itself a float16: all are
	// kept as soon as the smallest is a normal float16.
	for c := 1; c < len(ss); c++ {
		ss[c] = BFloat16Round(float32(bound*searchRatios[c]) / 7)
	}
	if !(ss[len(ss)-1] >= MinNormalFloat16 && ss[1] <= maxFloat16) {
		n := 1
		for _, r := range searchRatios[1:] {
			s := BFloat16Round(float32(bound*r) / 7)
			if s < MinNormalFloat16 || s > maxFloat16 || s == ss[n-1] {
				continue
			}
			ss[n] = s
			n++
		}
		for c := n; c < len(ss); c++ {
			ss[c] = ss[n-1]
		}
	}
	for c, s := range ss {
		cd.r[c] = recipBF16(s)
	}
}

// recipBF16 is 1/s for s a positive normal float16 with the precision of a
// bfloat16 (7 mantissa bits, as every candidate scale), without a
// division: 1/s is 1/m, m the mantissa in [1, 2) (from a table), scaled by
// the inverse power of two, which is exact as the result is normal.
func recipBF16(s float32) float32 {
	b := math.Float32bits(s)
	return math.Float32frombits(recipMantissa[b>>16&0x7f] + (127<<23 - b&0x7f800000))
}

// recipMantissa holds the bits of 1/(1 + m/128) for m in [0, 128).
var recipMantissa = func() (t [128]uint32) {
	for m := range t {
		t[m] = math.Float32bits(1 / (1 + float32(float32(m)/128)))
	}
	return t
}()

// lsSums returns Σx·q and Σq² for the block quantized with 1/s = r,
// q = rint(x·r) unclipped (lsStep corrects the clipped elements), in
// float32: c0 sums the even elements' x·q in order, c1 the odd ones', and
// the result is c0+c1 (the same for g0, g1 and q²). The AVX2 kernel sums
// eight blocks at once, one per lane, in this same order.
func lsSums(x []float32, r float32) (c, g float32) {
	var c0, c1, g0, g1 float32
	for ; len(x) >= 32; x = x[32:] { // every block size is a multiple of 32
		in := (*[32]float32)(x)
		for j := 0; j < 32; j += 2 {
			q0, q1 := rint32(float32(in[j]*r)), rint32(float32(in[j+1]*r))
			c0 += float32(in[j] * q0)
			c1 += float32(in[j+1] * q1)
			g0 += float32(q0 * q0)
			g1 += float32(q1 * q1)
		}
	}
	return c0 + c1, g0 + g1
}

// rint32 is rint(t) for |t| < 2^22.
func rint32(t float32) float32 { return float32(t+roundMagic) - roundMagic }

// modelTerm is the squared error, as searchBlock's model counts it, of an
// element of magnitude a under the scale s of reciprocal r, with a·r
// clipped to lim − roundMagicBits (7 or 8): (q − a·r)²·s·s.
func modelTerm(a float32, lim uint32, r, s float32) float32 {
	t := float32(a * r)
	d := math.Float32frombits(min(math.Float32bits(t+roundMagic), lim)) - roundMagic - t
	return float32(float32(float32(d*d)*s) * s)
}

// roundMagicBits is math.Float32bits(roundMagic): t + roundMagic has the
// bits roundMagicBits + rint(t) for |t| < 2^22.
const roundMagicBits = 0x4b400000

// sqErrRound is Σ(s·rint(x/s)−x)², without clipping.
func sqErrRound(x []float32, s float32) float32 {
	r := 1 / s
	var e0, e1, e2, e3 float32
	for ; len(x) >= 4; x = x[4:] {
		t0, t1, t2, t3 := float32(x[0]*r), float32(x[1]*r), float32(x[2]*r), float32(x[3]*r)
		d0, d1, d2, d3 := rint32(t0)-t0, rint32(t1)-t1, rint32(t2)-t2, rint32(t3)-t3
		e0 += float32(d0 * d0)
		e1 += float32(d1 * d1)
		e2 += float32(d2 * d2)
		e3 += float32(d3 * d3)
	}
	for _, v := range x {
		t := float32(v * r)
		d := rint32(t) - t
		e0 += float32(d * d)
	}
	return float32(float32(e0+e1)+float32(e2+e3)) * s * s
}

// clipFix is what clipping adds to sqErrRound's error over the elements
// big (every element that clips under scale s).
func clipFix(s float32, big []float32) (e float32) {
	r := 1 / s
	for _, v := range big {
		t := float32(v * r)
		q, u := q4(t), rint32(t)
		e += float32((q-t)*(q-t)) - float32((u-t)*(u-t))
	}
	return e * s * s
}

// q4 is clip(rint(t), -8, 7) for |t| < 2^22.
func q4(t float32) float32 {
	q := float32(t+roundMagic) - roundMagic
	if q > 7 {
		q = 7
	}
	if q < -8 {
		q = -8
	}
	return q
}

// sqErr is Σ(s·q−x)² over the block, q = clip(rint(x/s)); big must hold
// every element that clips under s (|x| > 7.49·s).
func sqErr(x []float32, s float32, big []float32) float32 {
	if s == 0 { // a zero scale (reference mode): count the whole weight
		var e float32
		for _, v := range x {
			e += float32(v * v)
		}
		return e
	}
	return sqErrRound(x, s) + clipFix(s, big)
}

// bigElements returns the elements of x with |x| > thr (thr >= 0), in
// order, in big[:0], whose length must be at least len(x). Branch free:
// which elements are big is random, and a branch on it mispredicts.
func bigElements(x []float32, thr float32, big []float32) []float32 {
	big = big[:len(x)]
	t := math.Float32bits(thr)
	n := 0
	for _, v := range x {
		big[n] = v
		// For non-negative floats the bits order as the values; a NaN
		// (bits above those of +Inf) counts as big.
		n += int((t - math.Float32bits(v)&f32AbsMask) >> 31)
	}
	return big[:n]
}

// blockMoments are the sums a calibrated block evaluation needs: with
// d = s·q − x, err = Σ v·d² and mean = Σ μ·d (the block's contribution to
// the mean output error); a = Σ μ·q, c = Σ v·q², dd = Σ v·x·q for the
// least-squares step; plain = Σ d².
type blockMoments struct{ err, mean, a, c, dd, plain float64 }

func moments(x, mu, v []float32, s float32) (m blockMoments) {
	r := float32(0) // a zero scale (reference mode) stores zeros
	if s != 0 {
		r = 1 / s
	}
	v, mu = v[:len(x)], mu[:len(x)]
	for j, xj := range x {
		q := q4(float32(xj * r))
		d := float64(float32(q*s) - xj)
		m.err += float64(float64(v[j]) * d * d)
		m.mean += float64(float64(mu[j]) * d)
		m.a += float64(float64(mu[j]) * float64(q))
		m.c += float64(float64(v[j]) * float64(q) * float64(q))
		m.dd += float64(float64(v[j]) * float64(xj) * float64(q))
		m.plain += float64(d * d)
	}
	return m
}

// objective is the expected squared output error of the row so far when a
// block with moments m follows blocks that left mean error carry.
func (m blockMoments) objective(carry float64) float64 {
	t := carry + m.mean
	return float64(t*t) + m.err
}

// candMoments are the moments of a block under its 8 candidate scales,
// candidate c at index c of each sum.
type candMoments struct{ err, mean, plain, a, c, dd [len(searchRatios)]float64 }

// at is candidate c's moments.
func (cm *candMoments) at(c int) blockMoments {
	return blockMoments{err: cm.err[c], mean: cm.mean[c], a: cm.a[c], c: cm.c[c], dd: cm.dd[c], plain: cm.plain[c]}
}

// candidateMomentsGo is candidateMoments in Go: moments of each candidate.
func candidateMomentsGo(x, mu, v []float32, s *[len(searchRatios)]float32, out *candMoments) {
	for c, sc := range s {
		m := moments(x, mu, v, sc)
		out.err[c], out.mean[c], out.plain[c] = m.err, m.mean, m.plain
		out.a[c], out.c[c], out.dd[c] = m.a, m.c, m.dd
	}
}

// calibCandidates returns the scales the calibrated search evaluates for a
// block (largest magnitude absMax, min-max scale h0 a positive normal
// float16), in order: h0, then the stored candidates of searchRatios that
// are normal float16 values and differ from the one before. The rest of hs
// repeats the last one; n counts the distinct ones.
func calibCandidates(hs *[len(searchRatios)]uint16, absMax float32, h0 uint16) (n int) {
	bound := max(absMax, scaleFloor)
	hs[0], n = h0, 1
	for _, r := range searchRatios[1:] {
		if h := candidate(bound, r); h != 0 && h != hs[n-1] {
			hs[n] = h
			n++
		}
	}
	for c := n; c < len(hs); c++ {
		hs[c] = hs[n-1]
	}
	return n
}

// searchRowCalibrated searches the blocks of one row in order for the
// lowest expected output error, then falls back to min-max for the whole
// row if that came out worse.
//
// st64 holds st as float64 for the AVX2 kernel (empty without AVX2).
func searchRowCalibrated(dst []byte, scales []uint16, src []float32, blockSize int, clampTiny bool, st *ChannelStats, st64 statsF64) (e RowErrors, tiny, bad int) {
	var carry, carry0, err0, errC float64
	for k := range scales {
		a, b := k*blockSize, (k+1)*blockSize
		x, mu, v := src[a:b], st.Mean[a:b], st.Var[a:b]
		h0, clamped, ok := blockScale(x, clampTiny)
		scales[k] = h0
		switch {
		case !ok:
			bad++
			continue
		case clamped:
			tiny++
		}
		var m0, mb blockMoments
		var best uint16
		if h0 >= 0x400 {
			var mu64, v64 []float64
			if st64.mean != nil {
				mu64, v64 = st64.mean[a:b], st64.v[a:b]
			}
			best, m0, mb = searchBlockCalibrated(x, mu, v, mu64, v64, h0, carry)
		} else {
			m0 = moments(x, mu, v, Float32FromBits16(h0))
			best, mb = h0, m0
		}
		carry0 += m0.mean
		err0 += m0.err
		e.MinMax += m0.plain
		scales[k] = best
		carry += mb.mean
		errC += mb.err
		e.Chosen += mb.plain
	}
	e.OutMinMax, e.OutChosen = float64(carry0*carry0)+err0, float64(carry*carry)+errC
	if bad == 0 && e.OutChosen > e.OutMinMax {
		for k := range scales {
			scales[k], _, _ = blockScale(src[k*blockSize:(k+1)*blockSize], clampTiny)
		}
		e.Chosen, e.OutChosen = e.MinMax, e.OutMinMax
	}
	if bad == 0 {
		for k, h := range scales {
			a, b := k*blockSize, (k+1)*blockSize
			quantizeBlock(dst[a/2:b/2], src[a:b], h)
		}
	}
	return e, tiny, bad
}

// searchBlockCalibrated is searchBlock for the calibrated objective: it
// returns the scale chosen, the moments of min-max's scale h0 (err, mean
// and plain) and those of the scale chosen. The candidates are evaluated
// all at once (candidateMoments), the first of lowest objective kept; then
// one least-squares step from it.
func searchBlockCalibrated(x, mu, v []float32, mu64, v64 []float64, h0 uint16, carry float64) (best uint16, m0, mb blockMoments) {
	var hs [len(searchRatios)]uint16
	var ss [len(searchRatios)]float32
	n := calibCandidates(&hs, math.Float32frombits(absMaxBits(x)), h0)
	for c, h := range hs {
		ss[c] = Float32FromBits16(h)
	}
	var cm candMoments
	candidateMoments(x, mu, v, mu64, v64, &ss, &cm)
	m0 = cm.at(0)
	best, mb = h0, m0
	for c := 1; c < n; c++ {
		if m := cm.at(c); m.objective(carry) < mb.objective(carry) {
			best, mb = hs[c], m
		}
	}
	// Least squares in s for the kept q: minimise (carry − Σμx + s·a)² +
	// Σ v·(s·q − x)², whose derivative vanishes at
	// s = (dd − a·(carry − Σμx)) / (a² + c). Σμx = a·s_best − mean.
	sb := float64(Float32FromBits16(best))
	mux := float64(mb.a*sb) - mb.mean
	if den := float64(mb.a*mb.a) + mb.c; den > 0 {
		s := (mb.dd - float64(mb.a*(carry-mux))) / den
		if s > 0 && s < 65504 {
			if h := stored(float32(s)); h != 0 && h != best {
				if m := moments(x, mu, v, Float32FromBits16(h)); m.objective(carry) < mb.objective(carry) {
					best, mb = h, m
				}
			}
		}
	}
	return best, m0, mb
}
