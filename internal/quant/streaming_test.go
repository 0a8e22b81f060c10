package quant_test

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/qpipe/qpipe/internal/quant"
)

// TestStreamingChunks: quantizing a tensor a few rows at a time, with the
// matching slices of parameters, gives the bytes of the whole-tensor call.
// This is how the pipeline walks a multi-GB embedding table.
func TestStreamingChunks(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	const rows, cols, chunk = 37, 256, 5 // chunks of 5 rows, the last one short
	src := randomTensor(r, rows*cols)

	for _, sym := range []bool{true, false} {
		scales, zps := make([]float32, rows), make([]int64, rows)
		if err := quant.ChannelParamsInt8(scales, zps, src, []int{rows, cols}, 0, sym); err != nil {
			t.Fatal(err)
		}
		whole := make([]int8, len(src))
		quant.QuantizeInt8(whole, src, []int{rows, cols}, 0, scales, zps, sym)

		got, gotFused := make([]int8, len(src)), make([]int8, len(src))
		cs, cz := make([]float32, rows), make([]int64, rows)
		fs, fz := make([]float32, rows), make([]int64, rows)
		for r0 := 0; r0 < rows; r0 += chunk {
			r1 := min(rows, r0+chunk)
			part := src[r0*cols : r1*cols]
			shape := []int{r1 - r0, cols}
			if err := quant.ChannelParamsInt8(cs[r0:r1], cz[r0:r1], part, shape, 0, sym); err != nil {
				t.Fatal(err)
			}
			quant.QuantizeInt8(got[r0*cols:r1*cols], part, shape, 0, cs[r0:r1], cz[r0:r1], sym)
			if err := quant.QuantizeRowsInt8(gotFused[r0*cols:r1*cols], fs[r0:r1], fz[r0:r1], part, cols, sym); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(got, whole) || !slices.Equal(cs, scales) || !slices.Equal(cz, zps) ||
			!slices.Equal(gotFused, whole) || !slices.Equal(fs, scales) || !slices.Equal(fz, zps) {
			t.Fatalf("symmetric %v: chunked int8 differs from whole-tensor", sym)
		}
	}

	const bs = 64
	scales := make([]uint16, len(src)/bs)
	tiny, err := quant.BlockParamsInt4(scales, src, cols, bs, true)
	if err != nil {
		t.Fatal(err)
	}
	whole := make([]byte, len(src)/2)
	quant.QuantizeInt4(whole, src, cols, bs, scales)
	got, gs := make([]byte, len(whole)), make([]uint16, len(scales))
	sum := 0
	for r0 := 0; r0 < rows; r0 += chunk {
		r1 := min(rows, r0+chunk)
		perRow := cols / bs
		n, err := quant.QuantizeBlocksInt4(got[r0*cols/2:r1*cols/2], gs[r0*perRow:r1*perRow], src[r0*cols:r1*cols], cols, bs, true)
		if err != nil {
			t.Fatal(err)
		}
		sum += n
	}
	if !bytes.Equal(got, whole) || !slices.Equal(gs, scales) || sum != tiny {
		t.Fatal("chunked int4 differs from whole-tensor")
	}
}
