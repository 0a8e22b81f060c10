//go:build amd64

#include "textflag.h"
#include "vec_amd64.h"
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
VEC8(searchMinNormal, $0x38800000) // MinNormalFloat16, 2^-14
VEC8(searchMaxF16, $0x477fe000) // maxFloat16, 65504

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

// The lane bits 1, 2, 4, ... 128: an 8-bit mask to 8 lanes.
DATA searchLaneBits<>+0(SB)/4, $1
DATA searchLaneBits<>+4(SB)/4, $2
DATA searchLaneBits<>+8(SB)/4, $4
DATA searchLaneBits<>+12(SB)/4, $8
DATA searchLaneBits<>+16(SB)/4, $16
DATA searchLaneBits<>+20(SB)/4, $32
DATA searchLaneBits<>+24(SB)/4, $64
DATA searchLaneBits<>+28(SB)/4, $128
GLOBL searchLaneBits<>(SB), RODATA|NOPTR, $32
DATA searchMinus8v<>+0(SB)/4, $0xc1000000 // -8, q4's bottom
GLOBL searchMinus8v<>(SB), RODATA|NOPTR, $4
DATA searchMinNormalLess1<>+0(SB)/4, $0x387fffff // 2^-14 less an ulp: b >= 2^-14 is b > this
GLOBL searchMinNormalLess1<>(SB), RODATA|NOPTR, $4
DATA searchRebias<>+0(SB)/4, $0x1c000 // bf16ToFloat16's (127-15)<<10
GLOBL searchRebias<>(SB), RODATA|NOPTR, $4

// LANES2PD converts the 8 floats of Y to float64 in LO (lanes 0-3) and HI
// (lanes 4-7). Y is overwritten.
#define LANES2PD(Y, X, LO, HI) \
	VCVTPS2PD    X, LO     \
	VEXTRACTF128 $1, Y, X  \
	VCVTPS2PD    X, HI

// func lsSteps8AVX2(st *searchState, k0 int, big *float32, blockSize int, hs *uint16)
//
// lsStep for the 8 blocks k0 to k0+7 at once, block k0+l in lane l: the
// float32 steps in 8 lanes, the float64 sums and the test in two halves
// of 4 lanes (Y0/Y1 sxq, Y2/Y3 sqq, lanes 0-3 then 4-7), every lane in
// lsStep's order. The clipped elements' correction goes through the big
// elements up to the largest nbig of the 8, a lane past its own nbig
// taking 0, which adds +0 (the sums are not -0) and so nothing. It
// writes hs[k0+l] for the lanes the model chose for (best != 0): lsStep's
// result; the others keep theirs. big must have room for 8 blocks from
// k0 (searchBlocks checks).
TEXT ·lsSteps8AVX2(SB), NOSPLIT, $0-40
	MOVQ st+0(FP), R8
	MOVQ k0+8(FP), R9
	MOVQ blockSize+24(FP), R10
	SHLQ $2, R10                 // S, a block's bytes
	LEAQ (R10)(R10*2), R11       // 3·S
	MOVQ R9, SI
	IMULQ R10, SI
	ADDQ big+16(FP), SI          // block k0's big elements

	// sxq = float64(c), sqq = float64(g); r, nbig; i = 0.
	VMOVUPS searchState_c(R8)(R9*4), Y4
	LANES2PD(Y4, X4, Y0, Y1)
	VMOVUPS searchState_g(R8)(R9*4), Y4
	LANES2PD(Y4, X4, Y2, Y3)
	VMOVUPS      searchState_r(R8)(R9*4), Y15
	VMOVDQU      searchState_nbig(R8)(R9*4), Y11
	VBROADCASTSS searchMagic<>(SB), Y14
	VBROADCASTSS searchSeven<>(SB), Y13
	VBROADCASTSS searchMinus8v<>(SB), Y12
	VPXOR        Y10, Y10, Y10
	VPCMPEQD     Y9, Y9, Y9
	VPSUBD       Y9, Y10, Y9     // 1 in every lane

	// The loop count: the largest nbig.
	VPERM2I128 $1, Y11, Y11, Y4
	VPMAXUD    Y4, Y11, Y4
	VPSHUFD    $0x4e, Y4, Y5
	VPMAXUD    Y5, Y4, Y4
	VPSHUFD    $0xb1, Y4, Y5
	VPMAXUD    Y5, Y4, Y4
	VMOVD      X4, CX
	TESTL      CX, CX
	JZ         decide

correct8:
	// v: element i of each block's big elements, 0 past its nbig.
	LEAQ        (SI)(R10*4), DX
	VMOVD       (SI), X4
	VPINSRD     $1, (SI)(R10*1), X4, X4
	VPINSRD     $2, (SI)(R10*2), X4, X4
	VPINSRD     $3, (SI)(R11*1), X4, X4
	VMOVD       (DX), X5
	VPINSRD     $1, (DX)(R10*1), X5, X5
	VPINSRD     $2, (DX)(R10*2), X5, X5
	VPINSRD     $3, (DX)(R11*1), X5, X5
	VINSERTI128 $1, X5, Y4, Y4
	VPCMPGTD    Y10, Y11, Y5
	VPAND       Y5, Y4, Y4
	VPADDD      Y9, Y10, Y10

	// t = v·r; u = rint(t); q = clip(u, -8, 7) (q4);
	// sxq += float64(v·(q − u)); sqq += float64(q·q) − float64(u·u).
	VMULPS Y15, Y4, Y5
	VADDPS Y14, Y5, Y5
	VSUBPS Y14, Y5, Y5
	VMINPS Y13, Y5, Y6
	VMAXPS Y12, Y6, Y6
	VSUBPS Y5, Y6, Y7
	VMULPS Y7, Y4, Y7
	VMULPS Y6, Y6, Y6
	VMULPS Y5, Y5, Y5
	LANES2PD(Y7, X7, Y8, Y4)
	VADDPD Y8, Y0, Y0
	VADDPD Y4, Y1, Y1
	LANES2PD(Y6, X6, Y8, Y4)
	LANES2PD(Y5, X5, Y7, Y6)
	VSUBPD Y7, Y8, Y8
	VSUBPD Y6, Y4, Y4
	VADDPD Y8, Y2, Y2
	VADDPD Y4, Y3, Y3

	ADDQ $4, SI
	DECL CX
	JNZ  correct8

decide:
	// AX: the lanes with sqq > 0 and sxq > 0 (ordered: a NaN fails).
	VXORPD    Y4, Y4, Y4
	VCMPPD    $0x1e, Y4, Y2, Y5
	VCMPPD    $0x1e, Y4, Y0, Y6
	VANDPD    Y6, Y5, Y5
	VMOVMSKPD Y5, AX
	VCMPPD    $0x1e, Y4, Y3, Y5
	VCMPPD    $0x1e, Y4, Y1, Y6
	VANDPD    Y6, Y5, Y5
	VMOVMSKPD Y5, BX
	SHLL      $4, BX
	ORL       BX, AX

	// Y5: b = BFloat16Round(float32(sxq/sqq)), the integer rounding (the
	// lanes where it could be NaN or negative are out of AX).
	VDIVPD       Y2, Y0, Y5
	VDIVPD       Y3, Y1, Y6
	VCVTPD2PSY   Y5, X5
	VCVTPD2PSY   Y6, X6
	VINSERTF128  $1, X6, Y5, Y5
	VPSRLD       $16, Y5, Y6
	VPBROADCASTD searchBit16<>(SB), Y7
	VPAND        Y7, Y6, Y6
	VPBROADCASTD searchHalf<>(SB), Y7
	VPADDD       Y7, Y5, Y5
	VPADDD       Y6, Y5, Y5
	VPBROADCASTD searchHigh<>(SB), Y7
	VPAND        Y7, Y5, Y5

	// Only b in the float16 normal range (as int32 the bits of a positive
	// float order as it does).
	VPBROADCASTD searchMinNormalLess1<>(SB), Y6
	VPCMPGTD     Y6, Y5, Y6
	VPBROADCASTD searchMaxF16<>(SB), Y7
	VPCMPGTD     Y7, Y5, Y7
	VPANDN       Y6, Y7, Y6
	VMOVMSKPS    Y6, BX
	ANDL         BX, AX

	// b is kept where (s − sm)·((s + sm)·sqq − 2·sxq) < 0, s = float64(b),
	// sm = float64(s_m); lanes 0-3, then 4-7.
	VMOVUPS searchState_s(R8)(R9*4), Y6
	LANES2PD(Y6, X6, Y7, Y8)
	VMOVUPS Y5, Y6
	LANES2PD(Y6, X6, Y9, Y10)
	VSUBPD    Y7, Y9, Y11
	VADDPD    Y7, Y9, Y12
	VMULPD    Y2, Y12, Y12
	VADDPD    Y0, Y0, Y13
	VSUBPD    Y13, Y12, Y12
	VMULPD    Y12, Y11, Y11
	VCMPPD    $0x11, Y4, Y11, Y11 // <, ordered
	VMOVMSKPD Y11, BX
	VSUBPD    Y8, Y10, Y11
	VADDPD    Y8, Y10, Y12
	VMULPD    Y3, Y12, Y12
	VADDPD    Y1, Y1, Y13
	VSUBPD    Y13, Y12, Y12
	VMULPD    Y12, Y11, Y11
	VCMPPD    $0x11, Y4, Y11, Y11
	VMOVMSKPD Y11, DX
	SHLL      $4, DX
	ORL       DX, BX
	ANDL      BX, AX

	// The result: h = bf16ToFloat16(b) where AX (and the model chose),
	// else best where the model chose, else hs as it is.
	VPMOVZXWD    searchState_best(R8)(R9*2), Y6
	VPXOR        Y4, Y4, Y4
	VPCMPEQD     Y4, Y6, Y7          // best == 0
	MOVQ         hs+32(FP), DI
	VPMOVZXWD    (DI)(R9*2), Y8
	VPBLENDVB    Y7, Y8, Y6, Y6
	VMOVMSKPS    Y7, BX
	NOTL         BX
	ANDL         BX, AX
	VMOVD        AX, X9
	VPBROADCASTD X9, Y9
	VMOVDQU      searchLaneBits<>(SB), Y10
	VPAND        Y10, Y9, Y9
	VPCMPEQD     Y10, Y9, Y9
	VPSRLD       $13, Y5, Y5
	VPBROADCASTD searchRebias<>(SB), Y10
	VPSUBD       Y10, Y5, Y5
	VPBLENDVB    Y9, Y5, Y6, Y6
	VEXTRACTI128 $1, Y6, X7
	VPACKUSDW    X7, X6, X6
	VMOVDQU      X6, (DI)(R9*2)
	VZEROUPPER
	RET

// The operands of moments' q4, 8 lanes each (memory operands).
VEC8(momMagic, $0x4b400000) // roundMagic
VEC8(momSeven, $0x40e00000) // 7
VEC8(momMinus8, $0xc1000000) // -8

// MOMENTS4(D, Q, T, err, mean, plain, a, c, dd) adds 4 lanes of moments'
// sums: D holds d, Q holds q (float64), DX and DI point at element j's
// float64 variance and mean, vx-32(SP) holds its float64(v)·float64(x) in
// 4 lanes; T is scratch, D and Q are spent. Each product is rounded as in
// moments, in its order.
#define MOMENTS4(D, Q, T, err, mean, plain, a, c, dd) \
	VBROADCASTSD (DX)(R9*8), T \
	VMULPD       D, T, T       \
	VMULPD       D, T, T       \
	VADDPD       T, err, err   \
	VMULPD       D, D, T       \
	VADDPD       T, plain, plain \
	VBROADCASTSD (DI)(R9*8), T \
	VMULPD       D, T, T       \
	VADDPD       T, mean, mean \
	VBROADCASTSD (DI)(R9*8), T \
	VMULPD       Q, T, T       \
	VADDPD       T, a, a       \
	VBROADCASTSD (DX)(R9*8), T \
	VMULPD       Q, T, T       \
	VMULPD       Q, T, T       \
	VADDPD       T, c, c       \
	VMULPD       vx-32(SP), Q, Q \
	VADDPD       Q, dd, dd

// func momentsAVX2(x *float32, mu, v *float64, n int, s, r *[8]float32, out *candMoments)
//
// moments' sums for the 8 scales s (reciprocals r) at once, candidate c
// in lane c: q and d in float32 (8 lanes of one YMM), the sums in float64
// (lanes 0-3 in one YMM, 4-7 in another), each lane adding in element
// order. mu and v are the statistics as float64 (exact conversions).
TEXT ·momentsAVX2(SB), NOSPLIT, $32-56
	MOVQ   x+0(FP), SI
	MOVQ   mu+8(FP), DI
	MOVQ   v+16(FP), DX
	MOVQ   n+24(FP), CX
	MOVQ   s+32(FP), AX
	MOVQ   r+40(FP), BX
	VXORPD Y0, Y0, Y0   // err
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2   // mean
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4   // plain
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6   // a
	VXORPD Y7, Y7, Y7
	VXORPD Y8, Y8, Y8   // c
	VXORPD Y9, Y9, Y9
	VXORPD Y10, Y10, Y10 // dd
	VXORPD Y11, Y11, Y11
	XORQ   R9, R9
	CMPQ   R9, CX
	JGE    momentsDone

momentsLoop:
	// q = q4(float32(x·r)) in Y13, d = float32(q·s) − x in Y14.
	VBROADCASTSS (SI)(R9*4), Y12
	VMULPS       (BX), Y12, Y13
	VADDPS       momMagic<>(SB), Y13, Y13
	VSUBPS       momMagic<>(SB), Y13, Y13
	VMINPS       momSeven<>(SB), Y13, Y13
	VMAXPS       momMinus8<>(SB), Y13, Y13
	VMULPS       (AX), Y13, Y14
	VSUBPS       Y12, Y14, Y14

	// float64(v)·float64(x), 4 lanes, to vx.
	VCVTPS2PD    X12, Y12
	VBROADCASTSD (DX)(R9*8), Y15
	VMULPD       Y15, Y12, Y12
	VMOVUPD      Y12, vx-32(SP)

	// Y12 = the upper halves of d and q; lanes 0-3, then 4-7.
	VEXTRACTF128 $1, Y14, X12
	VEXTRACTF128 $1, Y13, X15
	VINSERTF128  $1, X15, Y12, Y12
	VCVTPS2PD    X14, Y14
	VCVTPS2PD    X13, Y13
	MOMENTS4(Y14, Y13, Y15, Y0, Y2, Y4, Y6, Y8, Y10)
	VCVTPS2PD    X12, Y14
	VEXTRACTF128 $1, Y12, X13
	VCVTPS2PD    X13, Y13
	MOMENTS4(Y14, Y13, Y15, Y1, Y3, Y5, Y7, Y9, Y11)

	INCQ R9
	CMPQ R9, CX
	JLT  momentsLoop

momentsDone:
	MOVQ    out+48(FP), R8
	VMOVUPD Y0, candMoments_err(R8)
	VMOVUPD Y1, candMoments_err+32(R8)
	VMOVUPD Y2, candMoments_mean(R8)
	VMOVUPD Y3, candMoments_mean+32(R8)
	VMOVUPD Y4, candMoments_plain(R8)
	VMOVUPD Y5, candMoments_plain+32(R8)
	VMOVUPD Y6, candMoments_a(R8)
	VMOVUPD Y7, candMoments_a+32(R8)
	VMOVUPD Y8, candMoments_c(R8)
	VMOVUPD Y9, candMoments_c+32(R8)
	VMOVUPD Y10, candMoments_dd(R8)
	VMOVUPD Y11, candMoments_dd+32(R8)
	VZEROUPPER
	RET
