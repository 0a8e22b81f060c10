package pipeline

import "sort"

// Plan is the per-weight plan of one job branch: what `qpipe plan --json`
// prints. Its JSON form is stable: fields are only ever added.
type Plan struct {
	Model   string        `json:"model"`
	Recipe  string        `json:"recipe,omitempty"`
	Weights []*WeightPlan `json:"weights"`
	Rules   []RuleMatch   `json:"rules,omitempty"`
	Totals  Totals        `json:"totals"`
	// Notes are findings that do not fail the job: fallbacks, duplicated
	// weights, tensors left alone.
	Notes []string `json:"notes,omitempty"`
	// Accuracy is what verify's accuracy gate will measure (nil without
	// a gate).
	Accuracy *Accuracy `json:"accuracy,omitempty"`
	// Budget is what a budget chose, when the job has one.
	Budget *BudgetReport `json:"budget,omitempty"`
	// CalibrationBytes is set by a memory estimate's plan (State.Estimate):
	// what the job's gptq calibration rows and factors hold at most
	// (MemoryEstimate adds it).
	CalibrationBytes int64 `json:"-"`
}

// WeightPlan is one constant weight tensor read by at least one op that a
// scheme can quantize.
type WeightPlan struct {
	// Section is the bundle section holding the weight's model (a
	// LiteRT-LM bundle's section index; nil for a bare .tflite).
	Section  *int     `json:"section,omitempty"`
	Subgraph int      `json:"subgraph"`
	Tensor   int      `json:"tensor_index"`
	Name     string   `json:"tensor"`
	Shape    []int32  `json:"shape"`
	Type     string   `json:"type"`
	Ops      []string `json:"ops"`
	Role     string   `json:"role"`
	Layer    *int     `json:"layer"`
	// Buffer is the index of the buffer holding the float weights; tensors
	// that share one (a tied lm_head) count once in the totals.
	Buffer uint32 `json:"buffer"`
	// Scheme is nil when the weight stays as it is.
	Scheme *string `json:"scheme"`
	// BlockSize is set for blockwise schemes only.
	BlockSize *int  `json:"block_size"`
	BytesIn   int64 `json:"bytes_in"`
	BytesOut  int64 `json:"bytes_out"`
	// Scales is the int4 scale method when it is not min-max; SQNR and
	// SQNRMinMax are then the weight's SQNR in dB with the chosen scales
	// and with min-max scales (measured by the dry run).
	Scales     string   `json:"scales,omitempty"`
	SQNR       *float64 `json:"sqnr_db,omitempty"`
	SQNRMinMax *float64 `json:"sqnr_minmax_db,omitempty"`
	// Fallback names the scheme the recipe asked for when on_mismatch:
	// fallback replaced it.
	Fallback string `json:"fallback_from,omitempty"`
	// Note says why a weight was left alone or treated specially.
	Note string `json:"note,omitempty"`
	// Budget is what a budget weighed for this weight (shared by the
	// weights of one buffer).
	Budget *WeightBudget `json:"budget,omitempty"`
}

// RuleMatch counts how many ops an annotate rule matched, so that a rule
// that matches nothing is visible.
type RuleMatch struct {
	Role    string `json:"role"`
	Pattern string `json:"pattern"`
	Source  string `json:"source"`
	Ops     int    `json:"ops"`
}

// Totals sums the plan.
type Totals struct {
	Weights     int   `json:"weights"`
	Quantized   int   `json:"quantized"`
	BytesIn     int64 `json:"bytes_in"`
	BytesOut    int64 `json:"bytes_out"`
	FileBytesIn int64 `json:"file_bytes_in,omitempty"`
}

// Sum recomputes Totals from Weights, counting a buffer shared by several
// weights once.
func (p *Plan) Sum() {
	t := Totals{FileBytesIn: p.Totals.FileBytesIn}
	p.count(func(w *WeightPlan, in, out int64) {
		t.Weights++
		if w.Scheme != nil {
			t.Quantized++
		}
		t.BytesIn += in
		t.BytesOut += out
	})
	p.Totals = t
}

// Unchanged is the scheme name SizesByRole gives weights left as they are.
const Unchanged = "unchanged"

// SizesByRole sums the weights' bytes per role and scheme, counting a
// shared buffer once as Sum does; sorted by role, then scheme.
func (p *Plan) SizesByRole() []SizeShare {
	type key struct{ role, scheme string }
	sums := map[key]*SizeShare{}
	p.count(func(w *WeightPlan, in, out int64) {
		k := key{w.Role, Unchanged}
		if w.Scheme != nil {
			k.scheme = *w.Scheme
		}
		s := sums[k]
		if s == nil {
			s = &SizeShare{Role: k.role, Scheme: k.scheme}
			sums[k] = s
		}
		s.Tensors++
		s.BytesIn += in
		s.BytesOut += out
	})
	out := make([]SizeShare, 0, len(sums))
	for _, s := range sums {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Role != out[j].Role {
			return out[i].Role < out[j].Role
		}
		return out[i].Scheme < out[j].Scheme
	})
	return out
}

// count calls f for every weight with the bytes it adds to the totals: a
// buffer shared by several weights counts its input once, and its output
// once too unless the quantize stage already split it among them.
func (p *Plan) count(f func(w *WeightPlan, in, out int64)) {
	type key struct {
		section int
		buffer  uint32
	}
	seen := map[key]bool{}
	for _, w := range p.Weights {
		k := key{-1, w.Buffer}
		if w.Section != nil {
			k.section = *w.Section
		}
		var in, out int64
		if w.Scheme != nil {
			// The quantize stage already counts a shared output once.
			out = w.BytesOut
		} else if !seen[k] {
			out = w.BytesOut
		}
		if !seen[k] {
			seen[k] = true
			in = w.BytesIn
		}
		f(w, in, out)
	}
}

// Clone copies the plan deeply enough for a branch to fill in its own
// schemes.
func (p *Plan) Clone() *Plan {
	c := *p
	c.Weights = make([]*WeightPlan, len(p.Weights))
	for i, w := range p.Weights {
		wc := *w
		c.Weights[i] = &wc
	}
	c.Rules = append([]RuleMatch(nil), p.Rules...)
	c.Notes = append([]string(nil), p.Notes...)
	if p.Accuracy != nil {
		a := *p.Accuracy
		a.Checks = append([]AccuracyCheck(nil), a.Checks...)
		c.Accuracy = &a
	}
	return &c
}
