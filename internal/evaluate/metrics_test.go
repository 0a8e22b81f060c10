package evaluate

import (
	"math"
	"testing"
)

func near(got, want, tol float64) bool {
	if math.IsInf(want, 0) || math.IsNaN(want) {
		return got == want || math.IsNaN(got) && math.IsNaN(want)
	}
	return math.Abs(got-want) <= tol
}

var ln = math.Log

func TestKL(t *testing.T) {
	l3 := float32(ln(3))
	for _, tc := range []struct {
		name string
		p, q []float32
		want float64
	}{
		{"equal", []float32{1, 2, 3}, []float32{1, 2, 3}, 0},
		{"shifted logits are the same distribution", []float32{1, 2, 3}, []float32{11, 12, 13}, 0},
		// P = (1/4, 3/4), Q = (1/2, 1/2): ¼·ln(½) + ¾·ln(3/2) = ¾·ln 3 − ln 2.
		{"hand computed", []float32{0, l3}, []float32{0, 0}, 0.75*ln(3) - ln(2)},
		// The direction matters: P = (½, ½), Q = (¼, ¾): ½·ln 2 + ½·ln(⅔) = ln 2 − ½·ln 3.
		{"reversed", []float32{0, 0}, []float32{0, l3}, 0.5*ln(0.5/0.25) + 0.5*ln(0.5/0.75)},
		// Large logits: exp would overflow without log-sum-exp. P = (1, e)/(1+e), Q = (½, ½).
		{"large, no overflow", []float32{1000, 1001}, []float32{1000, 1000}, twoPointKL(1/(1+math.E), 0.5)},
		// P ≈ (e^-100, 1), Q ≈ (1, e^-100): KL ≈ 100 nats.
		{"disjoint", []float32{0, 100}, []float32{100, 0}, 100},
		{"NaN in candidate", []float32{0, 1}, []float32{float32(math.NaN()), 1}, math.Inf(1)},
		{"Inf in reference", []float32{float32(math.Inf(1)), 1}, []float32{0, 1}, math.Inf(1)},
	} {
		// ln 3 rounded to float32 moves the exact value by ~4e-9.
		if got := KL(tc.p, tc.q); !near(got, tc.want, 1e-8) {
			t.Errorf("%s: KL = %.12g, want %.12g", tc.name, got, tc.want)
		}
	}
}

// twoPointKL is KL((p, 1−p) ‖ (q, 1−q)) from the definition.
func twoPointKL(p, q float64) float64 { return p*ln(p/q) + (1-p)*ln((1-p)/(1-q)) }

func TestArgmaxTopK(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		x    []float32
		want int
	}{
		{[]float32{1, 3, 3, 2}, 1}, // lowest index among equals
		{[]float32{nan, -5, -7}, 1},
		{[]float32{nan}, -1},
		{nil, -1},
	} {
		if got := Argmax(tc.x); got != tc.want {
			t.Errorf("Argmax(%v) = %d, want %d", tc.x, got, tc.want)
		}
	}
	x := []float32{5, 1, 4, 4, 3, 2, 0}
	// Ranking: 0 (5), 2 (4), 3 (4), 4 (3), 5 (2), 1 (1), 6 (0).
	for i, want2 := range []bool{true, false, true, false, false, false, false} {
		if got := InTopK(x, i, 2); got != want2 {
			t.Errorf("InTopK(x, %d, 2) = %v, want %v", i, got, want2)
		}
	}
	for i, want5 := range []bool{true, false, true, true, true, true, false} {
		if got := InTopK(x, i, 5); got != want5 {
			t.Errorf("InTopK(x, %d, 5) = %v, want %v", i, got, want5)
		}
	}
	if InTopK(x, -1, 5) || InTopK(x, 7, 5) || InTopK([]float32{nan, 1}, 0, 5) {
		t.Error("InTopK of a bad index or a NaN must be false")
	}
}

func TestDistance(t *testing.T) {
	inf := math.Inf(1)
	nan := float32(math.NaN())
	for _, tc := range []struct {
		name               string
		ref, cand          [][]float32 // samples
		relL2, maxAbs, cos float64
		mismatched         int
	}{
		{"equal", [][]float32{{3, 4}}, [][]float32{{3, 4}}, 0, 0, 1, 0},
		{"zero candidate", [][]float32{{3, 4}}, [][]float32{{0, 0}}, 1, 4, 0, 0},
		{"orthogonal", [][]float32{{1, 0}}, [][]float32{{0, 1}}, math.Sqrt2, 1, 0, 0},
		{"scaled", [][]float32{{1, 1}}, [][]float32{{2, 2}}, 1, 1, 1, 0},
		// Sums run over the samples: ‖diff‖ = 1, ‖ref‖ = 5, ‖cand‖ = √26, ⟨ref, cand⟩ = 25.
		{"two samples", [][]float32{{3, 4}, {0, 0}}, [][]float32{{3, 4}, {0, 1}}, 1.0 / 5, 1, 25 / (5 * math.Sqrt(26)), 0},
		{"both zero", [][]float32{{0, 0}}, [][]float32{{0, 0}}, 0, 0, 1, 0},
		{"zero reference", [][]float32{{0, 0}}, [][]float32{{0, 1}}, inf, 1, 0, 0},
		{"NaN where finite", [][]float32{{1, 2}}, [][]float32{{1, nan}}, inf, inf, math.NaN(), 1},
		{"NaN on both sides", [][]float32{{1, nan}}, [][]float32{{1, nan}}, 0, 0, 1, 0},
	} {
		a := NewAccumulator(0)
		for i := range tc.ref {
			a.Add(tc.ref[i], tc.cand[i])
		}
		d := a.Distance()
		if !near(d.RelL2, tc.relL2, 1e-12) || !near(d.MaxAbs, tc.maxAbs, 1e-12) || !near(d.Cosine, tc.cos, 1e-12) || d.Mismatched != tc.mismatched {
			t.Errorf("%s: %+v, want rel L2 %g, max abs %g, cosine %g, mismatched %d", tc.name, d, tc.relL2, tc.maxAbs, tc.cos, tc.mismatched)
		}
		if a.Logits() != nil {
			t.Errorf("%s: logits measured without a vocabulary", tc.name)
		}
	}
}

func TestLogits(t *testing.T) {
	l3 := float32(ln(3))
	a := NewAccumulator(2)
	// Sample 1: two positions. Position 1 equal (KL 0, agree); position 2
	// P = (1/4, 3/4), Q = (1/2, 1/2): KL ¾ln3 − ln2, top-1: P says 1, Q
	// says 0 (tie, lowest index), but 1 is in Q's top 5.
	a.Add([]float32{0, 1, 0, l3}, []float32{0, 1, 0, 0})
	// Sample 2: one position, reversed preference: KL of P = (¾, ¼) from
	// Q = (¼, ¾) is ½·ln 3, top-1 disagrees.
	a.Add([]float32{l3, 0}, []float32{0, l3})
	l := a.Logits()
	if l == nil {
		t.Fatal("no logits")
	}
	k2 := 0.75*ln(3) - ln(2)
	k3 := 0.75*ln(3) - 0.25*ln(3) // ¾·ln(¾/¼) + ¼·ln(¼/¾)
	if l.Positions != 3 || !near(l.MeanKL, (0+k2+k3)/3, 1e-7) || !near(l.MaxKL, k3, 1e-7) || !near(l.P99KL, k3, 1e-7) ||
		!near(l.Top1, 1.0/3, 1e-15) || !near(l.TopK, 1, 1e-15) {
		t.Errorf("logits %+v; want 3 positions, mean KL %g, p99 = max = %g, top-1 1/3, top-5 1", l, (k2+k3)/3, k3)
	}
}

func TestRank(t *testing.T) {
	for _, tc := range []struct {
		n    int
		q    float64
		want int
	}{{1, 0.99, 0}, {100, 0.99, 98}, {101, 0.99, 99}, {512, 0.99, 506}, {10, 0.5, 4}, {10, 0, 0}, {10, 1, 9}} {
		if got := Rank(tc.n, tc.q); got != tc.want {
			t.Errorf("Rank(%d, %g) = %d, want %d", tc.n, tc.q, got, tc.want)
		}
	}
}

func TestStats(t *testing.T) {
	var a StatsAccumulator
	a.Add([]float32{1, 2, float32(math.NaN())})
	a.Add([]float32{3, 4, float32(math.Inf(-1))})
	s := a.Stats()
	if s.Count != 6 || s.NaN != 1 || s.Inf != 1 || s.Min != 1 || s.Max != 4 || !near(s.Mean, 2.5, 1e-15) || !near(s.Std, math.Sqrt(1.25), 1e-15) {
		t.Errorf("stats %+v; want 6 elements, 1 NaN, 1 Inf, min 1, max 4, mean 2.5, std %g", s, math.Sqrt(1.25))
	}
	var empty StatsAccumulator
	if s := empty.Stats(); s != (Stats{}) {
		t.Errorf("empty: %+v", s)
	}
}
