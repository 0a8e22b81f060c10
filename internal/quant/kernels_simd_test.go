package quant_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/qpipe/qpipe/internal/quant"
)

// The AVX2 kernels against the scalar Go ones: every public entry point
// that reaches them, on the same inputs, must give the same bytes, scales,
// counts and errors. reciprocal_test.go holds both to the division formula
// on boundary inputs; this adds whole tensors of mixed content, tails that
// are not a multiple of the vector width, zero and tiny scales, and
// non-finite values.

func requireAVX2(t *testing.T) {
	t.Helper()
	if !quant.HasAVX2 {
		t.Skipf("no AVX2 kernels on %s (or the CPU lacks AVX2, or QPIPE_SIMD=off)", runtime.GOARCH)
	}
}

// bothPaths runs f with the AVX2 kernels and with the scalar ones.
func bothPaths(f func()) {
	was := quant.SetAVX2(true)
	defer quant.SetAVX2(was)
	f()
	quant.SetAVX2(false)
	f()
}

// mixedTensor fills rows of cols with a different kind of content per row:
// gaussian, heavy-tailed, exact multiples of a step (rounding ties once
// scaled), all zeros, tiny values (zero or clamped int4 scales), a row with
// one huge element, and signed zeros and subnormals.
func mixedTensor(r *rand.Rand, rows, cols int) []float32 {
	x := make([]float32, rows*cols)
	for row := range rows {
		y := x[row*cols : (row+1)*cols]
		switch row % 7 {
		case 0:
			for i := range y {
				y[i] = float32(r.NormFloat64() * 0.05)
			}
		case 1:
			for i := range y {
				y[i] = float32(r.NormFloat64() * math.Exp(2*r.NormFloat64()))
			}
		case 2:
			step := float32(r.Float64()*0.01 + 1e-3)
			for i := range y {
				y[i] = step * (float32(r.IntN(31)-15) + 0.5*float32(r.IntN(2)))
			}
		case 3:
			// all zeros
		case 4:
			for i := range y {
				y[i] = float32(r.NormFloat64() * 1e-5)
			}
		case 5:
			for i := range y {
				y[i] = float32(r.NormFloat64())
			}
			y[r.IntN(cols)] = 3e4
		case 6:
			for i := range y {
				switch r.IntN(3) {
				case 0:
					y[i] = float32(math.Copysign(0, -1))
				case 1:
					y[i] = math.Float32frombits(uint32(r.IntN(1 << 23)))
				default:
					y[i] = float32(r.NormFloat64())
				}
			}
		}
	}
	return x
}

func TestVectorInt4MatchesScalar(t *testing.T) {
	requireAVX2(t)
	r := rand.New(rand.NewPCG(4, 4))
	for _, bs := range []int{32, 64, 96, 128, 256} {
		for _, clamp := range []bool{true, false} {
			t.Run(fmt.Sprintf("block%d/clamp=%v", bs, clamp), func(t *testing.T) {
				cols := bs * (1 + r.IntN(5))
				src := mixedTensor(r, 29, cols)
				type result struct {
					dst    []byte
					scales []uint16
					n      int
					err    string
				}
				var res []result
				bothPaths(func() {
					fused := result{dst: make([]byte, len(src)/2), scales: make([]uint16, len(src)/bs)}
					n, err := quant.QuantizeBlocksInt4(fused.dst, fused.scales, src, cols, bs, clamp)
					fused.n, fused.err = n, fmt.Sprint(err)
					split := result{dst: make([]byte, len(src)/2), scales: make([]uint16, len(src)/bs)}
					n, err = quant.BlockParamsInt4(split.scales, src, cols, bs, clamp)
					split.n, split.err = n, fmt.Sprint(err)
					quant.QuantizeInt4(split.dst, src, cols, bs, split.scales)
					res = append(res, fused, split)
				})
				for i, name := range []string{"QuantizeBlocksInt4", "BlockParamsInt4+QuantizeInt4"} {
					v, s := res[i], res[i+2]
					if !bytes.Equal(v.dst, s.dst) || fmt.Sprint(v.scales) != fmt.Sprint(s.scales) || v.n != s.n || v.err != s.err {
						t.Fatalf("%s: AVX2 and scalar differ (counts %d/%d, errors %q/%q)", name, v.n, s.n, v.err, s.err)
					}
				}
				if !bytes.Equal(res[0].dst, res[1].dst) {
					t.Fatal("fused and split quantization differ")
				}
			})
		}
	}
}

func TestVectorInt8MatchesScalar(t *testing.T) {
	requireAVX2(t)
	r := rand.New(rand.NewPCG(8, 8))
	for _, cols := range []int{1, 7, 31, 32, 33, 63, 64, 100, 256, 1000, 4096} {
		for _, sym := range []bool{true, false} {
			t.Run(fmt.Sprintf("cols%d/symmetric=%v", cols, sym), func(t *testing.T) {
				rows := 15
				src := mixedTensor(r, rows, cols)
				shape := []int{rows, cols}
				var dsts [][]int8
				var params []string
				bothPaths(func() {
					fused := make([]int8, len(src))
					sc, zp := make([]float32, rows), make([]int64, rows)
					err := quant.QuantizeRowsInt8(fused, sc, zp, src, cols, sym)
					params = append(params, fmt.Sprint(sc, zp, err))
					for _, axis := range []int{0, 1, -1} {
						n := 1
						if axis >= 0 {
							n = shape[axis]
						}
						sc, zp := make([]float32, n), make([]int64, n)
						err := quant.ChannelParamsInt8(sc, zp, src, shape, axis, sym)
						params = append(params, fmt.Sprint(sc, zp, err))
						dst := make([]int8, len(src))
						quant.QuantizeInt8(dst, src, shape, axis, sc, zp, sym)
						dsts = append(dsts, dst)
					}
					dsts = append(dsts, fused)
				})
				half := len(dsts) / 2
				for i := range half {
					if fmt.Sprint(dsts[i]) != fmt.Sprint(dsts[i+half]) {
						t.Fatalf("output %d: AVX2 and scalar differ", i)
					}
				}
				for i := range len(params) / 2 {
					if params[i] != params[i+len(params)/2] {
						t.Fatalf("parameters %d: AVX2 %s, scalar %s", i, params[i], params[i+len(params)/2])
					}
				}
			})
		}
	}
}

// Non-finite inputs must give the same errors on both paths (the outputs
// are then unspecified and not compared).
func TestVectorNonFiniteSameErrors(t *testing.T) {
	requireAVX2(t)
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 1e6} {
		src := mixedTensor(rand.New(rand.NewPCG(1, 2)), 8, 128)
		src[300] = bad
		var errs []string
		bothPaths(func() {
			_, err := quant.QuantizeBlocksInt4(make([]byte, len(src)/2), make([]uint16, len(src)/32), src, 128, 32, true)
			errs = append(errs, fmt.Sprint(err))
			err = quant.QuantizeRowsInt8(make([]int8, len(src)), make([]float32, 8), make([]int64, 8), src, 128, true)
			errs = append(errs, fmt.Sprint(err))
		})
		if errs[0] != errs[2] || errs[1] != errs[3] {
			t.Fatalf("x = %g: AVX2 errors %q, %q; scalar %q, %q", bad, errs[0], errs[1], errs[2], errs[3])
		}
		if bad != 1e6 && (errs[0] == "<nil>" || errs[1] == "<nil>") {
			t.Fatalf("x = %g: no error (%q, %q)", bad, errs[0], errs[1])
		}
	}
}
