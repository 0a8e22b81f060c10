package stages

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
	"github.com/qpipe/qpipe/pipeline"
)

// Annotate gives every op that reads a weight a role (embedding, attention,
// feedforward or default) and, where its name has one, a transformer layer
// index. Built-in rules come first, the job's rules after; for each op the
// last rule that matches wins (as upstream, SEMANTICS.md §4).
type Annotate struct {
	Rules []config.Rule
}

func (*Annotate) Name() string { return "annotate" }

// roleRule is one matching rule, built in or from the job file.
type roleRule struct {
	role   config.Role
	re     *regexp.Regexp
	ops    map[fb.BuiltinOperator]bool // nil: every op
	layer  *regexp.Regexp              // where to find the layer when re captures none
	source string
}

const pkgPattern = `(ai_edge_torch|litert_torch)`

// layerInName finds a layer index in common checkpoint-style names:
// layers.3, layers_3, blocks[3], h.3, transformer_blocks[3].
var layerInName = regexp.MustCompile(`(?:layers?|blocks?|\bh)[._/\[](?P<layer>\d+)`)

// builtinRules recognise models converted by AI Edge Torch / LiteRT Torch
// (the upstream regexes, last so they win) and common layer names.
func builtinRules() []roleRule {
	embeddingOps := map[fb.BuiltinOperator]bool{fb.BuiltinOperatorEMBEDDING_LOOKUP: true}
	return []roleRule{
		{role: config.RoleEmbedding, re: regexp.MustCompile(`(?i)(embed_tokens|tok_embeddings|word_embeddings|wte|embedding|embed)`), ops: embeddingOps, source: "built-in: common embedding names"},
		{role: config.RoleAttention, re: regexp.MustCompile(`(?i)(self_attn|attention|attn|q_proj|k_proj|v_proj|o_proj|qkv|out_proj)`), layer: layerInName, source: "built-in: common attention names"},
		{role: config.RoleFeedforward, re: regexp.MustCompile(`(?i)(mlp|ffn|feed_?forward|gate_proj|up_proj|down_proj|fc1|fc2)`), layer: layerInName, source: "built-in: common feed-forward names"},
		{role: config.RoleEmbedding, re: regexp.MustCompile(`Embedding_tok_embedding`), source: "built-in: upstream embedding"},
		{role: config.RoleAttention, re: regexp.MustCompile(`transformer_blocks\[(?P<layer>\d+)\]/` + pkgPattern + `.generative.layers.attention`), source: "built-in: upstream attention, per block"},
		{role: config.RoleAttention, re: regexp.MustCompile(`transformer_block/` + pkgPattern + `.generative.layers.attention`), source: "built-in: upstream attention"},
		{role: config.RoleFeedforward, re: regexp.MustCompile(`transformer_blocks\[(?P<layer>\d+)\]/` + pkgPattern + `.generative.layers.feed_forward`), source: "built-in: upstream feed-forward, per block"},
		{role: config.RoleFeedforward, re: regexp.MustCompile(`transformer_block/` + pkgPattern + `.generative.layers.feed_forward`), source: "built-in: upstream feed-forward"},
	}
}

func userRules(rules []config.Rule) ([]roleRule, error) {
	out := make([]roleRule, 0, len(rules))
	for _, r := range rules {
		rr := roleRule{role: r.Role, re: r.Match, source: r.P.String()}
		for _, name := range r.Ops {
			code, ok := opCodeByName(name)
			if !ok {
				return nil, fmt.Errorf("%s: unknown op %q in annotate rule", r.P, name)
			}
			if rr.ops == nil {
				rr.ops = map[fb.BuiltinOperator]bool{}
			}
			rr.ops[code] = true
		}
		out = append(out, rr)
	}
	return out, nil
}

func opCodeByName(name string) (fb.BuiltinOperator, bool) {
	for code, n := range fb.EnumNamesBuiltinOperator {
		if strings.EqualFold(n, name) {
			return code, true
		}
	}
	return 0, false
}

// opScope is the upstream op scope: the op's output tensor names joined by
// ";" with a trailing ";", or its input names when no output has one.
func opScope(sg *fb.SubGraphT, op *fb.OperatorT) string {
	join := func(idx []int32) string {
		var b strings.Builder
		for _, i := range idx {
			if i < 0 || int(i) >= len(sg.Tensors) || sg.Tensors[i].Name == "" {
				continue
			}
			b.WriteString(sg.Tensors[i].Name)
			b.WriteByte(';')
		}
		return b.String()
	}
	s := join(op.Outputs)
	if s == "" {
		s = join(op.Inputs)
	}
	if len(s) > 10000 {
		s = s[:10000]
	}
	return s
}

// matchLayer returns the layer index a rule captured, or -1.
func (r *roleRule) matchLayer(scope string) (matched bool, layer int) {
	m := r.re.FindStringSubmatch(scope)
	if m == nil {
		return false, -1
	}
	layer = -1
	if i := r.re.SubexpIndex("layer"); i > 0 && m[i] != "" {
		layer, _ = strconv.Atoi(m[i])
	} else if r.layer != nil {
		if lm := r.layer.FindStringSubmatch(scope); lm != nil {
			layer, _ = strconv.Atoi(lm[r.layer.SubexpIndex("layer")])
		}
	}
	return true, layer
}

func (a *Annotate) Run(ctx context.Context, s *pipeline.State) error {
	ms, err := model(s)
	if err != nil {
		return err
	}
	user, err := userRules(a.Rules)
	if err != nil {
		return err
	}
	rules := append(builtinRules(), user...)
	counts := make([]int, len(rules))
	m := ms.m
	ms.uses = ms.uses[:0]
	var notes []string
	for si, sg := range m.Meta.Subgraphs {
		for oi, op := range sg.Operators {
			code := m.OpCode(op)
			ins := weightInputs(code, len(op.Inputs))
			if len(ins) == 0 {
				continue
			}
			var scope string
			for _, p := range ins {
				ti := op.Inputs[p]
				if ti < 0 {
					continue
				}
				t := sg.Tensors[ti]
				ok, why := isFloatWeight(m, t)
				if !ok {
					if why != "" {
						notes = append(notes, fmt.Sprintf("%s: %s", tensorLabel(t, si, int(ti)), why))
					}
					continue
				}
				if scope == "" {
					scope = opScope(sg, op)
				}
				u := &weightUse{sg: si, op: oi, input: p, tensor: int(ti), code: code, scope: scope, role: config.RoleDefault, layer: -1}
				for ri := range rules {
					r := &rules[ri]
					if r.ops != nil && !r.ops[code] {
						continue
					}
					if ok, layer := r.matchLayer(scope); ok {
						u.role, u.layer = r.role, layer
						if p == ins[0] {
							counts[ri]++
						}
					}
				}
				ms.uses = append(ms.uses, u)
			}
		}
	}
	markTiedHeads(m, ms.uses)
	plan := &pipeline.Plan{Model: ms.path, Notes: dedupe(notes)}
	for ri, r := range rules {
		plan.Rules = append(plan.Rules, pipeline.RuleMatch{Role: string(r.role), Pattern: r.re.String(), Source: r.source, Ops: counts[ri]})
	}
	plan.Weights = planWeights(m, ms.uses)
	plan.Sum()
	s.Plan = plan // Lint warns about the job's rules that matched nothing
	return ctx.Err()
}

// markTiedHeads gives a FULLY_CONNECTED whose weight shares its buffer with
// an embedding table the embedding role: one quantized table then serves
// both (upstream's lm_head rule, restricted to really tied weights).
func markTiedHeads(m *tflite.Model, uses []*weightUse) {
	tables := map[uint32]*weightUse{}
	for _, u := range uses {
		if u.code == fb.BuiltinOperatorEMBEDDING_LOOKUP && u.role == config.RoleEmbedding {
			tables[m.Meta.Subgraphs[u.sg].Tensors[u.tensor].Buffer] = u
		}
	}
	for _, u := range uses {
		if u.code != fb.BuiltinOperatorFULLY_CONNECTED {
			continue
		}
		if e, ok := tables[m.Meta.Subgraphs[u.sg].Tensors[u.tensor].Buffer]; ok {
			u.role, u.layer, u.tiedLMHead = config.RoleEmbedding, e.layer, true
		}
	}
}

// planWeights lists each weight tensor once, with the ops that read it.
func planWeights(m *tflite.Model, uses []*weightUse) []*pipeline.WeightPlan {
	byKey := map[tensorKey]*pipeline.WeightPlan{}
	var out []*pipeline.WeightPlan
	for _, u := range uses {
		t := m.Meta.Subgraphs[u.sg].Tensors[u.tensor]
		w, ok := byKey[u.key()]
		if !ok {
			w = &pipeline.WeightPlan{
				Subgraph: u.sg, Tensor: u.tensor, Name: t.Name, Shape: t.Shape,
				Type: t.Type.String(), Role: string(u.role), Buffer: t.Buffer,
				BytesIn: m.Buffers[t.Buffer].Data.Len(), BytesOut: m.Buffers[t.Buffer].Data.Len(),
			}
			if u.layer >= 0 {
				l := u.layer
				w.Layer = &l
			}
			byKey[u.key()] = w
			out = append(out, w)
		} else if w.Role != string(u.role) && !strings.Contains(w.Role, string(u.role)) {
			w.Role += "+" + string(u.role)
		}
		name := fmt.Sprintf("%s#%d", fb.EnumNamesBuiltinOperator[u.code], u.op)
		if u.tiedLMHead {
			name += " (tied lm_head)"
		}
		w.Ops = append(w.Ops, name)
	}
	return out
}

func dedupe(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}
