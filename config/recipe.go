package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Role is what a weight does in a generative model, as far as recipes care.
type Role string

// The roles a job file can name in recipes and annotate rules.
const (
	RoleDefault     Role = "default"
	RoleEmbedding   Role = "embedding"
	RoleAttention   Role = "attention"
	RoleFeedforward Role = "feedforward"
)

// RoleLMHead is the logits FULLY_CONNECTED that shares its weight with the
// embedding table. The annotate stage assigns it; job files cannot name it
// (there is no lm_head slot upstream either). Resolve gives it the embedding
// recipe when one is set, else the default.
const RoleLMHead Role = "lm_head"

// UserRoles lists the roles a job file may use, in precedence order.
var UserRoles = []Role{RoleDefault, RoleEmbedding, RoleAttention, RoleFeedforward}

func roleNames() []string {
	names := make([]string, len(UserRoles))
	for i, r := range UserRoles {
		names[i] = string(r)
	}
	return names
}

// maxLayer bounds layer indices in `layers:` keys.
const maxLayer = 1 << 20

// Recipe maps roles and transformer blocks to schemes. Every slot is
// optional; an unset slot (nil) leaves the decision to a lower-precedence
// one (see Resolve).
type Recipe struct {
	// Name is the preset name, or "custom" (or the mapping's `name:`) for
	// a recipe written out in the job file.
	Name string
	// Suffix is what {suffix} expands to in serialize paths: the upstream
	// converter's suffix for presets (q8, q4_block32, ...), "custom" (or
	// the mapping's `suffix:`) for a written-out recipe.
	Suffix string

	Default     *RoleRecipe // every weight; never has Layers
	Embedding   *RoleRecipe // the token embedding table (and a tied lm_head); never has Layers
	Attention   *RoleRecipe // attention weights, optionally per transformer block
	Feedforward *RoleRecipe // feed-forward weights, optionally per transformer block

	// Rules are scope rules from an AI Edge Quantizer recipe file (AEQ),
	// in resolution order: for each op they come after the role slots, and
	// the last one that matches the op and is valid for it wins.
	Rules []ScopeRule
	// AEQ is the AI Edge Quantizer recipe file the Rules come from.
	AEQ string
	// Sections replaces this recipe for a LiteRT-LM bundle's sections by
	// model type: an AI Edge Quantizer model-type mapping file
	// (LoadAEQMapping); QuantizeStage.Sections wins over it.
	Sections map[string]*Recipe

	// Scales is the scale method of the recipe's int4 schemes that do not
	// set their own (Scheme.Scales); "" leaves it to the quantize stage.
	Scales string

	// Warning is set when the recipe was chosen by a deprecated upstream
	// name; the caller should log it.
	Warning string

	// P is where the recipe was written: in the job file, or in
	// recipes.yaml for a preset obtained from Preset.
	P Pos
}

// RoleRecipe is one slot of a Recipe.
type RoleRecipe struct {
	// All applies to every weight of the role. nil = not set; the
	// keep-float marker (Scheme.IsNone) = explicitly left float.
	All *Scheme
	// Layers overrides All for some transformer blocks. Sorted by From;
	// the ranges do not overlap.
	Layers []LayerOverride
	P      Pos
}

// LayerOverride is the scheme for the transformer blocks From..To
// (inclusive) of one role.
type LayerOverride struct {
	From, To int
	Scheme   *Scheme // nil means keep float ("none")
	P        Pos
}

// Resolve returns the scheme for a weight of the given role in transformer
// block layer (-1 = not in a block), or nil to keep it float. Precedence
// follows upstream: default < role-wide (All) < per-layer override; a
// RoleLMHead weight follows the embedding slot when it is set. Whether the
// scheme suits the op that reads the weight is the quantize stage's
// business, not the recipe's.
func (r *Recipe) Resolve(role Role, layer int) *Scheme {
	if r == nil {
		return nil
	}
	s := r.Default.pick(-1, nil)
	switch role {
	case RoleEmbedding, RoleLMHead:
		s = r.Embedding.pick(-1, s)
	case RoleAttention:
		s = r.Attention.pick(layer, s)
	case RoleFeedforward:
		s = r.Feedforward.pick(layer, s)
	}
	if s.IsNone() {
		return nil
	}
	return s
}

// pick applies the slot on top of the scheme s chosen so far.
func (rr *RoleRecipe) pick(layer int, s *Scheme) *Scheme {
	if rr == nil {
		return s
	}
	if rr.All != nil {
		s = rr.All
	}
	if layer >= 0 {
		for _, o := range rr.Layers {
			if o.From <= layer && layer <= o.To {
				if o.Scheme == nil {
					return noneScheme
				}
				return o.Scheme
			}
		}
	}
	return s
}

// String summarises the recipe: "default: fp16, attention:
// dynamic_int4_block32, feedforward: dynamic_int4_block256 [0: dynamic_int8,
// 14-15: dynamic_int8]". Unset slots are left out.
func (r *Recipe) String() string {
	var parts []string
	for _, slot := range []struct {
		name string
		rr   *RoleRecipe
	}{{"default", r.Default}, {"embedding", r.Embedding}, {"attention", r.Attention}, {"feedforward", r.Feedforward}} {
		if slot.rr != nil {
			parts = append(parts, slot.name+": "+slot.rr.String())
		}
	}
	if len(r.Rules) > 0 {
		parts = append(parts, fmt.Sprintf("%d AI Edge Quantizer rule(s) from %s", len(r.Rules), r.AEQ))
	}
	if len(parts) == 0 {
		return "(empty)"
	}
	return strings.Join(parts, ", ")
}

// String summarises the slot: "dynamic_int4_block256 [0: dynamic_int8]".
func (rr *RoleRecipe) String() string {
	var b strings.Builder
	if rr.All != nil {
		b.WriteString(rr.All.Name)
	} else {
		b.WriteString("(default)")
	}
	if len(rr.Layers) > 0 {
		b.WriteString(" [")
		for i, o := range rr.Layers {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(o.Range())
			b.WriteString(": ")
			if o.Scheme == nil {
				b.WriteString(SchemeNone)
			} else {
				b.WriteString(o.Scheme.Name)
			}
		}
		b.WriteString("]")
	}
	return b.String()
}

// Range formats the blocks as in a job file: "3" or "14-15".
func (o LayerOverride) Range() string {
	if o.From == o.To {
		return strconv.Itoa(o.From)
	}
	return fmt.Sprintf("%d-%d", o.From, o.To)
}

// clone copies the recipe and its slots (schemes stay shared).
func (r *Recipe) clone() *Recipe {
	c := *r
	c.Default = r.Default.clone()
	c.Embedding = r.Embedding.clone()
	c.Attention = r.Attention.clone()
	c.Feedforward = r.Feedforward.clone()
	c.Rules = slices.Clone(r.Rules)
	return &c
}

func (rr *RoleRecipe) clone() *RoleRecipe {
	if rr == nil {
		return nil
	}
	c := *rr
	c.Layers = append([]LayerOverride(nil), rr.Layers...)
	return &c
}

var recipeKeys = []string{"name", "suffix", "scales", "default", "embedding", "attention", "feedforward"}

// recipe decodes `recipe:` (or an item of `recipes:`): a preset name or a
// written-out mapping.
func (d *decoder) recipe(n *yaml.Node, field string) *Recipe {
	if n = d.deref(n); n == nil {
		return nil
	}
	if n.Kind == yaml.MappingNode {
		if contains(d.keys(n), "aeq") {
			return d.aeqRecipe(n, field)
		}
		return d.customRecipe(n, field, "custom", "custom")
	}
	name, ok := d.str(n, field)
	if !ok {
		return nil
	}
	r, warning, msg := d.cat.preset(name)
	if r == nil {
		d.errorf(n, field, "%s", msg)
		return nil
	}
	if warning != "" {
		d.warnf(n, field, "%s", warning)
	}
	r.P = d.at(n)
	return r
}

// aeqRecipe decodes {aeq: path/to/recipe.json} (optionally with name and
// suffix): an AI Edge Quantizer recipe file, relative to the job file.
func (d *decoder) aeqRecipe(n *yaml.Node, field string) *Recipe {
	var path, name, suffix string
	var pathNode *yaml.Node
	before := len(d.errs)
	d.mapping(n, field, []string{"aeq", "name", "suffix"}, false, func(key string, k, v *yaml.Node) {
		f := join(field, key)
		switch key {
		case "aeq":
			path, _ = d.nonEmpty(v, f)
			pathNode = d.deref(v)
		case "name":
			name, _ = d.word(v, f)
		case "suffix":
			suffix, _ = d.word(v, f)
		}
	})
	if len(d.errs) > before || pathNode == nil {
		return nil
	}
	r, err := LoadAEQRecipe(resolvePath(filepath.Dir(d.file), path))
	if err != nil {
		if ds, ok := err.(Diagnostics); ok {
			d.errs = append(d.errs, ds...)
		} else {
			d.errorf(pathNode, join(field, "aeq"), "%v", err)
		}
		return nil
	}
	if name != "" {
		r.Name = name
	}
	if suffix != "" {
		r.Suffix = suffix
	}
	r.P = d.at(n)
	return r
}

// customRecipe decodes a recipe mapping with default/embedding/attention/
// feedforward slots and optional name and suffix.
func (d *decoder) customRecipe(n *yaml.Node, field, name, suffix string) *Recipe {
	r := &Recipe{Name: name, Suffix: suffix, P: d.at(n)}
	before := len(d.errs)
	d.mapping(n, field, recipeKeys, false, func(key string, k, v *yaml.Node) {
		f := join(field, key)
		switch key {
		case "name":
			if s, ok := d.word(v, f); ok {
				r.Name = s
			}
		case "suffix":
			if s, ok := d.word(v, f); ok {
				r.Suffix = s
			}
		case "scales":
			r.Scales, _ = d.enum(v, f, ScaleMethods)
		case "default":
			r.Default = d.roleRecipe(v, f, false)
		case "embedding":
			r.Embedding = d.roleRecipe(v, f, false)
		case "attention":
			r.Attention = d.roleRecipe(v, f, true)
		case "feedforward":
			r.Feedforward = d.roleRecipe(v, f, true)
		}
	})
	if len(d.errs) > before {
		return nil
	}
	if r.Default == nil && r.Embedding == nil && r.Attention == nil && r.Feedforward == nil {
		d.errorf(n, field, "the recipe sets no slot; set default, embedding, attention or feedforward (or use the preset none to keep the model float)")
		return nil
	}
	return r
}

// roleRecipe decodes one slot: a scheme name, a full scheme mapping, or (when
// perLayer) {all: SCHEME, layers: {"N" or "A-B": SCHEME}}.
func (d *decoder) roleRecipe(n *yaml.Node, field string, perLayer bool) *RoleRecipe {
	if n = d.deref(n); n == nil {
		return nil
	}
	rr := &RoleRecipe{P: d.at(n)}
	ks := d.keys(n)
	if !contains(ks, "all") && !contains(ks, "layers") {
		s, ok := d.scheme(n, field)
		if !ok {
			return nil
		}
		rr.All = s
		return rr
	}
	if !perLayer {
		d.errorf(n, field, "takes one scheme (a name or a scheme mapping); all/layers per transformer block exist only for attention and feedforward")
		return nil
	}
	before := len(d.errs)
	d.mapping(n, field, []string{"all", "layers"}, false, func(key string, k, v *yaml.Node) {
		f := join(field, key)
		switch key {
		case "all":
			rr.All, _ = d.scheme(v, f)
		case "layers":
			rr.Layers = d.layers(v, f)
		}
	})
	if len(d.errs) > before {
		return nil
	}
	return rr
}

// layers decodes {"N" or "A-B": SCHEME, ...} and rejects overlapping ranges.
func (d *decoder) layers(n *yaml.Node, field string) []LayerOverride {
	var out []LayerOverride
	d.mapping(n, field, nil, false, func(key string, k, v *yaml.Node) {
		f := join(field, key)
		from, to, msg := parseLayerRange(key)
		if msg != "" {
			d.errorf(k, field, "%s", msg)
			return
		}
		s, ok := d.scheme(v, f)
		if !ok {
			return
		}
		if s.IsNone() {
			s = nil
		}
		out = append(out, LayerOverride{From: from, To: to, Scheme: s, P: d.at(k)})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].From < out[j].From })
	// prev is the range reaching furthest among those before i.
	for i, last := 1, 0; i < len(out); i++ {
		prev, cur := out[last], out[i]
		if cur.To > prev.To {
			last = i
		}
		if cur.From <= prev.To {
			// Report at whichever key comes later in the file.
			at, other := cur, prev
			if prev.P.Line > cur.P.Line || (prev.P.Line == cur.P.Line && prev.P.Col > cur.P.Col) {
				at, other = prev, cur
			}
			d.errs = append(d.errs, Diagnostic{Pos: at.P, Field: join(field, at.Range()),
				Msg: fmt.Sprintf("layers %s overlap layers %s (line %d, column %d); each block may be listed once", at.Range(), other.Range(), other.P.Line, other.P.Col)})
		}
	}
	return out
}

// parseLayerRange parses a layers key: "N" or "A-B" with 0 <= A <= B.
func parseLayerRange(key string) (from, to int, msg string) {
	bad := fmt.Sprintf("layer key %s: want a block index N or a range A-B (e.g. \"3\" or \"14-15\")", quote(key))
	a, b, isRange := strings.Cut(key, "-")
	from, ok := parseIndex(a)
	if !ok {
		return 0, 0, bad
	}
	to = from
	if isRange {
		if to, ok = parseIndex(b); !ok {
			return 0, 0, bad
		}
		if from > to {
			return 0, 0, fmt.Sprintf("layer range %s: the first block must not be after the last", quote(key))
		}
	}
	return from, to, ""
}

// parseIndex parses a non-negative decimal block index of at most 7 digits.
func parseIndex(s string) (int, bool) {
	if s == "" || len(s) > 7 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	v, err := strconv.Atoi(s)
	return v, err == nil && v <= maxLayer
}
