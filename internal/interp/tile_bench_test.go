package interp

import (
	"testing"
)

// BenchmarkTile is the f32 and int tiles alone on cache-resident data
// (256 k): their ceiling next to BenchmarkPeak; GFLOP/s counts 2 per
// multiply-add (int: per integer product and sum).
func BenchmarkTile(b *testing.B) {
	if !hasSIMD {
		b.Skip("no vector tiles on this CPU")
	}
	const k = 256
	a := make([]float32, 3*k)
	c := make([]float32, 96)
	p32 := make([]float32, 32*k)
	b.Run("f32", func(b *testing.B) {
		cpu0 := cpuSeconds()
		for b.Loop() {
			for range 64 {
				f32Tile3x32(&c[0], &a[0], k, &p32[0], k)
			}
		}
		reportFlops(b, 64*192*k*float64(b.N), cpu0)
	})
	au := make([]uint8, 6*k)
	q := make([]int32, 16*k/4)
	sc := make([]float32, 16*k/32)
	corr := make([]int32, 16*k/32)
	b.Run("int4b32", func(b *testing.B) {
		cpu0 := cpuSeconds()
		for b.Loop() {
			for range 64 {
				q4Tile6(&c[0], &au[0], k, &q[0], k/32, &sc[0], &corr[0])
			}
		}
		reportFlops(b, 64*192*k*float64(b.N), cpu0)
	})
	a16 := make([]int16, 6*k)
	pp := make([]int32, 16*k/2)
	ic := make([]int32, 96)
	b.Run("int8", func(b *testing.B) {
		cpu0 := cpuSeconds()
		for b.Loop() {
			for range 64 {
				i16Tile6(&ic[0], &a16[0], k, &pp[0], k/2)
			}
		}
		reportFlops(b, 64*192*k*float64(b.N), cpu0)
	})
}
