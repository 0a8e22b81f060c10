package interp

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// BenchmarkIntFC measures the integer FULLY_CONNECTED (M=64 rows, K=N=1024,
// per-channel int8 filter) with int8 and int16 activations, with the vector
// tiles (simd) and the scalar kernel (go), next to the float32 FC of the
// same shape through the interpreter; GMAC/s is multiply-accumulates per
// second of wall time.
func BenchmarkIntFC(b *testing.B) {
	const M, K, N = 64, 1024, 1024
	scales := make([]float32, N)
	for i := range scales {
		scales[i] = 0.01 + float32(i%7)*0.001
	}
	b.Run("float32", func(b *testing.B) {
		w := make([]int64, N*K)
		for i := range w {
			w[i] = int64(math.Float32bits(float32(i%255-127) / 128))
		}
		m := intOpModel(fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{}, []qt{{typ: fb.TensorTypeFLOAT32, shape: sh(M, K)},
			{typ: fb.TensorTypeFLOAT32, shape: sh(N, K), data: w}}, qt{typ: fb.TensorTypeFLOAT32, shape: sh(M, N)})
		x := NewTensor(fb.TensorTypeFLOAT32, sh(M, K))
		for i := range x.F32 {
			x.F32[i] = float32(i%255-127) / 100
		}
		benchRun(b, m, x, M*K*N)
	})
	for _, tc := range []struct {
		typ  fb.TensorType
		bias fb.TensorType
	}{{i8, i32}, {i16, i64}} {
		for _, form := range []string{"simd", "go"} {
			if form == "simd" && !hasSIMD {
				continue
			}
			b.Run(fmt.Sprintf("%s/%s", map[fb.TensorType]string{i8: "int8", i16: "int16"}[tc.typ], form), func(b *testing.B) {
				was := useSIMD
				useSIMD = form == "simd"
				defer func() { useSIMD = was }()
				m := intOpModel(fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{}, []qt{act(tc.typ, sh(M, K), 0.01, 0),
					{typ: i8, shape: sh(N, K), scales: scales, zps: make([]int64, N), data: seq(N*K, -127, 127, 37)},
					{typ: tc.bias, shape: sh(N), data: seq(N, -1000, 1000, 77)}}, act(tc.typ, sh(M, N), 0.5, 0))
				x := NewTensor(tc.typ, sh(M, K))
				for i := 0; i < M*K; i++ {
					x.setInt(i, int32(i%255-127))
				}
				benchRun(b, m, x, M*K*N)
			})
		}
	}
}

// benchRun runs m's one input in0 = x and reports macs per run as GMAC/s.
func benchRun(b *testing.B, m *tflite.Model, x *Tensor, macs int) {
	in, err := New(m, Options{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := in.Run(context.Background(), "", map[string]*Tensor{"in0": x}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(macs)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
}
