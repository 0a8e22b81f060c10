//go:build amd64

package quant

// gridParams is what the AVX2 quantize kernels read for one channel or
// block: the fast path's reciprocal r and offset k (reciprocal), and for
// the exact path the scale s, zero point zp and clip range [lo, hi]; base
// and span are the fast-path test (grid). Field order is the assembly's.
type gridParams struct {
	r, k, s, zp, lo, hi float32
	base, span          uint32
}

func newGridParams(scale, zp, lo, hi float32) *gridParams {
	r, k := reciprocal(scale, zp)
	g := newGrid(lo, hi)
	return &gridParams{r: r, k: k, s: scale, zp: zp, lo: lo, hi: hi, base: g.base, span: g.span}
}

// quantInt8AVX2 is quantizeRunInt8 over n elements, n a multiple of 32,
// that also returns absMaxBits(next[:n]).
//
//go:noescape
func quantInt8AVX2(dst *int8, src, next *float32, n int, p *gridParams) (nextAbsMax uint32)

// quantInt4AVX2 is quantizeBlockInt4 over blocks consecutive blocks of
// blockSize elements (a multiple of 32); sr holds (s, r) for each block in
// turn, r = the reciprocal of s (NaN where the fast path does not apply),
// and p the parameters every int4 block shares (int4Params).
//
//go:noescape
func quantInt4AVX2(dst *byte, src *float32, blocks, blockSize int, sr *float32, p *gridParams)

// absMaxBlocksAVX2 stores absMaxBits of each of blocks consecutive blocks
// of blockSize elements (a multiple of 32) in ms.
//
//go:noescape
func absMaxBlocksAVX2(ms *uint32, src *float32, blocks, blockSize int)

// int4Params are the parameters of the int4 kernel that do not depend on
// the scale: zero point 0, clip range [-8, 7].
var int4Params = newGridParams(1, 0, -8, 7)

// absMaxBitsVec is absMaxBits with the multiple of 32 elements at the
// front done by absMaxBlocksAVX2 (as one block); ok is false when the AVX2
// kernels are off, and m then covers nothing.
func absMaxBitsVec(s []float32) (m uint32, rest []float32, ok bool) {
	n := len(s) &^ 31
	if !useAVX2 || n == 0 {
		return 0, s, false
	}
	absMaxBlocksAVX2(&m, &s[0], 1, n)
	return m, s[n:], true
}

// quantizeRunInt8Vec quantizes the multiple of 32 elements at the front of
// src with the AVX2 kernel and returns how many it did, with
// absMaxBits(next) over them (len(next) >= len(src)); 0 when the kernels
// are off.
func quantizeRunInt8Vec(dst []int8, src, next []float32, scale, zp, lo, hi float32) (done int, nextAbsMax uint32) {
	n := len(src) &^ 31
	if !useAVX2 || n == 0 {
		return 0, 0
	}
	dst, next = dst[:n], next[:n]
	return n, quantInt8AVX2(&dst[0], &src[0], &next[0], n, newGridParams(scale, zp, lo, hi))
}

// absMaxBlocksVec stores absMaxBits of each block of src (len(ms) blocks
// of blockSize, a multiple of 32) in ms; false, doing nothing, when the
// AVX2 kernels are off.
func absMaxBlocksVec(ms []uint32, src []float32, blockSize int) bool {
	if !useAVX2 || len(ms) == 0 {
		return false
	}
	src = src[:len(ms)*blockSize]
	absMaxBlocksAVX2(&ms[0], &src[0], len(ms), blockSize)
	return true
}

// quantizeBlocksVec quantizes the blocks of src (len(scales) blocks of
// blockSize, a multiple of 32) against their float16 scales with the AVX2
// kernel; false, doing nothing, when the kernels are off or a scale is
// zero (reference mode), which quantizeBlock handles.
func quantizeBlocksVec(dst []byte, src []float32, scales []uint16, blockSize int) bool {
	var sr [2 * maxVecBlocks]float32
	if !useAVX2 || len(scales) == 0 || len(scales) > maxVecBlocks {
		return false
	}
	for i, h := range scales {
		s := Float32FromBits16(h)
		if s == 0 {
			return false
		}
		sr[2*i] = s
		sr[2*i+1], _ = reciprocal(s, 0)
	}
	n := len(scales) * blockSize
	src, dst = src[:n], dst[:n/2]
	quantInt4AVX2(&dst[0], &src[0], len(scales), blockSize, &sr[0], int4Params)
	return true
}

// maxVecBlocks is the most blocks quantizeBlocksVec takes in one call.
const maxVecBlocks = 16
