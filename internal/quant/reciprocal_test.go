package quant_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/qpipe/qpipe/internal/quant"
)

// The int8 and int4 kernels multiply by a reciprocal and recompute with the
// division only near rounding boundaries (reciprocal.go). These tests hold
// them to the division formula on tens of millions of elements chosen to sit
// on and next to those boundaries, and check that the inputs really are hard:
// a reciprocal quantizer without the exact path fails on thousands of them.

// divQuantize is the reference for one element: v = x/scale + zp in
// float32 (a true division), rint half to even, clip after rounding. v is
// returned too; when it is NaN the kernels' result is unspecified.
func divQuantize(x, scale, zp float32, lo, hi int) (q int, v float32) {
	v = x/scale + zp
	f := math.RoundToEven(float64(v))
	return int(math.Min(math.Max(f, float64(lo)), float64(hi))), v
}

// naiveQuantize is what multiplying by the reciprocal gives without the
// exact path; the tests count how often it differs from divQuantize.
func naiveQuantize(x, scale, zp float32, lo, hi int) int {
	v := float32(x*(1/scale)) + zp
	f := math.RoundToEven(float64(v))
	return int(math.Min(math.Max(f, float64(lo)), float64(hi)))
}

// hardness counts what the compared inputs exercised.
type hardness struct {
	elements   int
	ties       int // v exactly a half-integer within [lo−½, hi+½]
	naiveWrong int // elements naiveQuantize gets wrong
}

func (h *hardness) add(o hardness) {
	h.elements += o.elements
	h.ties += o.ties
	h.naiveWrong += o.naiveWrong
}

// check compares got[i] (a quantized value) with the reference for src[i],
// whose scale and zero point are param(i).
func (h *hardness) check(t *testing.T, what string, src []float32, got func(i int) int, param func(i int) (scale, zp float32), lo, hi int) {
	t.Helper()
	for i, x := range src {
		scale, zp := param(i)
		want, v := divQuantize(x, scale, zp, lo, hi)
		if v != v {
			continue
		}
		h.elements++
		if f := float64(v) - math.Floor(float64(v)); f == 0.5 && v >= float32(lo)-0.5 && v <= float32(hi)+0.5 {
			h.ties++
		}
		if naiveQuantize(x, scale, zp, lo, hi) != want {
			h.naiveWrong++
		}
		if g := got(i); g != want {
			t.Fatalf("%s: element %d: x = %g (%#08x), scale %g (%#08x), zp %g: got %d, want %d (x/scale + zp = %g)",
				what, i, x, math.Float32bits(x), scale, math.Float32bits(scale), zp, g, want, v)
		}
	}
}

// boundaryGen draws scales, zero points and values that stress the fast path.
type boundaryGen struct{ r *rand.Rand }

func logUniform(r *rand.Rand, lo, hi float64) float64 {
	return math.Exp(math.Log(lo) + r.Float64()*(math.Log(hi)-math.Log(lo)))
}

// int8Scale: magnitudes 1e-10..1e3, the 1e-9 floors, float16-rounded int4
// scales, powers of two, negative scales, and scales whose reciprocal is not
// a normal float32 (the fast path must step aside for those).
func (g boundaryGen) int8Scale() float32 {
	r := g.r
	switch n := r.IntN(100); {
	case n < 50:
		return float32(logUniform(r, 1e-10, 1e3))
	case n < 58:
		return float32(1e-9) / float32([]int{127, 255}[r.IntN(2)])
	case n < 72:
		return quant.Float32FromBits16(g.int4Scale())
	case n < 80:
		return float32(math.Ldexp(1, r.IntN(70)-50))
	case n < 90:
		return -float32(logUniform(r, 1e-10, 1e3))
	default:
		edge := []float32{0, 1e-40, 1e-45, 0x1p-126, 0x1p-127, 0x1.8p-127, 0x1p126, 0x1.8p126, 1e38, 3e38}
		return edge[r.IntN(len(edge))]
	}
}

// int4Scale is a float16 scale: mostly bfloat16-rounded as BlockParamsInt4
// makes them, also arbitrary, subnormal and extreme encodings.
func (g boundaryGen) int4Scale() uint16 {
	r := g.r
	switch n := r.IntN(100); {
	case n < 70:
		s := float32(logUniform(r, 0x1p-25, 65000))
		return quant.Float16Bits(quant.BFloat16Round(s))
	case n < 85:
		return uint16(r.IntN(0x7c00)) // any finite positive encoding
	case n < 92:
		return uint16(1 + r.IntN(0x3ff)) // subnormal
	default:
		return []uint16{0x0001, 0x0400, 0x7bff, 0x3c00, 0x3090}[r.IntN(5)]
	}
}

// zeroPoint: mostly the int8 range, some at and beyond the fast path's
// |zp| <= 256 limit.
func (g boundaryGen) zeroPoint() int64 {
	r := g.r
	switch n := r.IntN(100); {
	case n < 80:
		return int64(r.IntN(256) - 128)
	case n < 90:
		return []int64{-256, 256, -255, 255, -128, 127, 0}[r.IntN(7)]
	default:
		return []int64{-257, 257, 1000, -1000, 1 << 20, -1 << 40}[r.IntN(6)]
	}
}

func stepUlps(x float32, d int) float32 {
	for ; d > 0; d-- {
		x = math.Nextafter32(x, float32(math.Inf(1)))
	}
	for ; d < 0; d++ {
		x = math.Nextafter32(x, float32(math.Inf(-1)))
	}
	return x
}

// value draws one input for scale and zero point zp with clip range
// [lo, hi]: mostly (k + ½ − zp)·scale computed in float32 and its
// neighbours up to 4 ulp away, values at and around the clip bounds, values
// spread over the range, and zeros, subnormals, huge values, ±Inf and
// arbitrary encodings.
func (g boundaryGen) value(scale, zp float32, lo, hi int) float32 {
	r := g.r
	switch n := r.IntN(100); {
	case n < 40:
		h := float32(lo-1+r.IntN(hi-lo+2)) + 0.5
		return stepUlps((h-zp)*scale, r.IntN(9)-4)
	case n < 50:
		k := []int{lo - 1, lo, hi, hi + 1}[r.IntN(4)]
		return stepUlps(float32(k)*scale-zp*scale, r.IntN(9)-4)
	case n < 70:
		return float32((float64(lo-1) - float64(zp) + r.Float64()*float64(hi-lo+2)) * float64(scale))
	case n < 80:
		return float32(r.NormFloat64() * float64(scale) * float64(hi) / 3)
	case n < 84:
		return []float32{0, float32(math.Copysign(0, -1))}[r.IntN(2)]
	case n < 88:
		return math.Float32frombits(r.Uint32() & 0x807fffff) // subnormal (or zero)
	case n < 92:
		return math.Float32frombits(r.Uint32()&0x80000000 | (0x70000000 + r.Uint32()%0x0f800000))
	case n < 93:
		return float32(math.Inf(1 - 2*r.IntN(2)))
	default:
		b := r.Uint32()
		if b&0x7f800000 == 0x7f800000 {
			b &^= 0x00800000 // keep it finite
		}
		return math.Float32frombits(b)
	}
}

func clamp32(x, lo, hi float32) float32 { return min(max(x, lo), hi) }

// The element budget: at least 50M in normal runs, far fewer under the race
// detector.
func reciprocalBudget() (batches, batchSize int) {
	if raceEnabled {
		return 7, 1 << 16
	}
	return 7 * 8, 1 << 20
}

// TestReciprocalDifferential compares every int8 and int4 kernel with the
// division formula on random hard inputs: per-channel int8 (axis 0 and
// last axis, symmetric and asymmetric, scales and zero points given),
// blockwise int4 with given float16 scales, and the fused forms, whose
// parameters come from the data (rows and blocks built around chosen
// extremes, so that the boundary values can be aimed at the scale).
func TestReciprocalDifferential(t *testing.T) {
	batches, size := reciprocalBudget()
	var (
		mu    sync.Mutex
		total hardness
	)
	t.Run("batch", func(t *testing.T) {
		for b := range batches {
			t.Run(fmt.Sprint(b), func(t *testing.T) {
				t.Parallel()
				g := boundaryGen{rand.New(rand.NewPCG(uint64(b), 0x5eed))}
				var h hardness
				switch b % 7 {
				case 0, 1:
					h = diffRowsInt8(t, g, size, b%7 == 0)
				case 2:
					h = diffLastAxisInt8(t, g, size, b%2 == 0)
				case 3:
					h = diffInt4(t, g, size)
				case 4, 5:
					h = diffFusedRowsInt8(t, g, size, b%7 == 4)
				case 6:
					h = diffFusedBlocksInt4(t, g, size, b%2 == 0)
				}
				mu.Lock()
				total.add(h)
				mu.Unlock()
			})
		}
	})
	if t.Failed() {
		return
	}
	t.Logf("%d elements compared, %d exact ties, %d that a plain reciprocal gets wrong", total.elements, total.ties, total.naiveWrong)
	minElements := 50_000_000
	if raceEnabled {
		minElements = 400_000
	}
	// The inputs must be hard: exact ties, and elements where multiplying
	// by the reciprocal alone rounds the other way.
	if total.elements < minElements || total.ties < total.elements/100 || total.naiveWrong < total.elements/10000 {
		t.Fatalf("too easy: %+v", total)
	}
}

func pickCols(r *rand.Rand) int {
	return []int{1, 2, 3, 5, 8, 31, 32, 33, 64, 100, 257, 1024, 4096}[r.IntN(13)]
}

// diffRowsInt8: QuantizeInt8 along axis 0 with given per-row parameters.
func diffRowsInt8(t *testing.T, g boundaryGen, size int, symmetric bool) (h hardness) {
	cols := pickCols(g.r)
	rows := size / cols
	lo, hi := quant.Int8Range(symmetric)
	scales, zps := make([]float32, rows), make([]int64, rows)
	src := make([]float32, rows*cols)
	for row := range rows {
		scales[row] = g.int8Scale()
		if !symmetric {
			zps[row] = g.zeroPoint()
		}
		for j := range cols {
			src[row*cols+j] = g.value(scales[row], float32(zps[row]), lo, hi)
		}
	}
	q := make([]int8, len(src))
	quant.QuantizeInt8(q, src, []int{rows, cols}, 0, scales, zps, symmetric)
	h.check(t, fmt.Sprintf("QuantizeInt8 [%d %d] axis 0 symmetric %v", rows, cols, symmetric), src,
		func(i int) int { return int(q[i]) },
		func(i int) (float32, float32) { return scales[i/cols], float32(zps[i/cols]) }, lo, hi)
	return h
}

// diffLastAxisInt8: QuantizeInt8 with the channel axis last (the channel
// changes with every element).
func diffLastAxisInt8(t *testing.T, g boundaryGen, size int, symmetric bool) (h hardness) {
	channels := []int{1, 2, 3, 7, 16, 64, 300}[g.r.IntN(7)]
	rows := size / channels
	lo, hi := quant.Int8Range(symmetric)
	scales, zps := make([]float32, channels), make([]int64, channels)
	for c := range channels {
		scales[c] = g.int8Scale()
		if !symmetric {
			zps[c] = g.zeroPoint()
		}
	}
	src := make([]float32, rows*channels)
	for i := range src {
		c := i % channels
		src[i] = g.value(scales[c], float32(zps[c]), lo, hi)
	}
	q := make([]int8, len(src))
	quant.QuantizeInt8(q, src, []int{rows, channels}, 1, scales, zps, symmetric)
	h.check(t, fmt.Sprintf("QuantizeInt8 [%d %d] axis 1 symmetric %v", rows, channels, symmetric), src,
		func(i int) int { return int(q[i]) },
		func(i int) (float32, float32) { return scales[i%channels], float32(zps[i%channels]) }, lo, hi)
	return h
}

// diffInt4: QuantizeInt4 with given float16 block scales.
func diffInt4(t *testing.T, g boundaryGen, size int) (h hardness) {
	bs := 32 << g.r.IntN(4)
	cols := bs * (1 + g.r.IntN(4))
	n := size / cols * cols
	scales := make([]uint16, n/bs)
	src := make([]float32, n)
	for k := range scales {
		scales[k] = g.int4Scale()
		s := quant.Float32FromBits16(scales[k])
		for j := range bs {
			src[k*bs+j] = g.value(s, 0, -8, 7)
		}
	}
	packed := make([]byte, n/2)
	quant.QuantizeInt4(packed, src, cols, bs, scales)
	q := make([]int8, n)
	quant.UnpackInt4(q, packed)
	h.check(t, fmt.Sprintf("QuantizeInt4 cols %d block %d", cols, bs), src,
		func(i int) int { return int(q[i]) },
		func(i int) (float32, float32) { return quant.Float32FromBits16(scales[i/bs]), 0 }, -8, 7)
	return h
}

// diffFusedRowsInt8: QuantizeRowsInt8. Each row gets chosen extremes, its
// parameters follow from them by the reference formulas, and the other
// values are aimed at that scale and kept between the extremes.
func diffFusedRowsInt8(t *testing.T, g boundaryGen, size int, symmetric bool) (h hardness) {
	r := g.r
	cols := max(2, pickCols(r))
	rows := size / cols
	lo, hi := quant.Int8Range(symmetric)
	src := make([]float32, rows*cols)
	wantScales, wantZps := make([]float32, rows), make([]int64, rows)
	for row := range rows {
		var mn, mx float32
		switch n := r.IntN(20); {
		case n == 0: // all zero: the 1e-9 floor
		case n == 1: // one sign only
			mx = float32(logUniform(r, 1e-12, 1e4))
			mn = mx * float32(r.Float64())
			if r.IntN(2) == 0 {
				mn, mx = -mx, -mn
			}
		default:
			mn = -float32(logUniform(r, 1e-12, 1e4))
			mx = float32(logUniform(r, 1e-12, 1e4))
		}
		if symmetric {
			mn = -mx
		}
		ext := []float32{mn, mx}
		s, z := refParamsInt8(ext, []int{2}, -1, symmetric)
		wantScales[row], wantZps[row] = s[0], z[0]
		out := src[row*cols : (row+1)*cols]
		for j := range out {
			out[j] = clamp32(g.value(s[0], float32(z[0]), lo, hi), mn, mx)
		}
		p := r.IntN(cols)
		out[p], out[(p+1+r.IntN(cols-1))%cols] = mn, mx
	}
	q := make([]int8, len(src))
	scales, zps := make([]float32, rows), make([]int64, rows)
	if err := quant.QuantizeRowsInt8(q, scales, zps, src, cols, symmetric); err != nil {
		t.Fatal(err)
	}
	what := fmt.Sprintf("QuantizeRowsInt8 [%d %d] symmetric %v", rows, cols, symmetric)
	if !slices.EqualFunc(scales, wantScales, sameFloat32) || !slices.Equal(zps, wantZps) {
		t.Fatalf("%s: parameters differ from the reference formulas", what)
	}
	h.check(t, what, src,
		func(i int) int { return int(q[i]) },
		func(i int) (float32, float32) { return scales[i/cols], float32(zps[i/cols]) }, lo, hi)
	return h
}

// diffFusedBlocksInt4: QuantizeBlocksInt4, blocks built around a chosen
// max|x| as in diffFusedRowsInt8.
func diffFusedBlocksInt4(t *testing.T, g boundaryGen, size int, clampTiny bool) (h hardness) {
	r := g.r
	bs := 32 << r.IntN(4)
	cols := bs * (1 + r.IntN(4))
	n := size / cols * cols
	src := make([]float32, n)
	want := make([]uint16, n/bs)
	for k := range want {
		bound := float32(logUniform(r, 1e-12, 4e5))
		if r.IntN(20) == 0 {
			bound = 0
		}
		want[k] = refScaleInt4([]float32{bound}, clampTiny)
		s := quant.Float32FromBits16(want[k])
		blk := src[k*bs : (k+1)*bs]
		for j := range blk {
			blk[j] = clamp32(g.value(s, 0, -8, 7), -bound, bound)
		}
		blk[r.IntN(bs)] = bound * float32(1-2*r.IntN(2))
	}
	packed, scales := make([]byte, n/2), make([]uint16, n/bs)
	if _, err := quant.QuantizeBlocksInt4(packed, scales, src, cols, bs, clampTiny); err != nil {
		t.Fatal(err)
	}
	what := fmt.Sprintf("QuantizeBlocksInt4 cols %d block %d clampTiny %v", cols, bs, clampTiny)
	if !slices.Equal(scales, want) {
		t.Fatalf("%s: scales differ from the reference formula", what)
	}
	q := make([]int8, n)
	quant.UnpackInt4(q, packed)
	h.check(t, what, src,
		func(i int) int { return int(q[i]) },
		func(i int) (float32, float32) { return quant.Float32FromBits16(scales[i/bs]), 0 }, -8, 7)
	return h
}

// boundaryWindow returns every float32 x whose x/scale + zp lies near a
// rounding boundary h ∈ [lo−½, hi+½]: the float32 nearest x_h = (h − zp)·scale
// and enough neighbours on each side to cover 3·2^-12 in units of the scale,
// three times the fast path's margin: the float32 spacing near x_h is at
// least |x_h|·2^-24, so 3·2^-12/(|h − zp|·2^-24) steps suffice.
func boundaryWindow(scale, zp float32, lo, hi int) []float32 {
	var xs []float32
	for j := lo - 1; j <= hi; j++ {
		d := float64(j) + 0.5 - float64(zp)
		x := float32(d * float64(scale))
		if x == 0 || math.IsInf(float64(x), 0) {
			continue
		}
		n := int(3*0x1p-12/(math.Abs(d)*0x1p-24)) + 2
		up, down := x, x
		xs = append(xs, x)
		for range n {
			up = math.Nextafter32(up, float32(math.Inf(1)))
			down = math.Nextafter32(down, float32(math.Inf(-1)))
			xs = append(xs, up, down)
		}
	}
	return xs
}

// TestReciprocalBoundaryWindows checks exhaustively, for a set of scales and
// zero points, every float32 input in a window around every rounding
// boundary: all the inputs where the fast path's decision is delicate.
func TestReciprocalBoundaryWindows(t *testing.T) {
	int8Scales := []float32{1, 0.1 / 127, 0.02 / 127, 3.0 / 255, float32(1e-9) / 127, float32(1e-9) / 255,
		1e-10, 1e3, 0x1p-126, 7.1e-5, 0.142578125, 1.0 / 16384, 0x1p-24, 65504, 0.7}
	int4Scales := []uint16{0x3c00, 0x3090, 0x0400, 0x0001, 0x03ff, 0x7bff, 0x2e66, 0x1e00, 0x5bf8, 0x0155}
	extra := 8
	if raceEnabled {
		int8Scales, int4Scales, extra = int8Scales[:3], int4Scales[:3], 0
	}
	g := boundaryGen{rand.New(rand.NewPCG(21, 22))}
	for range extra {
		int8Scales = append(int8Scales, float32(logUniform(g.r, 1e-10, 1e3)))
		int4Scales = append(int4Scales, g.int4Scale())
	}
	var total hardness
	for _, s := range int8Scales {
		for _, c := range []struct {
			zp        int64
			symmetric bool
		}{{0, true}, {0, false}, {-128, false}, {-43, false}, {127, false}, {256, false}, {-256, false}} {
			lo, hi := quant.Int8Range(c.symmetric)
			src := boundaryWindow(s, float32(c.zp), lo, hi)
			q := make([]int8, len(src))
			quant.QuantizeInt8(q, src, []int{len(src)}, -1, []float32{s}, []int64{c.zp}, c.symmetric)
			total.check(t, fmt.Sprintf("QuantizeInt8 scale %g zp %d symmetric %v", s, c.zp, c.symmetric), src,
				func(i int) int { return int(q[i]) },
				func(int) (float32, float32) { return s, float32(c.zp) }, lo, hi)
		}
	}
	for _, hs := range int4Scales {
		s := quant.Float32FromBits16(hs)
		src := boundaryWindow(s, 0, -8, 7)
		src = append(src, make([]float32, (32-len(src)%32)%32)...)
		packed := make([]byte, len(src)/2)
		quant.QuantizeInt4(packed, src, len(src), 32, slices.Repeat([]uint16{hs}, len(src)/32))
		q := make([]int8, len(src))
		quant.UnpackInt4(q, packed)
		total.check(t, fmt.Sprintf("QuantizeInt4 scale %#04x", hs), src,
			func(i int) int { return int(q[i]) },
			func(int) (float32, float32) { return s, 0 }, -8, 7)
	}
	t.Logf("%d elements compared, %d exact ties, %d that a plain reciprocal gets wrong", total.elements, total.ties, total.naiveWrong)
	if total.ties < 1000 || total.naiveWrong < 100 {
		t.Fatalf("too easy: %+v", total)
	}
}

// FuzzReciprocal compares the int8 and int4 kernels with the division
// formula for arbitrary inputs, scales and zero points.
func FuzzReciprocal(f *testing.F) {
	f.Add(seedBytes(0.5, 1.5, -2.5, 127.5, -127.5, 63.5), math.Float32bits(1), int64(0), uint8(0))
	f.Add(seedBytes(float32(1e-9)/127*0.5, 1e-40, 3e38, -0.0), math.Float32bits(float32(1e-9)/127), int64(-128), uint8(1))
	f.Add(seedBytes(7.5*0.142578125, -8.5*0.142578125, 0.5*0.142578125), uint32(0x3090), int64(0), uint8(2))
	f.Add(seedBytes(1, 2, 3, 4), math.Float32bits(0x1p-127), int64(257), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, scaleBits uint32, zp int64, mode uint8) {
		src := fuzzFloats(data)
		if len(src) == 0 {
			return
		}
		var h hardness
		switch mode % 4 {
		case 0, 1: // per tensor
			symmetric := mode%4 == 0
			if symmetric {
				zp = 0
			}
			scale := math.Float32frombits(scaleBits)
			lo, hi := quant.Int8Range(symmetric)
			q := make([]int8, len(src))
			quant.QuantizeInt8(q, src, []int{len(src)}, -1, []float32{scale}, []int64{zp}, symmetric)
			h.check(t, "QuantizeInt8", src, func(i int) int { return int(q[i]) },
				func(int) (float32, float32) { return scale, float32(zp) }, lo, hi)
		case 2: // int4, the low 16 bits as the float16 scale of every block
			src = src[:len(src)/32*32]
			if len(src) == 0 {
				return
			}
			hs := uint16(scaleBits)
			packed := make([]byte, len(src)/2)
			quant.QuantizeInt4(packed, src, len(src), 32, slices.Repeat([]uint16{hs}, len(src)/32))
			q := make([]int8, len(src))
			quant.UnpackInt4(q, packed)
			h.check(t, "QuantizeInt4", src, func(i int) int { return int(q[i]) },
				func(int) (float32, float32) { return quant.Float32FromBits16(hs), 0 }, -8, 7)
		case 3: // last axis of [n/2, 2]: two channels, the second scale and zero point derived
			src = src[:len(src)/2*2]
			if len(src) == 0 {
				return
			}
			scales := []float32{math.Float32frombits(scaleBits), math.Float32frombits(scaleBits ^ 0x00400001)}
			zps := []int64{zp, -zp / 3}
			q := make([]int8, len(src))
			quant.QuantizeInt8(q, src, []int{len(src) / 2, 2}, 1, scales, zps, false)
			h.check(t, "QuantizeInt8 axis 1", src, func(i int) int { return int(q[i]) },
				func(i int) (float32, float32) { return scales[i%2], float32(zps[i%2]) }, -128, 127)
		}
	})
}
