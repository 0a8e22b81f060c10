package quant_test

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qpipe/qpipe/internal/quant"
)

// searchGoldenInput returns rows of cols weights drawn from several
// distributions, one per row in turn: gaussian, heavy-tailed (as
// heavyTailed), gaussian with rare large outliers, Student-like (gaussian
// over a random spread), uniform, and rows mixing zeros, tiny values and
// exact multiples of a scale (rounding ties), and rows of blocks of very
// different magnitudes, so that every branch of the
// search (clipping, repeated candidates, the least-squares step, clamped
// and tiny blocks) is exercised.
func searchGoldenInput(seed uint64, rows, cols int) []float32 {
	r := rand.New(rand.NewPCG(seed, seed+1))
	x := make([]float32, rows*cols)
	var sigma float64
	for row := range rows {
		y := x[row*cols : (row+1)*cols]
		switch row % 7 {
		case 0:
			for i := range y {
				y[i] = float32(r.NormFloat64() * 0.02)
			}
		case 1:
			for i := range y {
				y[i] = float32(r.NormFloat64() * 0.02)
				if r.IntN(50) == 0 {
					y[i] *= 3
				}
			}
		case 2:
			for i := range y {
				y[i] = float32(r.NormFloat64() * 0.05)
				if r.IntN(200) == 0 {
					y[i] *= 10
				}
			}
		case 3:
			for i := range y {
				y[i] = float32(r.NormFloat64() / (0.1 + math.Abs(r.NormFloat64())))
			}
		case 4:
			for i := range y {
				y[i] = float32(r.Float64()*2 - 1)
			}
		case 5:
			for i := range y {
				switch r.IntN(4) {
				case 0:
					y[i] = 0
				case 1:
					y[i] = float32(r.NormFloat64() * 1e-5)
				case 2:
					y[i] = float32(r.IntN(17)-8) * 0.0625
				default:
					y[i] = float32(r.NormFloat64())
				}
			}
		case 6:
			// Every 32 elements a spread from 1e-6 to 10, log-uniform:
			// clamped blocks, candidates below 2^-14, large scales.
			for i := range y {
				if i%32 == 0 {
					sigma = math.Pow(10, -6+7*r.Float64())
				}
				y[i] = float32(r.NormFloat64() * sigma)
			}
		}
	}
	return x
}

// TestSearchInt4Golden pins the exact output (packed values and scales)
// of the data-free and the calibrated search on about 40,000 blocks of
// varied weights: speed work on the search must not change a byte. It
// runs with the AVX2 kernels and without (where the CPU has them).
func TestSearchInt4Golden(t *testing.T) {
	const rows, cols = 240, 4096
	src := searchGoldenInput(20, rows, cols)
	st := testStats(cols)
	defer quant.SetAVX2(quant.SetAVX2(true))
	for _, avx2 := range []bool{true, false} {
		if avx2 && !quant.HasAVX2 {
			continue
		}
		quant.SetAVX2(avx2)
		for _, tc := range []struct {
			name  string
			stats *quant.ChannelStats
			want  string
		}{
			{"free", nil, "20fc95be1ec393e6082ca2e887d9bd20ec1f11b52bbe5c6f749e3b6b7afe4106"},
			{"calibrated", st, "1b002b9dfb96bebb7b764d17919551120848d30978a84ab9ef5d9bbb97694f12"},
		} {
			h := sha256.New()
			for _, bs := range []int{32, 64, 128, 256} {
				packed, scales := make([]byte, len(src)/2), make([]uint16, len(src)/bs)
				if _, err := quant.SearchBlocksInt4(packed, scales, src, cols, bs, true, tc.stats, nil); err != nil {
					t.Fatal(err)
				}
				h.Write(packed)
				h.Write(quant.Uint16Bytes(scales))
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != tc.want {
				t.Errorf("%s (AVX2 %v): output sha256 %s, want %s", tc.name, avx2, got, tc.want)
			}
		}
	}
}

// TestSearchSIMDGolden compares the data-free search with the AVX2
// kernels and without on the golden test's kinds of input (every
// distribution, ties, zeros, clamped blocks, tiny candidates), at every
// block size from 32 to 256, with and without clampTiny and the row
// errors. search_simd_test.go has the kernels' own tests.
func TestSearchSIMDGolden(t *testing.T) {
	if !quant.HasAVX2 {
		t.Skip("no AVX2 on this machine (or QPIPE_SIMD=off)")
	}
	defer quant.SetAVX2(quant.SetAVX2(true))
	const cols = 1536
	run := func(src []float32, bs int, clampTiny bool, errs []quant.RowErrors) (string, int, error) {
		packed, scales := make([]byte, len(src)/2), make([]uint16, len(src)/bs)
		tiny, err := quant.SearchBlocksInt4(packed, scales, src, cols, bs, clampTiny, nil, errs)
		return string(packed) + string(quant.Uint16Bytes(scales)), tiny, err
	}
	for seed := uint64(1); seed <= 3; seed++ {
		src := searchGoldenInput(seed, 28, cols)
		for bs := 32; bs <= 256; bs += 32 {
			if cols%bs != 0 {
				continue
			}
			for _, clampTiny := range []bool{true, false} {
				errs0, errs1 := make([]quant.RowErrors, 28), make([]quant.RowErrors, 28)
				quant.SetAVX2(false)
				want, wantTiny, wantErr := run(src, bs, clampTiny, errs0)
				quant.SetAVX2(true)
				got, gotTiny, gotErr := run(src, bs, clampTiny, errs1)
				if got != want || gotTiny != wantTiny || gotErr != wantErr {
					t.Fatalf("seed %d, block %d, clampTiny %v: AVX2 output differs (tiny %d, scalar %d; error %v, scalar %v)",
						seed, bs, clampTiny, gotTiny, wantTiny, gotErr, wantErr)
				}
				for r := range errs0 {
					if errs0[r] != errs1[r] {
						t.Fatalf("seed %d, block %d: row %d errors %+v, scalar %+v", seed, bs, r, errs1[r], errs0[r])
					}
				}
			}
		}
	}
}
