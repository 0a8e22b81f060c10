package static

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/digits"
	"github.com/qpipe/qpipe/internal/litert"
	"github.com/qpipe/qpipe/internal/tflite"
)

const mnistModel = "../../testdata/models/aeq_conv_fc_mnist.tflite"

// writeInputs writes images as a calibration inputs file for the input
// named name.
func writeInputs(t testing.TB, name string, imgs [][]float32) string {
	path := filepath.Join(t.TempDir(), "calib.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	enc := json.NewEncoder(f)
	for _, img := range imgs {
		if err := enc.Encode(map[string][]float32{name: img}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// quantizeFile calibrates and rewrites the model at in and writes it to out.
func quantizeFile(t testing.TB, in, out string, cal *config.Calibration, estimator string, opt Options) *Result {
	m, err := tflite.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	r, err := Calibrate(context.Background(), m, cal, estimator, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	res, err := Rewrite(m, r, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(m); err != nil {
		t.Fatal(err)
	}
	if err := tflite.WriteFile(context.Background(), out, m, tflite.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return res
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// On the trained MNIST model, static_int8 keeps the float model's top-1
// class on at least 99 % of digit-like inputs it was not calibrated on,
// run on LiteRT.js, asymmetric and symmetric; static_int16x8 is closer
// still.
func TestMNISTOnLiteRT(t *testing.T) {
	r := litert.Require(t)
	cal := &config.Calibration{Samples: 64, Inputs: writeInputs(t, "conv2d_input", digits.Images(1, 64))}
	held := digits.Images(2, 300)
	dir := t.TempDir()
	floatOut := make([][]float32, len(held))
	for i, img := range held {
		out, err := r.Run(mnistModel, []litert.Tensor{litert.NewFloat32("conv2d_input", []int{1, 28, 28, 1}, img)})
		if err != nil {
			t.Fatal(err)
		}
		floatOut[i] = out[0].Float32s()
	}
	classes := map[int]int{}
	confident := 0
	for _, f := range floatOut {
		classes[argmax(f)]++
		if f[argmax(f)] > 0.9 {
			confident++
		}
	}
	t.Logf("float model: classes %v, top probability > 0.9 on %d of %d", classes, confident, len(held))
	for _, tc := range []struct {
		name   string
		opt    Options
		est    string
		minTop float64
		maxL2  float64
	}{
		{"int8", Options{Bits: 8}, EstimatorMinMax, 0.99, 0.02},
		{"int8_sym", Options{Bits: 8, SymmetricInt8: true}, EstimatorMinMax, 0.98, 0.04},
		// The reference quantizer's moving average narrows the ranges to
		// about the average sample's: the logits clip (measured 0.973, 0.164).
		{"int8_ema", Options{Bits: 8}, EstimatorMovingAverage, 0.95, 0.25},
		{"int8_p99.9", Options{Bits: 8}, EstimatorPercentile + ":99.9", 0.99, 0.02},
		{"int16x8", Options{Bits: 16}, EstimatorMinMax, 0.99, 0.01},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name+".tflite")
			res := quantizeFile(t, mnistModel, out, cal, tc.est, tc.opt)
			t.Logf("quantized %v, float %v, +%d QUANTIZE +%d DEQUANTIZE", res.Quantized, res.Float, res.Quantize, res.Dequantize)
			agree := 0
			var num, den float64
			for i, img := range held {
				got, err := r.Run(out, []litert.Tensor{litert.NewFloat32("conv2d_input", []int{1, 28, 28, 1}, img)})
				if err != nil {
					t.Fatal(err)
				}
				q := got[0].Float32s()
				if argmax(q) == argmax(floatOut[i]) {
					agree++
				}
				for k := range q {
					d := float64(q[k] - floatOut[i][k])
					num += d * d
					den += float64(floatOut[i][k]) * float64(floatOut[i][k])
				}
			}
			top1 := float64(agree) / float64(len(held))
			rel := math.Sqrt(num / den)
			t.Logf("%s: top-1 agreement %.4f, rel L2 %.4f on %d held-out inputs", tc.name, top1, rel, len(held))
			if top1 < tc.minTop || rel > tc.maxL2 {
				t.Errorf("%s: top-1 %.4f (want >= %.2f), rel L2 %.4f (want <= %.2f)", tc.name, top1, tc.minTop, rel, tc.maxL2)
			}
		})
	}
}
