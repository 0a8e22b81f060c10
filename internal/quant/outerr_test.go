package quant_test

import (
	"math"
	"math/rand"
	"testing"

	"github.com/qpipe/qpipe/internal/quant"
)

// TestOutputErrors: E‖ΔW·x‖² from the statistics matches the mean over
// many inputs x of independent channels with those means and variances,
// and the sums do not depend on how the weight is cut into pieces.
func TestOutputErrors(t *testing.T) {
	const rows, cols = 5, 7
	rng := rand.New(rand.NewSource(1))
	w, got := make([]float32, rows*cols), make([]float32, rows*cols)
	st := &quant.ChannelStats{Mean: make([]float32, cols), Var: make([]float32, cols)}
	for j := 0; j < cols; j++ {
		st.Mean[j], st.Var[j] = float32(rng.NormFloat64()), float32(0.1+rng.Float64())
	}
	for i := range w {
		w[i] = float32(rng.NormFloat64())
		got[i] = w[i] + float32(0.1*rng.NormFloat64())
	}
	whole := quant.OutputErrors{Stats: st}
	whole.Add(w, got)
	for _, cut := range [][]int{{1, 6, 13, 35}, {7, 14, 21, 28, 35}, {34, 35}} {
		pieces := quant.OutputErrors{Stats: st}
		lo := 0
		for _, hi := range cut {
			pieces.Add(w[lo:hi], got[lo:hi])
			lo = hi
		}
		if pieces.Noise != whole.Noise || pieces.Signal != whole.Signal {
			t.Errorf("cut at %v: %v %v, whole %v %v", cut, pieces.Noise, pieces.Signal, whole.Noise, whole.Signal)
		}
	}
	// Monte Carlo: x_j = μ_j + σ_j·z (Gaussian, independent).
	const n = 200000
	var noise, signal float64
	x := make([]float64, cols)
	for k := 0; k < n; k++ {
		for j := range x {
			x[j] = float64(st.Mean[j]) + math.Sqrt(float64(st.Var[j]))*rng.NormFloat64()
		}
		for r := 0; r < rows; r++ {
			var d, s float64
			for j := 0; j < cols; j++ {
				s += float64(float64(w[r*cols+j]) * x[j])
				d += float64((float64(w[r*cols+j]) - float64(got[r*cols+j])) * x[j])
			}
			noise += float64(d * d)
			signal += float64(s * s)
		}
	}
	noise, signal = noise/n, signal/n
	if math.Abs(noise-whole.Noise) > 0.02*whole.Noise || math.Abs(signal-whole.Signal) > 0.02*whole.Signal {
		t.Errorf("from the statistics: noise %g signal %g; sampled: %g %g", whole.Noise, whole.Signal, noise, signal)
	}
}
