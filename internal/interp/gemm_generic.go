//go:build !amd64

package interp

// No vector tiles on this architecture: the scalar Go kernels run.
var useSIMD = false

const hasSIMD, hasFMA = false, false

func i16Tile6(c *int32, a *int16, lda int, b *int32, pairs int) { panic("interp: no vector tiles") }
func qbTile6(f *float32, a *int16, lda int, b *int32, pairs, blocks int, scales *float32) {
	panic("interp: no vector tiles")
}
func peakFMA(n int)    { panic("interp: no vector tiles") }
func peakMulAdd(n int) { panic("interp: no vector tiles") }
func packF32x8(panel *float32, rows *float32, ld int, n int, stride int) {
	panic("interp: no vector tiles")
}
func packInt4x16(panel *int32, sums *int32, raw *byte, idx *int32, ld int, pairs int) {
	panic("interp: no vector tiles")
}
func packInt8x16(panel *int32, sums *int32, raw *int8, idx *int32, ld int, pairs int) {
	panic("interp: no vector tiles")
}
func q4Tile6(f *float32, a *uint8, lda int, b *int32, blocks int, scales *float32, corr *int32) {
	panic("interp: no vector tiles")
}
func packQ4x16(panel *int32, sums *int32, raw *byte, idx *int32, ld int, blocks int) {
	panic("interp: no vector tiles")
}
func f32Tile3x32(c *float32, a *float32, lda int, b *float32, k int) {
	panic("interp: no vector tiles")
}
