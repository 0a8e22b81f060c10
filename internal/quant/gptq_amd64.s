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
