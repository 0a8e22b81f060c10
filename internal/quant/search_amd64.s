//go:build amd64

#include "textflag.h"
#include "go_asm.h"

// The data-free int4 scale search (search.go) with AVX2. Every lane does
// the scalar code's float32 operations in its order, one rounding each (no
// FMA): the results are the scalar code's bits.

// Broadcast constants of searchBlock and candidates.set (search.go).
DATA searchFloor<>+0(SB)/4, $0x3089705f // scaleFloor, float32(1e-9)
GLOBL searchFloor<>(SB), RODATA|NOPTR, $4
DATA searchSeven<>+0(SB)/4, $0x40e00000 // 7
GLOBL searchSeven<>(SB), RODATA|NOPTR, $4
DATA searchTwelve<>+0(SB)/4, $0x41400000 // 12
GLOBL searchTwelve<>(SB), RODATA|NOPTR, $4
DATA searchOne<>+0(SB)/4, $0x3f800000 // 1
GLOBL searchOne<>(SB), RODATA|NOPTR, $4
DATA searchClip<>+0(SB)/4, $0x40efae14 // float32(7.49)
GLOBL searchClip<>(SB), RODATA|NOPTR, $4
DATA searchAbs<>+0(SB)/4, $0x7fffffff // f32AbsMask
GLOBL searchAbs<>(SB), RODATA|NOPTR, $4
DATA searchMagic<>+0(SB)/4, $0x4b400000 // roundMagic
GLOBL searchMagic<>(SB), RODATA|NOPTR, $4
DATA searchBit16<>+0(SB)/4, $1 // BFloat16Round: the kept low bit, b>>16&1
GLOBL searchBit16<>(SB), RODATA|NOPTR, $4
DATA searchHalf<>+0(SB)/4, $0x7fff // BFloat16Round: half an ulp, less 1
GLOBL searchHalf<>(SB), RODATA|NOPTR, $4
DATA searchHigh<>+0(SB)/4, $0xffff0000 // BFloat16Round: the kept bits
GLOBL searchHigh<>(SB), RODATA|NOPTR, $4

// The float16 normal range as float32, 8 lanes each (compare operands).
DATA searchMinNormal<>+0(SB)/4, $0x38800000 // MinNormalFloat16, 2^-14
DATA searchMinNormal<>+4(SB)/4, $0x38800000
DATA searchMinNormal<>+8(SB)/4, $0x38800000
DATA searchMinNormal<>+12(SB)/4, $0x38800000
DATA searchMinNormal<>+16(SB)/4, $0x38800000
DATA searchMinNormal<>+20(SB)/4, $0x38800000
DATA searchMinNormal<>+24(SB)/4, $0x38800000
DATA searchMinNormal<>+28(SB)/4, $0x38800000
GLOBL searchMinNormal<>(SB), RODATA|NOPTR, $32
DATA searchMaxF16<>+0(SB)/4, $0x477fe000 // maxFloat16, 65504
DATA searchMaxF16<>+4(SB)/4, $0x477fe000
DATA searchMaxF16<>+8(SB)/4, $0x477fe000
DATA searchMaxF16<>+12(SB)/4, $0x477fe000
DATA searchMaxF16<>+16(SB)/4, $0x477fe000
DATA searchMaxF16<>+20(SB)/4, $0x477fe000
DATA searchMaxF16<>+24(SB)/4, $0x477fe000
DATA searchMaxF16<>+28(SB)/4, $0x477fe000
GLOBL searchMaxF16<>(SB), RODATA|NOPTR, $32

// BIGMASK8 sets the 8 bits of M (from bit 0) for the 8 elements at off(DX)
// whose magnitude is above the threshold in Y2, bigElements' test: as
// non-negative int32 the bits order as the values (the block holds no NaN,
// its largest magnitude is finite), so a signed integer compare.
#define BIGMASK8(off, Y, M) \
	VPAND     off(DX), Y13, Y \
	VPCMPGTD  Y2, Y, Y        \
	VMOVMSKPS Y, M

// func searchModelAVX2(x *float32, blockSize, n int, ms *uint32, hs *uint16, big *float32, st *searchState)
//
// Two passes over the group. The first works out every block's candidates
// (to st.cs, st.cr, st.thr), the second the models and choices: each
// block's work is a long chain of dependent steps, and a block's
// candidates do not wait for the previous block's model (nor for its
// mispredicted loop exit) when they are computed ahead.
TEXT ·searchModelAVX2(SB), NOSPLIT, $0-56
	MOVQ ms+24(FP), R11
	MOVQ hs+32(FP), R12
	MOVQ st+48(FP), R8
	XORQ R9, R9
	CMPQ R9, n+16(FP)
	JGE  done
	VMOVUPS      ·searchRatios(SB), Y15
	VBROADCASTSS searchSeven<>(SB), Y14
	VBROADCASTSS searchAbs<>(SB), Y13
	VBROADCASTSS searchMagic<>(SB), Y12
	VBROADCASTSS searchOne<>(SB), Y11
	VPBROADCASTD searchBit16<>(SB), Y10
	VPBROADCASTD searchHalf<>(SB), Y9
	VPBROADCASTD searchHigh<>(SB), Y8

	// Registers of the first pass: R8 st, R9 the block's index k, R10
	// k·32 (the offset of its 8 candidates), R11 ms, R12 hs.
candidates:
	// Only blocks whose min-max scale h0 is a positive normal float16.
	MOVWLZX (R12)(R9*2), BX
	LEAL    -0x400(BX), AX
	CMPL    AX, $(0x7c00-0x400)
	JAE     skip

	// candidates.set: lane c is BFloat16Round(float32(bound·ratio_c)/7),
	// bound = max(absMax, scaleFloor), the division a true one as in Go;
	// the bfloat16 rounding is the integer one of BFloat16Round (the
	// values are finite and positive).
	VMOVD        (R11)(R9*4), X0
	VMAXSS       searchFloor<>(SB), X0, X0
	VBROADCASTSS X0, Y0
	VMULPS       Y15, Y0, Y0
	VDIVPS       Y14, Y0, Y0
	VPSRLD       $16, Y0, Y4
	VPAND        Y10, Y4, Y4
	VPADDD       Y9, Y0, Y0
	VPADDD       Y4, Y0, Y0
	VPAND        Y8, Y0, Y0

	// Lane 0 is min-max's scale itself, Float32FromBits16(h0): a normal
	// float16 is the float32 of the same sign, exponent rebiased by
	// 127-15 and mantissa shifted by 13 bits.
	MOVL     BX, AX
	SHLL     $13, AX
	ADDL     $((127-15)<<23), AX
	VMOVD    AX, X4
	VPBLENDD $1, Y4, Y0, Y0

	// candidates.set's fast case only: every candidate a normal float16
	// (for lanes 1-7 that is the test of the smallest and the largest, as
	// they decrease). Otherwise searchBlock takes the block.
	VCMPPS    $0x1d, searchMinNormal<>(SB), Y0, Y4 // >=, ordered
	VCMPPS    $0x12, searchMaxF16<>(SB), Y0, Y5    // <=, ordered
	VANDPS    Y5, Y4, Y4
	VMOVMSKPS Y4, AX
	CMPL      AX, $0xff
	JNE       skip

	// The reciprocals: recipBF16(s) is float32(1/s) exactly for these s
	// (reciprocal_internal_test.go), so a division gives its bits.
	VDIVPS Y0, Y11, Y1

	// The big threshold, float32(7.49)·s_7 (the smallest candidate).
	VEXTRACTF128 $1, Y0, X2
	VSHUFPS      $0xff, X2, X2, X2
	VMULSS       searchClip<>(SB), X2, X2

	MOVQ    R9, R10
	SHLQ    $5, R10
	VMOVUPS Y0, searchState_cs(R8)(R10*1)
	VMOVUPS Y1, searchState_cr(R8)(R10*1)
	VMOVSS  X2, searchState_thr(R8)(R9*4)
	MOVW    $1, searchState_best(R8)(R9*2)
	JMP     nextCandidates

skip:
	// Not searched here; r = 0 keeps the unused lane of lsSumsAVX2 quiet.
	MOVW $0, searchState_best(R8)(R9*2)
	MOVL $0, searchState_r(R8)(R9*4)

nextCandidates:
	INCQ R9
	CMPQ R9, n+16(FP)
	JLT  candidates

	// Registers of the second pass: SI the block, DI its part of big, R8
	// st, R9 k, R10 k·32, R11 the block's candidates, R12 hs, R13 the
	// block size in bytes; Y0 the 8 candidate scales, Y1 their
	// reciprocals, Y2 the big threshold (all lanes), Y3 the model's sums
	// over the big elements.
	MOVQ x+0(FP), SI
	MOVQ blockSize+8(FP), R13
	SHLQ $2, R13
	MOVQ big+40(FP), DI
	XORQ R9, R9

block:
	MOVWLZX searchState_best(R8)(R9*2), AX
	TESTL   AX, AX
	JZ      next
	MOVQ         R9, R10
	SHLQ         $5, R10
	LEAQ         searchState_cs(R8)(R10*1), R11
	VMOVUPS      (R11), Y0
	VMOVUPS      (searchState_cr-searchState_cs)(R11), Y1
	VBROADCASTSS searchState_thr(R8)(R9*4), Y2

	VXORPS Y3, Y3, Y3
	MOVQ   SI, DX  // the current 32 elements
	MOVQ   DI, R10 // where the next big element goes

segment:
	// The big elements among 32, as the bits of CX in element order.
	BIGMASK8(0, Y4, CX)
	BIGMASK8(32, Y5, AX)
	SHLL $8, AX
	ORL  AX, CX
	BIGMASK8(64, Y6, AX)
	SHLL $16, AX
	ORL  AX, CX
	BIGMASK8(96, Y7, AX)
	SHLL $24, AX
	ORL  AX, CX

	// The block's nbig so far (the last segment's is the block's), and
	// from it Y7 = float32(rest·s_c)·s_c, rest = float32(len(x) − nbig)/12:
	// known before the model's loop, its chain runs alongside. (Every
	// AVX2 CPU has POPCNT.)
	POPCNTL      CX, AX
	MOVQ         R10, BX
	SUBQ         DI, BX
	SHRQ         $2, BX
	ADDQ         AX, BX
	MOVL         BX, searchState_nbig(R8)(R9*4)
	MOVQ         blockSize+8(FP), AX
	SUBQ         BX, AX
	VCVTSI2SSQ   AX, X7, X7
	VDIVSS       searchTwelve<>(SB), X7, X7
	VBROADCASTSS X7, Y7
	VMULPS       Y0, Y7, Y7
	VMULPS       Y0, Y7, Y7
	TESTL        CX, CX
	JZ           nextSegment

bigElement:
	// The lowest set bit: the next big element in order. (TZCNT is BSF on
	// CPUs without BMI1, the same for a non-zero input.)
	TZCNTL CX, AX
	MOVL   (DX)(AX*4), BX
	MOVL   BX, (R10)
	ADDQ   $4, R10

	// modelTerm for the 8 candidates: a = |v|, lim = roundMagicBits + 7,
	// + 1 if v < 0; t = a·r; d = (min(t + roundMagic, lim) − roundMagic) −
	// t; e += ((d·d)·s)·s, lane c adding in the same order as e_c.
	VPBROADCASTD (DX)(AX*4), Y4
	VPAND        Y13, Y4, Y4
	SHRL         $31, BX
	ADDL         $0x4b400007, BX
	VMOVD        BX, X5
	VPBROADCASTD X5, Y5
	VMULPS       Y1, Y4, Y4
	VADDPS       Y12, Y4, Y6
	VPMINUD      Y5, Y6, Y6
	VSUBPS       Y12, Y6, Y6
	VSUBPS       Y4, Y6, Y6
	VMULPS       Y6, Y6, Y6
	VMULPS       Y0, Y6, Y6
	VMULPS       Y0, Y6, Y6
	VADDPS       Y6, Y3, Y3

	// Clear the lowest set bit (BLSR without needing BMI1).
	LEAL -1(CX), AX
	ANDL AX, CX
	JNZ  bigElement

nextSegment:
	ADDQ $128, DX
	LEAQ (SI)(R13*1), AX
	CMPQ DX, AX
	JLT  segment

	// The model values e_c + float32(rest·s_c)·s_c.
	VADDPS Y3, Y7, Y4

	// The first lowest: the values are not negative, so their bits order
	// as they do; the minimum of the bits goes to every lane, and the
	// lowest lane equal to it wins, as the key of searchBlock makes it.
	VPERM2I128 $1, Y4, Y4, Y5
	VPMINUD    Y5, Y4, Y5
	VPSHUFD    $0x4e, Y5, Y6
	VPMINUD    Y6, Y5, Y5
	VPSHUFD    $0xb1, Y5, Y6
	VPMINUD    Y6, Y5, Y5
	VPCMPEQD   Y5, Y4, Y5
	VMOVMSKPS  Y5, AX
	TZCNTL     AX, AX

	// The chosen lane's scale and reciprocal; best is h0 for lane 0, else
	// bf16ToFloat16(s): the exponent rebiased, the mantissa's top 10 bits
	// kept.
	MOVL    (R11)(AX*4), CX
	MOVL    CX, searchState_s(R8)(R9*4)
	MOVL    (searchState_cr-searchState_cs)(R11)(AX*4), DX
	MOVL    DX, searchState_r(R8)(R9*4)
	SHRL    $13, CX
	SUBL    $((127-15)<<10), CX
	MOVWLZX (R12)(R9*2), BX
	TESTL   AX, AX
	CMOVLEQ BX, CX
	MOVW    CX, searchState_best(R8)(R9*2)

next:
	ADDQ R13, SI
	ADDQ R13, DI
	INCQ R9
	CMPQ R9, n+16(FP)
	JLT  block

done:
	VZEROUPPER
	RET

// TRANSPOSE4 transposes the 4×4 floats of each 128-bit half of A0-A3 (row
// i in Ai), with T0-T3 as scratch: afterwards Ai holds column i.
#define TRANSPOSE4(A0, A1, A2, A3, T0, T1, T2, T3) \
	VUNPCKLPS A1, A0, T0 \
	VUNPCKHPS A1, A0, T1 \
	VUNPCKLPS A3, A2, T2 \
	VUNPCKHPS A3, A2, T3 \
	VUNPCKLPD T2, T0, A0 \
	VUNPCKHPD T2, T0, A1 \
	VUNPCKLPD T3, T1, A2 \
	VUNPCKHPD T3, T1, A3

// SUMS adds the element X of the 8 blocks (one per lane) to the sums C and
// G, as lsSums does: q = rint(x·r) (the magic-number rounding), C += x·q,
// G += q·q. X is overwritten, T is scratch.
#define SUMS(X, C, G, T) \
	VMULPS Y15, X, T \
	VADDPS Y14, T, T \
	VSUBPS Y14, T, T \
	VMULPS T, X, X   \
	VMULPS T, T, T   \
	VADDPS X, C, C   \
	VADDPS T, G, G

// LOAD4 loads 4 elements (from byte off) of blocks 0-3 to the low halves
// of Y0-Y3 and of blocks 4-7 to their high halves: a block's 4 elements
// are then a row of each half's 4×4 matrix.
#define LOAD4(off) \
	VMOVUPS     off(AX)(SI*1), X0          \
	VINSERTF128 $1, off(R8)(SI*1), Y0, Y0  \
	VMOVUPS     off(BX)(SI*1), X1          \
	VINSERTF128 $1, off(R9)(SI*1), Y1, Y1  \
	VMOVUPS     off(CX)(SI*1), X2          \
	VINSERTF128 $1, off(R10)(SI*1), Y2, Y2 \
	VMOVUPS     off(DX)(SI*1), X3          \
	VINSERTF128 $1, off(R11)(SI*1), Y3, Y3

// func lsSumsAVX2(p *[8]*float32, n int, r, sxq, sqq *float32)
//
// Lane l sums block l: Y8 and Y9 are c0 and c1 (the even and the odd
// elements' x·q), Y10 and Y11 g0 and g1, each adding its elements in
// order, 8 elements of the 8 blocks transposed at a time.
TEXT ·lsSumsAVX2(SB), NOSPLIT, $0-40
	MOVQ p+0(FP), DI
	MOVQ 0(DI), AX
	MOVQ 8(DI), BX
	MOVQ 16(DI), CX
	MOVQ 24(DI), DX
	MOVQ 32(DI), R8
	MOVQ 40(DI), R9
	MOVQ 48(DI), R10
	MOVQ 56(DI), R11
	MOVQ n+8(FP), R12
	SHLQ $2, R12
	MOVQ r+16(FP), DI
	VMOVUPS      (DI), Y15
	VBROADCASTSS searchMagic<>(SB), Y14
	VXORPS       Y8, Y8, Y8
	VXORPS       Y9, Y9, Y9
	VXORPS       Y10, Y10, Y10
	VXORPS       Y11, Y11, Y11
	XORQ         SI, SI

loop:
	// Elements 0-3 of these 8: columns in Y0-Y3, element j in lane l
	// being block l's; then elements 4-7.
	LOAD4(0)
	TRANSPOSE4(Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
	SUMS(Y0, Y8, Y10, Y4)
	SUMS(Y1, Y9, Y11, Y5)
	SUMS(Y2, Y8, Y10, Y6)
	SUMS(Y3, Y9, Y11, Y7)
	LOAD4(16)
	TRANSPOSE4(Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
	SUMS(Y0, Y8, Y10, Y4)
	SUMS(Y1, Y9, Y11, Y5)
	SUMS(Y2, Y8, Y10, Y6)
	SUMS(Y3, Y9, Y11, Y7)
	ADDQ $32, SI
	CMPQ SI, R12
	JLT  loop

	// c = c0 + c1, g = g0 + g1, as lsSums returns them.
	VADDPS  Y9, Y8, Y8
	VADDPS  Y11, Y10, Y10
	MOVQ    sxq+24(FP), DI
	VMOVUPS Y8, (DI)
	MOVQ    sqq+32(FP), DI
	VMOVUPS Y10, (DI)
	VZEROUPPER
	RET

// Constants of lsStep, scalars.
DATA searchSeven64<>+0(SB)/4, $0x40e00000 // 7, q4's top
GLOBL searchSeven64<>(SB), RODATA|NOPTR, $4
DATA searchMinus8<>+0(SB)/4, $0xc1000000 // -8, q4's bottom
GLOBL searchMinus8<>(SB), RODATA|NOPTR, $4

// func lsStepsAVX2(hs *uint16, n int, big *float32, blockSize int, st *searchState)
//
// lsStep for each of the n blocks the model chose for (st.best[k] != 0),
// in float32 and float64 scalar instructions in lsStep's order; the
// result goes to hs[k]. Registers: R8 st, R9 k, R12 hs, DI the block's
// big elements, R13 the block size in bytes; X0 sxq, X1 sqq, X2 r.
TEXT ·lsStepsAVX2(SB), NOSPLIT, $0-40
	MOVQ hs+0(FP), R12
	MOVQ big+16(FP), DI
	MOVQ blockSize+24(FP), R13
	SHLQ $2, R13
	MOVQ st+32(FP), R8
	XORQ R9, R9
	CMPQ R9, n+8(FP)
	JGE  stepsDone
	VMOVSS searchMagic<>(SB), X15
	VMOVSS searchSeven64<>(SB), X14
	VMOVSS searchMinus8<>(SB), X13
	VXORPD X12, X12, X12

step:
	MOVWLZX searchState_best(R8)(R9*2), BX
	TESTL   BX, BX
	JZ      nextStep
	VMOVSS    searchState_c(R8)(R9*4), X0
	VCVTSS2SD X0, X0, X0
	VMOVSS    searchState_g(R8)(R9*4), X1
	VCVTSS2SD X1, X1, X1
	VMOVSS    searchState_r(R8)(R9*4), X2
	MOVL      searchState_nbig(R8)(R9*4), CX
	MOVQ      DI, SI
	TESTL     CX, CX
	JZ        corrected

correct:
	// t = v·r; u = rint(t); q = clip(u, -8, 7) (q4);
	// sxq += float64(v·(q − u)); sqq += float64(q·q) − float64(u·u).
	VMOVSS    (SI), X3
	VMULSS    X2, X3, X4
	VADDSS    X15, X4, X4
	VSUBSS    X15, X4, X4
	VMINSS    X14, X4, X5
	VMAXSS    X13, X5, X5
	VSUBSS    X4, X5, X6
	VMULSS    X6, X3, X6
	VCVTSS2SD X6, X6, X6
	VADDSD    X6, X0, X0
	VMULSS    X5, X5, X5
	VCVTSS2SD X5, X5, X5
	VMULSS    X4, X4, X4
	VCVTSS2SD X4, X4, X4
	VSUBSD    X4, X5, X5
	VADDSD    X5, X1, X1
	ADDQ      $4, SI
	DECL      CX
	JNZ       correct

corrected:
	// Only if sqq > 0 and sxq > 0 (ordered compares: a NaN fails them).
	VUCOMISD X12, X1
	JBE      keep
	VUCOMISD X12, X0
	JBE      keep

	// b = BFloat16Round(float32(sxq/sqq)) (finite and positive: the
	// integer rounding), kept only in the float16 normal range.
	VDIVSD    X1, X0, X3
	VCVTSD2SS X3, X3, X3
	VMOVD     X3, AX
	MOVL      AX, DX
	SHRL      $16, DX
	ANDL      $1, DX
	LEAL      0x7fff(AX)(DX*1), AX
	ANDL      $0xffff0000, AX
	CMPL      AX, $0x38800000
	JB        keep
	CMPL      AX, $0x477fe000
	JA        keep

	// s = float64(b), sm = float64(s_m): b (as h = bf16ToFloat16(b)) is
	// kept if (s − sm)·((s + sm)·sqq − 2·sxq) < 0. When h is best the
	// choice does not matter.
	VMOVD     AX, X3
	VCVTSS2SD X3, X3, X3
	VMOVSS    searchState_s(R8)(R9*4), X4
	VCVTSS2SD X4, X4, X4
	VSUBSD    X4, X3, X5
	VADDSD    X4, X3, X6
	VMULSD    X1, X6, X6
	VADDSD    X0, X0, X7
	VSUBSD    X7, X6, X6
	VMULSD    X6, X5, X5
	SHRL      $13, AX
	SUBL      $((127-15)<<10), AX
	VUCOMISD  X12, X5
	CMOVLCS   AX, BX

keep:
	MOVW BX, (R12)(R9*2)

nextStep:
	ADDQ R13, DI
	INCQ R9
	CMPQ R9, n+8(FP)
	JLT  step

stepsDone:
	RET
