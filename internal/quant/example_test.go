package quant_test

import (
	"fmt"

	"github.com/qpipe/qpipe/internal/quant"
)

func ExampleQuantizeInt8() {
	// A [2, 3] weight quantized per output row (channel axis 0).
	w := []float32{0.5, -1, 0.25, 2, 0, -0.5}
	shape := []int{2, 3}
	scales, zps := make([]float32, 2), make([]int64, 2)
	if err := quant.ChannelParamsInt8(scales, zps, w, shape, 0, true); err != nil {
		panic(err)
	}
	q := make([]int8, len(w))
	quant.QuantizeInt8(q, w, shape, 0, scales, zps, true)
	fmt.Println(q, zps)
	// Output: [64 -127 32 127 0 -32] [0 0]
}

func ExampleQuantizeBlocksInt4() {
	// One row of 64 values: two blocks of 32; the second is all zero.
	w := make([]float32, 64)
	for i := range 32 {
		w[i] = float32(i-16) / 16
	}
	packed, scales := make([]byte, 32), make([]uint16, 2)
	tiny, err := quant.QuantizeBlocksInt4(packed, scales, w, 64, 32, true)
	if err != nil {
		panic(err)
	}
	fmt.Printf("scales %#04x, %d tiny block clamped to 2^-14, first byte %#02x\n", scales, tiny, packed[0])
	// bound 1 → 1/7 → bfloat16 0.142578125 = float16 0x3090; -1 and
	// -0.9375 both quantize to -7 (nibble 9).
	// Output: scales [0x3090 0x0400], 1 tiny block clamped to 2^-14, first byte 0x99
}

func ExampleToFloat16() {
	h := make([]uint16, 3)
	err := quant.ToFloat16(h, []float32{1, 65504, 1e5})
	fmt.Printf("%#04x\n%v\n", h, err)
	// Output:
	// [0x3c00 0x7bff 0x7c00]
	// quant: values beyond the float16 range ±65504: 1, the first at flat index 2 (100000)
}
