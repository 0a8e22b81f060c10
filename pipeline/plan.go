package pipeline

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
}

// WeightPlan is one constant weight tensor read by at least one op that a
// scheme can quantize.
type WeightPlan struct {
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
	// Fallback names the scheme the recipe asked for when on_mismatch:
	// fallback replaced it.
	Fallback string `json:"fallback_from,omitempty"`
	// Note says why a weight was left alone or treated specially.
	Note string `json:"note,omitempty"`
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
	seen := map[uint32]bool{}
	for _, w := range p.Weights {
		t.Weights++
		if w.Scheme != nil {
			t.Quantized++
			// The quantize stage already counts a shared output once.
			t.BytesOut += w.BytesOut
		} else if !seen[w.Buffer] {
			t.BytesOut += w.BytesOut
		}
		if !seen[w.Buffer] {
			seen[w.Buffer] = true
			t.BytesIn += w.BytesIn
		}
	}
	p.Totals = t
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
	return &c
}
