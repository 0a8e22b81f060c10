package stages

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/static"
	"github.com/qpipe/qpipe/pipeline"
)

// StaticQuantize is the quantize stage of a static recipe (config.Static):
// it gathers the activation ranges of the float model (internal/static,
// cached like the calibration statistics), rewrites the whole graph to
// integer activations, and checks the result as LiteRT's kernels do at
// Prepare before anything is written (docs/SEMANTICS.md §16).
type StaticQuantize struct {
	Recipe      *config.Recipe
	Calibration *config.Calibration
}

func (*StaticQuantize) Name() string { return "quantize" }

func (q *StaticQuantize) Run(ctx context.Context, s *pipeline.State) error {
	ms, err := model(s)
	if err != nil {
		return err
	}
	st := q.Recipe.Static
	if s.Plan != nil {
		s.Plan.Recipe = q.Recipe.Name
	}
	// A quantized input is refused before the model runs.
	if err := static.CheckFloat(ms.m); err != nil {
		return err
	}
	cal := q.Calibration
	if cal == nil {
		cal = config.DefaultCalibration()
	}
	sum, in, err := calibrationSums(ms, cal)
	if err != nil {
		return err
	}
	key := static.CacheKey(sum, cal, in, st.EstimatorKey())
	ranges, err := static.Get(ctx, ms.m, key, cal, st.EstimatorKey(), s.Log)
	if err != nil {
		return err
	}
	res, err := static.Rewrite(ms.m, ranges, static.Options{
		Bits:          st.Activations,
		SymmetricInt8: st.Symmetric,
		IntegerIO:     st.IntegerIO,
		Int32Bias:     st.Int32Bias,
		FloatOps:      st.FloatOps,
		FloatScope:    st.FloatOutputs,
		Ops:           st.Ops,
	})
	if err != nil {
		return fmt.Errorf("%s: %w\nno output was written", st.P, err)
	}
	ms.static = true
	if err := static.Check(ms.m); err != nil {
		return fmt.Errorf("the static model fails LiteRT's Prepare-time checks:\n%v\nno output was written", err)
	}
	if s.Plan != nil {
		s.Plan.Notes = append(s.Plan.Notes, staticNotes(q.Recipe.Name, res)...)
		staticWeights(s.Plan, q.Recipe.Name, res)
	}
	return ctx.Err()
}

// staticWeights marks the plan's weights the rewrite made int8, with
// their output bytes (a shared buffer counted once).
func staticWeights(p *pipeline.Plan, recipe string, res *static.Result) {
	for _, w := range p.Weights {
		if n, ok := res.Weights[static.Key{Subgraph: w.Subgraph, Tensor: w.Tensor}]; ok {
			name := recipe
			w.Scheme, w.BytesOut = &name, n
		}
	}
	p.Sum()
}

// staticNotes describe a static rewrite for the plan: the ops made
// integer, the inserted ops and every op left float with its reason.
func staticNotes(recipe string, res *static.Result) []string {
	var names []string
	for n := range res.Quantized {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d", n, res.Quantized[n]))
	}
	notes := []string{fmt.Sprintf("%s: integer ops: %s; inserted %d QUANTIZE, %d DEQUANTIZE", recipe, strings.Join(parts, ", "), res.Quantize, res.Dequantize)}
	for _, f := range res.Float {
		notes = append(notes, fmt.Sprintf("%s: subgraph %d operator %d %s (output %q) stays float: %s", recipe, f.Subgraph, f.Operator, f.Op, f.Output, f.Reason))
	}
	return notes
}
