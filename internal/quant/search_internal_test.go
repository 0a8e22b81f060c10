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

// TestClip4 checks clip4 against q4 around every rounding and clipping
// boundary and beyond the clip range.
func TestClip4(t *testing.T) {
	for k := -20; k <= 20; k++ {
		for _, c := range []float32{float32(k), float32(k) + 0.5} {
			for d := -3; d <= 3; d++ {
				v := math.Float32frombits(uint32(int32(math.Float32bits(c)) + int32(d)))
				if c == 0 {
					v = float32(d) * 1e-30
				}
				if got, want := clip4(v), q4(v); got != want {
					t.Fatalf("clip4(%g) = %g, want %g", v, got, want)
				}
			}
		}
	}
	for _, v := range []float32{1e6, -1e6, 4194303, -4194303} {
		if got, want := clip4(v), q4(v); got != want {
			t.Fatalf("clip4(%g) = %g, want %g", v, got, want)
		}
	}
}
