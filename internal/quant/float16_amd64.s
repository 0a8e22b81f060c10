//go:build amd64

#include "textflag.h"

// func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL leaf+0(FP), AX
	MOVL sub+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func xgetbv0() (eax uint32)
TEXT ·xgetbv0(SB), NOSPLIT, $0-4
	MOVL $0, CX
	XGETBV
	MOVL AX, eax+0(FP)
	RET

// Broadcast constants: the float32 sign-clearing mask, and f16Overflow
// (65520 as float32 bits).
DATA f16cAbsMask<>+0(SB)/4, $0x7fffffff
GLOBL f16cAbsMask<>(SB), RODATA|NOPTR, $4
DATA f16cOverflow<>+0(SB)/4, $0x477ff000
GLOBL f16cOverflow<>(SB), RODATA|NOPTR, $4

// CONVERT8 converts the 8 floats in Y at src+off*4 to dst+off*2 and adds to
// R9 how many of them have |bits| >= f16Overflow. That count is a float
// compare of |x| with 65520, "not less than, unordered" (predicate 0x15,
// quiet): for non-NaN magnitudes float order is the order of the bits, and
// a NaN compares unordered, so true, as its bits are above Inf's.
#define CONVERT8(off, Y, T) \
	VMOVUPS   (off*4)(SI), Y                 \
	VCVTPS2PH $0, Y, (off*2)(DI)             \
	VANDPS    Y15, Y, Y                      \
	VCMPPS    $0x15, Y14, Y, Y               \
	VMOVMSKPS Y, T                           \
	POPCNTL   T, T                           \
	ADDQ      T, R9

// func toFloat16F16C(dst *uint16, src *float32, n int) (bad int)
TEXT ·toFloat16F16C(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	XORQ R9, R9
	VBROADCASTSS f16cAbsMask<>(SB), Y15
	VBROADCASTSS f16cOverflow<>(SB), Y14
	CMPQ CX, $32
	JLT  loop8

loop32:
	CONVERT8(0, Y0, AX)
	CONVERT8(8, Y1, BX)
	CONVERT8(16, Y2, DX)
	CONVERT8(24, Y3, R8)
	ADDQ $128, SI
	ADDQ $64, DI
	SUBQ $32, CX
	CMPQ CX, $32
	JGE  loop32

loop8:
	CMPQ CX, $8
	JLT  done
	CONVERT8(0, Y0, AX)
	ADDQ $32, SI
	ADDQ $16, DI
	SUBQ $8, CX
	JMP  loop8

done:
	VZEROUPPER
	MOVQ R9, bad+24(FP)
	RET
