package quant

import (
	"math"
	"testing"
)

// TestRecipBF16 checks recipBF16 against the division on every value it
// may be given: the bfloat16 values that are normal float16 values.
func TestRecipBF16(t *testing.T) {
	n := 0
	for b := math.Float32bits(MinNormalFloat16); math.Float32frombits(b) <= maxFloat16; b += 1 << 16 {
		s := math.Float32frombits(b)
		if got, want := recipBF16(s), 1/s; got != want {
			t.Fatalf("recipBF16(%g) = %g, want %g", s, got, want)
		}
		n++
	}
	if n != 30*128 {
		t.Fatalf("%d values checked, want %d", n, 30*128)
	}
}

// TestModelTerm checks modelTerm, which works on |v|, against the
// model's error of v, (q4(v·r) − v·r)²·s·s, around every rounding and
// clipping boundary and far beyond, for both signs.
func TestModelTerm(t *testing.T) {
	if math.Float32bits(roundMagic) != roundMagicBits {
		t.Fatalf("roundMagicBits %#08x, want %#08x", roundMagicBits, math.Float32bits(roundMagic))
	}
	for _, s := range []float32{MinNormalFloat16, 0.0009765625, 0.25, 3, 65280} {
		r := recipBF16(s)
		for k := -20; k <= 20; k++ {
			for _, c := range []float32{float32(k), float32(k) + 0.5, 1e6 * float32(k)} {
				for d := -3; d <= 3; d++ {
					v := math.Float32frombits(uint32(int32(math.Float32bits(c*s)) + int32(d)))
					if v == 0 || v != v {
						continue
					}
					tt := float32(v * r)
					e := q4(tt) - tt
					want := float32(float32(e*e)*s) * s
					a := math.Float32frombits(math.Float32bits(v) & f32AbsMask)
					lim := uint32(roundMagicBits + 7 + math.Float32bits(v)>>31)
					if got := modelTerm(a, lim, r, s); got != want {
						t.Fatalf("s %g, v %g: modelTerm %g, want %g", s, v, got, want)
					}
				}
			}
		}
	}
}

// TestBF16ToFloat16 checks bf16ToFloat16 against Float16Bits on every
// bfloat16 in the float16 normal range.
func TestBF16ToFloat16(t *testing.T) {
	for b := math.Float32bits(MinNormalFloat16); math.Float32frombits(b) <= maxFloat16; b += 1 << 16 {
		s := math.Float32frombits(b)
		if got, want := bf16ToFloat16(s), Float16Bits(s); got != want || stored(s) != want {
			t.Fatalf("bf16ToFloat16(%g) = %#04x, want %#04x (stored %#04x)", s, got, want, stored(s))
		}
	}
}
