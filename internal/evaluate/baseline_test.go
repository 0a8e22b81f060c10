package evaluate

import (
	"reflect"
	"testing"
)

// TestLogitsOutputs: the tiny decoder's one logits output, as Describe
// marks it; a classifier (vocabulary-less) has none.
func TestLogitsOutputs(t *testing.T) {
	m := openTiny(t)
	got := LogitsOutputs(m.File.Meta, m.Interp.Signatures())
	sigs, err := Describe(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []LogitsOutput{{Signature: sigs[0].Signature, Subgraph: 0, Output: sigs[0].Outputs[0].Name, Vocab: 1024}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("LogitsOutputs = %+v, want %+v", got, want)
	}
	mn, err := Open("../../testdata/models/aeq_conv_fc_mnist.tflite", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer mn.Close()
	if got := LogitsOutputs(mn.File.Meta, mn.Interp.Signatures()); len(got) != 0 {
		t.Fatalf("mnist: %+v", got)
	}
}

// TestSeedPolicy: calibration's seeds stay far from the measuring seed.
func TestSeedPolicy(t *testing.T) {
	if CalibrationSeed-MeasureSeed < 1<<16 {
		t.Fatalf("calibration seed %d is near the measuring seed %d", CalibrationSeed, MeasureSeed)
	}
}
