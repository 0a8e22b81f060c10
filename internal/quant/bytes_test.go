package quant_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"testing"

	"github.com/qpipe/qpipe/internal/quant"
)

func TestBytes(t *testing.T) {
	if got := quant.Int8Bytes([]int8{-1, 0, 127, -128}); !bytes.Equal(got, []byte{0xff, 0, 0x7f, 0x80}) {
		t.Fatalf("Int8Bytes = %x", got)
	}
	if got := quant.BytesInt8([]byte{0xff, 0x80}); got[0] != -1 || got[1] != -128 {
		t.Fatalf("BytesInt8 = %v", got)
	}
	u := []uint16{0x3c00, 0xabcd}
	if got := quant.Uint16Bytes(u); !bytes.Equal(got, []byte{0x00, 0x3c, 0xcd, 0xab}) {
		t.Fatalf("Uint16Bytes = %x", got)
	}
	enc := make([]byte, 4)
	quant.EncodeUint16LE(enc, u)
	dec := make([]uint16, 2)
	quant.DecodeUint16LE(dec, enc)
	if !bytes.Equal(enc, []byte{0x00, 0x3c, 0xcd, 0xab}) || dec[0] != u[0] || dec[1] != u[1] {
		t.Fatalf("EncodeUint16LE = %x, decoded %x", enc, dec)
	}

	f := []float32{1, -2.5, float32(math.Inf(1))}
	fb := quant.Float32Bytes(f)
	for i, x := range f {
		if binary.LittleEndian.Uint32(fb[4*i:]) != math.Float32bits(x) {
			t.Fatalf("Float32Bytes = %x", fb)
		}
	}
	// Aligned and misaligned views both decode; the aligned one is a view.
	backing := make([]byte, 4+len(fb)+1)
	for _, off := range []int{0, 1, 4} {
		b := backing[off : off+len(fb)]
		copy(b, fb)
		got := quant.Float32s(b)
		for i := range f {
			if got[i] != f[i] {
				t.Fatalf("offset %d: Float32s = %v", off, got)
			}
		}
		dst := make([]float32, len(f))
		quant.DecodeFloat32LE(dst, b)
		for i := range f {
			if dst[i] != f[i] {
				t.Fatalf("offset %d: DecodeFloat32LE = %v", off, dst)
			}
		}
	}
	if quant.Float32s(nil) != nil || quant.Int8Bytes(nil) != nil {
		t.Fatal("empty inputs should give nil")
	}
}

// TestTranspose: the tiled transpose against the definition, on shapes
// that are and are not multiples of its tile, and twice back to the start.
func TestTranspose(t *testing.T) {
	for _, s := range [][2]int{{0, 5}, {1, 1}, {1, 70}, {70, 1}, {31, 33}, {32, 32}, {65, 100}, {200, 37}} {
		r, c := s[0], s[1]
		src := make([]int32, r*c)
		for i := range src {
			src[i] = int32(i)
		}
		dst, back := make([]int32, r*c), make([]int32, r*c)
		quant.Transpose(dst, src, r, c)
		for i := range r {
			for j := range c {
				if dst[j*r+i] != src[i*c+j] {
					t.Fatalf("%dx%d: element (%d, %d) is %d, want %d", r, c, j, i, dst[j*r+i], src[i*c+j])
				}
			}
		}
		quant.Transpose(back, dst, c, r)
		if !slices.Equal(back, src) {
			t.Fatalf("%dx%d: transposing twice does not give the matrix back", r, c)
		}
	}
}
