package quant_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qpipe/qpipe/internal/quant"
)

// testStats are activation statistics with a large positive mean on half
// the columns (as after a ReLU) and varied spreads.
func testStats(cols int) *quant.ChannelStats {
	r := rand.New(rand.NewPCG(3, 4))
	st := &quant.ChannelStats{Mean: make([]float32, cols), Var: make([]float32, cols)}
	for j := range cols {
		if j%2 == 0 {
			st.Mean[j] = float32(1 + r.Float64())
		}
		st.Var[j] = float32(0.1 + r.Float64()*r.Float64()*4)
	}
	return st
}

// heavyTailed returns n weights: gaussian with a few larger outliers, as
// trained layers have.
func heavyTailed(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * 0.02)
		if r.IntN(50) == 0 {
			x[i] *= 3
		}
	}
	return x
}

func sse(a, b []float32) float64 {
	var e float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		e += d * d
	}
	return e
}

// TestSearchInt4 checks the stored bytes are exactly the quantization of
// the weights by the stored scales, that every scale is a positive normal
// float16, that no row has more squared error than min-max and that the
// search gains what it should on heavy-tailed weights.
func TestSearchInt4(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const rows, cols = 64, 1024
	src := heavyTailed(r, rows*cols)
	for _, bs := range []int{32, 128, 256} {
		mmScales, mm := make([]uint16, len(src)/bs), make([]byte, len(src)/2)
		if _, err := quant.QuantizeBlocksInt4(mm, mmScales, src, cols, bs, true); err != nil {
			t.Fatal(err)
		}
		scales, packed := make([]uint16, len(src)/bs), make([]byte, len(src)/2)
		errs := make([]quant.RowErrors, rows)
		if _, err := quant.SearchBlocksInt4(packed, scales, src, cols, bs, true, nil, errs); err != nil {
			t.Fatal(err)
		}
		quiet, quietScales := make([]byte, len(src)/2), make([]uint16, len(src)/bs)
		if _, err := quant.SearchBlocksInt4(quiet, quietScales, src, cols, bs, true, nil, nil); err != nil {
			t.Fatal(err)
		}
		if string(quiet) != string(packed) || string(quant.Uint16Bytes(quietScales)) != string(quant.Uint16Bytes(scales)) {
			t.Fatalf("block %d: measuring the row errors changed the output", bs)
		}
		want := make([]byte, len(src)/2)
		quant.QuantizeInt4(want, src, cols, bs, scales)
		if string(want) != string(packed) {
			t.Fatalf("block %d: packed values are not QuantizeInt4 of the stored scales", bs)
		}
		for k, h := range scales {
			if h < 0x400 || h >= 0x7c00 {
				t.Fatalf("block %d: scale %d = %#04x (min-max %#04x)", bs, k, h, mmScales[k])
			}
		}
		got, base := make([]float32, len(src)), make([]float32, len(src))
		quant.DequantizeInt4(got, packed, cols, bs, scales)
		quant.DequantizeInt4(base, mm, cols, bs, mmScales)
		var eS, eM float64
		for row := range rows {
			a, b := row*cols, (row+1)*cols
			rs, rm := sse(src[a:b], got[a:b]), sse(src[a:b], base[a:b])
			if rs > rm*(1+1e-5) {
				t.Errorf("block %d row %d: search error %g > min-max %g", bs, row, rs, rm)
			}
			if d := math.Abs(errs[row].Chosen-rs) / rm; d > 1e-3 {
				t.Errorf("block %d row %d: reported error %g, measured %g", bs, row, errs[row].Chosen, rs)
			}
			if d := math.Abs(errs[row].MinMax-rm) / rm; d > 1e-3 {
				t.Errorf("block %d row %d: reported min-max error %g, measured %g", bs, row, errs[row].MinMax, rm)
			}
			eS += rs
			eM += rm
		}
		gain := 10 * math.Log10(eM/eS)
		t.Logf("block %d: search gains %.2f dB over min-max", bs, gain)
		if gain < 0.5 {
			t.Errorf("block %d: search gains only %.2f dB", bs, gain)
		}
	}
}

// TestSearchInt4Calibrated checks that the calibrated search never has a
// higher expected output error than min-max, and that on inputs with a
// large mean its actual output error, over samples drawn from those
// statistics, is below both min-max's and the data-free search's.
func TestSearchInt4Calibrated(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const rows, cols, bs = 32, 512, 128
	src := heavyTailed(r, rows*cols)
	st := testStats(cols)
	quantize := func(stats *quant.ChannelStats, search bool) ([]float32, []quant.RowErrors) {
		scales, packed := make([]uint16, len(src)/bs), make([]byte, len(src)/2)
		errs := make([]quant.RowErrors, rows)
		var err error
		if search {
			_, err = quant.SearchBlocksInt4(packed, scales, src, cols, bs, true, stats, errs)
		} else {
			_, err = quant.QuantizeBlocksInt4(packed, scales, src, cols, bs, true)
		}
		if err != nil {
			t.Fatal(err)
		}
		back := make([]float32, len(src))
		quant.DequantizeInt4(back, packed, cols, bs, scales)
		return back, errs
	}
	mm, _ := quantize(nil, false)
	free, _ := quantize(nil, true)
	cal, errs := quantize(st, true)
	for row, e := range errs {
		if e.OutChosen > e.OutMinMax {
			t.Errorf("row %d: expected output error %g > min-max's %g", row, e.OutChosen, e.OutMinMax)
		}
	}
	// Output error over samples x_j = μ_j + √v_j·z.
	outErr := func(w []float32) float64 {
		rs := rand.New(rand.NewPCG(7, 8))
		var e float64
		x := make([]float64, cols)
		for range 200 {
			for j := range x {
				x[j] = float64(st.Mean[j]) + math.Sqrt(float64(st.Var[j]))*rs.NormFloat64()
			}
			for row := range rows {
				var d float64
				for j := range cols {
					d += (float64(w[row*cols+j]) - float64(src[row*cols+j])) * x[j]
				}
				e += d * d
			}
		}
		return e
	}
	eM, eF, eC := outErr(mm), outErr(free), outErr(cal)
	t.Logf("output error: min-max %.4g, data-free search %.4g, calibrated %.4g", eM, eF, eC)
	if eC >= eM || eC >= eF {
		t.Errorf("calibrated output error %g not below min-max %g and data-free %g", eC, eM, eF)
	}
}

// TestSearchInt4Errors: non-finite weights and overflowing scales are
// reported as by QuantizeBlocksInt4; tiny blocks keep the clamped scale.
func TestSearchInt4Errors(t *testing.T) {
	src := make([]float32, 64)
	src[40] = float32(math.NaN())
	_, err := quant.SearchBlocksInt4(make([]byte, 32), make([]uint16, 2), src, 64, 32, true, nil, nil)
	var ve *quant.ValueError
	if !errors.As(err, &ve) || ve.Kind != quant.NotFinite || ve.First != 40 {
		t.Fatalf("NaN: got %v", err)
	}
	src[40] = 1e6
	if _, err := quant.SearchBlocksInt4(make([]byte, 32), make([]uint16, 2), src, 64, 32, true, testStats(64), nil); !errors.As(err, &ve) || ve.Kind != quant.ScaleOverflow {
		t.Fatalf("overflow: got %v", err)
	}
	src[40] = 1e-5 // block 1 tiny, block 0 all zero: both clamped
	scales := make([]uint16, 2)
	n, err := quant.SearchBlocksInt4(make([]byte, 32), scales, src, 64, 32, true, nil, nil)
	if err != nil || n != 2 || scales[0] != 0x400 || scales[1] != 0x400 {
		t.Fatalf("tiny blocks: clamped %d, scales %#04x, err %v", n, scales, err)
	}
}
