package static

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/litert"
	"github.com/qpipe/qpipe/internal/tflite"
)

// relL2 is ‖got − ref‖ / ‖ref‖.
func relL2(ref, got []float32) float64 {
	var num, den float64
	for i := range ref {
		d := float64(got[i] - ref[i])
		num += d * d
		den += float64(ref[i]) * float64(ref[i])
	}
	return math.Sqrt(num / den)
}

// The generated decoders come out of both static schemes runnable on
// LiteRT.js, and int16 activations are far closer to the float model than
// int8 ones.
func TestDecodersOnLiteRT(t *testing.T) {
	r := litert.Require(t)
	for _, name := range []string{"tiny_decoder", "tiny_decoder_nodiv"} {
		t.Run(name, func(t *testing.T) {
			in := filepath.Join("../../testdata/models", name+".tflite")
			m, err := tflite.Open(in)
			if err != nil {
				t.Fatal(err)
			}
			vocab := litert.VocabSize(m.Meta)
			m.Close()
			info, err := r.Info(in)
			if err != nil {
				t.Fatal(err)
			}
			cal := &config.Calibration{Samples: 16, Seq: 8}
			errs := map[int]float64{}
			for _, bits := range []int{8, 16} {
				out := filepath.Join(t.TempDir(), name+".tflite")
				res := quantizeFile(t, in, out, cal, EstimatorMinMax, Options{Bits: bits})
				t.Logf("%d-bit: quantized %v, float %d ops, +%d QUANTIZE +%d DEQUANTIZE", bits, res.Quantized, len(res.Float), res.Quantize, res.Dequantize)
				var ref, got []float32
				for seed := int64(1); seed <= 4; seed++ {
					inputs := litert.RandomInputs(info, seed, vocab)
					f, err := r.Run(in, inputs)
					if err != nil {
						t.Fatal(err)
					}
					q, err := r.Run(out, inputs)
					if err != nil {
						t.Fatalf("%d-bit output does not run: %v", bits, err)
					}
					ref = append(ref, f[0].Float32s()...)
					got = append(got, q[0].Float32s()...)
				}
				errs[bits] = relL2(ref, got)
				t.Logf("%s static %d-bit activations: logits rel L2 %.4f vs float (LiteRT.js, 4 inputs)", name, bits, errs[bits])
			}
			if !(errs[16] < errs[8]/2) {
				t.Errorf("int16 activations rel L2 %.4f, int8 %.4f: want int16 far better", errs[16], errs[8])
			}
		})
	}
}
