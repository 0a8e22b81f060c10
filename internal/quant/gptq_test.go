package quant

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// gptqData makes a weight [rows, cols] and correlated calibration rows
// [tokens, cols] (x = z·M with a random mixing M and a few loud columns,
// as trained models' inputs are), deterministically from seed.
func gptqData(seed uint64, rows, cols, tokens int) (w, x []float32) {
	rng := rand.New(rand.NewPCG(seed, 1))
	w = make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * 0.05)
	}
	m := make([]float32, cols*cols)
	for i := range m {
		m[i] = float32(rng.NormFloat64() / math.Sqrt(float64(cols)))
	}
	for j := range cols {
		m[j*cols+j] += 1
	}
	x = make([]float32, tokens*cols)
	z := make([]float32, cols)
	for t := range tokens {
		for j := range z {
			z[j] = float32(rng.NormFloat64())
		}
		for j := range cols {
			var s float32
			for k := range cols {
				s += float32(z[k] * m[k*cols+j])
			}
			if j%17 == 3 {
				s *= 8
			}
			x[t*cols+j] = s
		}
	}
	return w, x
}

func gptqFactorOf(t testing.TB, x []float32, cols int) *GPTQFactor {
	h := NewCovariance(cols)
	h.Add(x)
	f, err := NewGPTQFactor(context.Background(), h, DefaultDamp)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// outErr is Σ_t ‖(W−Ŵ)·x_t‖² over the calibration rows.
func outErr(w, got, x []float32, cols int) float64 {
	var s float64
	for r := 0; r < len(w)/cols; r++ {
		for t := 0; t < len(x)/cols; t++ {
			var d float64
			for j := range cols {
				d += float64(float64(w[r*cols+j]-got[r*cols+j]) * float64(x[t*cols+j]))
			}
			s += d * d
		}
	}
	return s
}

// refGPTQ is the paper's sweep, literally, in float64: H⁻¹ by
// Gauss-Jordan, its upper Cholesky factor, and the column loop without
// lazy batches. It returns the int4 codes against fixed scales.
func refGPTQ(w, x []float32, cols int, scales []uint16, block int) []int8 {
	n := cols
	c := NewCovariance(n)
	c.Add(x)
	h := make([]float64, n*n)
	for i := range n {
		for j := range n {
			h[i*n+j] = c.At(i, j)
		}
	}
	var sum float64
	for j := range n {
		sum += h[j*n+j]
	}
	for j := range n {
		h[j*n+j] += DefaultDamp * sum / float64(n)
	}
	// Inverse.
	inv := make([]float64, n*n)
	for i := range n {
		inv[i*n+i] = 1
	}
	for c := range n {
		p := h[c*n+c]
		for k := range n {
			h[c*n+k] /= p
			inv[c*n+k] /= p
		}
		for r := range n {
			if r == c {
				continue
			}
			f := h[r*n+c]
			for k := range n {
				h[r*n+k] -= f * h[c*n+k]
				inv[r*n+k] -= f * inv[c*n+k]
			}
		}
	}
	// Upper Cholesky: inv = Ugᵀ Ug.
	ug := make([]float64, n*n)
	for i := range n {
		for j := i; j < n; j++ {
			s := inv[i*n+j]
			for k := range i {
				s -= ug[k*n+i] * ug[k*n+j]
			}
			if j == i {
				ug[i*n+i] = math.Sqrt(s)
			} else {
				ug[i*n+j] = s / ug[i*n+i]
			}
		}
	}
	rows := len(w) / cols
	codes := make([]int8, len(w))
	for r := range rows {
		wr := make([]float64, n)
		for j := range n {
			wr[j] = float64(w[r*n+j])
		}
		for i := range n {
			s := float64(Float32FromBits16(scales[(r*n+i)/block]))
			q := math.Min(7, math.Max(-8, math.RoundToEven(wr[i]/s)))
			codes[r*n+i] = int8(q)
			e := (wr[i] - q*s) / ug[i*n+i]
			for j := i + 1; j < n; j++ {
				wr[j] -= e * ug[i*n+j]
			}
		}
	}
	return codes
}

// TestGPTQMatchesPaper: the nearest-plane form with lazy batches gives the
// paper's codes (up to the few elements whose target lies within rounding
// noise of a level boundary).
func TestGPTQMatchesPaper(t *testing.T) {
	const rows, cols, block = 24, 256, 32
	w, x := gptqData(3, rows, cols, 512)
	scales := make([]uint16, len(w)/block)
	if _, err := BlockParamsInt4(scales, w, cols, block, true); err != nil {
		t.Fatal(err)
	}
	want := refGPTQ(w, x, cols, scales, block)
	dst := make([]byte, len(w)/2)
	if _, err := GPTQBlocksInt4(dst, scales, w, cols, block, true, gptqFactorOf(t, x, cols), false, nil); err != nil {
		t.Fatal(err)
	}
	got := make([]int8, len(w))
	UnpackInt4(got, dst)
	diff := 0
	for i := range got {
		if got[i] != want[i] {
			diff++
		}
	}
	if diff > len(got)/200 {
		t.Fatalf("%d of %d codes differ from the paper's sweep", diff, len(got))
	}
}

// TestGPTQLowersOutputError: on the calibration rows, every variant's
// E‖ΔW·x‖² is below nearest rounding with the same scales.
func TestGPTQLowersOutputError(t *testing.T) {
	const rows, cols = 32, 256
	w, x := gptqData(5, rows, cols, 384)
	f := gptqFactorOf(t, x, cols)
	for _, block := range []int{32, 64, 128, 256} {
		for _, sweep := range []bool{false, true} {
			scales := make([]uint16, len(w)/block)
			if _, err := SignedParamsInt4(scales, w, cols, block, true); err != nil {
				t.Fatal(err)
			}
			near := make([]byte, len(w)/2)
			QuantizeInt4(near, w, cols, block, scales)
			dst := make([]byte, len(w)/2)
			if _, err := GPTQBlocksInt4(dst, scales, w, cols, block, true, f, sweep, nil); err != nil {
				t.Fatal(err)
			}
			a, b := make([]float32, len(w)), make([]float32, len(w))
			// Nearest rounding against the scales GPTQ stored (sweep: its own).
			QuantizeInt4(near, w, cols, block, scales)
			DequantizeInt4(a, near, cols, block, scales)
			DequantizeInt4(b, dst, cols, block, scales)
			en, eg := outErr(w, a, x, cols), outErr(w, b, x, cols)
			if !(eg < 0.8*en) {
				t.Errorf("block %d sweep %v: output error %g, nearest rounding %g", block, sweep, eg, en)
			}
		}
	}
	// int8 per channel.
	sc, zp := make([]float32, rows), make([]int64, rows)
	for _, sym := range []bool{true, false} {
		near := make([]int8, len(w))
		if err := QuantizeRowsInt8(near, sc, zp, w, cols, sym); err != nil {
			t.Fatal(err)
		}
		got := make([]int8, len(w))
		GPTQRowsInt8(got, sc, zp, w, cols, sym, f, nil)
		a, b := make([]float32, len(w)), make([]float32, len(w))
		DequantizeInt8(a, near, []int{rows, cols}, 0, sc, zp)
		DequantizeInt8(b, got, []int{rows, cols}, 0, sc, zp)
		en, eg := outErr(w, a, x, cols), outErr(w, b, x, cols)
		if !(eg < 0.8*en) {
			t.Errorf("int8 symmetric %v: output error %g, nearest rounding %g", sym, eg, en)
		}
	}
}

// TestGPTQGolden pins the bytes (codes and sweep scales) and checks they
// do not depend on the worker count.
func TestGPTQGolden(t *testing.T) {
	const rows, cols, block = 40, 512, 64
	w, x := gptqData(11, rows, cols, 300)
	run := func(workers int) string {
		defer SetWorkers(SetWorkers(workers))
		f := gptqFactorOf(t, x, cols)
		scales := make([]uint16, len(w)/block)
		dst := make([]byte, len(w)/2)
		if _, err := GPTQBlocksInt4(dst, scales, w, cols, block, true, f, true, nil); err != nil {
			t.Fatal(err)
		}
		sc, zp := make([]float32, rows), make([]int64, rows)
		q8 := make([]int8, len(w))
		if err := QuantizeRowsInt8(q8, sc, zp, w, cols, true); err != nil {
			t.Fatal(err)
		}
		GPTQRowsInt8(q8, sc, zp, w, cols, true, f, nil)
		hs := sha256.New()
		hs.Write(dst)
		hs.Write(Uint16Bytes(scales))
		hs.Write(Int8Bytes(q8))
		for k := range cols * cols { // A as the full matrix, zeros on and below the diagonal
			i, j := k/cols, k%cols
			var a float32
			if j > i {
				a = f.Row(i)[j-i-1]
			}
			var b [4]byte
			u := math.Float32bits(a)
			b[0], b[1], b[2], b[3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
			hs.Write(b[:])
		}
		return hex.EncodeToString(hs.Sum(nil))
	}
	one := run(1)
	for _, n := range []int{2, 3, 7} {
		if got := run(n); got != one {
			t.Fatalf("%d workers: %s, 1 worker: %s", n, got, one)
		}
	}
	const want = "5ad8a0439b5b149fc75b23e1f8237d682f489545992c267d991953889f5bf1ac"
	if one != want {
		t.Errorf("sha256 %s, want %s", one, want)
	}
}

// TestGPTQObjective: the sweep's own measure of what it leaves equals the
// output error measured on the calibration rows (RowObjectives).
func TestGPTQObjective(t *testing.T) {
	const rows, cols = 16, 128
	w, x := gptqData(9, rows, cols, 200)
	f := gptqFactorOf(t, x, cols)
	scales := make([]uint16, len(w)/32)
	dst := make([]byte, len(w)/2)
	free := make([]float64, rows)
	if _, err := GPTQBlocksInt4(dst, scales, w, cols, 32, true, f, true, free); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, len(w))
	DequantizeInt4(got, dst, cols, 32, scales)
	measured := make([]float64, rows)
	f.RowObjectives(measured, w, got, [][]float32{x})
	for r := range rows {
		if math.Abs(free[r]-measured[r]) > 1e-3*measured[r] {
			t.Errorf("row %d: sweep's objective %g, measured %g", r, free[r], measured[r])
		}
	}
}

// TestGPTQNoInput: a covariance without any input is a clear error, and
// dead columns are rounded to nearest.
func TestGPTQNoInput(t *testing.T) {
	const cols = 64
	if _, err := NewGPTQFactor(context.Background(), NewCovariance(cols), DefaultDamp); !errors.Is(err, ErrNoCalibration) {
		t.Fatalf("all-zero covariance: %v, want ErrNoCalibration", err)
	}
	w, x := gptqData(2, 4, cols, 100)
	for tk := 0; tk < len(x)/cols; tk++ {
		x[tk*cols+5], x[tk*cols+40] = 0, 0
	}
	f := gptqFactorOf(t, x, cols)
	if f.Dead != 2 {
		t.Fatalf("%d dead columns, want 2", f.Dead)
	}
	scales := make([]uint16, len(w)/32)
	if _, err := BlockParamsInt4(scales, w, cols, 32, true); err != nil {
		t.Fatal(err)
	}
	near, dst := make([]byte, len(w)/2), make([]byte, len(w)/2)
	QuantizeInt4(near, w, cols, 32, scales)
	if _, err := GPTQBlocksInt4(dst, scales, w, cols, 32, true, f, false, nil); err != nil {
		t.Fatal(err)
	}
	a, b := make([]int8, len(w)), make([]int8, len(w))
	UnpackInt4(a, near)
	UnpackInt4(b, dst)
	for r := range 4 {
		if a[r*cols+5] != b[r*cols+5] {
			t.Errorf("row %d: dead column 5 got %d, nearest %d", r, b[r*cols+5], a[r*cols+5])
		}
	}
	w[3] = float32(math.NaN())
	if _, err := GPTQBlocksInt4(dst, scales, w, cols, 32, true, f, true, nil); err == nil {
		t.Fatal("NaN weight: no error")
	}
}

// BenchmarkGPTQFactor forms and factors covariances of 1024 columns (8 MB
// of float64: in cache) and 4096 (128 MB: the factor streams the triangle
// from memory, as the decoders' 2048–11008-column ones do).
func BenchmarkGPTQFactor(b *testing.B) {
	for _, cols := range []int{1024, 4096} {
		b.Run(fmt.Sprint("cols=", cols), func(b *testing.B) {
			_, x := gptqData(1, 1, cols, 64)
			for b.Loop() {
				h := NewCovariance(cols)
				h.Add(x)
				if _, err := NewGPTQFactor(context.Background(), h, DefaultDamp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGPTQSweep runs the int4 sweep on 1024 columns (the factor in
// cache) and 4096 (32 MiB of factor: the lazy update's rows of it come
// from memory unless it works a slice of columns at a time); Gmadd/s
// counts the sweep's rows·cols²/2 multiply-adds.
func BenchmarkGPTQSweep(b *testing.B) {
	for _, c := range []struct{ rows, cols int }{{256, 1024}, {64, 4096}} {
		b.Run(fmt.Sprint("cols=", c.cols), func(b *testing.B) {
			w, x := gptqData(1, c.rows, c.cols, 64)
			f := gptqFactorOf(b, x, c.cols)
			scales := make([]uint16, len(w)/32)
			SignedParamsInt4(scales, w, c.cols, 32, true)
			dst := make([]byte, len(w)/2)
			for b.Loop() {
				GPTQBlocksInt4(dst, scales, w, c.cols, 32, true, f, false, nil)
			}
			madds := float64(c.rows) * float64(c.cols) * float64(c.cols) / 2
			b.ReportMetric(madds*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gmadd/s")
		})
	}
}

// TestAxpy4Vector: the vector form gives the scalar form's bits.
func TestAxpy4Vector(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, n := range []int{1, 7, 8, 9, 64, 1000} {
		xs := make([][]float32, 4)
		for i := range xs {
			xs[i] = make([]float32, n)
			for k := range xs[i] {
				xs[i][k] = float32(rng.NormFloat64())
			}
		}
		a := []float32{0.3, -1.7, 2.5e-3, 11}
		y1, y2 := make([]float32, n), make([]float32, n)
		for k := range y1 {
			y1[k] = float32(rng.NormFloat64())
			y2[k] = y1[k]
		}
		axpy4(y1, a, xs[0], xs[1], xs[2], xs[3])
		axpy4Go(y2, a, xs[0], xs[1], xs[2], xs[3])
		for k := range y1 {
			if math.Float32bits(y1[k]) != math.Float32bits(y2[k]) {
				t.Fatalf("n %d element %d: %g, scalar %g", n, k, y1[k], y2[k])
			}
		}
	}
}

// TestDot64Vector: dot64 and dot32 give the same bits with the AVX2 partial
// sums as with the scalar ones, and their values are the inner product (to
// rounding), for lengths around the vector steps; axpy, hessRow and
// hessRow4 give their scalar forms' bits.
func TestDot64Vector(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 33, 100, 1000, 4099} {
		a, b := make([]float64, n), make([]float64, n)
		var exact float64
		for k := range a {
			a[k], b[k] = rng.NormFloat64(), rng.NormFloat64()
			exact += a[k] * b[k]
		}
		was := SetAVX2(true)
		vec := dot64(a, b)
		SetAVX2(false)
		scalar := dot64(a, b)
		SetAVX2(was)
		if math.Float64bits(vec) != math.Float64bits(scalar) {
			t.Errorf("n %d: AVX2 %v, scalar %v", n, vec, scalar)
		}
		if d := math.Abs(scalar - exact); d > 1e-12*float64(n+1) {
			t.Errorf("n %d: %v, sequential sum %v", n, scalar, exact)
		}
		// dot32, axpy and hessRow on the same lengths.
		a32, b32 := make([]float32, n), make([]float32, n)
		for k := range a32 {
			a32[k], b32[k] = float32(a[k]), float32(b[k])
		}
		SetAVX2(true)
		v32 := dot32(a32, b32)
		y1 := append([]float32(nil), b32...)
		axpy(y1, 0.37, a32)
		h1 := append([]float64(nil), b...)
		hessRow(h1, a32, -1.3)
		SetAVX2(false)
		s32 := dot32(a32, b32)
		y2 := append([]float32(nil), b32...)
		axpy(y2, 0.37, a32)
		h2 := append([]float64(nil), b...)
		hessRow(h2, a32, -1.3)
		SetAVX2(was)
		if math.Float32bits(v32) != math.Float32bits(s32) {
			t.Errorf("n %d: dot32 AVX2 %v, scalar %v", n, v32, s32)
		}
		if d := math.Abs(float64(s32) - exact); d > 1e-4*float64(n+1) {
			t.Errorf("n %d: dot32 %v, sum %v", n, s32, exact)
		}
		for k := range y1 {
			if math.Float32bits(y1[k]) != math.Float32bits(y2[k]) || math.Float64bits(h1[k]) != math.Float64bits(h2[k]) {
				t.Fatalf("n %d element %d: axpy %v / %v, hessRow %v / %v (AVX2 / scalar)", n, k, y1[k], y2[k], h1[k], h2[k])
			}
			if want := b[k] + -1.3*float64(a32[k]); h2[k] != want {
				t.Fatalf("n %d element %d: hessRow %v, want %v", n, k, h2[k], want)
			}
		}
		// hessRow4 gives four hessRow calls' bits, AVX2 or scalar.
		xs := [4][]float32{a32, b32, y1, y2}
		as := [4]float64{-1.3, 0.5, 0.25, 7}
		if n > 0 {
			as[1] = float64(b32[0]) // a float32's value: exact products
		}
		want := append([]float64(nil), b...)
		for k := range xs {
			hessRowGo(want, xs[k], as[k])
		}
		for _, avx := range []bool{true, false} {
			SetAVX2(avx)
			got := append([]float64(nil), b...)
			hessRow4(got, &as, xs[0], xs[1], xs[2], xs[3])
			SetAVX2(was)
			for k := range got {
				if math.Float64bits(got[k]) != math.Float64bits(want[k]) {
					t.Fatalf("n %d element %d, AVX2 %v: hessRow4 %v, four hessRow %v", n, k, avx, got[k], want[k])
				}
			}
		}
	}
}

// TestShrinkageDamp: the Ledoit–Wolf damping is large where the sample
// covariance holds nothing but noise beyond a multiple of the identity
// (isotropic inputs, with few tokens or many), small where it has structure
// the tokens pin down (a few strong directions), and the maximum where
// nothing can be estimated.
func TestShrinkageDamp(t *testing.T) {
	const n = 64
	rng := rand.New(rand.NewPCG(7, 8))
	gauss := func(tokens int, dirs [][]float32, noise float32) []float32 {
		x := make([]float32, tokens*n)
		for tk := range tokens {
			row := x[tk*n : (tk+1)*n]
			for j := range row {
				row[j] = noise * float32(rng.NormFloat64())
			}
			for _, d := range dirs {
				a := float32(rng.NormFloat64())
				for j := range row {
					row[j] += a * d[j]
				}
			}
		}
		return x
	}
	dir := func(scale float32) []float32 {
		d := make([]float32, n)
		for j := range d {
			d[j] = scale * float32(rng.NormFloat64())
		}
		return d
	}
	damp := func(x []float32) float64 {
		h := NewCovariance(n)
		h.Add(x)
		return ShrinkageDamp(h, [][]float32{x})
	}
	iso := damp(gauss(16, nil, 1))
	isoMany := damp(gauss(4096, nil, 1))
	structured := damp(gauss(4096, [][]float32{dir(3), dir(2)}, 0.1))
	t.Logf("isotropic, 16 tokens: %.3g; isotropic, 4096 tokens: %.3g; two strong directions, 4096 tokens: %.3g", iso, isoMany, structured)
	if iso < 1 {
		t.Errorf("isotropic inputs, 16 tokens for %d columns: damping %.3g, want ≥ 1 (mostly noise)", n, iso)
	}
	if structured > DefaultDamp {
		t.Errorf("two strong directions, 4096 tokens: damping %.3g, want ≤ %g", structured, DefaultDamp)
	}
	// Isotropic inputs are the shrinkage target itself: however many
	// tokens, whatever the sample covariance holds beyond μI is noise.
	if isoMany < 1 {
		t.Errorf("isotropic inputs, 4096 tokens: damping %.3g, want ≥ 1", isoMany)
	}
	zero := NewCovariance(n)
	for _, tc := range []struct {
		name string
		h    *Covariance
		xs   [][]float32
	}{
		{"no rows", zero, nil},
		{"one token", zero, [][]float32{make([]float32, n)}},
		{"all zero", zero, [][]float32{make([]float32, 4*n)}},
	} {
		if got := ShrinkageDamp(tc.h, tc.xs); got != 1e6 {
			t.Errorf("%s: %g, want the maximum 1e6", tc.name, got)
		}
	}
}

// TestShrinkageOffDiagonal: the shrinkage of the correlations towards the
// diagonal is large for independent columns, even of very unequal
// variances (a diagonal structure ShrinkageDamp counts as signal, and
// compensation cannot use), small for strongly correlated columns the
// tokens pin down, and the maximum where nothing can be estimated.
func TestShrinkageOffDiagonal(t *testing.T) {
	const n = 64
	rng := rand.New(rand.NewPCG(9, 10))
	scales := make([]float32, n)
	for j := range scales {
		scales[j] = float32(math.Exp(2 * rng.NormFloat64())) // a spread of variances
	}
	sample := func(tokens int, corr bool) []float32 {
		x := make([]float32, tokens*n)
		d := make([]float32, n)
		for j := range d {
			d[j] = 3 * float32(rng.NormFloat64())
		}
		for tk := range tokens {
			a := float32(rng.NormFloat64())
			for j := range n {
				v := float32(rng.NormFloat64())
				if corr {
					v = 0.1*v + a*d[j]
				}
				x[tk*n+j] = scales[j] * v
			}
		}
		return x
	}
	shrink := func(x []float32) (off, iso float64) {
		h := NewCovariance(n)
		h.Add(x)
		return ShrinkageOffDiagonal(h, [][]float32{x}), ShrinkageDamp(h, [][]float32{x})
	}
	indep, indepIso := shrink(sample(4096, false))
	corr, _ := shrink(sample(4096, true))
	t.Logf("independent columns of unequal variance: %.3g (towards μI: %.3g); one strong direction: %.3g", indep, indepIso, corr)
	if indep < 1 {
		t.Errorf("independent columns, 4096 tokens: %.3g, want ≥ 1 (their correlations are noise)", indep)
	}
	if indepIso > DefaultDamp {
		t.Errorf("independent columns of unequal variance: ShrinkageDamp %.3g, expected ≤ %g (the case this shrinkage is for)", indepIso, DefaultDamp)
	}
	if corr > DefaultDamp {
		t.Errorf("one strong direction, 4096 tokens: %.3g, want ≤ %g", corr, DefaultDamp)
	}
	zero := NewCovariance(n)
	for _, xs := range [][][]float32{nil, {make([]float32, n)}, {make([]float32, 4*n)}} {
		if got := ShrinkageOffDiagonal(zero, xs); got != 1e6 {
			t.Errorf("%d rows of zeros: %g, want the maximum 1e6", len(xs), got)
		}
	}
}

// TestCovariance: the stored triangle holds every entry of Σ x xᵀ summed
// in token order (bit for bit the full matrix's sums), symmetric, with its
// trace and diagonal updates, for any worker count.
func TestCovariance(t *testing.T) {
	for _, n := range []int{1, 5, 64, 300} {
		_, x := gptqData(uint64(n), 1, n, 70)
		for k := 0; k < len(x); k += 7 {
			x[k] = 0 // zeros are skipped, which must not change a sum
		}
		full := make([]float64, n*n)
		for tk := 0; tk < len(x)/n; tk++ {
			for i := range n {
				for j := range n {
					full[i*n+j] += float64(x[tk*n+i]) * float64(x[tk*n+j])
				}
			}
		}
		for _, workers := range []int{1, 3} {
			prev := SetWorkers(workers)
			c := NewCovariance(n)
			half := len(x) / n / 2 * n
			c.Add(x[:half]) // in two calls, as the rows of two samples
			c.Add(x[half:half])
			c.Add(x[half:])
			SetWorkers(prev)
			var tr float64
			for i := range n {
				tr += full[i*n+i]
				for j := range n {
					if got := c.At(i, j); got != full[i*n+j] {
						t.Fatalf("n=%d, %d workers: H[%d][%d] = %v, want %v", n, workers, i, j, got, full[i*n+j])
					}
				}
			}
			if c.Trace() != tr {
				t.Errorf("n=%d: trace %v, want %v", n, c.Trace(), tr)
			}
			c.AddDiagonal(2)
			if got, want := c.At(n-1, n-1), full[n*n-1]+2; got != want {
				t.Errorf("n=%d: diagonal after AddDiagonal(2): %v, want %v", n, got, want)
			}
			if got := int64(len(c.g)) * 8; got != CovarianceBytes(n) {
				t.Errorf("n=%d: %d bytes, CovarianceBytes %d", n, got, CovarianceBytes(n))
			}
		}
	}
}

// TestGPTQFactorFailures: a covariance that does not factor is
// ErrNotPositiveDefinite (the caller forms it again with more damping), and
// a cancelled context stops the factor.
func TestGPTQFactorFailures(t *testing.T) {
	c := NewCovariance(2)
	c.g[0], c.g[1], c.g[2] = 1, 3, 1 // [[1 3] [3 1]]: eigenvalues 4 and −2
	if _, err := NewGPTQFactor(context.Background(), c, DefaultDamp); !errors.Is(err, ErrNotPositiveDefinite) {
		t.Fatalf("indefinite covariance: %v, want ErrNotPositiveDefinite", err)
	}
	c.g[0], c.g[1], c.g[2] = 1, 3, 1
	if _, err := NewGPTQFactor(context.Background(), c, 10); err != nil {
		t.Fatalf("the same with damping 10 (diagonal 11): %v", err)
	}
	_, x := gptqData(3, 1, 64, 100)
	h := NewCovariance(64)
	h.Add(x)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewGPTQFactor(ctx, h, DefaultDamp); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v, want context.Canceled", err)
	}
}

// BenchmarkCovarianceAdd forms the covariance of 512 tokens at 2,048 and
// 5,632 columns (the 1 GB decoder's); Gmadd/s counts tokens·cols²/2.
func BenchmarkCovarianceAdd(b *testing.B) {
	for _, cols := range []int{2048, 5632} {
		b.Run(fmt.Sprint("cols=", cols), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(2, 2))
			x := make([]float32, 512*cols)
			for k := range x {
				x[k] = float32(rng.NormFloat64())
			}
			for b.Loop() {
				CovarianceOf(cols, [][]float32{x})
			}
			madds := 512 * float64(cols) * float64(cols) / 2
			b.ReportMetric(madds*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gmadd/s")
		})
	}
}

// TestLazyUpdateVector: the packed AVX2 lazy update (four rows by sixteen
// columns in registers, scalar tails of rows and columns) gives the bits
// of the scalar form (axpy4s in order), for row counts around four and
// later-column counts around the sixteen-column panels and lazyWidth.
func TestLazyUpdateVector(t *testing.T) {
	if !HasAVX2 {
		t.Skip("no AVX2 here: lazyUpdate runs its scalar form only")
	}
	const batch = 128
	for _, c := range []struct{ rows, cols int }{{1, 144}, {3, 160}, {4, 300}, {7, 128 + 256 + 16}, {9, 128 + 256 + 257}, {16, 512}} {
		_, x := gptqData(uint64(c.cols), 1, c.cols, c.cols+16)
		f := gptqFactorOf(t, x, c.cols)
		rng := rand.New(rand.NewPCG(uint64(c.rows), 9))
		t0 := make([]float32, c.rows*c.cols)
		e := make([]float32, c.rows*batch)
		for i := range t0 {
			t0[i] = float32(rng.NormFloat64())
		}
		for i := range e {
			e[i] = float32(rng.NormFloat64() * 0.1)
		}
		for b0 := 0; b0+batch < c.cols; b0 += batch {
			b1 := b0 + batch
			vec, scalar := slices.Clone(t0), slices.Clone(t0)
			was := SetAVX2(true)
			lazyUpdate(vec, c.rows, c.cols, e, batch, f, b0, b1, make([]float32, batch*lazyWidth))
			SetAVX2(false)
			lazyUpdate(scalar, c.rows, c.cols, e, batch, f, b0, b1, nil)
			SetAVX2(was)
			changed := 0
			for i := range vec {
				if math.Float32bits(vec[i]) != math.Float32bits(scalar[i]) {
					t.Fatalf("rows %d cols %d batch at %d: element %d (row %d, column %d) %g, scalar %g", c.rows, c.cols, b0, i, i/c.cols, i%c.cols, vec[i], scalar[i])
				}
				if vec[i] != t0[i] {
					changed++
				}
			}
			if want := c.rows * (c.cols - b1); changed < want*9/10 {
				t.Errorf("rows %d cols %d batch at %d: %d of the %d later elements changed", c.rows, c.cols, b0, changed, want)
			}
		}
	}
}
