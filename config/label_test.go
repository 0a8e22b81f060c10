package config

import (
	"testing"

	"github.com/qpipe/qpipe/internal/evaluate"
)

// One label per scheme and scale method (issue 21): plans, budgets and
// metrics name a min-max scheme by its name alone, others with "+method".
func TestSchemeLabel(t *testing.T) {
	for _, c := range []struct{ name, scales, want string }{
		{"dynamic_int4_block32", "", "dynamic_int4_block32"},
		{"dynamic_int4_block32", ScalesMinMax, "dynamic_int4_block32"},
		{"dynamic_int4_block32", ScalesSearch, "dynamic_int4_block32+search"},
		{"dynamic_int4_block32", ScalesCalibrated, "dynamic_int4_block32+calibrated"},
	} {
		if got := SchemeLabel(c.name, c.scales); got != c.want {
			t.Errorf("SchemeLabel(%q, %q) = %q, want %q", c.name, c.scales, got, c.want)
		}
	}
}

// The accuracy gate's default sample count is qpipe eval's (one constant).
func TestAccuracyGateDefaultSamples(t *testing.T) {
	job, err := ParseJob("job.yaml", []byte("version: 1\nname: x\nstages:\n  - load: {path: m.tflite}\n  - quantize: {recipe: dynamic_int8}\n  - verify: {accuracy: {max_kl: 0.1}}\n  - serialize: {path: out.tflite}\n"))
	if err != nil {
		t.Fatalf("job: %v", err)
	}
	for _, st := range job.Stages {
		if v, ok := st.(*VerifyStage); ok && v.Accuracy != nil && v.Accuracy.Samples != evaluate.DefaultSamples {
			t.Errorf("accuracy gate samples %d, want evaluate.DefaultSamples %d", v.Accuracy.Samples, evaluate.DefaultSamples)
		}
	}
}
