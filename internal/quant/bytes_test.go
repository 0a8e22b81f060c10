package quant_test

import (
	"bytes"
	"encoding/binary"
	"math"
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
