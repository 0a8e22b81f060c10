//go:build !amd64

package quant

// searchBlocks searches the blocks of a group (see searchBlocksGo): in Go
// on this architecture.
func searchBlocks(hs *[maxSearchGroup]uint16, x []float32, blockSize, n int, ms *[maxSearchGroup]uint32, big []float32) {
	searchBlocksGo(hs, x, blockSize, n, ms, big)
}

// candidateMoments is the moments of block x under the 8 scales s (see
// candMoments): in Go on this architecture (mu64 and v64 are not used).
func candidateMoments(x, mu, v []float32, _, _ []float64, s *[len(searchRatios)]float32, out *candMoments) {
	candidateMomentsGo(x, mu, v, s, out)
}
