package conformance

import (
	"bytes"
	"fmt"
	"math"

	"github.com/qpipe/qpipe/internal/litert"
)

// Errors is how far one model's outputs are from a reference model's on
// the same inputs: the worst output tensor of every signature run.
type Errors struct {
	// RelL2 is ‖got − want‖₂ / ‖want‖₂ of one output tensor, with the sums
	// taken over every seed; the largest over the outputs.
	RelL2 float64
	// MaxAbs is the largest |got − want| of any element of any output.
	MaxAbs float64
	// RelMax is, per output, MaxAbs divided by the largest |want|; the
	// largest over the outputs. Unlike MaxAbs it does not depend on the
	// scale of a model's outputs, so one bound fits every model.
	RelMax float64
}

// Worse returns the elementwise maximum of e and o.
func (e Errors) Worse(o Errors) Errors {
	return Errors{RelL2: max(e.RelL2, o.RelL2), MaxAbs: max(e.MaxAbs, o.MaxAbs), RelMax: max(e.RelMax, o.RelMax)}
}

// Comparison accumulates the outputs of runs of two models, one Add per
// run (the same signature and inputs for both), into Errors.
type Comparison struct {
	outs []outputSums // by "signature/output index", in order of first Add
	keys map[string]int
	// Problems lists what cannot be measured as a distance: a different
	// number of outputs, element types or shapes, and integer outputs that
	// differ. Each one makes Errors infinite.
	Problems []string
}

type outputSums struct {
	diff2, want2    float64
	maxAbs, maxWant float64
	nan             bool // got had a NaN or infinity where want was finite
}

// Add compares the outputs got and want of one run of signature sig.
func (c *Comparison) Add(sig string, got, want []litert.Tensor) {
	if c.keys == nil {
		c.keys = map[string]int{}
	}
	if len(got) != len(want) {
		c.Problems = append(c.Problems, fmt.Sprintf("signature %q: %d outputs, want %d", sig, len(got), len(want)))
		return
	}
	for i := range want {
		g, w := got[i], want[i]
		where := fmt.Sprintf("signature %q output %d (%s)", sig, i, w.Name)
		if g.DType != w.DType || !sameShape(g.Shape, w.Shape) || len(g.Data) != len(w.Data) {
			c.Problems = append(c.Problems, fmt.Sprintf("%s: %s %v, want %s %v", where, g.DType, g.Shape, w.DType, w.Shape))
			continue
		}
		if w.DType != "float32" {
			if !bytes.Equal(g.Data, w.Data) {
				c.Problems = append(c.Problems, fmt.Sprintf("%s: %s values differ", where, w.DType))
			}
			continue
		}
		key := fmt.Sprintf("%s/%d", sig, i)
		k, ok := c.keys[key]
		if !ok {
			k = len(c.outs)
			c.keys[key] = k
			c.outs = append(c.outs, outputSums{})
		}
		c.outs[k].add(g.Float32s(), w.Float32s())
	}
}

func (s *outputSums) add(got, want []float32) {
	for i, w := range want {
		g := float64(got[i])
		wf := float64(w)
		if math.IsNaN(g) || math.IsInf(g, 0) {
			if g != wf && !(math.IsNaN(g) && math.IsNaN(wf)) {
				s.nan = true
			}
			continue
		}
		d := g - wf
		s.diff2 += d * d
		s.want2 += wf * wf
		s.maxAbs = max(s.maxAbs, math.Abs(d))
		s.maxWant = max(s.maxWant, math.Abs(wf))
	}
}

// Errors returns the accumulated distance. An output whose reference is
// all zeros has relative errors 0 if it matches and +Inf if not.
func (c *Comparison) Errors() Errors {
	inf := math.Inf(1)
	if len(c.Problems) > 0 {
		return Errors{RelL2: inf, MaxAbs: inf, RelMax: inf}
	}
	var e Errors
	for _, s := range c.outs {
		if s.nan {
			return Errors{RelL2: inf, MaxAbs: inf, RelMax: inf}
		}
		e = e.Worse(Errors{RelL2: ratio(math.Sqrt(s.diff2), math.Sqrt(s.want2)), MaxAbs: s.maxAbs, RelMax: ratio(s.maxAbs, s.maxWant)})
	}
	return e
}

func ratio(num, den float64) float64 {
	switch {
	case num == 0:
		return 0
	case den == 0:
		return math.Inf(1)
	}
	return num / den
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
