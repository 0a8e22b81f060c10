package modelinput

import (
	"path/filepath"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

func openModel(t *testing.T, name string) *fb.ModelT {
	t.Helper()
	m, err := tflite.Open(filepath.Join("../../testdata/models", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m.Meta
}

func TestVocabSize(t *testing.T) {
	for _, tc := range []struct {
		model string
		want  int
	}{
		{"aeq_embedding_lookup.tflite", 16},  // EMBEDDING_LOOKUP table [16, 8]
		{"aeq_single_gather.tflite", 0},      // GATHER indices are a constant
		{"tflm_hello_world_float.tflite", 0}, // no integer input
	} {
		if got := VocabSize(openModel(t, tc.model)); got != tc.want {
			t.Errorf("%s: VocabSize = %d, want %d", tc.model, got, tc.want)
		}
	}
	// A GATHER whose ids are an input, along a negative axis.
	m := &fb.ModelT{
		OperatorCodes: []*fb.OperatorCodeT{{BuiltinCode: fb.BuiltinOperatorGATHER, DeprecatedBuiltinCode: int8(fb.BuiltinOperatorGATHER)}},
		Subgraphs: []*fb.SubGraphT{{
			Tensors: []*fb.TensorT{
				{Shape: []int32{64, 300}, Type: fb.TensorTypeFLOAT32},
				{Shape: []int32{5}, Type: fb.TensorTypeINT32},
				{Shape: []int32{64, 5}, Type: fb.TensorTypeFLOAT32},
			},
			Inputs: []int32{1},
			Operators: []*fb.OperatorT{{
				Inputs: []int32{0, 1}, Outputs: []int32{2},
				BuiltinOptions: &fb.BuiltinOptionsT{Type: fb.BuiltinOptionsGatherOptions, Value: &fb.GatherOptionsT{Axis: -1}},
			}},
		}},
	}
	if got := VocabSize(m); got != 300 {
		t.Errorf("GATHER axis -1 of [64 300]: VocabSize = %d, want 300", got)
	}
	m.Subgraphs[0].Operators[0].Inputs = []int32{0, 7} // out of range: ignored, no panic
	if got := VocabSize(m); got != 0 {
		t.Errorf("bad tensor index: VocabSize = %d, want 0", got)
	}
}

func TestTokenInputs(t *testing.T) {
	for _, tc := range []struct {
		model string
		want  map[int]int
	}{
		{"tiny_decoder.tflite", map[int]int{0: 1024}},
		{"aeq_embedding_lookup.tflite", map[int]int{0: 16}},
		{"aeq_single_gather.tflite", map[int]int{}},
		{"tflm_hello_world_float.tflite", map[int]int{}},
	} {
		m := openModel(t, tc.model)
		got := TokenInputs(m, 0)
		if len(got) != len(tc.want) {
			t.Errorf("%s: TokenInputs = %v, want %v", tc.model, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s: TokenInputs = %v, want %v", tc.model, got, tc.want)
			}
		}
	}
	for _, sg := range []int{-1, 99} {
		if got := TokenInputs(openModel(t, "tiny_decoder.tflite"), sg); len(got) != 0 {
			t.Errorf("subgraph %d: %v, want none", sg, got)
		}
	}
	if got := TokenInputs(nil, 0); len(got) != 0 {
		t.Errorf("nil model: %v", got)
	}
}

// The stream is a contract with runner.mjs and with stored results: its
// first values must not change by accident.
func TestStreamGolden(t *testing.T) {
	s := NewStream(7, 0)
	want := []float32{0.48362565, 0.6472404, -0.8195436}
	for i, w := range want {
		if got := s.Float(); got != w {
			t.Errorf("float %d = %v, want %v", i, got, w)
		}
	}
	ids := NewStream(7, 1)
	for i, w := range []uint32{49, 486, 356, 553} {
		if got := ids.Below(1000); got != w {
			t.Errorf("id %d = %d, want %d", i, got, w)
		}
	}
	lo, hi := float32(1), float32(-1)
	s = NewStream(-5, 3)
	for range 100000 {
		f := s.Float()
		lo, hi = min(lo, f), max(hi, f)
	}
	if lo < -1 || hi >= 1 || lo > -0.999 || hi < 0.999 {
		t.Errorf("Float range [%g, %g], want within and spanning [-1, 1)", lo, hi)
	}
	small := NewStream(1, 0)
	for range 1000 {
		if v := small.Below(0); v >= DefaultIDs {
			t.Fatalf("Below(0) = %d, want < %d", v, DefaultIDs)
		}
	}
}
