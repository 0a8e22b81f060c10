package stages

import "testing"

// A duplicated group's plan, metrics and calibration statistics are kept
// under the original tensor (one rule, tensorGroup.original).
func TestTensorGroupOriginal(t *testing.T) {
	if got := (&tensorGroup{sg: 1, tensor: 9, dupOf: -1}).original(); got != (tensorKey{1, 9}) {
		t.Errorf("original of an original: %v", got)
	}
	if got := (&tensorGroup{sg: 1, tensor: 9, dupOf: 4}).original(); got != (tensorKey{1, 4}) {
		t.Errorf("original of a duplicate: %v", got)
	}
}
