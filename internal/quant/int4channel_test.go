package quant

import (
	"math"
	"math/rand"
	"testing"
)

// TestChannelInt4AgainstFormula checks ChannelParamsInt4 and
// QuantizeChannelsInt4 against the min-max formulas written out in
// float32, per channel on every axis and per tensor, symmetric and not,
// on data with exact ties (multiples of half a scale), zero channels and
// one-signed channels.
func TestChannelInt4AgainstFormula(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	shape := []int{3, 5, 4}
	n := 60
	for trial := range 20 {
		src := make([]float32, n)
		for i := range src {
			switch trial % 4 {
			case 0:
				src[i] = float32(rng.NormFloat64())
			case 1:
				src[i] = float32(rng.Intn(31)-15) * 0.25 // many exact ties
			case 2:
				src[i] = float32(rng.Float64()) + 0.5 // one-signed
			}
			// trial%4 == 3: all zeros
		}
		for axis := -1; axis < len(shape); axis++ {
			for _, sym := range []bool{true, false} {
				l := channelLayout("t", n, shape, axis)
				scales, zps := make([]float32, l.channels), make([]int64, l.channels)
				if err := ChannelParamsInt4(scales, zps, src, shape, axis, sym); err != nil {
					t.Fatal(err)
				}
				q := make([]int8, n)
				QuantizeChannelsInt4(q, src, shape, axis, scales, zps)
				for c := range l.channels {
					var mn, mx float32 = float32(math.Inf(1)), float32(math.Inf(-1))
					l.forRuns(0, n, func(a, b, ch int) {
						if ch == c {
							for _, v := range src[a:b] {
								mn, mx = min(mn, v), max(mx, v)
							}
						}
					})
					var s float32
					var zp int64
					if sym {
						s = max(float32(math.Abs(float64(mn))), float32(math.Abs(float64(mx))), 1e-9) / 7
					} else {
						s = max(max(mx, 0)-min(mn, 0), 1e-9) / 15
						zp = int64(math.RoundToEven(float64(float32(-8) - min(mn, 0)/s)))
					}
					if scales[c] != s || zps[c] != zp {
						t.Fatalf("trial %d axis %d sym %t channel %d: %v/%d, want %v/%d", trial, axis, sym, c, scales[c], zps[c], s, zp)
					}
				}
				l.forRuns(0, n, func(a, b, c int) {
					for i := a; i < b; i++ {
						want := math.RoundToEven(float64(src[i]/scales[c] + float32(zps[c])))
						want = min(max(want, -8), 7)
						if float64(q[i]) != want {
							t.Fatalf("trial %d axis %d sym %t element %d: %d, want %v", trial, axis, sym, i, q[i], want)
						}
					}
				})
			}
		}
	}
	bad := []float32{1, float32(math.NaN())}
	if err := ChannelParamsInt4(make([]float32, 1), make([]int64, 1), bad, []int{2}, -1, false); err == nil {
		t.Error("NaN accepted")
	}
	if err := ChannelParamsInt4(make([]float32, 1), make([]int64, 1), bad, []int{2}, -1, true); err == nil {
		t.Error("NaN accepted (symmetric)")
	}
}
