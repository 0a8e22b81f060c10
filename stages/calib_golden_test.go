package stages

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"runtime"
	"testing"
)

// TestGoldenCalibratedBytes pins the bytes `scales: calibrated` writes
// under fixed calibration settings (generated inputs, so the seed policy
// is part of what is pinned): any change to the statistics pass, its
// inputs or the calibrated scale search shows here. The same hash must
// come out for any GOMAXPROCS and with QPIPE_SIMD=off (CI runs both), so
// it also checks that calibration is deterministic.
func TestGoldenCalibratedBytes(t *testing.T) {
	t.Setenv("QPIPE_CACHE_DIR", "off")
	for _, c := range []struct {
		model, quantize, sha256 string
	}{
		{"tiny_decoder.tflite", `{recipe: dynamic_int4_block32, scales: calibrated, calibration: {samples: 4, seq: 16}}`,
			"ea0db9c6c44e3226115d9b281edbe29ae6adda191771ad68f3a773617775cde4"},
		// The default calibration: seq 8, so 64 samples for 512 tokens.
		{"tiny_decoder.tflite", `{recipe: dynamic_int4_block32, scales: calibrated}`,
			"ca01456e00318db6b44e236d20e2b75c790d3a898a2588511ededdaaf2c86e07"},
		{"aeq_conv_fc_mnist.tflite", `{recipe: dynamic_int4_block32, scales: calibrated, calibration: {samples: 8}}`,
			"693af2c40190001f4dfd3dae0554504016e81c13768c043858d49f1522827226"},
	} {
		t.Run(c.model+c.quantize, func(t *testing.T) {
			for _, procs := range []int{1, 3} {
				if got := scalesOutputSHA256(t, c.model, c.quantize, procs); got != c.sha256 {
					t.Errorf("GOMAXPROCS=%d: %s calibrated output sha256 %s, want %s", procs, c.model, got, c.sha256)
				}
			}
		})
	}
}

// scalesOutputSHA256 runs a job quantizing model with the quantize stage
// quantize under GOMAXPROCS procs and returns its output's sha256.
func scalesOutputSHA256(t *testing.T, model, quantize string, procs int) string {
	t.Helper()
	prev := runtime.GOMAXPROCS(procs)
	_, branches, err := runJobFileWith(t, scalesJob(absModel(t, model), quantize), false)
	runtime.GOMAXPROCS(prev)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(branches[0].Output.Path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
