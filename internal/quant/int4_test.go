package quant_test

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/qpipe/qpipe/internal/quant"
)

// checkInt4 runs the int4 kernels on src (rows of cols) and checks them
// against the reference and, with clampTiny, the half-step error bound.
func checkInt4(t *testing.T, src []float32, cols, blockSize int, clampTiny bool) {
	t.Helper()
	blocks := len(src) / blockSize
	scales := make([]uint16, blocks)
	tiny, err := quant.BlockParamsInt4(scales, src, cols, blockSize, clampTiny)
	if err != nil {
		t.Fatalf("cols %d block %d: %v", cols, blockSize, err)
	}
	wantTiny := 0
	for k := range blocks {
		blk := src[k*blockSize : (k+1)*blockSize]
		want := refScaleInt4(blk, clampTiny)
		if scales[k] != want {
			t.Fatalf("block %d: scale %#04x, want %#04x", k, scales[k], want)
		}
		if refScaleInt4(blk, false)&0x7c00 == 0 {
			wantTiny++
		}
		if !clampTiny && scales[k]&0x7c00 == 0 && refScaleInt4(blk, false) != scales[k] {
			t.Fatalf("block %d: reference-mode scale %#04x", k, scales[k])
		}
	}
	if clampTiny && tiny != wantTiny || !clampTiny && (tiny != 0 || quant.TinyScales(scales) != wantTiny) {
		t.Fatalf("clampTiny %v: %d clamped, %d tiny scales; want %d tiny blocks", clampTiny, tiny, quant.TinyScales(scales), wantTiny)
	}
	packed := make([]byte, len(src)/2)
	quant.QuantizeInt4(packed, src, cols, blockSize, scales)
	fused, fusedScales := make([]byte, len(packed)), make([]uint16, len(scales))
	if n, err := quant.QuantizeBlocksInt4(fused, fusedScales, src, cols, blockSize, clampTiny); err != nil || n != tiny ||
		!bytes.Equal(fused, packed) || !slices.Equal(fusedScales, scales) {
		t.Fatalf("QuantizeBlocksInt4 differs from BlockParamsInt4 + QuantizeInt4 (tiny %d vs %d, err %v)", n, tiny, err)
	}
	q := refQuantizeInt4(src, blockSize, scales)
	if want := refPackInt4(q); !bytes.Equal(packed, want) {
		i := 0
		for i = range packed {
			if packed[i] != want[i] {
				break
			}
		}
		t.Fatalf("cols %d block %d: byte %d = %#02x, want %#02x (x = %g, %g; scale %#04x)",
			cols, blockSize, i, packed[i], want[i], src[2*i], src[2*i+1], scales[2*i/blockSize])
	}
	deq := make([]float32, len(src))
	quant.DequantizeInt4(deq, packed, cols, blockSize, scales)
	for i, x := range src {
		s := float64(quant.Float32FromBits16(scales[i/blockSize]))
		if want := float32(float64(q[i]) * s); deq[i] != want {
			t.Fatalf("dequantized [%d] = %g, want %d·%g", i, deq[i], q[i], s)
		}
		if !clampTiny {
			continue
		}
		if s < quant.MinNormalFloat16 {
			t.Fatalf("block %d: scale %g below the clamp", i/blockSize, s)
		}
		limit := s/2*(1+1e-6) + 1e-6*math.Abs(float64(x))
		if e := math.Abs(float64(x) - float64(q[i])*s); e > limit {
			t.Fatalf("x[%d] = %g → %d·%g = %g: error %g > %g", i, x, q[i], s, deq[i], e, limit)
		}
	}
}

func TestInt4RandomTensors(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 300 {
		blockSize := 32 << r.IntN(4)
		cols := blockSize * (1 + r.IntN(4))
		rows := 1 + r.IntN(6)
		src := randomTensor(r, rows*cols)
		checkInt4(t, src, cols, blockSize, true)
		checkInt4(t, src, cols, blockSize, false)
	}
}

// TestInt4TinyBlocks: all-zero and near-zero blocks get a zero or subnormal
// float16 scale in the reference; the clamp gives them 2^-14 and keeps them
// exact (zero) or within 2^-15.
func TestInt4TinyBlocks(t *testing.T) {
	src := make([]float32, 4*32)
	for i := range 32 {
		src[32+i] = float32(i-16) * 1e-9 // scale → 0 in float16
		src[64+i] = float32(i-16) * 2e-5 // subnormal float16 scale
		src[96+i] = float32(i-16) * 0.1  // normal
	}
	ref := make([]uint16, 4)
	if n, err := quant.BlockParamsInt4(ref, src, 128, 32, false); err != nil || n != 0 || quant.TinyScales(ref) != 3 {
		t.Fatalf("reference mode: %d clamped, %d tiny scales (err %v), want 0 and 3", n, quant.TinyScales(ref), err)
	}
	if ref[0] != 0 || ref[1] != 0 || ref[2] == 0 || ref[2]&0x7c00 != 0 || ref[3]&0x7c00 == 0 {
		t.Fatalf("reference scales %#04x: want 0, 0, subnormal, normal", ref)
	}
	packed := make([]byte, 64)
	quant.QuantizeInt4(packed, src, 128, 32, ref)
	if !bytes.Equal(packed[:16], make([]byte, 16)) {
		t.Fatalf("all-zero block with zero scale: %x, want zeros", packed[:16])
	}
	checkInt4(t, src, 128, 32, false)

	clamped := make([]uint16, 4)
	n, err := quant.BlockParamsInt4(clamped, src, 128, 32, true)
	if err != nil || n != 3 {
		t.Fatalf("clamped %d blocks (err %v), want 3", n, err)
	}
	if clamped[0] != 0x0400 || clamped[1] != 0x0400 || clamped[2] != 0x0400 || clamped[3] != ref[3] {
		t.Fatalf("clamped scales %#04x, want 0x0400 ×3 then %#04x", clamped, ref[3])
	}
	quant.QuantizeInt4(packed, src, 128, 32, clamped)
	deq := make([]float32, len(src))
	quant.DequantizeInt4(deq, packed, 128, 32, clamped)
	for i := range 96 {
		if e := math.Abs(float64(src[i] - deq[i])); e > 0x1p-15 || (i < 32 && deq[i] != 0) {
			t.Fatalf("x[%d] = %g → %g", i, src[i], deq[i])
		}
	}
	checkInt4(t, src, 128, 32, true)
}

// TestInt4ScaleRounding: the scale goes through bfloat16 and float16 and
// the values are quantized against the stored scale, not bound/7. A normal
// scale moves by at most 2^-9 relative, so |x|/s stays below 7.5; a subnormal
// float16 scale (reference mode) can move far enough for -8 to appear.
func TestInt4ScaleRounding(t *testing.T) {
	src := make([]float32, 32)
	src[0], src[1], src[2] = -1.0039, 1.0039, 7*0.143
	scales := make([]uint16, 1)
	if _, err := quant.BlockParamsInt4(scales, src, 32, 32, true); err != nil {
		t.Fatal(err)
	}
	s := quant.Float32FromBits16(scales[0])
	if want := quant.BFloat16Round(float32(1.0039) / 7); s != want || s == float32(1.0039)/7 {
		t.Fatalf("scale %g, want the bf16-rounded %g (not %g)", s, want, float32(1.0039)/7)
	}
	if math.Float32bits(s)&0xffff != 0 {
		t.Fatalf("scale %g has more than 8 significant bits", s)
	}
	checkInt4(t, src, 32, 32, true)

	// bound/7 = 1.4·2^-24 → float16 subnormal 2^-24: x/s = -9.8 → -8.
	src = make([]float32, 32)
	src[0], src[1] = -7*1.4*0x1p-24, 3*0x1p-24
	if _, err := quant.BlockParamsInt4(scales, src, 32, 32, false); err != nil || scales[0] != 1 {
		t.Fatalf("scale %#04x (err %v), want the subnormal 0x0001", scales[0], err)
	}
	packed := make([]byte, 16)
	quant.QuantizeInt4(packed, src, 32, 32, scales)
	if packed[0] != 0x38 { // low nibble -8, high nibble 3
		t.Fatalf("byte 0 = %#02x, want 0x38", packed[0])
	}
	checkInt4(t, src, 32, 32, false)
}

func TestBlockParamsInt4Errors(t *testing.T) {
	src := make([]float32, 96)
	src[40] = 1e6 // block 1 scale overflows float16
	src[70] = -5e5
	scales := make([]uint16, 3)
	_, err := quant.BlockParamsInt4(scales, src, 96, 32, true)
	var ve *quant.ValueError
	if !errors.As(err, &ve) || ve.Kind != quant.ScaleOverflow || ve.Count != 2 || ve.First != 32 {
		t.Fatalf("err = %v, want ScaleOverflow count 2 first 32", err)
	}
	src[5] = float32(math.Inf(1))
	_, err = quant.BlockParamsInt4(scales, src, 96, 32, true)
	if !errors.As(err, &ve) || ve.Kind != quant.NotFinite || ve.Count != 1 || ve.First != 5 {
		t.Fatalf("err = %v, want NotFinite count 1 first 5", err)
	}
	// The largest bound that still fits: bf16(bound/7) = 65280.
	src = make([]float32, 32)
	src[3] = 65280 * 7
	if _, err := quant.BlockParamsInt4(scales[:1], src, 32, 32, true); err != nil || scales[0] != 0x7bf8 {
		t.Fatalf("bound 456960: scale %#04x, err %v; want 0x7bf8", scales[0], err)
	}
}

func TestInt4Panics(t *testing.T) {
	for name, fn := range map[string]func(){
		"block not multiple of 32": func() { _, _ = quant.BlockParamsInt4(make([]uint16, 4), make([]float32, 64), 64, 16, true) },
		"block does not divide":    func() { _, _ = quant.BlockParamsInt4(make([]uint16, 1), make([]float32, 96), 96, 64, true) },
		"partial row":              func() { quant.QuantizeInt4(make([]byte, 48), make([]float32, 96), 64, 32, make([]uint16, 3)) },
		"scales":                   func() { quant.QuantizeInt4(make([]byte, 32), make([]float32, 64), 64, 32, make([]uint16, 1)) },
		"dst":                      func() { quant.DequantizeInt4(make([]float32, 64), make([]byte, 31), 64, 32, make([]uint16, 2)) },
		"pack":                     func() { quant.PackInt4(make([]byte, 1), make([]int8, 3)) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			fn()
		})
	}
}

func TestPackInt4(t *testing.T) {
	if got := make([]byte, 2); true {
		quant.PackInt4(got, []int8{1, -1, -8})
		if !bytes.Equal(got, []byte{0xf1, 0x08}) {
			t.Fatalf("PackInt4(1, -1, -8) = %x, want f1 08 (low nibble first)", got)
		}
	}
	r := rand.New(rand.NewPCG(7, 8))
	for n := range 70 {
		q := make([]int8, n)
		for i := range q {
			q[i] = int8(r.IntN(16) - 8)
		}
		packed := make([]byte, (n+1)/2)
		quant.PackInt4(packed, q)
		if want := refPackInt4(q); !bytes.Equal(packed, want) {
			t.Fatalf("n=%d: %x, want %x", n, packed, want)
		}
		back := make([]int8, n)
		quant.UnpackInt4(back, packed)
		if !slices.Equal(back, q) {
			t.Fatalf("n=%d: unpacked %v, want %v", n, back, q)
		}
	}
}
