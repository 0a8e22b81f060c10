// Shared by the AVX2 kernels (kernels_amd64.s, search_amd64.s).

// VEC8(name, bits) defines name<> as 32 read-only bytes holding the 32-bit
// value bits in each of 8 lanes: a YMM operand loaded from memory.
#define VEC8(name, bits) \
	DATA name<>+0(SB)/4, bits  \
	DATA name<>+4(SB)/4, bits  \
	DATA name<>+8(SB)/4, bits  \
	DATA name<>+12(SB)/4, bits \
	DATA name<>+16(SB)/4, bits \
	DATA name<>+20(SB)/4, bits \
	DATA name<>+24(SB)/4, bits \
	DATA name<>+28(SB)/4, bits \
	GLOBL name<>(SB), RODATA|NOPTR, $32
