package config

import (
	"fmt"
	"regexp"
	"strings"
)

// Static recipes as AI Edge Quantizer rules (docs/SEMANTICS.md §16.1): the
// reference's default_a8w8 / default_a16w8 rule — min-max with an
// activation_tensor_config, INTEGER compute — plus no_quantize rules for
// what stays float: the virtual INPUT and OUTPUT ops (float I/O), op types,
// output-name patterns.

// aeqIO are the reference quantizer's virtual graph input and output ops.
const (
	aeqInput  = "INPUT"
	aeqOutput = "OUTPUT"
)

// staticAEQRules expresses s as rules.
func staticAEQRules(s *Static) ([]ScopeRule, error) {
	var out []ScopeRule
	add := func(pattern, op string, st *Static) error {
		r, err := AEQRule(pattern, op, nil)
		if err != nil {
			return err
		}
		r.Static = st
		out = append(out, r)
		return nil
	}
	if len(s.Ops) == 0 {
		if err := add(".*", "", s); err != nil {
			return nil, err
		}
	}
	for _, op := range s.Ops {
		if err := add(".*", op, s); err != nil {
			return nil, err
		}
	}
	if !s.IntegerIO {
		if err := add(".*", aeqInput, nil); err != nil {
			return nil, err
		}
		if err := add(".*", aeqOutput, nil); err != nil {
			return nil, err
		}
	}
	for _, op := range s.FloatOps {
		if err := add(".*", op, nil); err != nil {
			return nil, err
		}
	}
	if s.Pattern != "" {
		if err := add(s.Pattern, "", nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// staticConfig checks a rule's op_config that has an
// activation_tensor_config and returns the static recipe it asks for, or
// the node and field at fault and why.
func (d *aeqDecoder) staticConfig(alg string, c *aeqConfig, field string) (*Static, bool) {
	wf := func(k string) string { return join(field, aeqOpConfig+"."+k) }
	bad := func(n *jsonNode, f, format string, args ...any) (*Static, bool) {
		if n == nil {
			n = c.node
		}
		d.errorf(n.off, f, format, args...)
		return nil, false
	}
	if alg != AEQMinMax {
		return bad(c.activation, wf(aeqActivation), "static activations with algorithm %s: qpipe runs them with %s", alg, AEQMinMax)
	}
	a := struct {
		bits                  int64
		symmetric             bool
		granularity, dtype    string
		bitsNode, granNode    *jsonNode
		sawSymmetric, sawBits bool
	}{symmetric: true, granularity: "TENSORWISE", dtype: "INT"}
	af := wf(aeqActivation)
	before := len(d.errs)
	d.object(c.activation, af, []string{"num_bits", "symmetric", "granularity", "dtype", "block_size", "algorithm_params"}, func(m jsonMember, f string) {
		switch m.name {
		case "num_bits":
			a.bits, a.sawBits = d.integer(m.val, f)
			a.bitsNode = m.val
		case "symmetric":
			a.symmetric, a.sawSymmetric = d.boolean(m.val, f)
		case "granularity":
			a.granularity, _ = d.enum(m.val, f, aeqGranularities)
			a.granNode = m.val
		case "dtype":
			a.dtype, _ = d.enum(m.val, f, []string{"INT", "FLOAT"})
		}
	})
	if len(d.errs) > before {
		return nil, false
	}
	switch {
	case !a.sawBits:
		return bad(c.activation, af, "missing num_bits (8 or 16)")
	case a.bits != 8 && a.bits != 16:
		return bad(a.bitsNode, join(af, "num_bits"), "activations of %d bits: the reference quantizer and LiteRT's kernels take 8 or 16", a.bits)
	case a.granularity != "TENSORWISE":
		return bad(a.granNode, join(af, "granularity"), "%s activations: activations are quantized per tensor (the reference policy allows nothing else)", a.granularity)
	case a.dtype != "INT":
		return bad(c.activation, join(af, "dtype"), "activation dtype %s: static activations are INT", a.dtype)
	case a.bits == 16 && !a.symmetric:
		return bad(c.activation, join(af, "symmetric"), "asymmetric int16 activations: LiteRT's int16 kernels need zero point 0")
	case c.compute != "INTEGER" || c.dequantize:
		return bad(c.computeNode, wf("compute_precision"), "static activations need compute_precision INTEGER and explicit_dequantize false")
	case c.hasWCfgs == nil:
		return bad(c.node, wf(aeqWeightCfg), "missing weight_tensor_config")
	case c.bits != 8 || !c.symmetric || c.granularity != "CHANNELWISE" || c.dtype != "INT":
		return bad(c.hasWCfgs, wf(aeqWeightCfg), "static weights of %d bits, symmetric %t, %s: qpipe writes int8 symmetric CHANNELWISE (the reference's static recipes)", c.bits, c.symmetric, c.granularity)
	}
	return &Static{Activations: int(a.bits), Symmetric: a.bits == 8 && a.symmetric, Estimator: "minmax"}, true
}

// staticRecipe turns rules holding a static rule into a static Recipe:
// every static rule must ask the same, and the no_quantize rules must be
// ones a static recipe can say (INPUT and OUTPUT, an op type for every
// scope, or a scope pattern for every op).
func staticRecipe(path string, rules []ScopeRule) (*Recipe, error) {
	var s *Static
	var ops, floatOps, patterns []string
	floatIn, floatOut := false, false
	for _, r := range rules {
		switch {
		case r.Static != nil:
			if s != nil && (s.Activations != r.Static.Activations || s.Symmetric != r.Static.Symmetric) {
				return nil, Diagnostics{{Pos: r.P, Msg: fmt.Sprintf("%s asks for other static activations than an earlier rule; qpipe writes one activation width and form per model", r.String())}}
			}
			if s == nil {
				c := *r.Static
				s = &c
			}
			if r.Op != "" || r.Pattern != ".*" {
				if r.Pattern != ".*" {
					return nil, Diagnostics{{Pos: r.P, Msg: fmt.Sprintf("%s: a static rule for some scopes only (%s) is not supported; use regex \".*\" with an operation, and no_quantize rules for what stays float", r.String(), quote(r.Pattern))}}
				}
				ops = append(ops, r.Op)
			} else {
				ops = nil
			}
		case r.Scheme == nil || r.Scheme.IsNone():
			switch {
			case r.Op == aeqInput:
				floatIn = true
			case r.Op == aeqOutput:
				floatOut = true
			case r.Pattern == ".*" && r.Op != "":
				floatOps = append(floatOps, r.Op)
			case r.Op == "":
				patterns = append(patterns, r.Pattern)
			default:
				return nil, Diagnostics{{Pos: r.P, Msg: fmt.Sprintf("%s: no_quantize for one op type within some scopes is not expressible in a static recipe; use an op type or a scope pattern", r.String())}}
			}
		default:
			return nil, Diagnostics{{Pos: r.P, Msg: fmt.Sprintf("%s (%s) next to static rules: mixing weight-only or dynamic schemes into a static model is not supported", r.String(), r.Scheme.Name)}}
		}
	}
	if floatIn != floatOut {
		return nil, Diagnostics{{Pos: Pos{File: path, Line: 1, Col: 1}, Msg: "no_quantize for only one of INPUT and OUTPUT: qpipe keeps both float or both integer"}}
	}
	s.IntegerIO = !floatIn
	s.Ops, s.FloatOps = ops, floatOps
	if len(patterns) > 0 {
		s.Pattern = strings.Join(patterns, "|")
		re, err := regexp.Compile(s.Pattern)
		if err != nil {
			return nil, err
		}
		s.FloatOutputs = re
	}
	s.P = Pos{File: path, Line: 1, Col: 1}
	name := aeqName(path)
	return &Recipe{Name: name, Suffix: name, Static: s, AEQ: path, P: s.P}, nil
}
