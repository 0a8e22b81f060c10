package pipeline

import (
	"reflect"
	"testing"
)

func TestSizesByRole(t *testing.T) {
	s := func(v string) *string { return &v }
	p := &Plan{Weights: []*WeightPlan{
		// A tied embedding and lm_head share buffer 1: counted once.
		{Role: "embedding", Buffer: 1, Scheme: s("dynamic_int8"), BytesIn: 400, BytesOut: 100},
		{Role: "lm_head", Buffer: 1, Scheme: s("dynamic_int8"), BytesIn: 400, BytesOut: 0},
		{Role: "attention", Buffer: 2, Scheme: s("dynamic_int4_block32"), BytesIn: 800, BytesOut: 120},
		{Role: "attention", Buffer: 3, Scheme: s("fp16"), BytesIn: 800, BytesOut: 400},
		{Role: "attention", Buffer: 4, BytesIn: 16, BytesOut: 16},
		{Role: "attention", Buffer: 4, BytesIn: 16, BytesOut: 16},
	}}
	got := p.SizesByRole()
	want := []SizeShare{
		{Role: "attention", Scheme: "dynamic_int4_block32", Tensors: 1, BytesIn: 800, BytesOut: 120},
		{Role: "attention", Scheme: "fp16", Tensors: 1, BytesIn: 800, BytesOut: 400},
		{Role: "attention", Scheme: Unchanged, Tensors: 2, BytesIn: 16, BytesOut: 16},
		{Role: "embedding", Scheme: "dynamic_int8", Tensors: 1, BytesIn: 400, BytesOut: 100},
		{Role: "lm_head", Scheme: "dynamic_int8", Tensors: 1, BytesIn: 0, BytesOut: 0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SizesByRole =\n%+v\nwant\n%+v", got, want)
	}
	// The shares add up to the totals.
	p.Sum()
	var in, out int64
	for _, sh := range got {
		in += sh.BytesIn
		out += sh.BytesOut
	}
	if in != p.Totals.BytesIn || out != p.Totals.BytesOut || p.Totals.Weights != 6 || p.Totals.Quantized != 4 {
		t.Errorf("totals %+v, shares in %d out %d", p.Totals, in, out)
	}
}
