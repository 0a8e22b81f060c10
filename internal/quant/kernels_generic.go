//go:build !amd64

package quant

// The vector kernels' entry points where there are none: every caller
// takes its scalar loop.

func absMaxBitsVec(s []float32) (m uint32, rest []float32, ok bool) { return 0, s, false }

func quantizeRunInt8Vec(dst []int8, src, next []float32, scale, zp, lo, hi float32) (done int, nextAbsMax uint32) {
	return 0, 0
}

func absMaxBlocksVec(ms []uint32, src []float32, blockSize int) bool { return false }

func quantizeBlocksVec(dst []byte, src []float32, scales []uint16, blockSize int) bool { return false }

// maxVecBlocks is the most blocks quantizeBlocksVec would take in one call.
const maxVecBlocks = 16
