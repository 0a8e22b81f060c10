package config

import (
	"testing"
)

func mustScheme(t *testing.T, name string) *Scheme {
	t.Helper()
	s, err := ParseScheme(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestResolvePrecedence checks default < role-wide < per-layer, the
// keep-float marker at each level, and lm_head following the embedding.
func TestResolvePrecedence(t *testing.T) {
	i8, wo, f16, b32, b256 := mustScheme(t, "dynamic_int8"), mustScheme(t, "weight_only_int8"), mustScheme(t, "fp16"),
		mustScheme(t, "dynamic_int4_block32"), mustScheme(t, "dynamic_int4_block256")
	none := mustScheme(t, "none")
	slot := func(all *Scheme, layers ...LayerOverride) *RoleRecipe { return &RoleRecipe{All: all, Layers: layers} }
	over := func(from, to int, s *Scheme) LayerOverride { return LayerOverride{From: from, To: to, Scheme: s} }

	recipes := map[string]*Recipe{
		"empty":        {},
		"default only": {Default: slot(i8)},
		"full": {
			Default:     slot(f16),
			Embedding:   slot(i8),
			Attention:   slot(b32, over(2, 3, wo), over(5, 5, nil)),
			Feedforward: slot(nil, over(0, 0, i8), over(14, 15, b256)),
		},
		"role none":              {Default: slot(i8), Attention: slot(none), Embedding: slot(none)},
		"default none":           {Default: slot(none), Feedforward: slot(b256)},
		"embedding only":         {Embedding: slot(i8)},
		"layers over role none":  {Default: slot(i8), Attention: slot(none, over(1, 1, b32))},
		"layers without default": {Attention: slot(nil, over(4, 7, b32))},
	}
	for _, c := range []struct {
		recipe string
		role   Role
		layer  int
		want   string // scheme name, or "" to keep float
	}{
		{"empty", RoleDefault, -1, ""},
		{"empty", RoleAttention, 3, ""},
		{"empty", RoleLMHead, -1, ""},

		{"default only", RoleDefault, -1, "dynamic_int8"},
		{"default only", RoleEmbedding, -1, "dynamic_int8"},
		{"default only", RoleLMHead, -1, "dynamic_int8"},
		{"default only", RoleFeedforward, 7, "dynamic_int8"},
		{"default only", Role("unknown"), 0, "dynamic_int8"},

		{"full", RoleDefault, -1, "fp16"},
		{"full", RoleDefault, 3, "fp16"}, // default has no layers
		{"full", RoleEmbedding, -1, "dynamic_int8"},
		{"full", RoleEmbedding, 3, "dynamic_int8"},
		{"full", RoleLMHead, -1, "dynamic_int8"},
		{"full", RoleAttention, -1, "dynamic_int4_block32"},
		{"full", RoleAttention, 0, "dynamic_int4_block32"},
		{"full", RoleAttention, 1, "dynamic_int4_block32"},
		{"full", RoleAttention, 2, "weight_only_int8"},
		{"full", RoleAttention, 3, "weight_only_int8"},
		{"full", RoleAttention, 4, "dynamic_int4_block32"},
		{"full", RoleAttention, 5, ""}, // layer override "none"
		{"full", RoleAttention, 6, "dynamic_int4_block32"},
		{"full", RoleFeedforward, 0, "dynamic_int8"},
		{"full", RoleFeedforward, 1, "fp16"}, // no All: falls back to default
		{"full", RoleFeedforward, 13, "fp16"},
		{"full", RoleFeedforward, 14, "dynamic_int4_block256"},
		{"full", RoleFeedforward, 15, "dynamic_int4_block256"},
		{"full", RoleFeedforward, 16, "fp16"},
		{"full", RoleFeedforward, -1, "fp16"},

		{"role none", RoleAttention, 2, ""},
		{"role none", RoleEmbedding, -1, ""},
		{"role none", RoleLMHead, -1, ""},
		{"role none", RoleFeedforward, 2, "dynamic_int8"},

		{"default none", RoleDefault, -1, ""},
		{"default none", RoleEmbedding, -1, ""},
		{"default none", RoleFeedforward, 9, "dynamic_int4_block256"},

		{"embedding only", RoleEmbedding, -1, "dynamic_int8"},
		{"embedding only", RoleLMHead, -1, "dynamic_int8"},
		{"embedding only", RoleDefault, -1, ""},
		{"embedding only", RoleAttention, 0, ""},

		{"layers over role none", RoleAttention, 0, ""},
		{"layers over role none", RoleAttention, 1, "dynamic_int4_block32"},

		{"layers without default", RoleAttention, 3, ""},
		{"layers without default", RoleAttention, 4, "dynamic_int4_block32"},
		{"layers without default", RoleAttention, 7, "dynamic_int4_block32"},
		{"layers without default", RoleAttention, 8, ""},
		{"layers without default", RoleAttention, -1, ""},
	} {
		got := recipes[c.recipe].Resolve(c.role, c.layer)
		name := ""
		if got != nil {
			name = got.Name
		}
		if name != c.want {
			t.Errorf("%s: Resolve(%s, %d) = %q, want %q", c.recipe, c.role, c.layer, name, c.want)
		}
	}
	var nilRecipe *Recipe
	if nilRecipe.Resolve(RoleDefault, 0) != nil {
		t.Error("nil recipe resolves to a scheme")
	}
}

func TestRecipeString(t *testing.T) {
	j, err := ParseJob("x.yaml", []byte(issueJob))
	if err != nil {
		t.Fatal(err)
	}
	want := "default: fp16, embedding: dynamic_int8, attention: dynamic_int4_block32, feedforward: dynamic_int4_block256 [0: dynamic_int8, 14-15: dynamic_int8]"
	if got := j.Quantize().Recipes[0].String(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	r := &Recipe{Attention: &RoleRecipe{Layers: []LayerOverride{{From: 1, To: 1}}}}
	if got, want := r.String(), "attention: (default) [1: none]"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got := (&Recipe{}).String(); got != "(empty)" {
		t.Errorf("empty recipe: %s", got)
	}
}
