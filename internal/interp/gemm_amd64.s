//go:build amd64

#include "textflag.h"

// AVX2 GEMM tiles (gemm_amd64.go): a few rows of activations × the
// columns of a transposed weight panel (panel row k holds the columns'
// k-th elements): 3×32 for float32, 6×16 for the integer tiles. Every
// output element keeps one accumulator and is summed k ascending, as the
// scalar Go kernels do: the float32 tile multiplies (VMULPS, rounding the
// product) and then adds (VADDPS), never a fused multiply-add, so the
// bytes are the scalar code's.
//
// Integer tiles' registers: Y0..Y11 the 12 accumulators (row r in Y(2r),
// Y(2r+1)), Y12/Y13 the panel's 16 columns at k, Y14 the broadcast
// activation, Y15 the product. SI points at row 0's element k, R9 at row
// 3's, R8 is the row stride in bytes.

#define ROW0 (SI)
#define ROW1 (SI)(R8*1)
#define ROW2 (SI)(R8*2)
#define ROW3 (R9)
#define ROW4 (R9)(R8*1)
#define ROW5 (R9)(R8*2)

// I16ROW adds the pair (a[row][2p], a[row][2p+1])·(w[n][2p], w[n][2p+1])
// to one row's two int32 accumulators (exact).
#define I16ROW(src, A0, A1) \
	VPBROADCASTD src, Y14      \
	VPMADDWD     Y12, Y14, Y15 \
	VPADDD       Y15, A0, A0   \
	VPMADDWD     Y13, Y14, Y15 \
	VPADDD       Y15, A1, A1

// PAIRSETUP loads packInt4x16's and packInt8x16's arguments: DI panel, BX
// sums, SI row 0, DX row 8, R8 the row stride, CX pairs, Y14 the gather
// offsets, Y15 0x0000ffff in each lane, Y8/Y9 the sums of rows 0..7/8..15.
#define PAIRSETUP \
	MOVQ     panel+0(FP), DI   \
	MOVQ     sums+8(FP), BX    \
	MOVQ     raw+16(FP), SI    \
	MOVQ     idx+24(FP), AX    \
	MOVQ     ld+32(FP), R8     \
	MOVQ     pairs+40(FP), CX  \
	VMOVDQU  (AX), Y14         \
	VPCMPEQD Y15, Y15, Y15     \
	VPSRLD   $16, Y15, Y15     \
	LEAQ     (SI)(R8*8), DX    \
	VMOVDQU  (BX), Y8          \
	VMOVDQU  32(BX), Y9

#define LOADTILE(R) \
	VMOVUPS 0(R), Y0    \
	VMOVUPS 32(R), Y1   \
	VMOVUPS 64(R), Y2   \
	VMOVUPS 96(R), Y3   \
	VMOVUPS 128(R), Y4  \
	VMOVUPS 160(R), Y5  \
	VMOVUPS 192(R), Y6  \
	VMOVUPS 224(R), Y7  \
	VMOVUPS 256(R), Y8  \
	VMOVUPS 288(R), Y9  \
	VMOVUPS 320(R), Y10 \
	VMOVUPS 352(R), Y11

#define STORETILE(R) \
	VMOVUPS Y0, 0(R)    \
	VMOVUPS Y1, 32(R)   \
	VMOVUPS Y2, 64(R)   \
	VMOVUPS Y3, 96(R)   \
	VMOVUPS Y4, 128(R)  \
	VMOVUPS Y5, 160(R)  \
	VMOVUPS Y6, 192(R)  \
	VMOVUPS Y7, 224(R)  \
	VMOVUPS Y8, 256(R)  \
	VMOVUPS Y9, 288(R)  \
	VMOVUPS Y10, 320(R) \
	VMOVUPS Y11, 352(R)

#define ZEROTILE \
	VPXOR Y0, Y0, Y0    \
	VPXOR Y1, Y1, Y1    \
	VPXOR Y2, Y2, Y2    \
	VPXOR Y3, Y3, Y3    \
	VPXOR Y4, Y4, Y4    \
	VPXOR Y5, Y5, Y5    \
	VPXOR Y6, Y6, Y6    \
	VPXOR Y7, Y7, Y7    \
	VPXOR Y8, Y8, Y8    \
	VPXOR Y9, Y9, Y9    \
	VPXOR Y10, Y10, Y10 \
	VPXOR Y11, Y11, Y11

// One pair of the int16 loop; SI, R9, DI advance, CX counts down.
#define I16STEP \
	VMOVDQU (DI), Y12       \
	VMOVDQU 32(DI), Y13     \
	I16ROW(ROW0, Y0, Y1)    \
	I16ROW(ROW1, Y2, Y3)    \
	I16ROW(ROW2, Y4, Y5)    \
	I16ROW(ROW3, Y6, Y7)    \
	I16ROW(ROW4, Y8, Y9)    \
	I16ROW(ROW5, Y10, Y11)  \
	ADDQ $4, SI             \
	ADDQ $4, R9             \
	ADDQ $64, DI            \
	DECQ CX

// func i16Tile6(c *int32, a *int16, lda int, b *int32, pairs int)
TEXT ·i16Tile6(SB), NOSPLIT, $0-40
	MOVQ c+0(FP), DX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R8
	SHLQ $1, R8
	MOVQ b+24(FP), DI
	MOVQ pairs+32(FP), CX
	LEAQ (SI)(R8*2), R9
	ADDQ R8, R9
	LOADTILE(DX)
	TESTQ CX, CX
	JZ    i16done

i16loop:
	I16STEP
	JNZ i16loop

i16done:
	STORETILE(DX)
	VZEROUPPER
	RET

// BLOCKEPI adds float32(float32(acc)·scale) to the float tile at off (the
// scalar f += float32(float32(v)·bs) in its operand order).
#define BLOCKEPI(A, off, soff) \
	VCVTDQ2PS A, A         \
	VMULPS    soff(R10), A, A \
	VMOVUPS   off(DX), Y15 \
	VADDPS    A, Y15, Y15  \
	VMOVUPS   Y15, off(DX)

// func qbTile6(f *float32, a *int16, lda int, b *int32, pairs, blocks int, scales *float32)
//
// For each of blocks blocks of pairs pairs: the exact int32 block sums, then
// f += float32(float32(sum)·scale[block][n]), blocks in order.
TEXT ·qbTile6(SB), NOSPLIT, $0-56
	MOVQ f+0(FP), DX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R8
	SHLQ $1, R8
	MOVQ b+24(FP), DI
	MOVQ blocks+40(FP), R11
	MOVQ scales+48(FP), R10
	LEAQ (SI)(R8*2), R9
	ADDQ R8, R9
	TESTQ R11, R11
	JZ    qbdone
	MOVQ  pairs+32(FP), CX
	TESTQ CX, CX
	JZ    qbdone

qbblock:
	ZEROTILE
	MOVQ pairs+32(FP), CX

qbloop:
	I16STEP
	JNZ qbloop
	BLOCKEPI(Y0, 0, 0)
	BLOCKEPI(Y1, 32, 32)
	BLOCKEPI(Y2, 64, 0)
	BLOCKEPI(Y3, 96, 32)
	BLOCKEPI(Y4, 128, 0)
	BLOCKEPI(Y5, 160, 32)
	BLOCKEPI(Y6, 192, 0)
	BLOCKEPI(Y7, 224, 32)
	BLOCKEPI(Y8, 256, 0)
	BLOCKEPI(Y9, 288, 32)
	BLOCKEPI(Y10, 320, 0)
	BLOCKEPI(Y11, 352, 32)
	ADDQ $64, R10
	DECQ R11
	JNZ  qbblock

qbdone:
	VZEROUPPER
	RET

// The peak benchmarks' register-only loops (matmul_bench_test.go): n
// iterations of 12 independent 8-lane fused multiply-adds (192 flops), or
// of 12 independent multiply-then-add pairs (192 flops). Nothing else
// uses them; the GEMM tiles above never fuse.

// func peakFMA(n int)
TEXT ·peakFMA(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	ZEROTILE
	VPXOR Y14, Y14, Y14
	VPXOR Y15, Y15, Y15
	TESTQ CX, CX
	JZ    fmadone

fmaloop:
	VFMADD231PS Y14, Y15, Y0
	VFMADD231PS Y14, Y15, Y1
	VFMADD231PS Y14, Y15, Y2
	VFMADD231PS Y14, Y15, Y3
	VFMADD231PS Y14, Y15, Y4
	VFMADD231PS Y14, Y15, Y5
	VFMADD231PS Y14, Y15, Y6
	VFMADD231PS Y14, Y15, Y7
	VFMADD231PS Y14, Y15, Y8
	VFMADD231PS Y14, Y15, Y9
	VFMADD231PS Y14, Y15, Y10
	VFMADD231PS Y14, Y15, Y11
	DECQ CX
	JNZ  fmaloop

fmadone:
	VZEROUPPER
	RET

#define MULADD(A, T) \
	VMULPS Y14, Y15, T \
	VADDPS T, A, A

// func peakMulAdd(n int)
TEXT ·peakMulAdd(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	ZEROTILE
	VPXOR Y14, Y14, Y14
	VPXOR Y15, Y15, Y15
	TESTQ CX, CX
	JZ    madone

maloop:
	MULADD(Y0, Y12)
	MULADD(Y1, Y13)
	MULADD(Y2, Y12)
	MULADD(Y3, Y13)
	MULADD(Y4, Y12)
	MULADD(Y5, Y13)
	MULADD(Y6, Y12)
	MULADD(Y7, Y13)
	MULADD(Y8, Y12)
	MULADD(Y9, Y13)
	MULADD(Y10, Y12)
	MULADD(Y11, Y13)
	DECQ CX
	JNZ  maloop

madone:
	VZEROUPPER
	RET

// Panel packing (gemm_vec.go).

// TRANSPOSE8 transposes the 8×8 float32 block in Y0..Y7 (row i in Yi)
// into Y8..Y15 (column i in Y(8+i) as written below: Y8 col 0, Y9 col 1,
// Y10 col 2, Y11 col 3, Y12 col 4, Y13 col 5, Y14 col 6, Y15 col 7).
#define TRANSPOSE8 \
	VUNPCKLPS  Y1, Y0, Y8      \
	VUNPCKHPS  Y1, Y0, Y9      \
	VUNPCKLPS  Y3, Y2, Y10     \
	VUNPCKHPS  Y3, Y2, Y11     \
	VUNPCKLPS  Y5, Y4, Y12     \
	VUNPCKHPS  Y5, Y4, Y13     \
	VUNPCKLPS  Y7, Y6, Y14     \
	VUNPCKHPS  Y7, Y6, Y15     \
	VSHUFPS    $0x44, Y10, Y8, Y0 \
	VSHUFPS    $0xEE, Y10, Y8, Y1 \
	VSHUFPS    $0x44, Y11, Y9, Y2 \
	VSHUFPS    $0xEE, Y11, Y9, Y3 \
	VSHUFPS    $0x44, Y14, Y12, Y4 \
	VSHUFPS    $0xEE, Y14, Y12, Y5 \
	VSHUFPS    $0x44, Y15, Y13, Y6 \
	VSHUFPS    $0xEE, Y15, Y13, Y7 \
	VPERM2F128 $0x20, Y4, Y0, Y8  \
	VPERM2F128 $0x20, Y5, Y1, Y9  \
	VPERM2F128 $0x20, Y6, Y2, Y10 \
	VPERM2F128 $0x20, Y7, Y3, Y11 \
	VPERM2F128 $0x31, Y4, Y0, Y12 \
	VPERM2F128 $0x31, Y5, Y1, Y13 \
	VPERM2F128 $0x31, Y6, Y2, Y14 \
	VPERM2F128 $0x31, Y7, Y3, Y15

// func packF32x8(panel *float32, rows *float32, ld int, n int, stride int)
//
// panel[k·stride+j] = rows[j·ld+k] for 8 rows j and k < n (n a multiple of
// 8; ld and stride in elements): 8×8 blocks transposed in registers.
TEXT ·packF32x8(SB), NOSPLIT, $0-40
	MOVQ panel+0(FP), DI
	MOVQ rows+8(FP), SI
	MOVQ ld+16(FP), R8
	SHLQ $2, R8
	MOVQ n+24(FP), CX
	MOVQ stride+32(FP), R9
	SHLQ $2, R9
	SHRQ $3, CX
	JZ   pfdone
	LEAQ (SI)(R8*2), R10
	ADDQ R8, R10         // row 3
	LEAQ (R10)(R8*2), R11
	ADDQ R8, R11         // row 6
	LEAQ (DI)(R9*2), BX
	ADDQ R9, BX          // panel row 3
	LEAQ (BX)(R9*2), DX
	ADDQ R9, DX          // panel row 6
	MOVQ R9, R12
	SHLQ $3, R12         // 8 panel rows

pfloop:
	VMOVUPS (SI), Y0
	VMOVUPS (SI)(R8*1), Y1
	VMOVUPS (SI)(R8*2), Y2
	VMOVUPS (R10), Y3
	VMOVUPS (SI)(R8*4), Y4
	VMOVUPS (R10)(R8*2), Y5
	VMOVUPS (R11), Y6
	VMOVUPS (R11)(R8*1), Y7
	TRANSPOSE8
	VMOVUPS Y8, (DI)
	VMOVUPS Y9, (DI)(R9*1)
	VMOVUPS Y10, (DI)(R9*2)
	VMOVUPS Y11, (BX)
	VMOVUPS Y12, (DI)(R9*4)
	VMOVUPS Y13, (BX)(R9*2)
	VMOVUPS Y14, (DX)
	VMOVUPS Y15, (DX)(R9*1)
	ADDQ $32, SI
	ADDQ $32, R10
	ADDQ $32, R11
	ADDQ R12, DI
	ADDQ R12, BX
	ADDQ R12, DX
	DECQ CX
	JNZ  pfloop

pfdone:
	VZEROUPPER
	RET

// Int4 pairs: a gathered dword holds 4 bytes of one weight row, 4 pairs
// of nibbles (element 2p in the low nibble of byte p); int8 pairs: 4 bytes
// are 2 pairs. PAIR(G, shLo, shHi, sr, off) sign-extends the two fields
// of a pair (shifted to the top by shLo, shHi, then arithmetically down by
// sr: 28 for a nibble, 24 for a byte), adds both to Y6 (the row sums) and
// stores lo | hi<<16 for the 8 rows at DI+off.
#define PAIR(G, shLo, shHi, sr, off) \
	VPSLLD  $shLo, G, Y4   \
	VPSRAD  $sr, Y4, Y4    \
	VPSLLD  $shHi, G, Y5   \
	VPSRAD  $sr, Y5, Y5    \
	VPADDD  Y4, Y6, Y6     \
	VPADDD  Y5, Y6, Y6     \
	VPAND   Y15, Y4, Y4    \
	VPSLLD  $16, Y5, Y5    \
	VPOR    Y5, Y4, Y4     \
	VMOVDQU Y4, off(DI)

// GATHER4(base, off): 4 pairs of 8 rows (row offsets in Y14) at base into
// the panel at DI + off (4 panel rows), adding the 8 nibbles of each row
// to Y6.
#define GATHER4(base, off) \
	VPCMPEQD    Y7, Y7, Y7            \
	VPGATHERDD  Y7, (base)(Y14*1), Y3 \
	PAIR(Y3, 28, 24, 28, off)         \
	PAIR(Y3, 20, 16, 28, off+64)      \
	PAIR(Y3, 12, 8, 28, off+128)      \
	PAIR(Y3, 4, 0, 28, off+192)

// GATHER2(base, off) is GATHER4 for int8 rows: 2 pairs.
#define GATHER2(base, off) \
	VPCMPEQD    Y7, Y7, Y7            \
	VPGATHERDD  Y7, (base)(Y14*1), Y3 \
	PAIR(Y3, 24, 16, 24, off)         \
	PAIR(Y3, 8, 0, 24, off+64)

// func packInt4x16(panel *int32, sums *int32, raw *byte, idx *int32, ld int, pairs int)
//
// For 16 rows of packed int4 (row j at raw + j·ld bytes) and pairs pairs
// (a multiple of 4): panel[p·16+j] = lo | hi<<16 (the sign-extended
// nibbles of byte p of row j as int16), and sums[j] += Σ of the row's
// 2·pairs nibbles. idx holds the 8 row offsets 0, ld, …, 7·ld.
TEXT ·packInt4x16(SB), NOSPLIT, $0-48
	PAIRSETUP
	SHRQ  $2, CX
	JZ    p4done

p4loop:
	VPXOR   Y6, Y6, Y6
	GATHER4(SI, 0)
	VPADDD  Y6, Y8, Y8
	VPXOR   Y6, Y6, Y6
	GATHER4(DX, 32)
	VPADDD  Y6, Y9, Y9
	ADDQ $4, SI
	ADDQ $4, DX
	ADDQ $256, DI
	DECQ CX
	JNZ  p4loop

p4done:
	VMOVDQU Y8, (BX)
	VMOVDQU Y9, 32(BX)
	VZEROUPPER
	RET

// func packInt8x16(panel *int32, sums *int32, raw *byte, idx *int32, ld int, pairs int)
//
// packInt4x16 for int8 rows: pairs a multiple of 2, both elements of each
// pair inside the row.
TEXT ·packInt8x16(SB), NOSPLIT, $0-48
	PAIRSETUP
	SHRQ  $1, CX
	JZ    p8done

p8loop:
	VPXOR   Y6, Y6, Y6
	GATHER2(SI, 0)
	VPADDD  Y6, Y8, Y8
	VPXOR   Y6, Y6, Y6
	GATHER2(DX, 32)
	VPADDD  Y6, Y9, Y9
	ADDQ $4, SI
	ADDQ $4, DX
	ADDQ $128, DI
	DECQ CX
	JNZ  p8loop

p8done:
	VMOVDQU Y8, (BX)
	VMOVDQU Y9, 32(BX)
	VZEROUPPER
	RET

// Int4 weights with blocks of 32 (the common blockwise form) take a denser
// path: the activations as unsigned bytes q+128, the weights as int8 quads
// (4 consecutive k of a column in a dword), VPMADDUBSW (u8·s8, pairs
// summed to int16) accumulated in int16 over the 32 k of a block: each
// lane sums 16 products of magnitude ≤ 255·8, at most 32640, so nothing
// saturates or wraps. A block's int32 sum is then Σ(q+128)·w, and
// 128·Σw (corr) is subtracted: the exact Σ q·w, as every other path.

// BYTES32(name, bits) defines name<> as 32 read-only bytes, the 8-byte
// value bits four times.
#define BYTES32(name, bits) \
	DATA name<>+0(SB)/8, bits  \
	DATA name<>+8(SB)/8, bits  \
	DATA name<>+16(SB)/8, bits \
	DATA name<>+24(SB)/8, bits \
	GLOBL name<>(SB), RODATA|NOPTR, $32

BYTES32(ones16, $0x0001000100010001)
BYTES32(ones8, $0x0101010101010101)
BYTES32(nib8, $0x0f0f0f0f0f0f0f0f)
BYTES32(eight8, $0x0808080808080808)

// U8ROW adds the quad products a[row][4q..4q+3]·w[n][4q..4q+3], as two
// int16 pair sums per column, to one row's int16 accumulators.
#define U8ROW(src, A0, A1) \
	VPBROADCASTD src, Y14        \
	VPMADDUBSW   Y12, Y14, Y15   \
	VPADDW       Y15, A0, A0     \
	VPMADDUBSW   Y13, Y14, Y15   \
	VPADDW       Y15, A1, A1

// Q4EPI turns a block's int16 accumulators into the int32 sums, removes
// 128·Σw and adds float32(float32(sum)·scale) to the float tile.
#define Q4EPI(A, off, soff) \
	VPMADDWD  ones16<>(SB), A, A \
	VPSUBD    soff(R12), A, A    \
	VCVTDQ2PS A, A               \
	VMULPS    soff(R10), A, A    \
	VMOVUPS   off(DX), Y15       \
	VADDPS    A, Y15, Y15        \
	VMOVUPS   Y15, off(DX)

// func q4Tile6(f *float32, a *uint8, lda int, b *int32, blocks int, scales *float32, corr *int32)
//
// qbTile6 for blocks of 32: a holds q+128 (lda bytes a row), b int8 quads
// (8 panel rows of 16 dwords a block), corr 128·Σw per block and column.
TEXT ·q4Tile6(SB), NOSPLIT, $0-56
	MOVQ f+0(FP), DX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R8
	MOVQ b+24(FP), DI
	MOVQ blocks+32(FP), R11
	MOVQ scales+40(FP), R10
	MOVQ corr+48(FP), R12
	LEAQ (SI)(R8*2), R9
	ADDQ R8, R9
	TESTQ R11, R11
	JZ    q4done

q4block:
	ZEROTILE
	MOVQ $8, CX

q4loop:
	VMOVDQU (DI), Y12
	VMOVDQU 32(DI), Y13
	U8ROW(ROW0, Y0, Y1)
	U8ROW(ROW1, Y2, Y3)
	U8ROW(ROW2, Y4, Y5)
	U8ROW(ROW3, Y6, Y7)
	U8ROW(ROW4, Y8, Y9)
	U8ROW(ROW5, Y10, Y11)
	ADDQ $4, SI
	ADDQ $4, R9
	ADDQ $64, DI
	DECQ CX
	JNZ  q4loop
	Q4EPI(Y0, 0, 0)
	Q4EPI(Y1, 32, 32)
	Q4EPI(Y2, 64, 0)
	Q4EPI(Y3, 96, 32)
	Q4EPI(Y4, 128, 0)
	Q4EPI(Y5, 160, 32)
	Q4EPI(Y6, 192, 0)
	Q4EPI(Y7, 224, 32)
	Q4EPI(Y8, 256, 0)
	Q4EPI(Y9, 288, 32)
	Q4EPI(Y10, 320, 0)
	Q4EPI(Y11, 352, 32)
	ADDQ $64, R10
	ADDQ $64, R12
	DECQ R11
	JNZ  q4block

q4done:
	VZEROUPPER
	RET

// QUADS(base, off, S): 4 bytes (8 nibbles, 2 quads) of 8 int4 rows (row
// offsets in Y14) at base, as two panel rows of sign-extended int8 quads
// at DI+off and DI+off+64; their pair sums added to the int16 lanes of S.
#define QUADS(base, off, S) \
	VPCMPEQD    Y7, Y7, Y7            \
	VPGATHERDD  Y7, (base)(Y14*1), Y3 \
	VPAND       Y13, Y3, Y4           \
	VPSRLW      $4, Y3, Y5            \
	VPAND       Y13, Y5, Y5           \
	VPUNPCKLBW  Y5, Y4, Y6            \
	VPUNPCKHBW  Y5, Y4, Y7            \
	VSHUFPS     $0x88, Y7, Y6, Y4     \
	VSHUFPS     $0xDD, Y7, Y6, Y5     \
	VPXOR       Y12, Y4, Y4           \
	VPSUBB      Y12, Y4, Y4           \
	VPXOR       Y12, Y5, Y5           \
	VPSUBB      Y12, Y5, Y5           \
	VMOVDQU     Y4, off(DI)           \
	VMOVDQU     Y5, off+64(DI)        \
	VPMADDUBSW  Y4, Y11, Y6           \
	VPADDW      Y6, S, S              \
	VPMADDUBSW  Y5, Y11, Y6           \
	VPADDW      Y6, S, S

// func packQ4x16(panel *int32, sums *int32, raw *byte, idx *int32, ld int, blocks int)
//
// The int8-quad panel of blocks blocks of 32 k of 16 packed int4 rows (row
// j at raw + j·ld bytes, idx = the offsets of rows 0..7), and each block's
// weight sums in sums[b·16+j] (stored).
TEXT ·packQ4x16(SB), NOSPLIT, $0-48
	MOVQ panel+0(FP), DI
	MOVQ sums+8(FP), BX
	MOVQ raw+16(FP), SI
	MOVQ idx+24(FP), AX
	MOVQ ld+32(FP), R8
	MOVQ blocks+40(FP), CX
	VMOVDQU (AX), Y14
	VMOVDQU nib8<>(SB), Y13
	VMOVDQU eight8<>(SB), Y12
	VMOVDQU ones8<>(SB), Y11
	LEAQ  (SI)(R8*8), DX
	TESTQ CX, CX
	JZ    pq4done

pq4block:
	VPXOR Y8, Y8, Y8
	VPXOR Y9, Y9, Y9
	MOVQ  $4, R9

pq4loop:
	QUADS(SI, 0, Y8)
	QUADS(DX, 32, Y9)
	ADDQ $4, SI
	ADDQ $4, DX
	ADDQ $128, DI
	DECQ R9
	JNZ  pq4loop
	VPMADDWD ones16<>(SB), Y8, Y8
	VPMADDWD ones16<>(SB), Y9, Y9
	VMOVDQU  Y8, (BX)
	VMOVDQU  Y9, 32(BX)
	ADDQ $64, BX
	DECQ CX
	JNZ  pq4block

pq4done:
	VZEROUPPER
	RET

// F32ROW32 adds a[row][k]·panel[k] to one row's four accumulators (32
// columns), the panel read as the multiply's memory operand (the product
// is still a·w: the broadcast is the first source).
#define F32ROW32(src, A0, A1, A2, A3) \
	VBROADCASTSS src, Y14          \
	VMULPS       0(DI), Y14, Y15   \
	VADDPS       Y15, A0, A0       \
	VMULPS       32(DI), Y14, Y15  \
	VADDPS       Y15, A1, A1       \
	VMULPS       64(DI), Y14, Y15  \
	VADDPS       Y15, A2, A2       \
	VMULPS       96(DI), Y14, Y15  \
	VADDPS       Y15, A3, A3

// func f32Tile3x32(c *float32, a *float32, lda int, b *float32, k int)
//
// c[r·32+j] += Σ_k a[r·lda+k]·b[k·32+j] for 3 rows and 32 columns (k
// ascending, products rounded, then added; c is the accumulator at
// entry). One broadcast feeds 4 multiplies: the broadcasts, not the
// arithmetic, bound a 6×16 tile (2 multiplies each; measured: with them
// taken out it ran at the mul+add peak, with them at ~2/3 of it).
TEXT ·f32Tile3x32(SB), NOSPLIT, $0-40
	MOVQ c+0(FP), DX
	MOVQ a+8(FP), AX
	MOVQ lda+16(FP), R8
	SHLQ $2, R8
	MOVQ b+24(FP), DI
	MOVQ k+32(FP), CX
	LOADTILE(DX)
	TESTQ CX, CX
	JZ    t32done
	LEAQ (AX)(CX*4), AX
	LEAQ (AX)(R8*1), BX
	LEAQ (BX)(R8*1), R10
	NEGQ CX

t32loop:
	F32ROW32((AX)(CX*4), Y0, Y1, Y2, Y3)
	F32ROW32((BX)(CX*4), Y4, Y5, Y6, Y7)
	F32ROW32((R10)(CX*4), Y8, Y9, Y10, Y11)
	ADDQ $128, DI
	INCQ CX
	JNZ  t32loop

t32done:
	STORETILE(DX)
	VZEROUPPER
	RET
