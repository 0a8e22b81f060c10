package quant_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/qpipe/qpipe/internal/quant"
)

func fuzzFloats(data []byte) []float32 {
	x := make([]float32, len(data)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return x
}

func seedBytes(xs ...float32) []byte {
	b := make([]byte, 4*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func countNotFinite(x []float32) (n, first int) {
	first = -1
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			if n == 0 {
				first = i
			}
			n++
		}
	}
	return n, first
}

func FuzzInt8(f *testing.F) {
	f.Add(seedBytes(1, -2, 0.5, 3, 0, 0), uint8(2), uint8(3), int8(0), true)
	f.Add(seedBytes(1e-40, 3e38, -7, 7, 63.5, -0.5, 1, 2), uint8(1), uint8(1), int8(2), false)
	f.Add(seedBytes(float32(math.NaN()), 1), uint8(0), uint8(0), int8(-1), true)
	f.Fuzz(func(t *testing.T, data []byte, d0, d1 uint8, axisSel int8, symmetric bool) {
		x := fuzzFloats(data)
		shape := []int{1 + int(d0)%8, 1 + int(d1)%8}
		if len(x) >= shape[0]*shape[1] {
			shape = append(shape, len(x)/(shape[0]*shape[1]))
		} else {
			shape = []int{len(x)}
		}
		x = x[:numel(shape)]
		axis := int(axisSel)%(len(shape)+1) - 1
		if axis < -1 {
			axis += len(shape) + 1
		}
		if n, first := countNotFinite(x); n > 0 {
			channels := 1
			if axis >= 0 {
				channels = shape[axis]
			}
			err := quant.ChannelParamsInt8(make([]float32, channels), make([]int64, channels), x, shape, axis, symmetric)
			if axis == 0 {
				rows := shape[0]
				fusedErr := quant.QuantizeRowsInt8(make([]int8, len(x)), make([]float32, rows), make([]int64, rows), x, len(x)/rows, symmetric)
				if fmt.Sprint(err) != fmt.Sprint(fusedErr) {
					t.Fatalf("ChannelParamsInt8: %v, QuantizeRowsInt8: %v", err, fusedErr)
				}
			}
			var ve *quant.ValueError
			if !errors.As(err, &ve) || ve.Kind != quant.NotFinite || ve.Count != n || ve.First != first {
				t.Fatalf("%d non-finite values from %d: err = %v", n, first, err)
			}
			return
		}
		checkInt8(t, x, shape, axis, symmetric)
	})
}

func FuzzInt4(f *testing.F) {
	seed := make([]float32, 64)
	for i := range seed {
		seed[i] = float32(i-30) * 0.01
	}
	f.Add(seedBytes(seed...), uint8(0), true)
	f.Add(seedBytes(seed[:32]...), uint8(0), false)
	f.Add(seedBytes(append(make([]float32, 31), 1e6)...), uint8(0), true)
	f.Fuzz(func(t *testing.T, data []byte, blockSel uint8, clampTiny bool) {
		x := fuzzFloats(data)
		bs := 32 << (blockSel % 3)
		x = x[:len(x)/bs*bs]
		if len(x) == 0 {
			return
		}
		cols := bs
		if blockSel&0x80 != 0 && len(x)%(2*bs) == 0 {
			cols = 2 * bs
		}
		n, first := countNotFinite(x)
		overflow, firstBlock := 0, -1
		if n == 0 {
			for k := range len(x) / bs {
				if refScaleInt4(x[k*bs:(k+1)*bs], clampTiny) == 0x7c00 {
					if overflow == 0 {
						firstBlock = k
					}
					overflow++
				}
			}
		}
		if n > 0 || overflow > 0 {
			_, err := quant.BlockParamsInt4(make([]uint16, len(x)/bs), x, cols, bs, clampTiny)
			_, fusedErr := quant.QuantizeBlocksInt4(make([]byte, len(x)/2), make([]uint16, len(x)/bs), x, cols, bs, clampTiny)
			if fmt.Sprint(err) != fmt.Sprint(fusedErr) {
				t.Fatalf("BlockParamsInt4: %v, QuantizeBlocksInt4: %v", err, fusedErr)
			}
			var ve *quant.ValueError
			ok := errors.As(err, &ve)
			if n > 0 && (!ok || ve.Kind != quant.NotFinite || ve.Count != n || ve.First != first) {
				t.Fatalf("%d non-finite values from %d: err = %v", n, first, err)
			}
			if n == 0 && (!ok || ve.Kind != quant.ScaleOverflow || ve.Count != overflow || ve.First != firstBlock*bs) {
				t.Fatalf("%d overflowing blocks from %d: err = %v", overflow, firstBlock, err)
			}
			return
		}
		checkInt4(t, x, cols, bs, clampTiny)
	})
}

func FuzzFloat16(f *testing.F) {
	for _, s := range []struct {
		x uint32
		h uint16
	}{{0x477ff000, 0x7bff}, {0x33000000, 0x0001}, {0x7fc00001, 0xfe01}, {0x38800000, 0x0400}} {
		f.Add(s.x, s.h)
	}
	f.Fuzz(func(t *testing.T, bits uint32, h uint16) {
		x := math.Float32frombits(bits)
		got := quant.Float16Bits(x)
		if want := refFloat16Bits(x); got != want {
			t.Fatalf("Float16Bits(%#08x) = %#04x, want %#04x", bits, got, want)
		}
		dst := make([]uint16, 1)
		err := quant.ToFloat16(dst, []float32{x})
		if dst[0] != got || (err == nil) != (got&0x7c00 != 0x7c00) {
			t.Fatalf("ToFloat16(%#08x) = %#04x, %v", bits, dst[0], err)
		}
		if x == x {
			if b, want := quant.BFloat16Round(x), refBFloat16Round(x); !sameFloat32(b, want) {
				t.Fatalf("BFloat16Round(%#08x) = %#08x, want %#08x", bits, math.Float32bits(b), math.Float32bits(want))
			}
		}
		y := quant.Float32FromBits16(h)
		if want := refHalfValue(h); !math.IsNaN(want) && float64(y) != want {
			t.Fatalf("Float32FromBits16(%#04x) = %g, want %g", h, y, want)
		}
		if back := quant.Float16Bits(y); y == y && back != h {
			t.Fatalf("round trip %#04x → %g → %#04x", h, y, back)
		}
	})
}
