package interp

import (
	"context"
	"fmt"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// BenchmarkIntFC measures the integer FULLY_CONNECTED (M=64 rows, K=N=1024,
// per-channel int8 filter) with int8 and int16 activations; GMAC/s is
// multiply-accumulates per second of wall time.
func BenchmarkIntFC(b *testing.B) {
	const M, K, N = 64, 1024, 1024
	scales := make([]float32, N)
	for i := range scales {
		scales[i] = 0.01 + float32(i%7)*0.001
	}
	for _, tc := range []struct {
		typ  fb.TensorType
		bias fb.TensorType
	}{{i8, i32}, {i16, i64}} {
		b.Run(fmt.Sprintf("%s", map[fb.TensorType]string{i8: "int8", i16: "int16"}[tc.typ]), func(b *testing.B) {
			m := intOpModel(fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{}, []qt{act(tc.typ, sh(M, K), 0.01, 0),
				{typ: i8, shape: sh(N, K), scales: scales, zps: make([]int64, N), data: seq(N*K, -127, 127, 37)},
				{typ: tc.bias, shape: sh(N), data: seq(N, -1000, 1000, 77)}}, act(tc.typ, sh(M, N), 0.5, 0))
			in, err := New(m, Options{})
			if err != nil {
				b.Fatal(err)
			}
			x := NewTensor(tc.typ, sh(M, K))
			for i := 0; i < M*K; i++ {
				x.setInt(i, int32(i%255-127))
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := in.Run(context.Background(), "", map[string]*Tensor{"in0": x}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(M*K*N)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
		})
	}
}
