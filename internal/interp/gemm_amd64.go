//go:build amd64

package interp

import "github.com/qpipe/qpipe/internal/quant"

// The AVX2 GEMM tiles of gemm_amd64.s run where the CPU has AVX2 and
// QPIPE_SIMD is not off (quant.VectorKernels: one place decides); the
// scalar Go kernels are the reference they match bit for bit.
var useSIMD = quant.VectorKernels()

// hasSIMD reports whether the tiles can run on this CPU at all (tests
// compare both forms even under QPIPE_SIMD=off).
var hasSIMD, hasFMA = quant.CPU()

// i16Tile6 adds to c[r·16+j] the int32 Σ_p a[r·lda+2p]·b[p·16+j].lo +
// a[r·lda+2p+1]·b[p·16+j].hi over pairs pairs, b's int32 holding two int16.
//
//go:noescape
func i16Tile6(c *int32, a *int16, lda int, b *int32, pairs int)

// qbTile6 is i16Tile6 over blocks consecutive blocks of pairs pairs, each
// block's sum s added as f[r·16+j] += float32(float32(s)·scales[blk·16+j]),
// blocks in order.
//
//go:noescape
func qbTile6(f *float32, a *int16, lda int, b *int32, pairs, blocks int, scales *float32)

// peakFMA and peakMulAdd run n iterations of 192 register-only flops
// (benchmarks only).
//
//go:noescape
func peakFMA(n int)

//go:noescape
func peakMulAdd(n int)

// packF32x8 writes panel[k·stride+j] = rows[j·ld+k] for 8 rows j and
// k < n (n a multiple of 8).
//
//go:noescape
func packF32x8(panel *float32, rows *float32, ld int, n int, stride int)

// packInt4x16 writes the int16-pair panel of pairs pairs (a multiple of 4)
// of 16 packed int4 rows at raw (row j at raw+j·ld, idx = the offsets of
// rows 0..7) and adds each row's nibbles to sums[j].
//
//go:noescape
func packInt4x16(panel *int32, sums *int32, raw *byte, idx *int32, ld int, pairs int)

// packInt8x16 is packInt4x16 for int8 rows (pairs a multiple of 2, whole
// pairs).
//
//go:noescape
func packInt8x16(panel *int32, sums *int32, raw *int8, idx *int32, ld int, pairs int)

// q4Tile6 is qbTile6 for blocks of 32 k with unsigned activations a (q+128,
// lda bytes a row), an int8-quad panel b (packQ4x16) and corr[blk·16+j] =
// 128·Σw of the block, subtracted from each block's sum.
//
//go:noescape
func q4Tile6(f *float32, a *uint8, lda int, b *int32, blocks int, scales *float32, corr *int32)

// packQ4x16 writes the int8-quad panel of blocks blocks of 32 k of 16
// packed int4 rows at raw (row j at raw+j·ld, idx = the offsets of rows
// 0..7) and stores each block's weight sums in sums[b·16+j].
//
//go:noescape
func packQ4x16(panel *int32, sums *int32, raw *byte, idx *int32, ld int, blocks int)

// f32Tile3x32 adds Σ_k a[r·lda+k]·b[k·32+j] (k ascending, products
// rounded, then added) to c[r·32+j] for 3 rows r and 32 columns j; c is
// the accumulator at entry.
//
//go:noescape
func f32Tile3x32(c *float32, a *float32, lda int, b *float32, k int)
