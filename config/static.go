package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Static is a static (full-integer) recipe: `recipe: {static: {...}}` or
// the presets static_int8 and static_int16x8 (docs/SEMANTICS.md §16).
// Every op of the static op list gets integer activations with calibrated
// ranges (quantize.calibration), int8 per-channel weights and integer
// biases; the rest stays float behind DEQUANTIZE/QUANTIZE.
type Static struct {
	// Activations is 8 (static_int8) or 16 (static_int16x8).
	Activations int
	// Symmetric makes int8 activations symmetric (zero point 0); int16
	// activations are always symmetric.
	Symmetric bool
	// IntegerIO keeps the model's inputs and outputs integer instead of
	// float32 with QUANTIZE/DEQUANTIZE at the boundary.
	IntegerIO bool
	// Estimator merges the samples' ranges: minmax, moving_average or
	// percentile (each sample's range clipped to its Percentile-th and
	// (100−Percentile)-th percentiles, then min/max).
	Estimator  string
	Percentile float64
	// Int32Bias writes 16x8 biases as int32 with quantized_bias_type.
	Int32Bias bool
	// FloatOps are op types kept float; FloatOutputs keeps float the ops
	// whose output names it finds (Pattern as written).
	FloatOps     []string
	FloatOutputs *regexp.Regexp
	Pattern      string
	// Ops, when set, are the only op types quantized.
	Ops []string
	P   Pos
}

// Static range estimators (internal/static).
var staticEstimators = []string{"minmax", "moving_average", "percentile"}

// DefaultPercentile is the percentile estimator's P when the job sets none.
const DefaultPercentile = 99.99

var staticKeys = []string{"activations", "symmetric", "io", "estimator", "percentile", "bias", "float_ops", "float_outputs", "ops"}

// EstimatorKey is the estimator as internal/static names it:
// "percentile:P" or the estimator's name.
func (s *Static) EstimatorKey() string {
	if s.Estimator == "percentile" {
		return "percentile:" + strconv.FormatFloat(s.Percentile, 'g', -1, 64)
	}
	return s.Estimator
}

// static decodes a recipe's `static:` mapping.
func (d *decoder) static(n *yaml.Node, field string) *Static {
	s := &Static{Activations: 8, Estimator: "minmax", P: d.at(n)}
	before := len(d.errs)
	if d.deref(n) == nil {
		return s
	}
	d.mapping(n, field, staticKeys, false, func(key string, k, v *yaml.Node) {
		f := join(field, key)
		switch key {
		case "activations":
			if a, ok := d.enum(v, f, []string{"int8", "int16"}); ok && a == "int16" {
				s.Activations = 16
			}
		case "symmetric":
			s.Symmetric, _ = d.boolean(v, f)
		case "io":
			if io, ok := d.enum(v, f, []string{"float", "integer"}); ok {
				s.IntegerIO = io == "integer"
			}
		case "estimator":
			s.Estimator, _ = d.enum(v, f, staticEstimators)
		case "percentile":
			if p, ok := d.number(v, f); ok {
				if !(p > 50 && p <= 100) {
					d.errorf(d.deref(v), f, "percentile %g: want a number above 50 and at most 100", p)
					return
				}
				s.Percentile = p
			}
		case "bias":
			if b, ok := d.enum(v, f, []string{"int64", "int32"}); ok {
				s.Int32Bias = b == "int32"
			}
		case "float_ops":
			s.FloatOps = d.ops(v, f)
		case "ops":
			s.Ops = d.ops(v, f)
		case "float_outputs":
			if p, ok := d.nonEmpty(v, f); ok {
				re, err := regexp.Compile(p)
				if err != nil {
					d.errorf(d.deref(v), f, "bad regular expression: %v", err)
					return
				}
				s.FloatOutputs, s.Pattern = re, p
			}
		}
	})
	if len(d.errs) > before {
		return nil
	}
	switch {
	case s.Estimator == "percentile" && s.Percentile == 0:
		s.Percentile = DefaultPercentile
	case s.Estimator != "percentile" && s.Percentile != 0:
		d.errorf(n, join(field, "percentile"), "percentile is read by estimator: percentile only")
		return nil
	}
	if s.Activations == 16 && s.Symmetric {
		d.warnf(n, field, "int16 activations are always symmetric; symmetric changes nothing")
	}
	if s.Activations == 8 && s.Int32Bias {
		d.errorf(n, join(field, "bias"), "bias: int32 is the 8-bit default; the choice is for int16 activations")
		return nil
	}
	return s
}

// String summarises the recipe: "int8 asymmetric activations, float I/O,
// minmax".
func (s *Static) String() string {
	parts := []string{fmt.Sprintf("int%d", s.Activations)}
	switch {
	case s.Activations == 16:
		parts[0] += " symmetric activations"
		if s.Int32Bias {
			parts = append(parts, "int32 bias")
		}
	case s.Symmetric:
		parts[0] += " symmetric activations"
	default:
		parts[0] += " asymmetric activations"
	}
	io := "float I/O"
	if s.IntegerIO {
		io = "integer I/O"
	}
	est := s.Estimator
	if est == "percentile" {
		est += " " + strconv.FormatFloat(s.Percentile, 'g', -1, 64)
	}
	parts = append(parts, io, est)
	if len(s.Ops) > 0 {
		parts = append(parts, "ops "+strings.Join(s.Ops, "|"))
	}
	if len(s.FloatOps) > 0 {
		parts = append(parts, "float "+strings.Join(s.FloatOps, "|"))
	}
	if s.Pattern != "" {
		parts = append(parts, "float outputs /"+s.Pattern+"/")
	}
	return strings.Join(parts, ", ")
}
