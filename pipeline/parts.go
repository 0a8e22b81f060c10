package pipeline

import (
	"context"
	"fmt"
)

// Parts is implemented by a State's Model made of several models: the
// TFLiteModel sections of a LiteRT-LM bundle. A stage that is not a
// WholeStage runs once per part, on a copy of the State holding that part's
// model and plan (runParts); the job's Plan is then the parts' plans
// merged, each weight marked with its Section.
type Parts interface {
	Parts() []*Part
}

// Part is one model of a Parts model and what the stages made of it.
type Part struct {
	// Section is the part's index in its bundle; Name says which it is in
	// messages ("section 1 (tf_lite_prefill_decode)").
	Section   int
	Name      string
	ModelType string // the section's model_type item, or ""
	Model     any
	Plan      *Plan
	Output    *OutputReport
}

// WholeStage marks a stage that runs once on a Parts model (serialize
// writes the whole bundle).
type WholeStage interface {
	Stage
	Whole()
}

// runStage runs st on s, once per part when s holds a Parts model.
func runStage(ctx context.Context, st Stage, s *State) error {
	ps, ok := s.Model.(Parts)
	if _, whole := st.(WholeStage); !ok || whole {
		return st.Run(ctx, s)
	}
	parts := ps.Parts()
	for _, p := range parts {
		sub := *s
		sub.Model, sub.Plan, sub.Output, sub.Part = p.Model, p.Plan, p.Output, p
		sub.Log = s.Log.With().Int("section", p.Section).Logger()
		sub.Warnings = nil
		if err := st.Run(ctx, &sub); err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		p.Model, p.Plan, p.Output = sub.Model, sub.Plan, sub.Output
		for _, w := range sub.Warnings {
			s.Warnings = append(s.Warnings, p.Name+": "+w)
		}
	}
	s.Plan = MergePlans(parts)
	return nil
}

// MergePlans is the plan of a Parts model: every part's weights marked with
// their section, notes named by part, each rule's count summed over the
// parts; nil when no part has a plan yet.
func MergePlans(parts []*Part) *Plan {
	var m *Plan
	rules := map[RuleMatch]int{}
	for _, p := range parts {
		if p.Plan == nil {
			continue
		}
		if m == nil {
			m = &Plan{Model: p.Plan.Model, Recipe: p.Plan.Recipe, Accuracy: p.Plan.Accuracy, Budget: p.Plan.Budget}
		}
		m.Totals.FileBytesIn = max(m.Totals.FileBytesIn, p.Plan.Totals.FileBytesIn)
		for _, w := range p.Plan.Weights {
			wc := *w
			sec := p.Section
			wc.Section = &sec
			m.Weights = append(m.Weights, &wc)
		}
		for _, r := range p.Plan.Rules { // one count per rule, over all parts
			k := RuleMatch{Role: r.Role, Pattern: r.Pattern, Source: r.Source}
			if i, ok := rules[k]; ok {
				m.Rules[i].Ops += r.Ops
				continue
			}
			rules[k] = len(m.Rules)
			m.Rules = append(m.Rules, r)
		}
		for _, n := range p.Plan.Notes {
			m.Notes = append(m.Notes, p.Name+": "+n)
		}
	}
	if m != nil {
		m.Sum()
	}
	return m
}
