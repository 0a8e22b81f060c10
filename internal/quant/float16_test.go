package quant_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/qpipe/qpipe/internal/quant"
)

// An independent float16 reference: decode by the definition of binary16,
// encode by searching the sorted table of all finite halves and comparing
// with the exact midpoints (float64 holds every half, every float32 and
// every midpoint between two halves exactly).

func refHalfValue(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e, m := int(h>>10)&0x1f, int(h&0x3ff)
	switch e {
	case 0x1f:
		if m != 0 {
			return math.NaN()
		}
		return math.Inf(int(sign))
	case 0:
		return sign * math.Ldexp(float64(m), -24)
	}
	return sign * math.Ldexp(float64(1024+m), e-25)
}

// positiveHalves[k] is the value of the half with bits k, k in [0, 0x7c00];
// the last entry stands for the value after 65504 in the rounding sense, 2^16.
var positiveHalves = func() []float64 {
	v := make([]float64, 0x7c01)
	for k := range 0x7c00 {
		v[k] = refHalfValue(uint16(k))
	}
	v[0x7c00] = 65536
	return v
}()

func refFloat16Bits(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	x := float64(f)
	switch {
	case math.IsNaN(x):
		return sign | 0x7e00 | uint16(b>>13)&0x3ff
	case math.IsInf(x, 0):
		return sign | 0x7c00
	}
	a := math.Abs(x)
	// k: the largest half <= a.
	k := sort.Search(len(positiveHalves), func(i int) bool { return positiveHalves[i] > a }) - 1
	if positiveHalves[k] == a || k == 0x7c00 { // exact, or at least 2^16: Inf
		return sign | uint16(k)
	}
	mid := (positiveHalves[k] + positiveHalves[k+1]) / 2
	switch {
	case a < mid:
		return sign | uint16(k)
	case a > mid || k%2 == 1:
		return sign | uint16(k+1) // k+1 = 0x7c00 is +Inf
	}
	return sign | uint16(k)
}

func refBFloat16Round(f float32) float32 {
	x := float64(f)
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return f
	}
	b := math.Float32bits(f)
	lo := b &^ 0xffff // toward zero
	loV := math.Abs(float64(math.Float32frombits(lo)))
	hi := lo + 0x10000
	hiV := math.Abs(float64(math.Float32frombits(hi)))
	if hi&0x7fffffff == 0x7f800000 {
		hiV = math.Ldexp(1, 128)
	}
	a := math.Abs(x)
	mid := (loV + hiV) / 2
	if a < mid || (a == mid && lo&0x10000 == 0) {
		return math.Float32frombits(lo)
	}
	return math.Float32frombits(hi)
}

func sameFloat32(a, b float32) bool {
	if a != a || b != b {
		return a != a && b != b
	}
	return math.Float32bits(a) == math.Float32bits(b)
}

func TestFloat16AllHalves(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		f := quant.Float32FromBits16(h)
		want := refHalfValue(h)
		if math.IsNaN(want) {
			if f == f || math.Float32bits(f)>>31 != uint32(h>>15) {
				t.Fatalf("Float32FromBits16(%#04x) = %v, want NaN with the same sign", h, f)
			}
			if got := quant.Float16Bits(f); got != h|0x200 {
				t.Fatalf("Float16Bits(Float32FromBits16(%#04x)) = %#04x, want the quieted NaN %#04x", h, got, h|0x200)
			}
			continue
		}
		if float64(f) != want || math.Signbit(float64(f)) != math.Signbit(want) {
			t.Fatalf("Float32FromBits16(%#04x) = %g, want %g", h, f, want)
		}
		if got := quant.Float16Bits(f); got != h {
			t.Fatalf("Float16Bits(%g) = %#04x, want %#04x (round trip)", f, got, h)
		}
	}
	// The slice forms agree with the scalar ones on every half.
	all := make([]uint16, 1<<16)
	for i := range all {
		all[i] = uint16(i)
	}
	fs := make([]float32, len(all))
	quant.FromFloat16(fs, all)
	for i, h := range all {
		if !sameFloat32(fs[i], quant.Float32FromBits16(h)) {
			t.Fatalf("FromFloat16 at %#04x: %v, scalar %v", h, fs[i], quant.Float32FromBits16(h))
		}
	}
}

// float32Cases returns float32 bit patterns that stress float16 and bfloat16
// rounding: every midpoint between adjacent halves and its neighbours one and
// two ulps away, every bf16 midpoint neighbourhood, the overflow boundary,
// then random bits (uniform, inside the float16 range, and float32 subnormals).
func float32Cases(randoms int) []uint32 {
	var c []uint32
	for k := range 0x7c00 {
		mid := float32((positiveHalves[k] + positiveHalves[k+1]) / 2)
		m := math.Float32bits(mid)
		for d := -2; d <= 2; d++ {
			c = append(c, uint32(int64(m)+int64(d)), uint32(int64(m)+int64(d))|1<<31)
		}
	}
	for _, v := range []float32{65504, 65519, 65519.996, 65520, 65520.004, 65536, 1.0 / 16384, 1.0 / (1 << 24), 1.0 / (1 << 25)} {
		m := math.Float32bits(v)
		c = append(c, m-1, m, m+1)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1 << 16 { // bf16 ties and neighbours at random exponents
		b := r.Uint32()&^0xffff | 0x8000
		c = append(c, b-1, b, b+1)
	}
	for range randoms {
		c = append(c, r.Uint32())
		// exponents 2^-26 .. 2^17: float16 subnormals, normals, overflow
		c = append(c, r.Uint32()&0x807fffff|uint32(101+r.IntN(44))<<23)
		c = append(c, r.Uint32()&0x807fffff) // float32 subnormals
	}
	return c
}

func TestFloat16Bits(t *testing.T) {
	randoms := 1 << 20
	if testing.Short() || raceEnabled {
		randoms = 1 << 16
	}
	cases := float32Cases(randoms)
	src := make([]float32, len(cases))
	for i, b := range cases {
		src[i] = math.Float32frombits(b)
		if got, want := quant.Float16Bits(src[i]), refFloat16Bits(src[i]); got != want {
			t.Fatalf("Float16Bits(%g, bits %#08x) = %#04x, want %#04x", src[i], b, got, want)
		}
	}
	dst := make([]uint16, len(src))
	_ = quant.ToFloat16(dst, src) // errors are tested elsewhere; dst is written anyway
	for i, x := range src {
		if want := quant.Float16Bits(x); dst[i] != want {
			t.Fatalf("ToFloat16 at %g: %#04x, scalar %#04x", x, dst[i], want)
		}
	}
}

func TestBFloat16Round(t *testing.T) {
	randoms := 1 << 20
	if testing.Short() || raceEnabled {
		randoms = 1 << 16
	}
	for _, b := range float32Cases(randoms) {
		x := math.Float32frombits(b)
		got := quant.BFloat16Round(x)
		if x != x {
			if got == got || math.Float32bits(got)&0xffff != 0 {
				t.Fatalf("BFloat16Round(NaN %#08x) = %#08x, want a NaN with zero low bits", b, math.Float32bits(got))
			}
			continue
		}
		if want := refBFloat16Round(x); !sameFloat32(got, want) {
			t.Fatalf("BFloat16Round(%g, bits %#08x) = %#08x, want %#08x", x, b, math.Float32bits(got), math.Float32bits(want))
		}
	}
	// Every bfloat16 value is a fixed point.
	for i := range 1 << 16 {
		x := math.Float32frombits(uint32(i) << 16)
		if got := quant.BFloat16Round(x); !sameFloat32(got, x) {
			t.Fatalf("BFloat16Round(%#08x) = %#08x, want unchanged", math.Float32bits(x), math.Float32bits(got))
		}
	}
}

func TestToFloat16Errors(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	tests := []struct {
		name  string
		src   []float32
		kind  quant.ValueKind
		count int
		first int
	}{
		{"in range", []float32{65504, -65504, 65519.996, 1e-8, 0}, 0, 0, 0},
		{"overflow", []float32{1, 65520, -1e6, 3}, quant.Float16Overflow, 2, 1},
		{"non-finite first", []float32{1e6, 2, nan, -inf, inf}, quant.NotFinite, 3, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]uint16, len(tc.src))
			err := quant.ToFloat16(dst, tc.src)
			if tc.kind == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ve *quant.ValueError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a *ValueError", err)
			}
			if ve.Kind != tc.kind || ve.Count != tc.count || ve.First != tc.first {
				t.Fatalf("got %v (kind %d, count %d, first %d), want kind %d count %d first %d",
					err, ve.Kind, ve.Count, ve.First, tc.kind, tc.count, tc.first)
			}
		})
	}
}
