package main

import (
	"fmt"
	"strings"

	"github.com/qpipe/qpipe/pipeline"
)

// accuracySetting describes what an accuracy gate runs.
func accuracySetting(a *pipeline.Accuracy) string {
	s := fmt.Sprintf("%d samples", a.Samples)
	if a.Seq > 0 {
		s += fmt.Sprintf(" x %d tokens", a.Seq)
	}
	return s + fmt.Sprintf(", seed %d", a.Seed)
}

// accuracyChecks lists an accuracy gate's bounds, with the measured values
// when there are.
func accuracyChecks(a *pipeline.Accuracy) string {
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
