//go:build amd64

#include "textflag.h"
#include "vec_amd64.h"

// AVX2 forms of the int8 and int4 quantize loops and of absMaxBits. They
// compute what the scalar Go kernels compute, bit for bit (see
// reciprocal.go for the method, kernels_amd64.go for the Go side).

// Constants, 8 lanes each.
VEC8(absMask8, $0x7fffffff)
VEC8(gridMask8, $0x000007ff)
VEC8(byteMask8, $0x000000ff)
VEC8(nibbleMask8, $0x0000000f)
VEC8(roundMagic8, $0x4b400000)
VEC8(zero8, $0)

// After the two packs below, the 4-element groups of 32 inputs sit in the
// order 0 2 4 6 1 3 5 7 (by dword); this VPERMD index puts them back.
DATA unpack8<>+0(SB)/8, $0x0000000400000000
DATA unpack8<>+8(SB)/8, $0x0000000500000001
DATA unpack8<>+16(SB)/8, $0x0000000600000002
DATA unpack8<>+24(SB)/8, $0x0000000700000003
GLOBL unpack8<>(SB), RODATA|NOPTR, $32

// Byte weights 1, 16, 1, 16, …: VPMADDUBSW turns two adjacent nibbles
// (q0, q1) into the word q0 + 16·q1, the packed int4 byte.
DATA nibblePair<>+0(SB)/8, $0x1001100110011001
DATA nibblePair<>+8(SB)/8, $0x1001100110011001
DATA nibblePair<>+16(SB)/8, $0x1001100110011001
DATA nibblePair<>+24(SB)/8, $0x1001100110011001
GLOBL nibblePair<>(SB), RODATA|NOPTR, $32

// gridParams field offsets (kernels_amd64.go).
#define P_R 0
#define P_K 4
#define P_S 8
#define P_ZP 12
#define P_LO 16
#define P_HI 20
#define P_BASE 24
#define P_SPAN 28

// ABSMAX32(base, mask, T0, T1, T2, T3) leaves in T0 the lane-wise largest
// |x| bits of the 32 inputs at base (mask: absMask8 in a register). The
// float32 bits with the sign cleared order like the magnitudes (NaN and
// Inf above every finite value), so an unsigned integer max is the answer.
#define ABSMAX32(base, mask, T0, T1, T2, T3) \
	VPAND   0(base), mask, T0  \
	VPAND   32(base), mask, T1 \
	VPAND   64(base), mask, T2 \
	VPAND   96(base), mask, T3 \
	VPMAXUD T1, T0, T0         \
	VPMAXUD T3, T2, T2         \
	VPMAXUD T2, T0, T0

// HMAX(Y, X, XT) reduces the 8 lanes of Y (whose low half is X) to their
// unsigned max in the low lane of X; XT is scratch.
#define HMAX(Y, X, XT) \
	VEXTRACTI128 $1, Y, XT  \
	VPMAXUD      XT, X, X   \
	VPSHUFD      $0x4e, X, XT \
	VPMAXUD      XT, X, X   \
	VPSHUFD      $0xb1, X, XT \
	VPMAXUD      XT, X, X

// GRID(Y) turns 8 inputs x in Y into w = float32(float32(x·r) + K) and
// ANDs into Y6 whether each lane may take the fast path (all ones) or not:
// with n = w − base (as integers), the fast path needs n <= span unsigned
// (VPMAXUD leaves span unchanged) and n mod 2048 != 0 (reciprocal.go, step
// 2). Two roundings, as the scalar kernels: no FMA.
#define GRID(Y) \
	VMULPS   Y15, Y, Y                  \
	VADDPS   Y14, Y, Y                  \
	VPSUBD   Y13, Y, Y4                 \
	VPMAXUD  Y12, Y4, Y5                \
	VPCMPEQD Y12, Y5, Y5                \
	VPAND    gridMask8<>(SB), Y4, Y4    \
	VPCMPEQD zero8<>(SB), Y4, Y4        \
	VPANDN   Y5, Y4, Y4                 \
	VPAND    Y4, Y6, Y6

// EXACT(off, Y) is the reference formula for the 8 inputs at off(SI):
// v = x/s + zp in float32, clipped to [lo, hi], rounded half to even by
// adding 1.5·2^23; q is then the low bits of the result.
#define EXACT(off, Y) \
	VMOVUPS off(SI), Y                  \
	VDIVPS  Y11, Y, Y                   \
	VADDPS  Y10, Y, Y                   \
	VMAXPS  Y9, Y, Y                    \
	VMINPS  Y8, Y, Y                    \
	VADDPS  roundMagic8<>(SB), Y, Y

// LOADPARAMS broadcasts the gridParams at DX.
#define LOADPARAMS \
	VBROADCASTSS P_R(DX), Y15    \
	VBROADCASTSS P_K(DX), Y14    \
	VPBROADCASTD P_BASE(DX), Y13 \
	VPBROADCASTD P_SPAN(DX), Y12 \
	VBROADCASTSS P_S(DX), Y11    \
	VBROADCASTSS P_ZP(DX), Y10   \
	VBROADCASTSS P_LO(DX), Y9    \
	VBROADCASTSS P_HI(DX), Y8

// QUANT32 leaves in Y0..Y3 the q of the 32 inputs at SI, one per dword,
// in its low bits: by the reciprocal when every lane may take the fast
// path, else all 32 by the reference formula (rare: about one group in
// sixty for evenly spread fractions, more where scales clip).
#define QUANT32(slow, done) \
	VMOVUPS  0(SI), Y0                  \
	VMOVUPS  32(SI), Y1                 \
	VMOVUPS  64(SI), Y2                 \
	VMOVUPS  96(SI), Y3                 \
	VPCMPEQD Y6, Y6, Y6                 \
	GRID(Y0)                            \
	GRID(Y1)                            \
	GRID(Y2)                            \
	GRID(Y3)                            \
	VPMOVMSKB Y6, AX                    \
	CMPL     AX, $0xffffffff            \
	JNE      slow                       \
	VPSRLD   $11, Y0, Y0                \
	VPSRLD   $11, Y1, Y1                \
	VPSRLD   $11, Y2, Y2                \
	VPSRLD   $11, Y3, Y3                \
	JMP      done                       \
slow:                                   \
	EXACT(0, Y0)                        \
	EXACT(32, Y1)                       \
	EXACT(64, Y2)                       \
	EXACT(96, Y3)                       \
done:

// PACK32(mask) keeps the bits in mask of each dword of Y0..Y3 and packs
// them, in input order, into the 32 bytes of Y0. The values fit a byte, so
// the unsigned-saturating packs keep them as they are.
#define PACK32(mask) \
	VPAND      mask, Y0, Y0             \
	VPAND      mask, Y1, Y1             \
	VPAND      mask, Y2, Y2             \
	VPAND      mask, Y3, Y3             \
	VPACKUSDW  Y1, Y0, Y0               \
	VPACKUSDW  Y3, Y2, Y2               \
	VPACKUSWB  Y2, Y0, Y0               \
	VMOVDQU    unpack8<>(SB), Y1        \
	VPERMD     Y0, Y1, Y0

// func quantInt8AVX2(dst *int8, src, next *float32, n int, p *gridParams) (nextAbsMax uint32)
// Quantizes n inputs (a multiple of 32) of one channel and returns the
// largest |x| bits of next[:n], which the row kernel reads ahead (pass src
// again when there is nothing to read ahead).
TEXT ·quantInt8AVX2(SB), NOSPLIT, $0-44
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ next+16(FP), BX
	MOVQ n+24(FP), CX
	MOVQ p+32(FP), DX
	LOADPARAMS
	VPXOR Y7, Y7, Y7
	TESTQ CX, CX
	JEQ   q8done

q8loop:
	QUANT32(q8slow, q8pack)
	PACK32(byteMask8<>(SB))
	VMOVDQU Y0, 0(DI)
	VMOVDQU absMask8<>(SB), Y4
	ABSMAX32(BX, Y4, Y0, Y1, Y2, Y3)
	VPMAXUD Y0, Y7, Y7
	ADDQ    $128, SI
	ADDQ    $128, BX
	ADDQ    $32, DI
	SUBQ    $32, CX
	JNE     q8loop

q8done:
	HMAX(Y7, X7, X1)
	VMOVD        X7, AX
	VZEROUPPER
	MOVL         AX, nextAbsMax+40(FP)
	RET

// func quantInt4AVX2(dst *byte, src *float32, blocks, blockSize int, sr *float32, p *gridParams)
// Quantizes blocks consecutive blocks of blockSize inputs (a multiple of
// 32) into blockSize/2 bytes each, two nibbles a byte, element 2k in the
// low nibble of byte k. sr holds each block's scale and reciprocal (s, r)
// in turn; p the rest of the parameters, the same for every int4 block.
TEXT ·quantInt4AVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), R9
	MOVQ blockSize+24(FP), R10
	MOVQ sr+32(FP), R8
	MOVQ p+40(FP), DX
	LOADPARAMS
	TESTQ R9, R9
	JEQ   q4done

q4block:
	VBROADCASTSS 0(R8), Y11
	VBROADCASTSS 4(R8), Y15
	ADDQ         $8, R8
	MOVQ         R10, CX

q4loop:
	QUANT32(q4slow, q4pack)
	PACK32(nibbleMask8<>(SB))
	// Y0 holds the 32 nibbles, a byte each; pair them into words q0 +
	// 16·q1 and narrow the words to bytes.
	VPMADDUBSW   nibblePair<>(SB), Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPACKUSWB    X1, X0, X0
	VMOVDQU      X0, 0(DI)
	ADDQ         $128, SI
	ADDQ         $16, DI
	SUBQ         $32, CX
	JNE          q4loop
	DECQ         R9
	JNE          q4block

q4done:
	VZEROUPPER
	RET

// func absMaxBlocksAVX2(ms *uint32, src *float32, blocks, blockSize int)
// Stores absMaxBits of each of blocks consecutive blocks of blockSize
// inputs (a multiple of 32) in ms[0:blocks].
TEXT ·absMaxBlocksAVX2(SB), NOSPLIT, $0-32
	MOVQ ms+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), R9
	MOVQ blockSize+24(FP), R10
	VMOVDQU absMask8<>(SB), Y15
	TESTQ R9, R9
	JEQ   abdone

abblock:
	VPXOR Y0, Y0, Y0
	MOVQ  R10, CX

abloop:
	ABSMAX32(SI, Y15, Y4, Y5, Y6, Y7)
	VPMAXUD  Y4, Y0, Y0
	ADDQ     $128, SI
	SUBQ     $32, CX
	JNE      abloop

	HMAX(Y0, X0, X1)
	VMOVD        X0, 0(DI)
	ADDQ         $4, DI
	DECQ         R9
	JNE          abblock

abdone:
	VZEROUPPER
	RET
