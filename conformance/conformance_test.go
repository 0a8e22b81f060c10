package conformance

import (
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite"
)

// TestConformance: for every preset × test model, the quantized model
// runs on LiteRT and its outputs stay within the family's bounds of the
// float model's and of the dequantized reference's; every op reading a
// quantized weight has the op version it needs and hybrid weights have
// zero points 0. Models the runtime cannot run even as float are only
// checked statically; presets that do not fit a model are recorded.
func TestConformance(t *testing.T) {
	s := measure(t)
	for _, r := range s.results {
		t.Run(r.name(), func(t *testing.T) {
			switch {
			case r.notApplicable != "":
				t.Logf("not applicable: %s", r.notApplicable)
				return
			case r.model.refused != "":
				t.Logf("the runtime does not run the float model; static checks only")
			}
			if r.quantized > 0 && len(r.reads) == 0 {
				t.Errorf("the plan says %d weight(s) were quantized, but no op of the written model reads a quantized weight", r.quantized)
			}
			if r.ran() && r.quantized > 0 && r.refVsFloat.RelL2 == 0 && r.family != FamilyFP16 {
				// fp16 may round a small model's weights exactly; int8
				// and int4 never do.
				t.Errorf("the dequantized reference computes exactly the float model although %d weight(s) were quantized: it cannot be the reference", r.quantized)
			}
			if r.ran() {
				t.Logf("%d weight(s); vs float rel L2 %.3g, rel max %.3g, max abs %.3g; vs reference rel L2 %.3g, rel max %.3g, max abs %.3g",
					r.quantized, r.vsFloat.RelL2, r.vsFloat.RelMax, r.vsFloat.MaxAbs, r.vsRef.RelL2, r.vsRef.RelMax, r.vsRef.MaxAbs)
			}
			if bad := r.verdict(); len(bad) > 0 {
				t.Errorf("does not conform (family %s, class %s):\n  %s", r.family, r.model.class, strings.Join(bad, "\n  "))
			}
		})
	}
}

// TestEveryPresetIsMeasured: each preset quantized weights of at least one
// model the runtime runs, so no preset passes by quantizing nothing.
func TestEveryPresetIsMeasured(t *testing.T) {
	s := measure(t)
	measured := map[string]int{}
	for _, r := range s.results {
		if r.ran() && r.quantized > 0 {
			measured[r.preset]++
		}
	}
	for _, r := range s.results {
		if r.family != FamilyFloat && measured[r.preset] == 0 {
			t.Errorf("preset %s quantized no weight of any model the runtime runs", r.preset)
			measured[r.preset] = -1 // report once
		}
	}
}

// TestOpVersionCheckRejectsOldVersions: the op-version check is not
// vacuous. Every quantized output is read back with all its OperatorCode
// versions set to 1; the check must then flag exactly the weight reads
// whose form needs more.
func TestOpVersionCheckRejectsOldVersions(t *testing.T) {
	s := measure(t)
	total := 0
	for _, r := range s.results {
		want := 0
		for _, w := range r.reads {
			if w.Required > 1 {
				want++
			}
		}
		if want == 0 {
			continue
		}
		total += want
		in, err := tflite.Open(r.model.path)
		if err != nil {
			t.Fatal(err)
		}
		out, err := tflite.Open(r.quant)
		if err != nil {
			t.Fatal(err)
		}
		for _, oc := range out.Meta.OperatorCodes {
			oc.Version = 1
		}
		if got := CheckOpVersions(WeightReads(in, out)); len(got) != want {
			t.Errorf("%s: with every op at version 1, %d weight reads need more, the check flags %d: %v", r.name(), want, len(got), got)
		}
		in.Close()
		out.Close()
	}
	if total == 0 {
		t.Fatal("no quantized output has a weight read that needs an op version above 1")
	}
}
