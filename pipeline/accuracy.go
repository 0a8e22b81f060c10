package pipeline

import (
	"fmt"
	"strings"
)

// Setting describes what an accuracy gate runs: "8 samples x 16 tokens,
// seed 1", or "8 samples x 16 tokens of text.txt".
func (a *Accuracy) Setting() string {
	s := fmt.Sprintf("%d samples", a.Samples)
	if a.Seq > 0 {
		s += fmt.Sprintf(" x %d tokens", a.Seq)
	}
	if a.Text != "" {
		return s + " of " + a.Text
	}
	return s + fmt.Sprintf(", seed %d", a.Seed)
}

// Bounds lists an accuracy gate's bounds, with the measured values when
// there are.
func (a *Accuracy) Bounds() string {
	var parts []string
	for _, c := range a.Checks {
		op := "<="
		if c.Metric == "top1" {
			op = ">="
		}
		p := fmt.Sprintf("%s %s %s %g", c.Output, c.Metric, op, c.Bound)
		if c.Value != nil {
			p = fmt.Sprintf("%s %s %.4g (%s %g)", c.Output, c.Metric, *c.Value, op, c.Bound)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}
