package quant_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/qpipe/qpipe/internal/quant"
)

// The vector conversion (VCVTPS2PH on amd64 with F16C) against the scalar Go
// conversion: the same bits and the same count of inputs that are NaN, Inf
// or round to Inf.

func requireF16C(t *testing.T) {
	t.Helper()
	if !quant.HasF16C {
		t.Skipf("no vector float16 conversion on %s (or the CPU lacks F16C/AVX)", runtime.GOARCH)
	}
}

// compareToFloat16 converts src with both paths and fails on the first
// difference in dst or in the count.
func compareToFloat16(t *testing.T, src []float32) {
	t.Helper()
	got := make([]uint16, len(src))
	want := make([]uint16, len(src))
	nGot := quant.ToFloat16Slice(got, src)
	nWant := quant.ToFloat16Generic(want, src)
	for i := range src {
		if got[i] != want[i] {
			t.Fatalf("element %d of %d, bits %#08x: vector %#04x, scalar %#04x",
				i, len(src), math.Float32bits(src[i]), got[i], want[i])
		}
	}
	if nGot != nWant {
		t.Fatalf("%d elements: vector counts %d bad, scalar %d", len(src), nGot, nWant)
	}
}

func float16Specials() []uint32 {
	c := []uint32{
		0, 1, 0x007fffff, 0x00800000, // ±0, float32 subnormals
		0x7f800000,                                     // Inf
		0x7f800001, 0x7f801fff, 0x7f802000, 0x7fa00000, // signalling NaNs
		0x7fc00000, 0x7fc00001, 0x7fd55555, 0x7fffe000, 0x7fffffff, // quiet NaNs
		0x7f7fffff, // max float32
	}
	for _, v := range []float32{
		65504, 65519, 65519.99, 65520, 65536, // overflow boundary
		1.0 / 16384, 1.0 / (1 << 24), 1.0 / (1 << 25), 3.0 / (1 << 26), 1.0 / (1 << 26), // subnormal results
		1, 2048, 2049, 2051, 0.1, 1.0 / 3,
	} {
		m := math.Float32bits(v)
		c = append(c, m-1, m, m+1)
	}
	n := len(c)
	for _, b := range c[:n] {
		c = append(c, b|1<<31)
	}
	return c
}

// TestToFloat16F16CSweep runs every sign and exponent with the mantissa's
// low 16 bits (rounding bits 12..14 and 13 and the sticky bits) and, in a
// second window, its high 16 bits (where subnormal results round) taking
// every value, the other bits all zeros or all ones.
func TestToFloat16F16CSweep(t *testing.T) {
	requireF16C(t)
	compareToFloat16(t, func() []float32 {
		var s []float32
		for _, b := range float16Specials() {
			s = append(s, math.Float32frombits(b))
		}
		return s
	}())
	exps := 512 // sign and exponent
	step := 1
	if testing.Short() || raceEnabled {
		step = 7 // every seventh sign and exponent, and the low window only
	}
	src := make([]float32, 4<<16)
	for se := 0; se < exps; se += step {
		top := uint32(se) << 23
		i := 0
		for w := range 1 << 16 {
			lo, hi := uint32(w), uint32(w)<<7 // bits 0..15, bits 7..22
			src[i+0] = math.Float32frombits(top | lo)
			src[i+1] = math.Float32frombits(top | lo | 0x7f0000)
			src[i+2] = math.Float32frombits(top | hi)
			src[i+3] = math.Float32frombits(top | hi | 0x7f)
			i += 4
		}
		if step > 1 {
			compareToFloat16(t, src[:i:i])
			continue
		}
		compareToFloat16(t, src)
	}
}

// TestToFloat16F16CLengths converts random slices of every length 0..100 at
// every alignment, and checks that nothing beyond the slice is written.
func TestToFloat16F16CLengths(t *testing.T) {
	requireF16C(t)
	r := rand.New(rand.NewPCG(3, 4))
	specials := float16Specials()
	buf := make([]float32, 128)
	for n := 0; n <= 100; n++ {
		for off := range 8 {
			for k := range buf {
				switch r.IntN(4) {
				case 0:
					buf[k] = math.Float32frombits(r.Uint32())
				case 1:
					buf[k] = math.Float32frombits(specials[r.IntN(len(specials))])
				default: // float16 range, with subnormals and overflow
					buf[k] = math.Float32frombits(r.Uint32()&0x807fffff | uint32(101+r.IntN(44))<<23)
				}
			}
			src := buf[off : off+n]
			compareToFloat16(t, src)
			got := make([]uint16, 128)
			for k := range got {
				got[k] = 0xdead
			}
			quant.ToFloat16Slice(got[off:off+n], src)
			for k := range got {
				if (k < off || k >= off+n) && got[k] != 0xdead {
					t.Fatalf("length %d at offset %d: wrote element %d outside the slice", n, off, k)
				}
			}
		}
	}
}

// TestToFloat16Generic runs ToFloat16 with the vector conversion off and on
// (off only where there is none): the same bits and the same error.
func TestToFloat16Generic(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	src := make([]float32, 100_003)
	for i := range src {
		src[i] = float32(r.NormFloat64() * 100)
	}
	src[77_777] = 1e6
	src[99_999] = float32(math.NaN())
	run := func(on bool) ([]uint16, error) {
		defer quant.SetF16C(quant.SetF16C(on))
		dst := make([]uint16, len(src))
		return dst, quant.ToFloat16(dst, src)
	}
	generic, errGeneric := run(false)
	for i, x := range src {
		if want := refFloat16Bits(x); generic[i] != want {
			t.Fatalf("generic ToFloat16 at %g (bits %#08x): %#04x, want %#04x", x, math.Float32bits(x), generic[i], want)
		}
	}
	var ve *quant.ValueError
	if !errors.As(errGeneric, &ve) || ve.Kind != quant.NotFinite || ve.First != 99_999 {
		t.Fatalf("generic ToFloat16: err = %v, want NotFinite at 99999", errGeneric)
	}
	vector, errVector := run(true)
	for i := range src {
		if vector[i] != generic[i] {
			t.Fatalf("ToFloat16 at element %d: %#04x, generic %#04x", i, vector[i], generic[i])
		}
	}
	if errVector == nil || errVector.Error() != errGeneric.Error() {
		t.Fatalf("ToFloat16: err = %v, generic %v", errVector, errGeneric)
	}
}
