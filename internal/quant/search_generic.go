//go:build !amd64

package quant

// searchBlocks searches the blocks of a group (see searchBlocksGo): in Go
// on this architecture.
func searchBlocks(hs *[maxSearchGroup]uint16, x []float32, blockSize, n int, ms *[maxSearchGroup]uint32, big []float32) {
	searchBlocksGo(hs, x, blockSize, n, ms, big)
}
