package quant

import "math"

// checkBlocks validates the blockwise geometry: n elements in rows of cols,
// blocks of blockSize along each row.
func checkBlocks(fn string, n, cols, blockSize int) (blocks int) {
	if blockSize <= 0 || blockSize%32 != 0 {
		panicf("%s: block size %d is not a positive multiple of 32", fn, blockSize)
	}
	if cols <= 0 || cols%blockSize != 0 {
		panicf("%s: block size %d does not divide the last dimension %d", fn, blockSize, cols)
	}
	if n%cols != 0 {
		panicf("%s: %d elements are not whole rows of %d", fn, n, cols)
	}
	return n / blockSize
}

// BlockParamsInt4 computes the scale of every int4 block: src is a row-major
// tensor whose last dimension is cols, cut into blocks of blockSize
// consecutive elements along it (blockSize a multiple of 32 dividing cols).
// scales[k] (len(src)/blockSize of them) is the float16 encoding of block k's
// scale, so row r's scales are scales[r·cols/blockSize : (r+1)·cols/blockSize].
//
// The scale is max(max|x|, 1e-9)/7 in float32, rounded to the nearest
// bfloat16, then converted to float16 (both ties to even): the value the
// runtime computes with. Without clampTiny the result is the reference
// quantizer's, including a zero or subnormal float16 scale for blocks with
// max|x| below about 4.3e-4, which the XNNPACK runtime refuses (TinyScales
// counts them). With clampTiny such a block gets the smallest normal
// float16, 2^-14, instead (the same as clamping the float32 scale to 2^-14
// before rounding); clamped counts those blocks (0 without clampTiny).
//
// It returns a *ValueError for NaN or ±Inf in src (NotFinite) or for blocks
// whose scale does not fit in float16 (ScaleOverflow, max|x| ≳ 457,000).
//
// Streaming: blocks never cross rows, so any range of whole rows can be
// processed on its own with the matching range of scales.
func BlockParamsInt4(scales []uint16, src []float32, cols, blockSize int, clampTiny bool) (clamped int, err error) {
	blocks := checkBlocks("BlockParamsInt4", len(src), cols, blockSize)
	if len(scales) != blocks {
		panicf("BlockParamsInt4: %d blocks, len(scales) = %d", blocks, len(scales))
	}
	var nTiny, nBad atomicCount
	parallelFor(len(src), blockSize, func(lo, hi int) {
		t, bad := 0, 0
		for k := lo / blockSize; k < hi/blockSize; k++ {
			h, clamped, ok := blockScale(src[k*blockSize:(k+1)*blockSize], clampTiny)
			scales[k] = h
			if !ok {
				bad++
			} else if clamped {
				t++
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

// blockScale returns the float16 scale of one block; clamped reports that
// clampTiny replaced a zero or subnormal scale by 2^-14; ok is false for a
// non-finite block (scale NaN) or a scale that overflows float16 (scale Inf).
func blockScale(blk []float32, clampTiny bool) (h uint16, clamped, ok bool) {
	return absMaxScale(absMaxBits(blk), clampTiny)
}

// absMaxScale is blockScale for a block whose absMaxBits is m.
func absMaxScale(m uint32, clampTiny bool) (h uint16, clamped, ok bool) {
	if m >= f32Inf {
		return 0x7e00, false, false
	}
	bound := max(math.Float32frombits(m), scaleFloor)
	h = Float16Bits(BFloat16Round(bound / 7))
	switch {
	case h >= 0x7c00:
		return h, false, false
	case h < 0x400 && clampTiny: // zero or subnormal
		return 0x400, true, true
	}
	return h, false, true
}

// TinyScales counts the float16 scales that are zero or subnormal: the ones
// the XNNPACK runtime refuses, which BlockParamsInt4 leaves in place when
// not asked to clamp them (reference behaviour).
func TinyScales(scales []uint16) (n int) {
	for _, h := range scales {
		if h&0x7c00 == 0 {
			n++
		}
	}
	return n
}

// blockError builds the error for blocks whose scale came out non-finite:
// NotFinite if src holds NaN or Inf, else ScaleOverflow.
func blockError(scales []uint16, src []float32, blockSize int) error {
	if err := CheckFinite(src); err != nil {
		return err
	}
	e := &ValueError{Kind: ScaleOverflow}
	for k, h := range scales {
		if h&0x7fff == 0x7c00 {
			if e.Count == 0 {
				e.First = k * blockSize
				for _, x := range src[e.First : e.First+blockSize] {
					e.Value = max(e.Value, abs32(x))
				}
			}
			e.Count++
		}
	}
	return e
}

// QuantizeInt4 writes q = clip(rint(x/s), -8, 7) for every element, s being
// the float32 value of its block's float16 scale, packed two per byte: element
// 2k in the low nibble of dst[k], 2k+1 in the high one, as 4-bit two's
// complement. len(dst) = len(src)/2 (blocks hold an even count).
//
// A zero scale (reference behaviour for all-zero blocks without clampTiny)
// gives x/0: 7 for x > 0, -8 for x < 0 and 0 for x = 0, whose 0/0 is NaN in
// the reference and becomes 0 on common platforms.
// src should be finite (BlockParamsInt4 checks it); a NaN gives an
// unspecified nibble.
func QuantizeInt4(dst []byte, src []float32, cols, blockSize int, scales []uint16) {
	blocks := checkBlocks("QuantizeInt4", len(src), cols, blockSize)
	if len(scales) != blocks || len(dst) != len(src)/2 {
		panicf("QuantizeInt4: %d blocks, len(scales) = %d, len(src) = %d, len(dst) = %d (want %d)",
			blocks, len(scales), len(src), len(dst), len(src)/2)
	}
	chunk := blockSize * max(1, streamChunk/blockSize) // see stream.go
	parallelFor(len(src), blockSize, func(lo, hi int) {
		var t uint32
		for ; lo < hi; lo += chunk {
			e := min(lo+chunk, hi)
			t |= touch(src, lo+touchDistance, e+touchDistance)
			quantizeBlocks(dst[lo/2:e/2], src[lo:e], scales[lo/blockSize:e/blockSize], blockSize)
		}
		touched.Store(t)
	})
}

// quantizeBlocks quantizes consecutive blocks against their float16
// scales, up to maxVecBlocks at a time through the vector kernel.
func quantizeBlocks(dst []byte, src []float32, scales []uint16, blockSize int) {
	for len(scales) > 0 {
		n := min(len(scales), maxVecBlocks)
		if !quantizeBlocksVec(dst, src, scales[:n], blockSize) {
			for k := range n {
				a, b := k*blockSize, (k+1)*blockSize
				quantizeBlock(dst[a/2:b/2], src[a:b], scales[k])
			}
		}
		dst, src, scales = dst[n*blockSize/2:], src[n*blockSize:], scales[n:]
	}
}

// quantizeBlock quantizes one block against its float16 scale h.
func quantizeBlock(dst []byte, src []float32, h uint16) {
	if quantizeBlocksVec(dst, src, []uint16{h}, len(src)) {
		return
	}
	s := Float32FromBits16(h)
	if s == 0 {
		quantizeZeroScaleInt4(dst, src)
		return
	}
	quantizeBlockInt4(dst, src, s)
}

// quantizeBlockInt4 works in groups of 32 elements (every block size is a
// multiple of 32) through fixed-size array views, so the inner loop has no
// bounds checks. It quantizes by the reciprocal of s; a pair with an element
// near a rounding boundary or beyond the clip range is recomputed exactly
// (see reciprocal.go).
func quantizeBlockInt4(dst []byte, src []float32, s float32) {
	r, k := reciprocal(s, 0)
	g := newGrid(-8, 7)
	for len(src) >= 32 && len(dst) >= 16 {
		in, out := (*[32]float32)(src), (*[16]byte)(dst)
		for j := range out {
			x0, x1 := in[2*j], in[2*j+1]
			w0 := math.Float32bits(float32(x0*r) + k)
			w1 := math.Float32bits(float32(x1*r) + k)
			out[j] = byte(w0>>gridShift)&0xf | byte(w1>>gridShift)<<4
			if g.exact(w0) || g.exact(w1) {
				out[j] = byte(quantizeExact(x0, s, 0, -8, 7))&0xf | byte(quantizeExact(x1, s, 0, -8, 7))<<4
			}
		}
		src, dst = src[32:], dst[16:]
	}
}

func quantizeZeroScaleInt4(dst []byte, src []float32) {
	nib := func(x float32) byte {
		switch {
		case x > 0:
			return 7
		case x < 0:
			return 0x8 // -8
		}
		return 0
	}
	for k := range dst {
		dst[k] = nib(src[2*k]) | nib(src[2*k+1])<<4
	}
}

// DequantizeInt4 writes x = float32(q) · s for the packed int4 values of src
// (layout as QuantizeInt4 writes it), s being the block's float16 scale.
func DequantizeInt4(dst []float32, src []byte, cols, blockSize int, scales []uint16) {
	blocks := checkBlocks("DequantizeInt4", len(dst), cols, blockSize)
	if len(scales) != blocks || len(src) != len(dst)/2 {
		panicf("DequantizeInt4: %d blocks, len(scales) = %d, len(dst) = %d, len(src) = %d (want %d)",
			blocks, len(scales), len(dst), len(src), len(dst)/2)
	}
	parallelFor(len(dst), blockSize, func(lo, hi int) {
		for k := lo / blockSize; k < hi/blockSize; k++ {
			a, b := k*blockSize, (k+1)*blockSize
			dequantizeBlockInt4(dst[a:b], src[a/2:b/2], Float32FromBits16(scales[k]))
		}
	})
}

func dequantizeBlockInt4(dst []float32, src []byte, s float32) {
	dst = dst[:2*len(src)]
	for k, b := range src {
		p := dst[2*k : 2*k+2 : 2*k+2]
		p[0] = float32(int8(b<<4)>>4) * s
		p[1] = float32(int8(b)>>4) * s
	}
}

// PackInt4 packs int4 values (-8..7; higher bits are dropped) two per byte,
// element 2k in the low nibble of dst[k]. len(dst) = ceil(len(src)/2); for an
// odd count the last high nibble is 0.
func PackInt4(dst []byte, src []int8) {
	if len(dst) != (len(src)+1)/2 {
		panicf("PackInt4: len(src) = %d needs len(dst) = %d, have %d", len(src), (len(src)+1)/2, len(dst))
	}
	for k := range len(src) / 2 {
		dst[k] = byte(src[2*k])&0xf | byte(src[2*k+1])<<4
	}
	if len(src)%2 == 1 {
		dst[len(dst)-1] = byte(src[len(src)-1]) & 0xf
	}
}

// UnpackInt4 is the inverse of PackInt4: len(src) = ceil(len(dst)/2).
func UnpackInt4(dst []int8, src []byte) {
	if len(src) != (len(dst)+1)/2 {
		panicf("UnpackInt4: len(dst) = %d needs len(src) = %d, have %d", len(dst), (len(dst)+1)/2, len(src))
	}
	for k := range len(dst) / 2 {
		dst[2*k] = int8(src[k]<<4) >> 4
		dst[2*k+1] = int8(src[k]) >> 4
	}
	if len(dst)%2 == 1 {
		dst[len(dst)-1] = int8(src[len(src)-1]<<4) >> 4
	}
}
