package quant_test

import (
	"math"
	"testing"

	"github.com/qpipe/qpipe/internal/quant"
)

func TestCompare(t *testing.T) {
	inf, nan := math.Inf(1), math.NaN()
	tests := []struct {
		name      string
		ref, got  []float32
		sqnr, max float64
		rel       float64
	}{
		{"equal", []float32{1, -2, 3}, []float32{1, -2, 3}, inf, 0, 0},
		{"empty", nil, nil, inf, 0, 0},
		// signal 1+4 = 5, noise 0.25+0 = 0.25: 10·log10(20), sqrt(0.05)
		{"half off", []float32{1, -2}, []float32{1.5, -2}, 10 * math.Log10(20), 0.5, math.Sqrt(0.05)},
		{"zero ref", []float32{0, 0}, []float32{0, 1}, math.Inf(-1), 1, inf},
		{"nan", []float32{1, 2}, []float32{1, float32(nan)}, nan, nan, nan},
	}
	same := func(a, b float64) bool {
		if math.IsNaN(a) || math.IsNaN(b) {
			return math.IsNaN(a) && math.IsNaN(b)
		}
		return a == b || math.Abs(a-b) <= 1e-12*math.Abs(b)
	}
	for _, tc := range tests {
		m := quant.Compare(tc.ref, tc.got)
		if !same(m.SQNR, tc.sqnr) || !same(m.MaxAbs, tc.max) || !same(m.RelL2, tc.rel) {
			t.Errorf("%s: %+v, want SQNR %g MaxAbs %g RelL2 %g", tc.name, m, tc.sqnr, tc.max, tc.rel)
		}
	}
}

func TestCheckFinite(t *testing.T) {
	src := make([]float32, 100000)
	if err := quant.CheckFinite(src); err != nil {
		t.Fatal(err)
	}
	src[70000] = float32(math.NaN())
	src[99999] = float32(math.Inf(-1))
	err := quant.CheckFinite(src)
	ve, ok := err.(*quant.ValueError)
	if !ok || ve.Kind != quant.NotFinite || ve.Count != 2 || ve.First != 70000 {
		t.Fatalf("err = %v, want NotFinite count 2 first 70000", err)
	}
	if msg := err.Error(); msg != "quant: non-finite values (NaN or ±Inf): 2, the first at flat index 70000 (NaN)" {
		t.Fatalf("message %q", msg)
	}
}
