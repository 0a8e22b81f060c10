package quant_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/qpipe/qpipe/internal/quant"
)

// kernelOutputs runs every kernel on src (rows of 1024) and returns all the
// bytes they produced, so runs with different worker counts can be compared.
func kernelOutputs(t *testing.T, src []float32) []byte {
	var out bytes.Buffer
	rows, cols := len(src)/1024, 1024
	for _, tc := range []struct {
		shape []int
		axis  int
	}{{[]int{rows, cols}, 0}, {[]int{rows, cols}, 1}, {[]int{rows, 4, 256}, 1}, {[]int{rows, cols}, -1}} {
		for _, sym := range []bool{true, false} {
			channels := 1
			if tc.axis >= 0 {
				channels = tc.shape[tc.axis]
			}
			s, z := make([]float32, channels), make([]int64, channels)
			if err := quant.ChannelParamsInt8(s, z, src, tc.shape, tc.axis, sym); err != nil {
				t.Fatal(err)
			}
			q := make([]int8, len(src))
			quant.QuantizeInt8(q, src, tc.shape, tc.axis, s, z, sym)
			deq := make([]float32, len(src))
			quant.DequantizeInt8(deq, q, tc.shape, tc.axis, s, z)
			m := quant.Compare(src, deq)
			out.Write(quant.Float32Bytes(s))
			fmt.Fprint(&out, z, m)
			out.Write(quant.Int8Bytes(q))
			out.Write(quant.Float32Bytes(deq))
		}
	}
	for _, bs := range []int{32, 256} {
		scales := make([]uint16, len(src)/bs)
		n, err := quant.BlockParamsInt4(scales, src, cols, bs, true)
		if err != nil {
			t.Fatal(err)
		}
		packed := make([]byte, len(src)/2)
		quant.QuantizeInt4(packed, src, cols, bs, scales)
		deq := make([]float32, len(src))
		quant.DequantizeInt4(deq, packed, cols, bs, scales)
		fmt.Fprint(&out, n, quant.Compare(src, deq))
		out.Write(quant.Uint16Bytes(scales))
		out.Write(packed)
		out.Write(quant.Float32Bytes(deq))
	}
	for _, sym := range []bool{true, false} {
		q, s, z := make([]int8, len(src)), make([]float32, rows), make([]int64, rows)
		if err := quant.QuantizeRowsInt8(q, s, z, src, cols, sym); err != nil {
			t.Fatal(err)
		}
		out.Write(quant.Int8Bytes(q))
		out.Write(quant.Float32Bytes(s))
		fmt.Fprint(&out, z)
	}
	packed, scales := make([]byte, len(src)/2), make([]uint16, len(src)/32)
	n, err := quant.QuantizeBlocksInt4(packed, scales, src, cols, 32, true)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(&out, n)
	out.Write(packed)
	out.Write(quant.Uint16Bytes(scales))
	for _, stats := range []*quant.ChannelStats{nil, testStats(cols)} {
		for _, bs := range []int{32, 256} {
			packed, scales := make([]byte, len(src)/2), make([]uint16, len(src)/bs)
			errs := make([]quant.RowErrors, rows)
			n, err := quant.SearchBlocksInt4(packed, scales, src, cols, bs, true, stats, errs)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprint(&out, n, errs)
			out.Write(packed)
			out.Write(quant.Uint16Bytes(scales))
		}
	}
	h := make([]uint16, len(src))
	if err := quant.ToFloat16(h, src); err != nil {
		t.Fatal(err)
	}
	back := make([]float32, len(src))
	quant.FromFloat16(back, h)
	fmt.Fprint(&out, quant.Compare(src, back))
	out.Write(quant.Uint16Bytes(h))
	return out.Bytes()
}

func TestDeterministicAcrossWorkers(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	// 120 rows of 1024: 122,880 elements, enough for 7 parts of the
	// minimum size, split at uneven places.
	const rows = 120
	src := randomTensor(r, rows*1024)
	for i := range src {
		src[i] += float32(r.NormFloat64()) // make sure every kind has spread
	}
	defer quant.SetWorkers(quant.SetWorkers(1))
	want := kernelOutputs(t, src)
	for _, w := range []int{2, 7} {
		quant.SetWorkers(w)
		if got := kernelOutputs(t, src); !bytes.Equal(got, want) {
			t.Fatalf("workers=%d: output differs from workers=1", w)
		}
	}
}
