package quant_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/qpipe/qpipe/internal/quant"
)

func randomShape(r *rand.Rand) []int {
	shape := make([]int, 1+r.IntN(4))
	for d := range shape {
		shape[d] = 1 + r.IntN(9)
	}
	if r.IntN(4) == 0 {
		shape[r.IntN(len(shape))] = 1 + r.IntN(300)
	}
	return shape
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// checkInt8 quantizes src with the kernels and checks them against the
// reference formulas and the half-step error bound.
func checkInt8(t *testing.T, src []float32, shape []int, axis int, symmetric bool) {
	t.Helper()
	channels := 1
	if axis >= 0 {
		channels = shape[axis]
	}
	scales, zps := make([]float32, channels), make([]int64, channels)
	if err := quant.ChannelParamsInt8(scales, zps, src, shape, axis, symmetric); err != nil {
		t.Fatalf("shape %v axis %d: %v", shape, axis, err)
	}
	wantScales, wantZps := refParamsInt8(src, shape, axis, symmetric)
	for c := range channels {
		if math.Float32bits(scales[c]) != math.Float32bits(wantScales[c]) || zps[c] != wantZps[c] {
			t.Fatalf("shape %v axis %d sym %v channel %d: scale %g zp %d, want %g %d",
				shape, axis, symmetric, c, scales[c], zps[c], wantScales[c], wantZps[c])
		}
	}
	q := make([]int8, len(src))
	quant.QuantizeInt8(q, src, shape, axis, scales, zps, symmetric)
	if want := refQuantizeInt8(src, shape, axis, scales, zps, symmetric); !slices.Equal(q, want) {
		i := 0
		for i = range q {
			if q[i] != want[i] {
				break
			}
		}
		t.Fatalf("shape %v axis %d sym %v: q[%d] = %d, want %d (x = %g)", shape, axis, symmetric, i, q[i], want[i], src[i])
	}
	if axis == 0 || (axis == -1 && len(shape) > 0 && shape[0] == 1) || len(src) == 0 {
		checkRowsInt8(t, src, q, scales, zps, symmetric)
	}
	qmin, _ := quant.Int8Range(symmetric)
	deq := make([]float32, len(src))
	quant.DequantizeInt8(deq, q, shape, axis, scales, zps)
	for i, x := range src {
		c := refChannel(i, shape, axis)
		if int(q[i]) < qmin {
			t.Fatalf("q[%d] = %d below %d", i, q[i], qmin)
		}
		if symmetric && zps[c] != 0 {
			t.Fatalf("symmetric zero point %d", zps[c])
		}
		if want := float32(int64(q[i])-zps[c]) * scales[c]; !sameFloat32(deq[i], want) {
			t.Fatalf("dequantized [%d] = %g, want (%d − %d)·%g = %g", i, deq[i], q[i], zps[c], scales[c], want)
		}
		// Half a step, plus float32 rounding of x/scale and +zp. The
		// product is taken in float64: in float32 it can overflow near
		// the float32 maximum (as it would at run time).
		r := float64(int64(q[i])-zps[c]) * float64(scales[c])
		limit := float64(scales[c])/2*(1+1e-5) + 1e-6*math.Abs(float64(x)) + 256*float64(scales[c])*0x1p-23
		if err := math.Abs(float64(x) - r); err > limit {
			t.Fatalf("shape %v axis %d sym %v: x[%d] = %g → q %d (scale %g, zp %d) → %g: error %g > %g",
				shape, axis, symmetric, i, x, q[i], scales[c], zps[c], deq[i], err, limit)
		}
	}
}

func TestInt8RandomTensors(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 400 {
		shape := randomShape(r)
		src := randomTensor(r, numel(shape))
		axis := r.IntN(len(shape)+1) - 1
		checkInt8(t, src, shape, axis, r.IntN(2) == 0)
	}
}

func TestInt8Cases(t *testing.T) {
	tests := []struct {
		name  string
		src   []float32
		shape []int
		axis  int
	}{
		{"all zero channel", []float32{0, 0, 0, 1, -2, 3}, []int{2, 3}, 0},
		{"constant positive", []float32{5, 5, 5, 5}, []int{4}, -1},
		{"constant negative", []float32{-5, -5, -5, -5}, []int{1, 4}, 0},
		{"last axis", []float32{1, -1, 0.5, 2, 0.25, -8}, []int{3, 2}, 1},
		{"middle axis", []float32{1, 2, 3, 4, 5, 6, 7, 8, -1, -2, -3, -4}, []int{2, 3, 2}, 1},
		{"ties", []float32{127, 63.5, -0.5, 0.5, 1.5, 2.5, -126.5}, []int{7}, -1},
		{"subnormals", []float32{1e-40, -1e-42, 0}, []int{3}, -1},
		{"huge", []float32{3e38, -3e38, 1}, []int{3}, -1},
		{"empty", nil, []int{0, 3}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkInt8(t, tc.src, tc.shape, tc.axis, true)
			checkInt8(t, tc.src, tc.shape, tc.axis, false)
		})
	}
}

// The reference formulas on hand-checked examples.
func TestInt8Worked(t *testing.T) {
	src := []float32{-1, 0.5, 2}
	s, z := []float32{0}, []int64{0}
	if err := quant.ChannelParamsInt8(s, z, src, []int{3}, -1, true); err != nil {
		t.Fatal(err)
	}
	q := make([]int8, 3)
	quant.QuantizeInt8(q, src, []int{3}, -1, s, z, true)
	if s[0] != float32(2)/127 || z[0] != 0 || !slices.Equal(q, []int8{-64, 32, 127}) { // -63.5 → -64, 31.75 → 32
		t.Fatalf("symmetric: scale %g zp %d q %v", s[0], z[0], q)
	}
	src[1] = 1
	if err := quant.ChannelParamsInt8(s, z, src, []int{3}, -1, false); err != nil {
		t.Fatal(err)
	}
	quant.QuantizeInt8(q, src, []int{3}, -1, s, z, false)
	// scale 3/255, zp rint(-128 + 85) = -43; q = rint(x·85) - 43.
	if s[0] != float32(3)/255 || z[0] != -43 || !slices.Equal(q, []int8{-128, 42, 127}) {
		t.Fatalf("asymmetric: scale %g zp %d q %v", s[0], z[0], q)
	}
}

func TestChannelParamsInt8NotFinite(t *testing.T) {
	src := []float32{1, 2, float32(math.NaN()), 4, float32(math.Inf(-1)), 6}
	s, z := make([]float32, 3), make([]int64, 3)
	err := quant.ChannelParamsInt8(s, z, src, []int{3, 2}, 0, true)
	var ve *quant.ValueError
	if !errors.As(err, &ve) || ve.Kind != quant.NotFinite || ve.Count != 2 || ve.First != 2 {
		t.Fatalf("err = %v, want NotFinite count 2 first 2", err)
	}
	if err := quant.CheckFinite(src[:2]); err != nil {
		t.Fatal(err)
	}
}

func TestInt8Panics(t *testing.T) {
	src := make([]float32, 6)
	for name, fn := range map[string]func(){
		"shape":  func() { quant.QuantizeInt8(make([]int8, 6), src, []int{2, 2}, 0, []float32{1, 1}, []int64{0, 0}, true) },
		"axis":   func() { quant.QuantizeInt8(make([]int8, 6), src, []int{2, 3}, 2, []float32{1}, []int64{0}, true) },
		"scales": func() { _ = quant.ChannelParamsInt8(make([]float32, 3), make([]int64, 2), src, []int{3, 2}, 0, true) },
		"dst": func() {
			quant.QuantizeInt8(make([]int8, 5), src, []int{3, 2}, 0, []float32{1, 1, 1}, []int64{0, 0, 0}, true)
		},
		"dequant dst": func() {
			quant.DequantizeInt8(make([]float32, 5), make([]int8, 6), []int{6}, -1, []float32{1}, []int64{0})
		},
		"negative dim": func() { quant.QuantizeInt8(nil, nil, []int{-1, 0}, 0, nil, nil, true) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if r := recover(); r == nil {
					t.Fatal("no panic")
				} else if _, ok := r.(error); !ok {
					t.Fatalf("panic value %v is not an error", r)
				}
			}()
			fn()
		})
	}
}

// checkRowsInt8: the fused per-row form gives the same bytes as the separate
// calls for channel axis 0 (a per-tensor tensor of one row counts too).
func checkRowsInt8(t *testing.T, src []float32, q []int8, scales []float32, zps []int64, symmetric bool) {
	t.Helper()
	rows := len(scales)
	if len(src) == 0 {
		return
	}
	cols := len(src) / rows
	fq, fs, fz := make([]int8, len(src)), make([]float32, rows), make([]int64, rows)
	if err := quant.QuantizeRowsInt8(fq, fs, fz, src, cols, symmetric); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fq, q) || !slices.Equal(fz, zps) || !slices.EqualFunc(fs, scales, sameFloat32) {
		t.Fatalf("QuantizeRowsInt8 differs from ChannelParamsInt8 + QuantizeInt8")
	}
}

func TestQuantizeRowsInt8Empty(t *testing.T) {
	if err := quant.QuantizeRowsInt8(nil, nil, nil, nil, 8, true); err != nil {
		t.Fatal(err)
	}
}

func TestQuantizeRowsInt8NotFinite(t *testing.T) {
	src := make([]float32, 3*40000)
	src[50000] = float32(math.Inf(1))
	src[90000] = float32(math.NaN())
	for _, sym := range []bool{true, false} {
		err := quant.QuantizeRowsInt8(make([]int8, len(src)), make([]float32, 3), make([]int64, 3), src, 40000, sym)
		var ve *quant.ValueError
		if !errors.As(err, &ve) || ve.Kind != quant.NotFinite || ve.Count != 2 || ve.First != 50000 {
			t.Fatalf("symmetric %v: err = %v, want NotFinite count 2 first 50000", sym, err)
		}
	}
}
