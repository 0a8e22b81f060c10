package quant

import "math"

// IEEE 754 binary16 ("half") and bfloat16 conversions, all by integer bit
// manipulation plus, for float16 subnormals, one float32 addition whose
// hardware rounding does the round-half-to-even for us.

const (
	f32AbsMask = 0x7fffffff
	f32Inf     = 0x7f800000
	// f16Overflow is |x| = 65520 as float32 bits: the midpoint between 65504
	// (largest float16) and 65536 (the next power of two); from here on
	// round-half-to-even gives ±Inf.
	f16Overflow = 0x477ff000
	// f16MinNormal32 is 2^-14, the smallest normal float16, as float32 bits.
	f16MinNormal32 = 0x38800000
	// f16Rebias moves a float32 exponent (bias 127) to float16 (bias 15),
	// shifted to the float32 exponent position: -(112 << 23) modulo 2^32.
	f16Rebias = 0xc8000000
	// half32 is 0.5 as float32 bits. Its ulp is 2^-24, the float16 subnormal
	// step, so x + 0.5 rounds x to float16 subnormal precision.
	half32 = 0x3f000000
)

// MinNormalFloat16 is 2^-14, the smallest positive normal float16, and the
// floor that BlockParamsInt4 applies to int4 block scales when asked to.
const MinNormalFloat16 = 1.0 / 16384

// Float16Bits returns the IEEE binary16 encoding of f rounded to nearest,
// ties to even. Magnitudes that round beyond 65504 become ±Inf, subnormal
// results are kept (not flushed), and NaN stays NaN (quiet, sign and the top
// payload bits kept), as the F16C instruction VCVTPS2PH does.
func Float16Bits(f float32) uint16 {
	b := math.Float32bits(f)
	return uint16(b>>16)&0x8000 | float16Magnitude(b&f32AbsMask)
}

// float16Magnitude converts |x| (float32 bits a, sign cleared). Both the
// normal and the subnormal results are computed and one is selected without
// a branch (a conditional move): weights mix zeros, which take the
// subnormal path, with normal values, and a branch on that mispredicts.
func float16Magnitude(a uint32) uint16 {
	// Normal: rebias the exponent, then add 0xfff plus the lowest kept
	// mantissa bit: this rounds to nearest with ties to even, and a carry
	// out of the mantissa correctly bumps the exponent (up to Inf).
	h := (a + f16Rebias + 0xfff + (a>>13)&1) >> 13
	// Subnormal or zero (or 2^-14 after rounding up): x + 0.5 rounds x to
	// a multiple of 2^-24 in hardware, and the multiple is the encoding.
	sub := math.Float32bits(math.Float32frombits(a)+0.5) - half32
	if a < f16MinNormal32 {
		h = sub
	}
	if a >= f16Overflow { // rare: Inf, NaN (quiet, top payload bits kept)
		h = 0x7c00
		if a > f32Inf {
			h = 0x7e00 | (a>>13)&0x3ff
		}
	}
	return uint16(h)
}

// Float32FromBits16 returns the float32 value of the binary16 encoding h.
// Every float16 is exactly representable in float32.
func Float32FromBits16(h uint16) float32 {
	return math.Float32frombits(uint32(h&0x8000)<<16 | float32Magnitude(uint32(h&0x7fff)))
}

// float32Magnitude converts a float16 magnitude em (sign cleared) to float32
// bits, selecting between the normal and subnormal forms without a branch.
func float32Magnitude(em uint32) uint32 {
	b := em<<13 + 112<<23 // normal: rebias the exponent
	// Zero and subnormal: em·2^-24, exact in float32.
	sub := math.Float32bits(float32(em) * (1.0 / (1 << 24)))
	if em < 0x400 {
		b = sub
	}
	if em >= 0x7c00 { // Inf, NaN
		b = f32Inf | (em&0x3ff)<<13
	}
	return b
}

// BFloat16Round rounds f to the nearest bfloat16 (8 significant bits, the
// float32 exponent range), ties to even, and returns it as a float32 whose
// low 16 bits are zero. Large values may round to ±Inf; NaN stays NaN.
func BFloat16Round(f float32) float32 {
	b := math.Float32bits(f)
	if b&f32AbsMask > f32Inf {
		return math.Float32frombits((b | 0x00400000) &^ 0xffff)
	}
	b += 0x7fff + (b>>16)&1
	return math.Float32frombits(b &^ 0xffff)
}

// ToFloat16 writes Float16Bits(src[i]) to dst[i]. It returns a *ValueError if
// src holds NaN or ±Inf (Kind NotFinite, reported first) or finite values that
// round beyond ±65504 (Kind Float16Overflow); dst is fully written anyway,
// with ±Inf and NaN where the values were out of range.
func ToFloat16(dst []uint16, src []float32) error {
	if len(dst) != len(src) {
		panicf("ToFloat16: len(dst) = %d, len(src) = %d", len(dst), len(src))
	}
	var bad atomicCount
	parallelFor(len(src), 1, func(lo, hi int) {
		// No read-ahead bursts (stream.go): the vector kernel keeps enough
		// misses in flight; with them it ran 20% slower on 256 MiB, and
		// 45% slower in cache.
		n := toFloat16(dst[lo:hi], src[lo:hi])
		if n > 0 {
			bad.add(n)
		}
	})
	if bad.load() == 0 {
		return nil
	}
	if err := CheckFinite(src); err != nil {
		return err
	}
	e := &ValueError{Kind: Float16Overflow, First: -1}
	for i, x := range src {
		if math.Float32bits(x)&f32AbsMask >= f16Overflow {
			if e.Count == 0 {
				e.First, e.Value = i, x
			}
			e.Count++
		}
	}
	return e
}

// toFloat16Go is Float16Bits over a slice (float16Magnitude is inlined); it
// returns how many inputs were NaN, Inf or rounded to Inf. toFloat16 (one
// per architecture) uses it where there is no vector conversion, and for
// the tail of a slice that the vector conversion leaves.
func toFloat16Go(dst []uint16, src []float32) (bad int) {
	dst = dst[:len(src)]
	for i, f := range src {
		b := math.Float32bits(f)
		a := b & f32AbsMask
		bad += int((f16Overflow - 1 - a) >> 31) // 1 iff a >= f16Overflow, without a branch
		dst[i] = uint16(b>>16)&0x8000 | float16Magnitude(a)
	}
	return bad
}

// FromFloat16 writes Float32FromBits16(src[i]) to dst[i].
func FromFloat16(dst []float32, src []uint16) {
	if len(dst) != len(src) {
		panicf("FromFloat16: len(dst) = %d, len(src) = %d", len(dst), len(src))
	}
	parallelFor(len(src), 1, func(lo, hi int) { fromFloat16(dst[lo:hi], src[lo:hi]) })
}

func fromFloat16(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = math.Float32frombits(uint32(h&0x8000)<<16 | float32Magnitude(uint32(h&0x7fff)))
	}
}
