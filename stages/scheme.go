package stages

import (
	"fmt"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// kind is what a scheme does to a weight.
type kind int

const (
	kindFloat     kind = iota // keep float32
	kindDynInt8               // int8 per-channel, hybrid kernels
	kindWOInt8                // int8 per-channel + DEQUANTIZE (symmetric or not)
	kindFP16                  // float16 + DEQUANTIZE
	kindInt4Block             // int4 blockwise, hybrid kernels
	kindWOInt4                // int4 per channel (or tensor) + DEQUANTIZE
)

// scheme is a resolved per-weight request.
type scheme struct {
	name      string
	kind      kind
	block     int
	symmetric bool
	perTensor bool           // int8 with one scale for the whole tensor
	cfg       *config.Scheme // what it was made from (nil for fallbacks)
	// scales is the int4 scale method (config.ScalesMinMax, ScalesSearch,
	// ScalesCalibrated, ScalesGPTQ); ScalesGPTQ or "" for int8 channelwise;
	// "" for every other kind.
	scales string
}

// searched reports whether the scheme picks its int4 scales by search.
func (s *scheme) searched() bool {
	return s.scales == config.ScalesSearch || s.scales == config.ScalesCalibrated
}

// gptq reports whether the scheme rounds with error compensation.
func (s *scheme) gptq() bool { return s.scales == config.ScalesGPTQ }

// label names the scheme with its scale method when that is not min-max:
// "dynamic_int4_block32+search".
func (s *scheme) label() string { return config.SchemeLabel(s.name, s.scales) }

func (s *scheme) dequantize() bool {
	return s.kind == kindWOInt8 || s.kind == kindFP16 || s.kind == kindWOInt4
}

var floatScheme = &scheme{name: "none", kind: kindFloat}

// fromConfig resolves a recipe's scheme; scales is the scale method that
// applies when the scheme sets none (the recipe's or the job's).
func fromConfig(c *config.Scheme, scales string) (*scheme, error) {
	if c == nil || c.Name == "none" {
		return floatScheme, nil
	}
	s := &scheme{name: c.Name, block: c.BlockSize, symmetric: c.Symmetric, perTensor: c.Granularity == config.GranularityTensorwise, cfg: c}
	switch {
	case c.Weight == "int8" && c.Mode == "dynamic_range":
		s.kind = kindDynInt8
		s.scales = int8Scales(c, scales)
	case c.Weight == "int8" && c.Mode == "weight_only":
		s.kind = kindWOInt8
		s.scales = int8Scales(c, scales)
	case c.Weight == "fp16":
		s.kind = kindFP16
	case c.Weight == "int4" && c.Granularity == "blockwise":
		s.kind = kindInt4Block
		s.scales = config.ScalesMinMax
		if c.Scales != "" {
			s.scales = c.Scales
		} else if scales != "" {
			s.scales = scales
		}
	case c.Weight == "int4" && c.Mode == "weight_only":
		s.kind = kindWOInt4
	default:
		return nil, fmt.Errorf("scheme %q (weight %s, mode %s, granularity %s) has no implementation", c.Name, c.Weight, c.Mode, c.Granularity)
	}
	return s, nil
}

// int8Scales is an int8 scheme's scale method: gptq when the scheme (or,
// setting none, the recipe or job) asks for it; the int4-only methods do
// not apply.
func int8Scales(c *config.Scheme, scales string) string {
	m := c.Scales
	if m == "" {
		m = scales
	}
	if m == config.ScalesGPTQ && (c.Granularity == config.GranularityChannelwise || c.Granularity == config.GranularityTensorwise) {
		return m
	}
	return ""
}

// validFor says whether the scheme applies to the op's weight input at all
// (SEMANTICS.md §5); an invalid scheme is skipped and the op falls back to
// the previous applicable rule, as upstream.
func (s *scheme) validFor(code fb.BuiltinOperator, input int) bool {
	if s.kind == kindFloat {
		return true
	}
	if s.cfg != nil && !s.cfg.AppliesTo(fb.EnumNamesBuiltinOperator[code]) {
		return false
	}
	// LiteRT's hybrid BATCH_MATMUL needs a float LHS and an int8 RHS.
	return s.kind != kindDynInt8 || code != fb.BuiltinOperatorBATCH_MATMUL || input == 1
}

// channelAxis is the per-channel axis of op's weight (SEMANTICS.md §5).
func channelAxis(code fb.BuiltinOperator, op *fb.OperatorT, input int, rank int) int {
	switch code {
	case fb.BuiltinOperatorDEPTHWISE_CONV_2D:
		return 3
	case fb.BuiltinOperatorBATCH_MATMUL:
		// As the reference quantizer: the last axis, or the one before it
		// when adj_y, for every constant input.
		if op.BuiltinOptions != nil {
			if o, ok := op.BuiltinOptions.Value.(*fb.BatchMatMulOptionsT); ok && o.AdjY {
				return rank - 2
			}
		}
		return rank - 1
	}
	return 0
}

// candidate is a scheme a recipe offers a weight, and the AI Edge
// Quantizer rule that offers it (nil for the role slots).
type candidate struct {
	scheme *config.Scheme
	rule   *config.ScopeRule
}

// candidates lists the schemes a recipe offers the weight read by u, lowest
// precedence first: default, the role's, the role's layer, then the scope
// rules that match the op.
func candidates(r *config.Recipe, u *weightUse) []candidate {
	var out []candidate
	add := func(rr *config.RoleRecipe) {
		if rr == nil {
			return
		}
		if rr.All != nil {
			out = append(out, candidate{scheme: rr.All})
		}
		if u.layer < 0 {
			return
		}
		for _, l := range rr.Layers {
			if u.layer >= l.From && u.layer <= l.To {
				out = append(out, candidate{scheme: l.Scheme})
			}
		}
	}
	add(r.Default)
	switch u.role {
	case config.RoleEmbedding:
		add(r.Embedding)
	case config.RoleAttention:
		add(r.Attention)
	case config.RoleFeedforward:
		add(r.Feedforward)
	}
	op := fb.EnumNamesBuiltinOperator[u.code]
	for i := range r.Rules {
		if rule := &r.Rules[i]; rule.Matches(op, u.scope) {
			out = append(out, candidate{scheme: rule.Scheme, rule: rule})
		}
	}
	return out
}
