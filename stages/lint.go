package stages

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/pipeline"
)

// Lint finds the lines of a job file that do nothing on the loaded model,
// once annotate has given every weight its role and layer:
//
//   - a per-layer override naming transformer blocks the model has no
//     weight of that role in (`layers: {"14-15": …}` on a 2-block model);
//   - an annotate rule whose pattern matches no op that reads a weight;
//   - a recipe slot (embedding, attention, feedforward) for a role no
//     weight has;
//   - a rule of an AI Edge Quantizer recipe that matches no op reading a
//     weight (named with the recipe file's line and column).
//
// Each finding is a config.Diagnostic naming the job file's line and
// column. They are warnings, logged and kept in State.Warnings; with
// Strict the stage fails with all of them, before anything is quantized or
// written.
type Lint struct {
	Rules   []config.Rule
	Recipes []*config.Recipe
	Strict  bool
}

func (*Lint) Name() string { return "lint" }

// Whole implements pipeline.WholeStage: on a bundle, Lint judges the job
// against all its sections together (a line that acts on one section does
// something).
func (*Lint) Whole() {}

// ErrStrict marks the error a strict Lint returns.
var ErrStrict = errors.New("--strict: the job has lines that do nothing on this model")

func (l *Lint) Run(ctx context.Context, s *pipeline.State) error {
	if s.Plan == nil {
		return errors.New("lint: no plan (annotate must run first)")
	}
	ds := lint(s.Plan, l.Rules, l.Recipes)
	var uses [][]*weightUse
	if ms, ok := s.Model.(*modelState); ok && ms != nil {
		uses = append(uses, ms.uses)
	}
	if bs, ok := s.Model.(*bundleState); ok {
		for _, p := range bs.parts {
			uses = append(uses, p.Model.(*modelState).uses)
		}
	}
	if len(uses) > 0 {
		ds = append(ds, lintAEQ(l.Recipes, uses)...).Sorted()
	}
	if len(ds) == 0 {
		return ctx.Err()
	}
	if l.Strict {
		return fmt.Errorf("%w:\n%w", ErrStrict, ds)
	}
	for _, d := range ds {
		msg := d.Error()
		s.Warnings = append(s.Warnings, msg)
		if !s.DryRun { // a plan prints them with the plan
			s.Log.Warn().Msg(msg)
		}
	}
	return ctx.Err()
}

// roleLayers is what the plan says about one role: how many weights have
// it, and in which transformer blocks.
type roleLayers struct {
	weights int
	layers  map[int]bool
}

func lint(plan *pipeline.Plan, rules []config.Rule, recipes []*config.Recipe) config.Diagnostics {
	roles := map[config.Role]*roleLayers{}
	for _, w := range plan.Weights {
		for _, r := range strings.Split(w.Role, "+") {
			rl := roles[config.Role(r)]
			if rl == nil {
				rl = &roleLayers{layers: map[int]bool{}}
				roles[config.Role(r)] = rl
			}
			rl.weights++
			if w.Layer != nil {
				rl.layers[*w.Layer] = true
			}
		}
	}
	var ds config.Diagnostics
	seen := map[string]bool{}
	add := func(d config.Diagnostic) {
		if k := d.Error(); !seen[k] {
			seen[k] = true
			ds = append(ds, d)
		}
	}
	ds = append(ds, lintRules(plan, rules)...)
	for _, r := range recipes {
		if r == nil {
			continue
		}
		field := "quantize.recipe"
		if r.Name != "" && r.Name != "custom" {
			field = fmt.Sprintf("quantize.recipe (%s)", r.Name)
		}
		for _, slot := range []struct {
			role config.Role
			rr   *config.RoleRecipe
		}{{config.RoleEmbedding, r.Embedding}, {config.RoleAttention, r.Attention}, {config.RoleFeedforward, r.Feedforward}} {
			if slot.rr == nil {
				continue
			}
			f := field + "." + string(slot.role)
			rl := roles[slot.role]
			if rl == nil {
				add(config.Diagnostic{Pos: slot.rr.P, Field: f, Msg: fmt.Sprintf(
					"no weight of the model has the role %s, so this does nothing (roles found: %s); check the annotate rules, or remove the line",
					slot.role, describeRoles(roles))})
				continue
			}
			for _, o := range slot.rr.Layers {
				missing := o.To - o.From + 1
				for l := range rl.layers {
					if o.From <= l && l <= o.To {
						missing--
					}
				}
				if missing == 0 {
					continue
				}
				key := fmt.Sprint(o.From)
				if o.To != o.From {
					key = fmt.Sprintf("%d-%d", o.From, o.To)
				}
				have := "in no transformer block"
				if len(rl.layers) > 0 {
					have = "in blocks " + layerRanges(rl.layers)
				}
				what := "this override does nothing"
				if missing < o.To-o.From+1 {
					what = fmt.Sprintf("%d of its %d blocks do not exist", missing, o.To-o.From+1)
				}
				blocks := "blocks " + key
				if o.From == o.To {
					blocks = "block " + key
				}
				add(config.Diagnostic{Pos: o.P, Field: f + ".layers." + key, Msg: fmt.Sprintf(
					"%s: the model's %s weights are %s, so %s", blocks, slot.role, have, what)})
			}
		}
	}
	return ds.Sorted()
}

// lintRules reports the job's annotate rules that matched no op. The plan
// lists the built-in rules first, then the job's, in order.
func lintRules(plan *pipeline.Plan, rules []config.Rule) config.Diagnostics {
	var ds config.Diagnostics
	first := len(plan.Rules) - len(rules)
	for i, r := range rules {
		if first+i < 0 || first+i >= len(plan.Rules) {
			continue
		}
		m := plan.Rules[first+i]
		if m.Source != r.P.String() || m.Ops > 0 {
			continue
		}
		ds = append(ds, config.Diagnostic{Pos: r.P, Field: fmt.Sprintf("annotate.rules[%d]", i), Msg: fmt.Sprintf(
			"match %q (role %s) matches no op that reads a weight, so the rule does nothing; op scopes are the ops' output tensor names joined by ';' (see qpipe inspect)",
			r.Pattern, r.Role)})
	}
	return ds
}

// lintAEQ reports the AI Edge Quantizer rules that match no op reading a
// weight, counted as the plan's rule lines count them (aeqRuleMatches).
func lintAEQ(recipes []*config.Recipe, models [][]*weightUse) config.Diagnostics {
	var ds config.Diagnostics
	for _, r := range recipes {
		if r == nil || len(r.Rules) == 0 {
			continue
		}
		ops := make([]int, len(r.Rules))
		for _, uses := range models { // a bundle's sections
			for i, m := range aeqRuleMatches(r, uses) {
				ops[i] += m.Ops
			}
		}
		for i, n := range ops {
			if n > 0 {
				continue
			}
			rule := &r.Rules[i]
			ds = append(ds, config.Diagnostic{Pos: rule.P, Msg: fmt.Sprintf(
				"%s matches no op that reads a weight, so it does nothing", rule)})
		}
	}
	return ds
}

func describeRoles(roles map[config.Role]*roleLayers) string {
	if len(roles) == 0 {
		return "none: the model has no weight a scheme can quantize"
	}
	names := make([]string, 0, len(roles))
	for r, rl := range roles {
		names = append(names, fmt.Sprintf("%s (%d)", r, rl.weights))
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// layerRanges formats a set of block indices as "0-3, 6".
func layerRanges(set map[int]bool) string {
	ls := make([]int, 0, len(set))
	for l := range set {
		ls = append(ls, l)
	}
	sort.Ints(ls)
	var parts []string
	for i := 0; i < len(ls); {
		j := i
		for j+1 < len(ls) && ls[j+1] == ls[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, fmt.Sprint(ls[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", ls[i], ls[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}
