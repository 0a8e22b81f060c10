package config

import (
	"strings"
	"testing"
)

// The static recipe keys, and their mistakes with the line and column.
func TestStaticRecipeKeys(t *testing.T) {
	job := func(static string) string {
		return "version: 1\nstages:\n  - load: {path: m.tflite}\n  - quantize:\n      recipe: {static: " + static + "}\n  - serialize: {path: o.tflite}\n"
	}
	j, err := ParseJob("j.yaml", []byte(job("{activations: int16, io: integer, estimator: percentile, bias: int32, float_ops: [softmax], float_outputs: 'lm_head', ops: [FULLY_CONNECTED]}")))
	if err != nil {
		t.Fatal(err)
	}
	s := j.Quantize().Recipes[0].Static
	if got, want := s.String(), "int16 symmetric activations, int32 bias, integer I/O, percentile 99.99, ops FULLY_CONNECTED, float SOFTMAX, float outputs /lm_head/"; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if s.EstimatorKey() != "percentile:99.99" {
		t.Errorf("estimator key %s", s.EstimatorKey())
	}
	for _, tc := range []struct{ static, want string }{
		{"{activations: int4}", "j.yaml:5:38"},
		{"{estimator: median}", "estimator"},
		{"{percentile: 99}", "estimator: percentile only"},
		{"{estimator: percentile, percentile: 40}", "above 50"},
		{"{bias: int32}", "for int16 activations"},
		{"{float_outputs: '('}", "bad regular expression"},
		{"{float_ops: [not-an-op]}", "not an op name"},
		{"{io: int}", "io"},
		{"{activation: int8}", "activation"},
	} {
		_, err := ParseJob("j.yaml", []byte(job(tc.static)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.static, err, tc.want)
		}
	}
	if _, err := ParseJob("j.yaml", []byte("version: 1\nstages:\n  - load: {path: m.tflite}\n  - quantize:\n      recipe: {default: fp16, static: {}}\n  - serialize: {path: o.tflite}\n")); err == nil || !strings.Contains(err.Error(), "whole graph") {
		t.Errorf("static with a slot: %v", err)
	}
}
