//go:build amd64

#include "textflag.h"

// AVX2 GEMM tiles (gemm_amd64.go): 6 rows of activations × 16 output
// columns, the columns of a transposed weight panel (panel row k holds the
// 16 columns' k-th elements). Every output element keeps one accumulator
// and is summed k ascending, as the scalar Go kernels do: the float32 tile
// multiplies (VMULPS, rounding the product) and then adds (VADDPS), never a
// fused multiply-add, so the bytes are the scalar code's.
//
// Registers: Y0..Y11 the 12 accumulators (row r in Y(2r), Y(2r+1)),
// Y12/Y13 the panel's 16 columns at k, Y14 the broadcast activation, Y15
// the product. SI points at row 0's element k, R9 at row 3's, R8 is the
// row stride in bytes.

#define ROW0 (SI)
#define ROW1 (SI)(R8*1)
#define ROW2 (SI)(R8*2)
#define ROW3 (R9)
#define ROW4 (R9)(R8*1)
#define ROW5 (R9)(R8*2)

// F32ROW adds a[row][k]·panel[k] to one row's two accumulators: the
// product first (a is the first operand, as in the scalar x·y), then the
// sum (the accumulator first, as in s += p).
#define F32ROW(src, A0, A1) \
	VBROADCASTSS src, Y14  \
	VMULPS       Y12, Y14, Y15 \
	VADDPS       Y15, A0, A0   \
	VMULPS       Y13, Y14, Y15 \
	VADDPS       Y15, A1, A1

// I16ROW adds the pair (a[row][2p], a[row][2p+1])·(w[n][2p], w[n][2p+1])
// to one row's two int32 accumulators (exact).
#define I16ROW(src, A0, A1) \
	VPBROADCASTD src, Y14      \
	VPMADDWD     Y12, Y14, Y15 \
	VPADDD       Y15, A0, A0   \
	VPMADDWD     Y13, Y14, Y15 \
	VPADDD       Y15, A1, A1

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

// func f32Tile6(c *float32, a *float32, lda int, b *float32, k int)
TEXT ·f32Tile6(SB), NOSPLIT, $0-40
	MOVQ c+0(FP), DX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R8
	SHLQ $2, R8
	MOVQ b+24(FP), DI
	MOVQ k+32(FP), CX
	LEAQ (SI)(R8*2), R9
	ADDQ R8, R9
	LOADTILE(DX)
	TESTQ CX, CX
	JZ    f32done

f32loop:
	VMOVUPS (DI), Y12
	VMOVUPS 32(DI), Y13
	F32ROW(ROW0, Y0, Y1)
	F32ROW(ROW1, Y2, Y3)
	F32ROW(ROW2, Y4, Y5)
	F32ROW(ROW3, Y6, Y7)
	F32ROW(ROW4, Y8, Y9)
	F32ROW(ROW5, Y10, Y11)
	ADDQ $4, SI
	ADDQ $4, R9
	ADDQ $64, DI
	DECQ CX
	JNZ  f32loop

f32done:
	STORETILE(DX)
	VZEROUPPER
	RET

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
	ZEROTILE
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
