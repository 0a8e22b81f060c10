package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestScalesFlag: --scales reaches run, quantize and plan; run --json
// reports both SQNRs; a calibrated job caches its statistics and a second
// run (another recipe set) reuses them; a bad value is a usage error.
func TestScalesFlag(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	t.Setenv("QPIPE_CACHE_DIR", cache)
	in := e2eCopy(t, dir, "aeq_conv_fc_mnist.tflite")
	job := e2eWrite(t, filepath.Join(dir, "job.yaml"), `version: 1
name: mnist
stages:
  - load: {path: aeq_conv_fc_mnist.tflite}
  - quantize:
      calibration: {samples: 4}
      recipes:
        - dynamic_int4_block32
        - {suffix: c2, default: {scheme: dynamic_int4_block32}}
        - {suffix: mm, scales: minmax, default: dynamic_int4_block32}
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`)
	code, stdout, stderr := e2eRun(t, "run", "--json", "--scales", "calibrated", job)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r struct {
		Jobs []struct {
			Outputs []struct {
				Path    string `json:"path"`
				Tensors []struct {
					Tensor     string   `json:"tensor"`
					Scales     string   `json:"scales"`
					SQNR       float64  `json:"sqnr_db"`
					SQNRMinMax *float64 `json:"sqnr_minmax_db"`
					Ratio      *float64 `json:"output_error_ratio"`
				} `json:"tensors"`
			} `json:"outputs"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	outs := r.Jobs[0].Outputs
	if len(outs) != 3 {
		t.Fatalf("%d outputs", len(outs))
	}
	for _, o := range outs {
		for _, tm := range o.Tensors {
			if strings.HasSuffix(o.Path, "_mm.tflite") {
				if tm.Scales != "" || tm.SQNRMinMax != nil {
					t.Errorf("%s %s: scales %q, min-max SQNR %v; the recipe asks for min-max", o.Path, tm.Tensor, tm.Scales, tm.SQNRMinMax)
				}
				continue
			}
			if tm.Scales != "calibrated" || tm.SQNRMinMax == nil || tm.Ratio == nil || *tm.Ratio > 1 {
				t.Errorf("%s %s: scales %q, min-max SQNR %v, output error ratio %v", o.Path, tm.Tensor, tm.Scales, tm.SQNRMinMax, tm.Ratio)
			}
		}
	}
	files, err := filepath.Glob(filepath.Join(cache, "calibration-*.gob"))
	if err != nil || len(files) != 1 {
		t.Fatalf("cache files %v (%v)", files, err)
	}
	if n := strings.Count(stderr, "calibration: ran the float model"); n != 1 {
		t.Errorf("first run: the calibration pass ran %d times, want 1\n%s", n, stderr)
	}
	// A second run reuses the statistics.
	code, _, stderr = e2eRun(t, "run", "--force", "--scales", "calibrated", job)
	if code != 0 || !strings.Contains(stderr, "calibration statistics") || strings.Contains(stderr, "calibration: ran") {
		t.Fatalf("second run: exit %d, statistics not reused:\n%s", code, stderr)
	}
	code, stdout, stderr = e2eRun(t, "plan", "--scales", "calibrated", "--recipe", "dynamic_int4_block32", in)
	if code != 0 || !strings.Contains(stdout, "dynamic_int4_block32+calibrated") || !strings.Contains(stdout, "SQNR dB (MIN-MAX -> CHOSEN)") {
		t.Fatalf("plan: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, stderr := e2eRun(t, "quantize", "--recipe", "dynamic_int4_block32", "--scales", "best", in, filepath.Join(dir, "x.tflite")); code != exitUsage || !strings.Contains(stderr, "--scales best: want one of minmax, search, calibrated") {
		t.Errorf("bad --scales: exit %d, %s", code, stderr)
	}
}
