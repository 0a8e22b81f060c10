package gen

import (
	"io"
	"math"
	"sort"
	"testing"
)

// moments returns the standard deviation and excess kurtosis of v.
func moments(v []float64) (std, kurt float64) {
	var m float64
	for _, x := range v {
		m += x
	}
	m /= float64(len(v))
	var m2, m4 float64
	for _, x := range v {
		d := (x - m) * (x - m)
		m2 += d
		m4 += d * d
	}
	m2 /= float64(len(v))
	m4 /= float64(len(v))
	return math.Sqrt(m2), m4/(m2*m2) - 3
}

func TestMatrixDistribution(t *testing.T) {
	const rows, cols = 512, 2048
	w := weight{key: "transformer_blocks[3].ff.w1.weight", kind: kindMatrix, rows: rows, cols: cols}
	v := w.values(11)
	mul := w.outlierChannels(11)
	var outliers []int
	for c, m := range mul {
		if m != 1 {
			outliers = append(outliers, c)
			if m < 10 || m >= 50 {
				t.Errorf("column %d multiplier %v outside [10, 50)", c, m)
			}
		}
	}
	if len(outliers) != 2+cols/1024 {
		t.Errorf("%d outlier columns, want %d", len(outliers), 2+cols/1024)
	}
	var core []float64
	colSq := make([]float64, cols)
	maxAbs := 0.0
	for i, x := range v {
		c := i % cols
		colSq[c] += float64(x) * float64(x)
		if mul[c] == 1 {
			core = append(core, float64(x))
			maxAbs = math.Max(maxAbs, math.Abs(float64(x)))
		}
	}
	sigma := 1 / math.Sqrt(cols)
	std, kurt := moments(core)
	t.Logf("std %.5f (σ %.5f), excess kurtosis %.1f, max |w| %.1fσ", std, sigma, kurt, maxAbs/sigma)
	if math.Abs(std/sigma-1) > 0.03 {
		t.Errorf("std %v, want 1/sqrt(fan-in) = %v", std, sigma)
	}
	if kurt < 2.5 || kurt > 5 {
		t.Errorf("excess kurtosis %.2f: weights should be heavy-tailed", kurt)
	}
	if maxAbs < 12*sigma {
		t.Errorf("largest non-outlier weight %.1fσ: tails too light", maxAbs/sigma)
	}
	// Outlier columns stand out of the column norms, and their largest
	// elements reach the multiplier's magnitude.
	sorted := append([]float64(nil), colSq...)
	sort.Float64s(sorted)
	median := sorted[cols/2]
	for _, c := range outliers {
		ratio := math.Sqrt(colSq[c] / median)
		colMax := 0.0
		for r := 0; r < rows; r++ {
			colMax = math.Max(colMax, math.Abs(float64(v[r*cols+c])))
		}
		t.Logf("outlier column %d: ×%.1f, RMS %.1f× the median column, max |w| %.1fσ", c, mul[c], ratio, colMax/sigma)
		if ratio < 2 || colMax < 10*sigma {
			t.Errorf("column %d (×%.1f): RMS %.1f× the median column, max %.1fσ", c, mul[c], ratio, colMax/sigma)
		}
	}
}

func TestNormDistribution(t *testing.T) {
	v := weight{key: "final_norm.weight", kind: kindNorm, cols: 4096}.values(3)
	var sum float64
	for _, x := range v {
		if x < 0.75 || x > 1.25 {
			t.Fatalf("norm weight %v far from 1", x)
		}
		sum += float64(x)
	}
	if mean := sum / float64(len(v)); math.Abs(mean-1) > 0.01 {
		t.Errorf("norm weights mean %v", mean)
	}
}

// quantError is the relative L2 error of symmetric quantization of a
// [rows, cols] matrix to levels qmax with one scale per group of g
// consecutive elements of a row (g = cols: per channel).
func quantError(v []float32, cols, g int, qmax float64) float64 {
	var num, den float64
	for start := 0; start < len(v); start += g {
		grp := v[start : start+g]
		bound := 0.0
		for _, x := range grp {
			bound = math.Max(bound, math.Abs(float64(x)))
		}
		s := bound / qmax
		for _, x := range grp {
			q := math.Max(-qmax-1, math.Min(qmax, math.RoundToEven(float64(x)/s)))
			d := q*s - float64(x)
			num += d * d
			den += float64(x) * float64(x)
		}
	}
	return math.Sqrt(num / den)
}

// The weights are meant to make the schemes differ: int4 blockwise loses
// far more than int8 per channel, and larger blocks lose more.
func TestQuantizationSchemesDiffer(t *testing.T) {
	const rows, cols = 256, 1024
	v := weight{key: "transformer_blocks[0].atten_func.q_projection.weight", kind: kindMatrix, rows: rows, cols: cols}.values(1)
	int8 := quantError(v, cols, cols, 127)
	b32 := quantError(v, cols, 32, 7)
	b256 := quantError(v, cols, 256, 7)
	t.Logf("relative L2 error: int8 per channel %.4f, int4 block32 %.4f, block256 %.4f", int8, b32, b256)
	if !(int8 > 0.005 && b32 > 2.5*int8 && b256 > 1.5*b32) {
		t.Errorf("errors int8 %.4f, int4/32 %.4f, int4/256 %.4f: want int8 < int4/32 < int4/256 by clear margins", int8, b32, b256)
	}
}

func TestStreamsDiffer(t *testing.T) {
	seen := map[uint64]string{}
	for _, key := range []string{"a", "b", "tok_embedding.weight", "final_norm.weight"} {
		for seed := uint64(0); seed < 4; seed++ {
			x := newStream(seed, key).next()
			if prev, ok := seen[x]; ok {
				t.Errorf("key %q seed %d starts like %s", key, seed, prev)
			}
			seen[x] = key
		}
	}
	r := newStream(1, "x")
	for i := 0; i < 1000; i++ {
		if n := r.intn(7); n < 0 || n >= 7 {
			t.Fatalf("intn(7) = %d", n)
		}
		if u := r.uniform(); u < 0 || u >= 1 {
			t.Fatalf("uniform() = %v", u)
		}
	}
}

func BenchmarkWeightContent(b *testing.B) {
	w := weight{key: "bench", kind: kindMatrix, rows: 1024, cols: 4096}
	c := w.content(1)
	b.SetBytes(c.Len())
	for b.Loop() {
		if _, err := c.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
