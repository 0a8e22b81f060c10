package interp

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qpipe/qpipe/internal/quant"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// The vector GEMMs (gemm_vec.go, gemm_amd64.s) against the scalar Go
// kernels, bit for bit, over shapes that exercise every tail (rows past a
// multiple of 6, columns past a multiple of 16, odd K, blocks) and every
// value class the float path treats specially.

// withSIMD runs f with the vector tiles on or off.
func withSIMD(t *testing.T, on bool, f func()) {
	t.Helper()
	was := useSIMD
	useSIMD = on
	defer func() { useSIMD = was }()
	f()
}

// valueClasses fill a float input: each returns the i-th value.
var valueClasses = map[string]func(r *rand.Rand) float32{
	"uniform": func(r *rand.Rand) float32 { return r.Float32()*2 - 1 },
	"zeros": func(r *rand.Rand) float32 {
		return [...]float32{0, float32(math.Copysign(0, -1)), 1}[r.IntN(3)]
	},
	"large": func(r *rand.Rand) float32 { return float32(r.NormFloat64() * 3e37) },
	"small": func(r *rand.Rand) float32 { return float32(r.NormFloat64() * 1e-38) },
	"mixed": func(r *rand.Rand) float32 {
		return float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(60)-30)))
	},
	"special": func(r *rand.Rand) float32 {
		switch r.IntN(40) {
		case 0:
			return float32(math.Inf(1))
		case 1:
			return float32(math.Inf(-1))
		case 2:
			return float32(math.NaN())
		case 3:
			return float32(math.Copysign(0, -1))
		}
		return r.Float32()*2 - 1
	},
}

func fill(r *rand.Rand, n int, class string) []float32 {
	v := make([]float32, n)
	f := valueClasses[class]
	for i := range v {
		v[i] = f(r)
	}
	return v
}

// sameBits requires the same bits, except that any NaN matches any NaN:
// when two different NaNs meet in an add or multiply, x86 returns the
// first operand's, and which operand the Go compiler puts first is its
// choice (the scalar code itself gives 0x7fc00000 or 0xffc00000 for the
// same sum under -race); Go does not define NaN payloads.
func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		g, w := got[i], want[i]
		if g != g && w != w {
			continue
		}
		if math.Float32bits(g) != math.Float32bits(w) {
			t.Fatalf("%s: element %d = %v (%#08x), scalar %v (%#08x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

var gemmShapes = [][3]int{ // M, K, N
	{1, 1, 1}, {1, 7, 5}, {2, 3, 17}, {5, 16, 16}, {6, 33, 15}, {7, 64, 31},
	{11, 5, 40}, {12, 100, 16}, {13, 257, 33}, {64, 128, 48}, {70, 96, 70},
	{3, 2, 1}, {1, 2048, 20}, {65, 31, 9},
}

func TestMatmulF32VectorExact(t *testing.T) {
	if !hasSIMD {
		t.Skip("no vector tiles on this CPU")
	}
	r := rand.New(rand.NewPCG(7, 8))
	for _, sh := range gemmShapes {
		M, K, N := sh[0], sh[1], sh[2]
		for class := range valueClasses {
			a := fill(r, M*K, class)
			w := &weight{shape: []int{N, K}, kind: wFloat32, f32: fill(r, N*K+3, class)}
			for _, th := range []int{1, 2, 3} {
				name := fmt.Sprintf("M=%d K=%d N=%d %s threads=%d", M, K, N, class, th)
				want := make([]float32, M*N)
				got := make([]float32, M*N)
				for i := range got {
					got[i] = 42 // overwritten
				}
				withSIMD(t, false, func() { matmulF32(th, want, a, M, K, N, w, 3) })
				withSIMD(t, true, func() { matmulF32(th, got, a, M, K, N, w, 3) })
				sameBits(t, name, got, want)
			}
		}
	}
}

// TestBatchMatMulKNVectorExact: a BATCH_MATMUL's constant right operand
// without adj_y ([K, N]) goes to the vector GEMM packed in place
// (packF32KN); its outputs have the scalar path's bits (which transposes
// it), for every value class, float32 and float16 weights, and a batch
// offset.
func TestBatchMatMulKNVectorExact(t *testing.T) {
	if !hasSIMD {
		t.Skip("no vector tiles on this CPU")
	}
	r := rand.New(rand.NewPCG(11, 12))
	for _, sh := range gemmShapes {
		M, K, N := sh[0], sh[1], sh[2]
		for class := range valueClasses {
			a := &Tensor{Type: fb.TensorTypeFLOAT32, Shape: []int{2, M, K}, F32: fill(r, 2*M*K, class)}
			weights := []*weight{{shape: []int{2, K, N}, kind: wFloat32, f32: fill(r, 2*K*N, class)}}
			if class == "uniform" {
				h := randomFloat16Weight(r, 2*K, N)
				h.shape, h.quantized = []int{2, K, N}, false
				weights = append(weights, h)
			}
			for _, w := range weights {
				for _, th := range []int{1, 3} {
					var want, got *Tensor
					var err error
					withSIMD(t, false, func() { want, err = batchMatMul(th, a, w, false, false) })
					if err != nil {
						t.Fatal(err)
					}
					withSIMD(t, true, func() { got, err = batchMatMul(th, a, w, false, false) })
					if err != nil {
						t.Fatal(err)
					}
					sameBits(t, fmt.Sprintf("M=%d K=%d N=%d %s kind %d threads=%d", M, K, N, class, w.kind, th), got.F32, want.F32)
				}
			}
		}
	}
}

// TestMatmulF32VectorDecoded runs the f32 tile on decoded weights (float16,
// int8 per channel, int4 blockwise) read through the weight view.
func TestMatmulF32VectorDecoded(t *testing.T) {
	if !hasSIMD {
		t.Skip("no vector tiles on this CPU")
	}
	r := rand.New(rand.NewPCG(9, 10))
	for _, M := range []int{1, 7, 64} {
		K, N := 64, 37
		a := fill(r, M*K, "uniform")
		for _, w := range []*weight{randomInt8Weight(r, N, K), randomInt4Weight(r, N, K, 32), randomFloat16Weight(r, N, K)} {
			w.quantized = false
			want := make([]float32, M*N)
			got := make([]float32, M*N)
			withSIMD(t, false, func() { matmulF32(2, want, a, M, K, N, w, 0) })
			withSIMD(t, true, func() { matmulF32(2, got, a, M, K, N, w, 0) })
			sameBits(t, fmt.Sprintf("M=%d kind %d", M, w.kind), got, want)
		}
	}
}

func randomInt8Weight(r *rand.Rand, N, K int) *weight {
	w := &weight{shape: []int{N, K}, kind: wInt8, raw: make([]byte, N*K), quantized: true}
	for i := range w.raw {
		w.raw[i] = byte(r.IntN(256))
	}
	if N%5 == 0 { // extremes
		for i := range w.raw[:K] {
			w.raw[i] = 0x80
		}
	}
	channelScales(r, w, N, K)
	return w
}

// channelScales gives w one random scale per row (zero points 0).
func channelScales(r *rand.Rand, w *weight, N, K int) {
	w.scale, w.zp, w.axisStride, w.axisDim = make([]float32, N), make([]int32, N), K, N
	for i := range w.scale {
		w.scale[i] = float32(math.Ldexp(r.Float64()+0.5, -r.IntN(12)))
	}
}

func randomInt4Weight(r *rand.Rand, N, K, B int) *weight {
	n := N * K
	w := &weight{shape: []int{N, K}, kind: wInt4, raw: make([]byte, (n+1)/2), quantized: true}
	for i := range w.raw {
		w.raw[i] = byte(r.Uint32())
	}
	if B == 0 {
		channelScales(r, w, N, K)
		return w
	}
	w.block = B
	w.bscaleRaw = make([]byte, 2*n/B)
	for i := 0; i < n/B; i++ {
		s := float32(math.Ldexp(r.Float64()+0.5, -r.IntN(12)))
		if i%7 == 3 {
			s = -s
		}
		binary.LittleEndian.PutUint16(w.bscaleRaw[2*i:], quant.Float16Bits(s))
	}
	return w
}

func randomFloat16Weight(r *rand.Rand, N, K int) *weight {
	w := &weight{shape: []int{N, K}, kind: wFloat16, raw: make([]byte, 2*N*K)}
	for i := 0; i < N*K; i++ {
		binary.LittleEndian.PutUint16(w.raw[2*i:], quant.Float16Bits(r.Float32()*2-1))
	}
	return w
}

func TestHybridFCVectorExact(t *testing.T) {
	if !hasSIMD {
		t.Skip("no vector tiles on this CPU")
	}
	r := rand.New(rand.NewPCG(11, 12))
	for _, sh := range gemmShapes {
		M, K, N := sh[0], sh[1], sh[2]
		type wcase struct {
			name string
			w    *weight
		}
		cases := []wcase{{"int8", randomInt8Weight(r, N, K)}, {"int4ch", randomInt4Weight(r, N, K, 0)}}
		for _, B := range []int{1, 2, 4, 32, 64, 5} {
			if K%B == 0 {
				cases = append(cases, wcase{fmt.Sprintf("int4b%d", B), randomInt4Weight(r, N, K, B)})
			}
		}
		for _, wc := range cases {
			for _, class := range []string{"uniform", "zeros", "mixed", "large"} {
				a := fill(r, M*K, class)
				if class == "uniform" && M > 2 {
					for k := range K { // a row of one sign: zero point at an end
						a[K+k] = float32(math.Abs(float64(a[K+k])))
					}
				}
				var bias []float32
				if N%2 == 1 {
					bias = fill(r, N, "uniform")
				}
				for _, th := range []int{1, 2, 3} {
					name := fmt.Sprintf("M=%d K=%d N=%d %s %s threads=%d", M, K, N, wc.name, class, th)
					want := make([]float32, M*N)
					got := make([]float32, M*N)
					withSIMD(t, false, func() { hybridFC(th, want, a, M, K, N, wc.w, bias) })
					withSIMD(t, true, func() { hybridFC(th, got, a, M, K, N, wc.w, bias) })
					sameBits(t, name, got, want)
				}
			}
		}
	}
}
