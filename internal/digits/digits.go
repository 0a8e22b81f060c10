// Package digits draws MNIST-like digit images for tests that need inputs
// a digit classifier (testdata/models/aeq_conv_fc_mnist.tflite) was trained
// on, not uniform noise: calibration and held-out sets.
package digits

import (
	"math"
	"math/rand/v2"
)

// digits are polyline templates of the ten digits in a unit box (x right,
// y down), each a list of strokes.
var digits = [10][][][2]float64{
	{{{0.5, 0}, {0.15, 0.2}, {0.1, 0.6}, {0.3, 1}, {0.7, 1}, {0.9, 0.6}, {0.85, 0.2}, {0.5, 0}}},
	{{{0.3, 0.2}, {0.55, 0}, {0.55, 1}}},
	{{{0.1, 0.25}, {0.4, 0}, {0.8, 0.1}, {0.8, 0.4}, {0.1, 1}, {0.9, 1}}},
	{{{0.1, 0.1}, {0.8, 0}, {0.4, 0.45}, {0.9, 0.7}, {0.6, 1}, {0.1, 0.9}}},
	{{{0.6, 1}, {0.6, 0}, {0.05, 0.65}, {0.95, 0.65}}},
	{{{0.85, 0}, {0.2, 0}, {0.15, 0.45}, {0.7, 0.45}, {0.85, 0.75}, {0.5, 1}, {0.1, 0.9}}},
	{{{0.75, 0}, {0.25, 0.4}, {0.15, 0.8}, {0.45, 1}, {0.8, 0.8}, {0.7, 0.5}, {0.2, 0.6}}},
	{{{0.1, 0}, {0.9, 0}, {0.4, 1}}},
	{{{0.5, 0.5}, {0.15, 0.25}, {0.5, 0}, {0.85, 0.25}, {0.5, 0.5}, {0.1, 0.75}, {0.5, 1}, {0.9, 0.75}, {0.5, 0.5}}},
	{{{0.8, 0.35}, {0.5, 0.5}, {0.2, 0.3}, {0.5, 0}, {0.8, 0.2}, {0.75, 0.6}, {0.6, 1}}},
}

// Image draws an MNIST-like image of a digit: the digit's strokes,
// randomly scaled, slanted, shifted and of random thickness, as ink in
// [0, 1] on a black 28×28 background, within the 20×20 box MNIST digits
// occupy.
func Image(rng *rand.Rand) []float32 {
	img := make([]float32, 28*28)
	d := digits[rng.IntN(10)]
	// u rounds each draw on its own (rand's Float64 is a product), so that
	// no multiply-add fuses across it (.ci/run).
	u := func() float64 { return float64(rng.Float64()) }
	w, h := 10+float64(u()*6), 16+float64(u()*4)
	x0, y0 := 14-float64(w/2)+float64(u()*2)-1, 14-float64(h/2)+float64(u()*2)-1
	slant := float64(u()*0.4) - 0.2
	width := 0.9 + float64(u()*0.8)
	jitter := func(v float64) float64 { return v + float64((u()-0.5)*0.08) }
	for _, stroke := range d {
		pts := make([][2]float64, len(stroke))
		for i, p := range stroke {
			px, py := jitter(p[0]), jitter(p[1])
			pts[i] = [2]float64{x0 + float64(px*w) + float64(slant*(0.5-py)*h), y0 + float64(py*h)}
		}
		for i := 1; i < len(pts); i++ {
			for k := 0; k <= 30; k++ {
				f := float64(k) / 30
				cx, cy := pts[i-1][0]+float64((pts[i][0]-pts[i-1][0])*f), pts[i-1][1]+float64((pts[i][1]-pts[i-1][1])*f)
				for py := max(0, int(cy)-3); py < min(28, int(cy)+4); py++ {
					for px := max(0, int(cx)-3); px < min(28, int(cx)+4); px++ {
						dist := math.Hypot(float64(px)-cx, float64(py)-cy)
						v := float32(math.Min(1, math.Max(0, 1.5-dist/width)))
						img[py*28+px] = max(img[py*28+px], v)
					}
				}
			}
		}
	}
	return img
}

// Images draws n images from a generator seeded with seed: the same
// images for the same seed on every machine.
func Images(seed uint64, n int) [][]float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([][]float32, n)
	for i := range out {
		out[i] = Image(rng)
	}
	return out
}
