package quant

import "math"

// Fused forms for the two layouts that carry most of a model's bytes: they
// compute the parameters of a row (int8, channel axis 0) or of a block (int4)
// and quantize it while it is still in cache, so a tensor streamed from
// memory is read once instead of twice. Outputs are identical to the
// separate calls.

// QuantizeRowsInt8 is ChannelParamsInt8 followed by QuantizeInt8 for channel
// axis 0 of a tensor whose every row (channel) holds cols consecutive
// elements: shape [len(src)/cols, …] with cols the product of the other
// dimensions. It works on any range of whole rows with the matching slices of
// scales and zeroPoints (one per row).
//
// It returns a *ValueError (NotFinite) if src holds NaN or ±Inf; the outputs
// are then unspecified.
func QuantizeRowsInt8(dst []int8, scales []float32, zeroPoints []int64, src []float32, cols int, symmetric bool) error {
	if cols <= 0 || len(src)%cols != 0 {
		panicf("QuantizeRowsInt8: %d elements are not whole rows of %d", len(src), cols)
	}
	rows := len(src) / cols
	if len(dst) != len(src) || len(scales) != rows || len(zeroPoints) != rows {
		panicf("QuantizeRowsInt8: %d rows of %d, len(dst) = %d, len(scales) = %d, len(zeroPoints) = %d",
			rows, cols, len(dst), len(scales), len(zeroPoints))
	}
	if rows == 0 {
		return nil
	}
	qmin, qmax := Int8Range(symmetric)
	lo, hi := float32(qmin), float32(qmax)
	var bad atomicCount
	parallelFor(len(src), cols, func(a, b int) {
		first, last := a/cols, b/cols
		row := func(r int) []float32 { return src[r*cols : (r+1)*cols] }
		// The extrema of row r+1 are gathered while row r is quantized:
		// the loads of the next row then overlap the arithmetic of this
		// one, instead of a separate pass that waits on memory.
		var ext extrema
		ext.measure(row(first), symmetric)
		n := 0
		var t uint32
		for r := first; r < last; r++ {
			scale, zp, ok := ext.params(symmetric)
			if !ok {
				n++
				if r+1 < last {
					ext.measure(row(r+1), symmetric)
				}
				continue
			}
			scales[r], zeroPoints[r] = scale, zp
			out, in := dst[r*cols:(r+1)*cols], row(r)
			if r+1 == last {
				quantizeRunInt8(out, in, scale, float32(zp), lo, hi)
				continue
			}
			// In chunks, reading ahead of the next row (see stream.go).
			next := row(r + 1)
			ext = extrema{kmin: math.MaxInt32, kmax: math.MinInt32}
			for a := 0; a < cols; a += streamChunk {
				b := min(a+streamChunk, cols)
				t |= touch(src, (r+1)*cols+a+touchDistance, (r+1)*cols+b+touchDistance)
				if symmetric {
					ext.absMax = max(ext.absMax, quantizeRunInt8AbsMax(out[a:b], in[a:b], scale, lo, hi, next[a:b]))
					continue
				}
				kmin, kmax := quantizeRunInt8MinMax(out[a:b], in[a:b], scale, float32(zp), lo, hi, next[a:b])
				ext.kmin, ext.kmax = min(ext.kmin, kmin), max(ext.kmax, kmax)
			}
		}
		bad.add(n)
		touched.Store(t)
	})
	if bad.load() > 0 {
		return CheckFinite(src)
	}
	return nil
}

// quantizeRunInt8AbsMax is quantizeRunInt8 with zero point 0 that also
// returns absMaxBits(next), len(next) = len(src).
func quantizeRunInt8AbsMax(dst []int8, src []float32, scale, lo, hi float32, next []float32) (m uint32) {
	done, m := quantizeRunInt8Vec(dst, src, next, scale, 0, lo, hi)
	dst, src, next = dst[done:len(src)], src[done:], next[done:len(src)]
	r, k := reciprocal(scale, 0)
	g := newGrid(lo, hi)
	for i, x := range src {
		w := math.Float32bits(float32(x*r) + k)
		dst[i] = int8(w >> gridShift)
		if g.exact(w) {
			dst[i] = quantizeExact(x, scale, 0, lo, hi)
		}
		m = max(m, math.Float32bits(next[i])&f32AbsMask)
	}
	return m
}

// quantizeRunInt8MinMax is quantizeRunInt8 that also returns
// keyMinMax(next), len(next) = len(src) > 0.
func quantizeRunInt8MinMax(dst []int8, src []float32, scale, zp, lo, hi float32, next []float32) (kmin, kmax int32) {
	r, k := reciprocal(scale, zp)
	g := newGrid(lo, hi)
	dst, next = dst[:len(src)], next[:len(src)]
	kmin, kmax = math.MaxInt32, math.MinInt32
	for i, x := range src {
		w := math.Float32bits(float32(x*r) + k)
		dst[i] = int8(w >> gridShift)
		if g.exact(w) {
			dst[i] = quantizeExact(x, scale, zp, lo, hi)
		}
		kn := key(next[i])
		kmin, kmax = min(kmin, kn), max(kmax, kn)
	}
	return kmin, kmax
}

// QuantizeBlocksInt4 is BlockParamsInt4 followed by QuantizeInt4, block by
// block. It returns the same counts and errors as BlockParamsInt4; after an
// error the outputs are unspecified.
func QuantizeBlocksInt4(dst []byte, scales []uint16, src []float32, cols, blockSize int, clampTiny bool) (clamped int, err error) {
	blocks := checkBlocks("QuantizeBlocksInt4", len(src), cols, blockSize)
	if len(scales) != blocks || len(dst) != len(src)/2 {
		panicf("QuantizeBlocksInt4: %d blocks, len(scales) = %d, len(src) = %d, len(dst) = %d (want %d)",
			blocks, len(scales), len(src), len(dst), len(src)/2)
	}
	var nTiny, nBad atomicCount
	// Blocks go in groups of up to 2 KiB of input: first the scales of the
	// group (independent of each other, so their latency overlaps), then
	// the quantization, while the group is still in the L1 cache.
	group := min(maxVecBlocks, max(1, 512/blockSize))
	parallelFor(len(src), blockSize, func(lo, hi int) {
		t, bad := 0, 0
		var ms [maxVecBlocks]uint32
		for g := lo / blockSize; g < hi/blockSize; g += group {
			end := min(g+group, hi/blockSize)
			a, b := g*blockSize, end*blockSize
			if !absMaxBlocksVec(ms[:end-g], src[a:b], blockSize) {
				for k := g; k < end; k++ {
					ms[k-g] = absMaxBits(src[k*blockSize : (k+1)*blockSize])
				}
			}
			for k := g; k < end; k++ {
				h, clamped, ok := absMaxScale(ms[k-g], clampTiny)
				scales[k] = h
				if !ok {
					bad++
				} else if clamped {
					t++
				}
			}
			quantizeBlocks(dst[a/2:b/2], src[a:b], scales[g:end], blockSize)
		}
		nTiny.add(t)
		nBad.add(bad)
	})
	if nBad.load() > 0 {
		return 0, blockError(scales, src, blockSize)
	}
	return nTiny.load(), nil
}
