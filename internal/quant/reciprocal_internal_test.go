package quant

import (
	"math"
	"testing"
)

// TestGridConstants checks the facts step 1 of the derivation in
// reciprocal.go rests on.
func TestGridConstants(t *testing.T) {
	if math.Float32bits(gridMagic) != gridBits {
		t.Fatalf("gridBits %#08x, want %#08x", gridBits, math.Float32bits(gridMagic))
	}
	if gridBits&gridMask != 0 || (gridBits>>gridShift)&0xff != 0 {
		t.Fatalf("gridBits %#08x: low %d bits or the byte above them not zero", gridBits, gridShift)
	}
	// Float32 spacing 2^-gridShift over the whole binade of gridMagic, and K
	// (zero point within the limit) exactly representable inside it.
	lo, hi := float32(gridMagic)*2/3, float32(gridMagic)*4/3
	if math.Float32bits(hi)-math.Float32bits(lo) != 1<<23 || float32(hi-lo) != float32(1<<(23-gridShift)) {
		t.Fatalf("binade [%g, %g) does not have 2^23 values spaced 2^-%d", lo, hi, gridShift)
	}
	for zp := float32(-maxGridZeroPoint); zp <= maxGridZeroPoint; zp++ {
		_, k := reciprocal(1, zp)
		if k < lo || k >= hi || float64(k) != gridMagic+float64(zp)+0.5 {
			t.Fatalf("zp %g: K = %g not exact inside the binade", zp, k)
		}
		// The fast range, [lo−½, hi+½] around K − ½ for every clip range.
		if k-0.5-129 < lo || k-0.5+129 >= hi {
			t.Fatalf("zp %g: the fast range leaves the binade", zp)
		}
	}
	if r, _ := reciprocal(1, maxGridZeroPoint+1); r == r {
		t.Fatal("zero point beyond the limit accepted")
	}
	for _, s := range []float32{0, 1e-40, 0x1.8p126, 3e38, float32(math.Inf(1)), float32(math.NaN())} {
		if r, _ := reciprocal(s, 0); r == r {
			t.Fatalf("scale %g: reciprocal %g accepted, not a normal float32", s, r)
		}
	}
}
