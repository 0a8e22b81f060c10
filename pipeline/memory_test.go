package pipeline

import "testing"

func TestMemoryEstimate(t *testing.T) {
	i8, i4 := "dynamic_int8", "dynamic_int4_block32"
	b32 := 32
	const gb = int64(1) << 30
	int8Plan := &Plan{Weights: []*WeightPlan{{BytesIn: 26 * gb, Scheme: &i8}}}
	int4Plan := &Plan{Weights: []*WeightPlan{{BytesIn: 26 * gb, Scheme: &i4, BlockSize: &b32}}}
	// The measured peaks of the README's 7B row: 172 MiB (int8), 416 MiB (int4).
	if got := MemoryEstimate([]*Plan{int8Plan}); got < 172<<20 || got > 2*172<<20+MemoryBase {
		t.Errorf("int8 26 GiB: %d MiB", got>>20)
	}
	if got := MemoryEstimate([]*Plan{int4Plan}); got < 416<<20 || got > 2*416<<20+MemoryBase {
		t.Errorf("int4 26 GiB: %d MiB", got>>20)
	}
	// A job needs its largest branch, not the sum: branches run in turn.
	if a, b := MemoryEstimate([]*Plan{int8Plan, int4Plan}), MemoryEstimate([]*Plan{int4Plan}); a != b {
		t.Errorf("two branches %d, the int4 one alone %d", a, b)
	}
	// A bundle's sections are written one after the other: its largest
	// section's estimate, not the sum.
	s0, s1 := 0, 1
	bundle := &Plan{Weights: []*WeightPlan{{BytesIn: 26 * gb, Scheme: &i4, BlockSize: &b32, Section: &s0}, {BytesIn: 26 * gb, Scheme: &i8, Section: &s1}}}
	if a, b := MemoryEstimate([]*Plan{bundle}), MemoryEstimate([]*Plan{int4Plan}); a != b {
		t.Errorf("bundle of an int4 and an int8 section %d, the int4 one alone %d", a, b)
	}
	if got := MemoryEstimate(nil); got != MemoryBase {
		t.Errorf("no plan: %d", got)
	}
}
