package evaluate

import (
	"context"
	"strings"
	"testing"
)

const tinyDecoder = "../../testdata/models/tiny_decoder.tflite"

func openTiny(t *testing.T) *Model {
	t.Helper()
	m, err := Open(tinyDecoder, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// A model compared with itself has no distance; Describe and Compare agree
// on which output is logits; Smoke counts every element.
func TestCompareSelf(t *testing.T) {
	m := openTiny(t)
	ctx := context.Background()
	sigs, err := Describe(m, Options{})
	if err != nil || len(sigs) != 1 || sigs[0].Seq != 8 || sigs[0].Outputs[0].Vocab != 1024 {
		t.Fatalf("Describe: %+v %v", sigs, err)
	}
	r, err := Compare(ctx, m, m, Options{Samples: 2, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	o := r.Signatures[0].Outputs[0]
	if o.Vocab != 1024 || o.Distance.RelL2 != 0 || o.Distance.MaxAbs != 0 || o.Logits.MeanKL != 0 || o.Logits.Top1 != 1 || o.Logits.Positions != 16 {
		t.Errorf("self comparison: %+v %+v %+v", o, o.Distance, o.Logits)
	}
	s, err := Smoke(ctx, m, Options{Samples: 3})
	if err != nil || s.Signatures[0].Outputs[0].Stats.Count != 3*8*1024 {
		t.Errorf("Smoke: %+v %v", s, err)
	}
	// Every line of an inputs file is checked before the first run.
	samples, err := ParseSamples(strings.NewReader("{\"tokens\": [1,2,3,4,5,6,7,8]}\n{\"tokens\": [1]}\n"), "in.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compare(ctx, m, m, Options{Inputs: samples, InputsFile: "in.jsonl"}); err == nil || !strings.HasPrefix(err.Error(), "in.jsonl:2:2: ") {
		t.Errorf("bad second line: %v", err)
	}
	if _, err := Compare(ctx, m, m, Options{Signatures: []string{"decode"}}); err == nil || !strings.Contains(err.Error(), `no signature "decode"`) {
		t.Errorf("unknown signature: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Compare(cancelled, m, m, Options{}); err == nil {
		t.Error("a cancelled comparison succeeded")
	}
}
