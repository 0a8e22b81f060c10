package quant

import "math"

// Quantizing by a reciprocal, bit for bit.
//
// The reference computes q = clip(rint(v)), v = float32(float32(x/s) + zp).
// A float32 division costs several times a multiplication, so the kernels
// compute instead
//
//	w = float32(float32(x·r) + K),  r = float32(1/s),  K = 6144 + zp + 1/2,
//
// take q from the bits of w, and recompute with the division only the rare
// elements the bits of w cannot vouch for. The derivation:
//
// Notation: u = 2^-24 (the unit roundoff of float32), t = x/s (real),
// a = fl(x/s) and b = fl(x·r) the two float32 quotients, A = a + zp and
// B = b + zp (reals). The reference's v is fl(A).
//
// 1. Reading w. K is exact: zp is an integer with |zp| <= 256 (checked), so K
// lies in [4096, 8192), where the float32 values are the multiples of 2^-11.
// If w lands in that binade, w = 6144 + n·2^-11 with n = round((B + 1/2)·2048)
// (the sum b + K = 6144 + B + 1/2 rounded once, to a multiple of 2^-11), so
// |(B + 1/2)·2048 − n| <= 1/2, and bits(w) = bits(6144) + n. bits(6144) =
// 0x45c00000 is a multiple of 2048 whose quotient 0x8b800 ends in a zero
// byte: the low byte (or nibble) of bits(w) >> 11 is that of floor(n/2048),
// and bits(w) mod 2048 = n mod 2048.
//
// 2. The fast path is taken only when bits(w) − (bits(6144) + lo·2048), as an
// unsigned number, is at most (hi − lo + 1)·2048 — w is in the binade and
// n ∈ [lo·2048, (hi+1)·2048] — and n mod 2048 ≠ 0. Together (both ends of the
// range are multiples of 2048): n ∈ [2048j + 1, 2048j + 2047] for an integer
// j ∈ [lo, hi], and the fast result is j. From step 1,
// B + 1/2 ∈ [j + 0.5/2048, j + 1 − 0.5/2048], so
//
//	B ∈ [j − 1/2 + δ, j + 1/2 − δ],  δ = 2^-12 ≈ 2.44e-4.
//
// Anything else — NaN, ±Inf, a w out of range (the clip is needed), and
// every w that close to a half-integer, exact ties included — takes the exact
// path: the reference formula with the division, clip and rint.
//
// 3. How far A is from B. r is normal (checked: not for zero, subnormal,
// huge, infinite or NaN scales), so r = (1/s)(1 + e1) with |e1| <= u. A
// correctly rounded operation has a relative error of at most u, or an
// absolute one of at most 2^-150 if its result is subnormal, hence
//
//	|a − t|    <= u|t| + 2^-150,
//	|x·r − t|  =  |t|·|e1| <= u|t|,
//	|b − x·r|  <= u|x·r| + 2^-150 <= u(1 + u)|t| + 2^-150,
//	|A − B| = |a − b| <= (3u + u²)|t| + 2^-149.
//
// On the fast path |B| <= 128.5 and |zp| <= 256, so |b| <= 384.5 and
// |t| <= (|b| + 2^-150)/(1 − u)² < 385, which gives |A − B| < 3.0001·385·u
// ≈ 6.9e-5 < δ/3.
//
// 4. Conclusion. A ∈ (j − 1/2 + δ', j + 1/2 − δ') with δ' = δ − 6.9e-5 >
// 1.7e-4. |A| < 129, where float32 values are at most 2^-16 apart, so
// v = fl(A) is within 2^-17 ≈ 7.6e-6 of A, still strictly inside
// (j − 1/2, j + 1/2): rint(v) = j whatever the tie rule, and lo <= j <= hi,
// so the clip does nothing. The reference's q is j. ∎
//
// The products are written float32(x*r) so that no compiler may fuse them
// with the following addition: the argument assumes two roundings. About
// 1/2048 of elements with evenly spread fractions take the exact path; for
// the symmetric int8 maximum, x/s ≈ ±127 sits mid-step and stays fast.
// reciprocal_test.go checks the kernels against the division formula on
// exact ties, their float32 neighbours, every float32 in windows around the
// rounding boundaries, and random inputs, and counts the elements on which
// a reciprocal without the exact path would be wrong.

const (
	gridMagic = 6144       // 1.5·2^12: float32 steps of 2^-11 around it
	gridBits  = 0x45c00000 // math.Float32bits(gridMagic)
	gridShift = 11
	gridMask  = 1<<gridShift - 1
	// maxGridZeroPoint bounds |zp| for the fast path (step 3 of the
	// derivation; it also keeps K inside the binade of gridMagic).
	maxGridZeroPoint = 256
	f32MinNormal     = 0x00800000
)

// reciprocal returns r and K for the fast path of scale and zero point zp.
// When the derivation does not apply (r not a normal float32, |zp| > 256),
// r is NaN: every w is then NaN and every element takes the exact path.
func reciprocal(scale, zp float32) (r, k float32) {
	r = 1 / scale
	if a := math.Float32bits(r) & f32AbsMask; a < f32MinNormal || a >= f32Inf || !(abs32(zp) <= maxGridZeroPoint) {
		return float32(math.NaN()), 0
	}
	return r, gridMagic + zp + 0.5
}

// grid is the fast-path test for one clip range [lo, hi]: see step 2.
type grid struct{ base, span uint32 }

func newGrid(lo, hi float32) grid {
	return grid{
		base: uint32(int32(gridBits) + int32(lo)<<gridShift),
		span: uint32(int32(hi-lo+1) << gridShift),
	}
}

// exact reports whether w (as bits) needs the exact path.
func (g grid) exact(w uint32) bool {
	return w-g.base > g.span || w&gridMask == 0
}

// quantizeExact is the reference formula for one element, the exact path
// of the kernels. Kept out of line: inlined, it crowds the registers of the
// loops it serves on every element.
//
//go:noinline
func quantizeExact(x, scale, zp, lo, hi float32) int8 {
	v := x/scale + zp
	if v < lo {
		v = lo
	}
	if v > hi {
		v = hi
	}
	return int8(math.Float32bits(v + roundMagic))
}
