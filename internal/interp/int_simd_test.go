package interp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// TestIntFCVectorMatchesScalar: the integer FULLY_CONNECTED gives the same
// integers with the vector tiles as with the scalar kernel (QPIPE_SIMD=off),
// for shapes off the tiles' multiples, filter zero points, and extreme
// values (every activation and weight at the type's minimum over a K that
// would overflow int32 sums of int16 products).
func TestIntFCVectorMatchesScalar(t *testing.T) {
	if !hasSIMD {
		t.Skip("no vector tiles on this CPU")
	}
	for _, tc := range []struct {
		typ     fb.TensorType
		M, K, N int
		wzp     int64
		extreme bool
	}{
		{i8, 1, 1, 1, 0, false},
		{i8, 7, 33, 17, 0, false},
		{i8, 13, 600, 40, 0, false},
		{i8, 5, 64, 16, 3, false}, // per-tensor filter with a zero point
		{i8, 6, 1000, 19, 0, true},
		{i16, 1, 3, 2, 0, false},
		{i16, 7, 513, 33, 0, false},
		{i16, 12, 1027, 16, 0, false},
		{i16, 4, 4099, 18, 0, true},
	} {
		name := fmt.Sprintf("%s_%dx%dx%d_zp%d_extreme=%v", map[fb.TensorType]string{i8: "int8", i16: "int16"}[tc.typ], tc.M, tc.K, tc.N, tc.wzp, tc.extreme)
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(tc.M), uint64(tc.K*tc.N)))
			w := make([]int64, tc.N*tc.K)
			for i := range w {
				w[i] = int64(r.IntN(256) - 128)
				if tc.extreme {
					w[i] = -128
				}
			}
			filter := qt{typ: i8, shape: sh(tc.N, tc.K), data: w}
			if tc.wzp != 0 {
				filter.scales, filter.zps = []float32{0.01}, []int64{tc.wzp}
			} else {
				filter.scales, filter.zps = make([]float32, tc.N), make([]int64, tc.N)
				for i := range filter.scales {
					filter.scales[i] = 0.001 + float32(i%5)*0.0003
				}
			}
			bt, inZP, inScale := i32, int64(-5), float32(0.02)
			lo, hi := -128, 127
			if tc.typ == i16 {
				bt, inZP, inScale, lo, hi = i64, 0, 0.0003, -32768, 32767
			}
			outScale := float32(10)
			if tc.typ == i16 {
				outScale = 2 // K·2^22 rescaled stays within int16
			}
			m := intOpModel(fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{}, []qt{act(tc.typ, sh(tc.M, tc.K), inScale, inZP), filter,
				{typ: bt, shape: sh(tc.N), data: seq(tc.N, -3000, 3000, 1777)}}, act(tc.typ, sh(tc.M, tc.N), outScale, 0))
			x := NewTensor(tc.typ, sh(tc.M, tc.K))
			for i := 0; i < tc.M*tc.K; i++ {
				v := int32(lo + r.IntN(hi-lo+1))
				if tc.extreme {
					v = int32(lo)
				}
				x.setInt(i, v)
			}
			var outs [2][]int32
			for k, on := range []bool{false, true} {
				withSIMD(t, on, func() {
					in, err := New(m, Options{Threads: 3})
					if err != nil {
						t.Fatal(err)
					}
					got, err := in.Run(context.Background(), "", map[string]*Tensor{"in0": x})
					if err != nil {
						t.Fatal(err)
					}
					outs[k] = got["out"].intValues()
				})
			}
			inside := 0
			for _, v := range outs[0] {
				if v > int32(lo) && v < int32(hi) {
					inside++
				}
			}
			if inside < len(outs[0])/2 {
				t.Fatalf("%d of %d outputs inside the range: the case tests nothing", inside, len(outs[0]))
			}
			if !slices.Equal(outs[0], outs[1]) {
				t.Fatalf("vector and scalar outputs differ:\n%v\n%v", outs[1], outs[0])
			}
		})
	}
}
