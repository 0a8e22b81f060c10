//go:build amd64

#include "textflag.h"

// The lazy update of the GPTQ sweep (gptq.go) with AVX2: every lane does
// axpy4Go's float32 operations in its order, one rounding each (no FMA).

// func axpy4AVX2(y *float32, n int, a *float32, x0, x1, x2, x3 *float32)
TEXT ·axpy4AVX2(SB), NOSPLIT, $0-56
	MOVQ y+0(FP), DI
	MOVQ n+8(FP), CX
	MOVQ a+16(FP), AX
	MOVQ x0+24(FP), R8
	MOVQ x1+32(FP), R9
	MOVQ x2+40(FP), R10
	MOVQ x3+48(FP), R11
	VBROADCASTSS 0(AX), Y0
	VBROADCASTSS 4(AX), Y1
	VBROADCASTSS 8(AX), Y2
	VBROADCASTSS 12(AX), Y3
	SHLQ $2, CX
	XORQ SI, SI

loop:
	CMPQ SI, CX
	JGE  done
	VMOVUPS (DI)(SI*1), Y4
	VMULPS  (R8)(SI*1), Y0, Y5
	VADDPS  Y5, Y4, Y4
	VMULPS  (R9)(SI*1), Y1, Y5
	VADDPS  Y5, Y4, Y4
	VMULPS  (R10)(SI*1), Y2, Y5
	VADDPS  Y5, Y4, Y4
	VMULPS  (R11)(SI*1), Y3, Y5
	VADDPS  Y5, Y4, Y4
	VMOVUPS Y4, (DI)(SI*1)
	ADDQ    $32, SI
	JMP     loop

done:
	VZEROUPPER
	RET

// func dot64AVX2(a, b *float64, n int, sums *[16]float64)
// sums[i] = Σ_k a[16k+i]·b[16k+i] over n (a multiple of 16) elements: four
// accumulators of four lanes, each product rounded, then added in k order
// (dot64Go's partial sums exactly).
TEXT ·dot64AVX2(SB), NOSPLIT, $0-32
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	MOVQ sums+24(FP), DX
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	SHLQ $3, CX
	XORQ AX, AX

dloop:
	CMPQ AX, CX
	JGE  ddone
	VMOVUPD (SI)(AX*1), Y4
	VMULPD  (DI)(AX*1), Y4, Y4
	VADDPD  Y4, Y0, Y0
	VMOVUPD 32(SI)(AX*1), Y5
	VMULPD  32(DI)(AX*1), Y5, Y5
	VADDPD  Y5, Y1, Y1
	VMOVUPD 64(SI)(AX*1), Y6
	VMULPD  64(DI)(AX*1), Y6, Y6
	VADDPD  Y6, Y2, Y2
	VMOVUPD 96(SI)(AX*1), Y7
	VMULPD  96(DI)(AX*1), Y7, Y7
	VADDPD  Y7, Y3, Y3
	ADDQ    $128, AX
	JMP     dloop

ddone:
	VMOVUPD Y0, 0(DX)
	VMOVUPD Y1, 32(DX)
	VMOVUPD Y2, 64(DX)
	VMOVUPD Y3, 96(DX)
	VZEROUPPER
	RET

// func axpyAVX2(y *float32, n int, a float32, x *float32)
// y[i] += a·x[i] over n (a multiple of 8) elements, one rounding each.
TEXT ·axpyAVX2(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	MOVQ n+8(FP), CX
	VBROADCASTSS a+16(FP), Y0
	MOVQ x+24(FP), SI
	SHLQ $2, CX
	XORQ AX, AX

aloop:
	CMPQ AX, CX
	JGE  adone
	VMULPS  (SI)(AX*1), Y0, Y1
	VADDPS  (DI)(AX*1), Y1, Y1
	VMOVUPS Y1, (DI)(AX*1)
	ADDQ    $32, AX
	JMP     aloop

adone:
	VZEROUPPER
	RET

// func dot32AVX2(a, b *float32, n int, sums *[32]float32)
// sums[i] = Σ_k a[32k+i]·b[32k+i] over n (a multiple of 32) elements: four
// accumulators of eight lanes, each product rounded, added in k order.
TEXT ·dot32AVX2(SB), NOSPLIT, $0-32
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	MOVQ sums+24(FP), DX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	SHLQ $2, CX
	XORQ AX, AX

sloop:
	CMPQ AX, CX
	JGE  sdone
	VMOVUPS (SI)(AX*1), Y4
	VMULPS  (DI)(AX*1), Y4, Y4
	VADDPS  Y4, Y0, Y0
	VMOVUPS 32(SI)(AX*1), Y5
	VMULPS  32(DI)(AX*1), Y5, Y5
	VADDPS  Y5, Y1, Y1
	VMOVUPS 64(SI)(AX*1), Y6
	VMULPS  64(DI)(AX*1), Y6, Y6
	VADDPS  Y6, Y2, Y2
	VMOVUPS 96(SI)(AX*1), Y7
	VMULPS  96(DI)(AX*1), Y7, Y7
	VADDPS  Y7, Y3, Y3
	ADDQ    $128, AX
	JMP     sloop

sdone:
	VMOVUPS Y0, 0(DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, 64(DX)
	VMOVUPS Y3, 96(DX)
	VZEROUPPER
	RET

// func hessRowAVX2(h *float64, x *float32, n int, xi float64)
// h[j] += xi·float64(x[j]) over n (a multiple of 4) elements, in float64,
// one rounding each (AddHessian's inner loop).
TEXT ·hessRowAVX2(SB), NOSPLIT, $0-32
	MOVQ h+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSD xi+24(FP), Y0
	XORQ AX, AX
	XORQ BX, BX

hloop:
	CMPQ AX, CX
	JGE  hdone
	VCVTPS2PD (SI)(AX*4), Y1
	VMULPD    Y0, Y1, Y1
	VADDPD    (DI)(AX*8), Y1, Y1
	VMOVUPD   Y1, (DI)(AX*8)
	ADDQ      $4, AX
	JMP       hloop

hdone:
	VZEROUPPER
	RET

// func hessRow4AVX2(h *float64, n int, a *[4]float64, x0, x1, x2, x3 *float32)
// h[j] = (((h[j] + a0·x0[j]) + a1·x1[j]) + a2·x2[j]) + a3·x3[j] over n (a
// multiple of 4) elements, four lanes at a time: hessRowAVX2 four times,
// with h loaded and stored once.
TEXT ·hessRow4AVX2(SB), NOSPLIT, $0-56
	MOVQ h+0(FP), DI
	MOVQ n+8(FP), CX
	MOVQ a+16(FP), AX
	MOVQ x0+24(FP), R8
	MOVQ x1+32(FP), R9
	MOVQ x2+40(FP), R10
	MOVQ x3+48(FP), R11
	VBROADCASTSD 0(AX), Y4
	VBROADCASTSD 8(AX), Y5
	VBROADCASTSD 16(AX), Y6
	VBROADCASTSD 24(AX), Y7
	XORQ BX, BX

h4loop:
	CMPQ BX, CX
	JGE  h4done
	VMOVUPD   (DI)(BX*8), Y1
	VCVTPS2PD (R8)(BX*4), Y2
	VMULPD    Y4, Y2, Y2
	VADDPD    Y2, Y1, Y1
	VCVTPS2PD (R9)(BX*4), Y2
	VMULPD    Y5, Y2, Y2
	VADDPD    Y2, Y1, Y1
	VCVTPS2PD (R10)(BX*4), Y2
	VMULPD    Y6, Y2, Y2
	VADDPD    Y2, Y1, Y1
	VCVTPS2PD (R11)(BX*4), Y2
	VMULPD    Y7, Y2, Y2
	VADDPD    Y2, Y1, Y1
	VMOVUPD   Y1, (DI)(BX*8)
	ADDQ      $4, BX
	JMP       h4loop

h4done:
	VZEROUPPER
	RET

// func lazy4x16AVX2(t *float32, ldt int, e *float32, lde int, p *float32, k int)
// For rows r = 0..3: t[r·ldt + l] += e[r·lde + i]·p[16i + l], l < 16, for i
// = 0..k−1 in order; the sums stay in Y0-Y7 (two per row) for the k terms.
TEXT ·lazy4x16AVX2(SB), NOSPLIT, $0-48
	MOVQ t+0(FP), DI
	MOVQ ldt+8(FP), SI
	MOVQ e+16(FP), R8
	MOVQ lde+24(FP), BX
	MOVQ p+32(FP), DX
	MOVQ k+40(FP), CX
	SHLQ $2, SI
	SHLQ $2, BX
	LEAQ (DI)(SI*1), R12
	LEAQ (R12)(SI*1), R13
	LEAQ (R13)(SI*1), R14
	LEAQ (R8)(BX*1), R9
	LEAQ (R9)(BX*1), R10
	LEAQ (R10)(BX*1), R11
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS (R12), Y2
	VMOVUPS 32(R12), Y3
	VMOVUPS (R13), Y4
	VMOVUPS 32(R13), Y5
	VMOVUPS (R14), Y6
	VMOVUPS 32(R14), Y7
	XORQ AX, AX

lloop:
	CMPQ AX, CX
	JGE  ldone
	VMOVUPS (DX), Y8
	VMOVUPS 32(DX), Y9
	VBROADCASTSS (R8)(AX*4), Y10
	VMULPS Y8, Y10, Y11
	VMULPS Y9, Y10, Y12
	VADDPS Y11, Y0, Y0
	VADDPS Y12, Y1, Y1
	VBROADCASTSS (R9)(AX*4), Y10
	VMULPS Y8, Y10, Y11
	VMULPS Y9, Y10, Y12
	VADDPS Y11, Y2, Y2
	VADDPS Y12, Y3, Y3
	VBROADCASTSS (R10)(AX*4), Y10
	VMULPS Y8, Y10, Y11
	VMULPS Y9, Y10, Y12
	VADDPS Y11, Y4, Y4
	VADDPS Y12, Y5, Y5
	VBROADCASTSS (R11)(AX*4), Y10
	VMULPS Y8, Y10, Y11
	VMULPS Y9, Y10, Y12
	VADDPS Y11, Y6, Y6
	VADDPS Y12, Y7, Y7
	ADDQ $64, DX
	INCQ AX
	JMP  lloop

ldone:
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, (R12)
	VMOVUPS Y3, 32(R12)
	VMOVUPS Y4, (R13)
	VMOVUPS Y5, 32(R13)
	VMOVUPS Y6, (R14)
	VMOVUPS Y7, 32(R14)
	VZEROUPPER
	RET

// func lazy1x16AVX2(t *float32, e *float32, p *float32, k int)
// lazy4x16AVX2 for one row.
TEXT ·lazy1x16AVX2(SB), NOSPLIT, $0-32
	MOVQ t+0(FP), DI
	MOVQ e+8(FP), R8
	MOVQ p+16(FP), DX
	MOVQ k+24(FP), CX
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	XORQ AX, AX

l1loop:
	CMPQ AX, CX
	JGE  l1done
	VBROADCASTSS (R8)(AX*4), Y10
	VMULPS (DX), Y10, Y11
	VMULPS 32(DX), Y10, Y12
	VADDPS Y11, Y0, Y0
	VADDPS Y12, Y1, Y1
	ADDQ $64, DX
	INCQ AX
	JMP  l1loop

l1done:
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VZEROUPPER
	RET

// The cholTile kernels' shared parts: eight entries' sums of a quarter of
// the lanes (two rows a0, a1 in SI, DI against four rows b in R8-R11) in
// Y0-Y7, loaded from and stored to the scratch at R12; one step of four
// terms at byte offset off from AX: each product rounded on its own, then
// added (dot64's order).
#define CHOL2X4_LOAD \
	VMOVUPD 0(R12), Y0; \
	VMOVUPD 128(R12), Y1; \
	VMOVUPD 256(R12), Y2; \
	VMOVUPD 384(R12), Y3; \
	VMOVUPD 2048(R12), Y4; \
	VMOVUPD 2176(R12), Y5; \
	VMOVUPD 2304(R12), Y6; \
	VMOVUPD 2432(R12), Y7

#define CHOL2X4_STORE \
	VMOVUPD Y0, 0(R12); \
	VMOVUPD Y1, 128(R12); \
	VMOVUPD Y2, 256(R12); \
	VMOVUPD Y3, 384(R12); \
	VMOVUPD Y4, 2048(R12); \
	VMOVUPD Y5, 2176(R12); \
	VMOVUPD Y6, 2304(R12); \
	VMOVUPD Y7, 2432(R12)

#define CHOL2X4_STEP(off) \
	VMOVUPD off(SI)(AX*1), Y8; \
	VMOVUPD off(DI)(AX*1), Y9; \
	VMOVUPD off(R8)(AX*1), Y10; \
	VMULPD  Y10, Y8, Y11; \
	VMULPD  Y10, Y9, Y12; \
	VADDPD  Y11, Y0, Y0; \
	VADDPD  Y12, Y4, Y4; \
	VMOVUPD off(R9)(AX*1), Y13; \
	VMULPD  Y13, Y8, Y14; \
	VMULPD  Y13, Y9, Y15; \
	VADDPD  Y14, Y1, Y1; \
	VADDPD  Y15, Y5, Y5; \
	VMOVUPD off(R10)(AX*1), Y10; \
	VMULPD  Y10, Y8, Y11; \
	VMULPD  Y10, Y9, Y12; \
	VADDPD  Y11, Y2, Y2; \
	VADDPD  Y12, Y6, Y6; \
	VMOVUPD off(R11)(AX*1), Y13; \
	VMULPD  Y13, Y8, Y14; \
	VMULPD  Y13, Y9, Y15; \
	VADDPD  Y14, Y3, Y3; \
	VADDPD  Y15, Y7, Y7

// func cholTile2x4AVX2(a0, a1, b0, b1, b2, b3 *float64, n int, s *float64)
// For x < 2, y < 4 and lanes l < 16: s[256x + 16y + l] += a_x[16k+l]·b_y[16k+l]
// for k = 0..n/16−1 in order (n a multiple of 16), each product rounded
// on its own (no FMA): dot64's partial sums, continued, for eight entries
// at once. It runs the four quarters of the lanes (4q..4q+3) one after
// the other, so the eight entries' sums of a quarter stay in Y0-Y7 and
// every loaded vector feeds two or four multiply-adds; two steps of k
// per turn of the loop.
TEXT ·cholTile2x4AVX2(SB), NOSPLIT, $0-64
	MOVQ a0+0(FP), SI
	MOVQ a1+8(FP), DI
	MOVQ b0+16(FP), R8
	MOVQ b1+24(FP), R9
	MOVQ b2+32(FP), R10
	MOVQ b3+40(FP), R11
	MOVQ n+48(FP), R13
	MOVQ s+56(FP), DX
	SHRQ $4, R13
	XORQ BX, BX

t24q:
	CMPQ BX, $128
	JGE  t24done
	LEAQ (DX)(BX*1), R12
	CHOL2X4_LOAD
	MOVQ BX, AX
	MOVQ R13, R14

t24k2:
	CMPQ R14, $2
	JLT  t24k1
	CHOL2X4_STEP(0)
	CHOL2X4_STEP(128)
	ADDQ    $256, AX
	SUBQ    $2, R14
	JMP     t24k2

t24k1:
	CMPQ R14, $1
	JLT  t24kdone
	CHOL2X4_STEP(0)

t24kdone:
	CHOL2X4_STORE
	ADDQ    $32, BX
	JMP     t24q

t24done:
	VZEROUPPER
	RET

// func cholTile1x4AVX2(a0, b0, b1, b2, b3 *float64, n int, s *float64)
// cholTile2x4AVX2 for one row (x = 0).
TEXT ·cholTile1x4AVX2(SB), NOSPLIT, $0-56
	MOVQ a0+0(FP), SI
	MOVQ b0+8(FP), R8
	MOVQ b1+16(FP), R9
	MOVQ b2+24(FP), R10
	MOVQ b3+32(FP), R11
	MOVQ n+40(FP), CX
	MOVQ s+48(FP), DX
	SHLQ $3, CX
	XORQ BX, BX

t14q:
	CMPQ BX, $128
	JGE  t14done
	LEAQ (DX)(BX*1), R12
	VMOVUPD 0(R12), Y0
	VMOVUPD 128(R12), Y1
	VMOVUPD 256(R12), Y2
	VMOVUPD 384(R12), Y3
	MOVQ BX, AX

t14k:
	CMPQ AX, CX
	JGE  t14kdone
	VMOVUPD (SI)(AX*1), Y8
	VMULPD  (R8)(AX*1), Y8, Y10
	VMULPD  (R9)(AX*1), Y8, Y11
	VMULPD  (R10)(AX*1), Y8, Y12
	VMULPD  (R11)(AX*1), Y8, Y13
	VADDPD  Y10, Y0, Y0
	VADDPD  Y11, Y1, Y1
	VADDPD  Y12, Y2, Y2
	VADDPD  Y13, Y3, Y3
	ADDQ    $128, AX
	JMP     t14k

t14kdone:
	VMOVUPD Y0, 0(R12)
	VMOVUPD Y1, 128(R12)
	VMOVUPD Y2, 256(R12)
	VMOVUPD Y3, 384(R12)
	ADDQ    $32, BX
	JMP     t14q

t14done:
	VZEROUPPER
	RET

// func cholTile2x16AVX2(a0, a1 *float64, b *[16]*float64, n int, s *float64)
// cholTile2x4AVX2 for the sixteen rows b[0..15], four at a time: the rows
// a0 and a1 (and s's 4 KB) stay in cache across the four.
TEXT ·cholTile2x16AVX2(SB), NOSPLIT, $0-40
	MOVQ a0+0(FP), SI
	MOVQ a1+8(FP), DI
	MOVQ b+16(FP), R15
	MOVQ n+24(FP), R13
	MOVQ s+32(FP), DX
	SHRQ $4, R13
	XORQ CX, CX

t216c:
	CMPQ CX, $4
	JGE  t216done
	MOVQ 0(R15), R8
	MOVQ 8(R15), R9
	MOVQ 16(R15), R10
	MOVQ 24(R15), R11
	XORQ BX, BX

t216q:
	CMPQ BX, $128
	JGE  t216cnext
	LEAQ (DX)(BX*1), R12
	CHOL2X4_LOAD
	MOVQ BX, AX
	MOVQ R13, R14

t216k2:
	CMPQ R14, $2
	JLT  t216k1
	CHOL2X4_STEP(0)
	CHOL2X4_STEP(128)
	ADDQ    $256, AX
	SUBQ    $2, R14
	JMP     t216k2

t216k1:
	CMPQ R14, $1
	JLT  t216kdone
	CHOL2X4_STEP(0)

t216kdone:
	CHOL2X4_STORE
	ADDQ    $32, BX
	JMP     t216q

t216cnext:
	ADDQ $32, R15
	ADDQ $512, DX
	INCQ CX
	JMP  t216c

t216done:
	VZEROUPPER
	RET

