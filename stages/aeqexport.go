package stages

import (
	"fmt"
	"regexp"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/tflite/fb"
	"github.com/qpipe/qpipe/pipeline"
)

// AEQRules expresses what the quantize stage resolved for every weight of
// the branch state s (after a run or a dry run) as AI Edge Quantizer rules:
// a rule for every op with the recipe's default scheme, then one rule per
// op whose outcome differs from what that rule alone would give it, matched
// by its exact scope and op name. That carries roles, per-layer overrides,
// scope rules and fallbacks over for this model. notes lists what the
// reference quantizer would still do differently.
func AEQRules(s *pipeline.State, r *config.Recipe) (rules []config.ScopeRule, notes []string, err error) {
	ms, err := model(s)
	if err != nil {
		return nil, nil, err
	}
	if r.Static != nil {
		// A static recipe does not depend on the model's weights.
		rules, err := r.AEQRules()
		return rules, nil, err
	}
	var base *config.Scheme
	if r.Default != nil && !r.Default.All.IsNone() {
		base = r.Default.All
	}
	first, err := config.AEQRule(".*", "", base)
	if err != nil {
		return nil, nil, err
	}
	rules = append(rules, first)

	resolved := map[*weightUse]string{}
	for _, j := range ms.jobs {
		for _, g := range j.tensors {
			for _, u := range g.uses {
				resolved[u] = g.req.sc.name
			}
		}
	}
	type opKey struct {
		scope string
		code  fb.BuiltinOperator
	}
	type outcome struct {
		scheme string
		label  string
	}
	var order []opKey
	seen := map[opKey]outcome{}
	for _, u := range ms.uses {
		name := resolved[u]
		if name == "" {
			name = config.SchemeNone
		}
		if u.code == fb.BuiltinOperatorBATCH_MATMUL && u.input == 0 && name == config.SchemeNone && base != nil && base.Weight == config.WeightInt8 && base.Mode == config.ModeDynamicRange {
			notes = append(notes, fmt.Sprintf("%s: qpipe keeps the constant left operand float (LiteRT's hybrid kernel needs a float LHS); the reference quantizer would quantize it", opLabel(u)))
			continue
		}
		k := opKey{u.scope, u.code}
		if prev, ok := seen[k]; ok {
			if prev.scheme != name {
				return nil, nil, fmt.Errorf("%s gets %s but %s, with the same op scope, gets %s: one AI Edge Quantizer rule cannot tell them apart", opLabel(u), name, prev.label, prev.scheme)
			}
			continue
		}
		seen[k] = outcome{name, opLabel(u)}
		order = append(order, k)
	}
	for _, k := range order {
		name := seen[k].scheme
		op := fb.EnumNamesBuiltinOperator[k.code]
		// What the first rule alone gives the op upstream.
		baseName := config.SchemeNone
		if base != nil && base.AppliesTo(op) {
			baseName = base.Name
		}
		if name == baseName {
			continue
		}
		s, err := config.ParseScheme(name)
		if err != nil {
			return nil, nil, fmt.Errorf("scheme %s: %v", name, err)
		}
		rule, err := config.AEQRule("^"+regexp.QuoteMeta(k.scope)+"$", op, s)
		if err != nil {
			return nil, nil, err
		}
		rules = append(rules, rule)
	}
	return rules, notes, nil
}

// aeqRuleMatches counts, for each AI Edge Quantizer rule of the recipe, the
// ops reading a weight whose scope and name it matches (whether or not its
// scheme then suits them), for the plan's rule lines.
func aeqRuleMatches(r *config.Recipe, uses []*weightUse) []pipeline.RuleMatch {
	out := make([]pipeline.RuleMatch, 0, len(r.Rules))
	for i := range r.Rules {
		rule := &r.Rules[i]
		type opRef struct{ sg, op int }
		seen := map[opRef]bool{}
		for _, u := range uses {
			if !seen[opRef{u.sg, u.op}] && rule.Matches(fb.EnumNamesBuiltinOperator[u.code], u.scope) {
				seen[opRef{u.sg, u.op}] = true
			}
		}
		pattern := rule.Pattern
		if rule.Op != "" {
			pattern += " (" + rule.Op + ")"
		}
		out = append(out, pipeline.RuleMatch{Role: rule.Scheme.Name, Pattern: pattern, Source: fmt.Sprintf("%s rule %d", r.AEQ, rule.Index), Ops: len(seen)})
	}
	return out
}
