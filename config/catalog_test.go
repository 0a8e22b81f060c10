package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/qpipe/qpipe"
)

// TestCatalog pins what the embedded recipes.yaml provides. Parsing it at
// init already proves it is strictly valid; this checks the content.
func TestCatalog(t *testing.T) {
	var got []string
	for _, p := range Presets() {
		got = append(got, fmt.Sprintf("%s=%s %v", p.Name, p.Suffix, p.Deprecated))
		if len(p.Description) < 20 || strings.Contains(p.Description, "\n") {
			t.Errorf("%s: description %q", p.Name, p.Description)
		}
		want := "default: " + p.Name
		if strings.HasPrefix(p.Name, "static_") {
			want = map[string]string{
				"static_int8":    "static: int8 asymmetric activations, float I/O, minmax",
				"static_int16x8": "static: int16 symmetric activations, float I/O, minmax",
			}[p.Name]
		}
		if p.Summary != want {
			t.Errorf("%s: summary %q, want %q", p.Name, p.Summary, want)
		}
	}
	want := []string{
		"none=f32 []",
		"dynamic_int8=q8 [full_int8_dynamic_recipe full_linear_int8_dynamic_recipe full_dynamic_recipe]",
		"weight_only_int8=q8_wo [full_int8_weight_only_recipe full_weight_only_recipe]",
		"fp16=fp16 [full_fp16_recipe]",
		"dynamic_int4_block32=q4_block32 []",
		"dynamic_int4_block64=q4_block64 []",
		"dynamic_int4_block128=q4_block128 []",
		"dynamic_int4_block256=q4_block256 []",
		"weight_only_int8_asym=q8_wo_asym []",
		"static_int8=a8w8 []",
		"static_int16x8=a16w8 []",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("presets:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	var names []string
	for _, s := range Schemes() {
		names = append(names, s.Name)
		if len(s.Description) < 20 {
			t.Errorf("%s: description %q", s.Name, s.Description)
		}
		back, err := ParseScheme(s.Name)
		if err != nil || back != s.Scheme {
			t.Errorf("%s: ParseScheme gives %v, %v; want the catalog's scheme", s.Name, back, err)
		}
	}
	if got, want := strings.Join(names, " "), "dynamic_int8 weight_only_int8 weight_only_int8_asym fp16 dynamic_int4_block32 dynamic_int4_block64 dynamic_int4_block128 dynamic_int4_block256"; got != want {
		t.Errorf("schemes %s, want %s", got, want)
	}

	// The embedded bytes are the file at the root.
	if _, err := parseCatalog("recipes.yaml", qpipe.RecipesYAML); err != nil {
		t.Fatal(err)
	}
}

func TestPreset(t *testing.T) {
	r, err := Preset("dynamic_int4_block32")
	if err != nil || r.Suffix != "q4_block32" || r.Warning != "" || r.Resolve(RoleAttention, 0).BlockSize != 32 {
		t.Fatalf("dynamic_int4_block32: %+v %v", r, err)
	}
	if !strings.HasPrefix(r.P.String(), "recipes.yaml:") {
		t.Errorf("preset position %s", r.P)
	}
	// A copy: changing it does not change the next lookup.
	r.Suffix, r.Default.All = "x", nil
	if again, _ := Preset("dynamic_int4_block32"); again.Suffix != "q4_block32" || again.Default.All == nil {
		t.Error("Preset hands out shared recipes")
	}

	r, err = Preset("full_int8_dynamic_recipe")
	if err != nil || r.Name != "dynamic_int8" || r.Suffix != "q8" || !strings.Contains(r.Warning, "deprecated") || !strings.Contains(r.Warning, "dynamic_int8") {
		t.Errorf("alias: %+v %v", r, err)
	}

	r, err = Preset("dynamic_int4_block512")
	if err != nil || r.Suffix != "q4_block512" || r.Resolve(RoleDefault, -1).BlockSize != 512 {
		t.Errorf("block 512: %+v %v", r, err)
	}

	for name, sub := range map[string]string{
		"dynamic_int4_block48": "block size 48: must be a multiple of 32, at least 32",
		"dynamic_int4_block16": "block size 16: must be a multiple of 32, at least 32",
		"int8":                 "valid: none, dynamic_int8, weight_only_int8, fp16, dynamic_int4_block32, dynamic_int4_block64, dynamic_int4_block128, dynamic_int4_block256, weight_only_int8_asym",
		"full_int8_dynamic":    `did you mean "full_int8_dynamic_recipe"?`,
		"all_supported_int4_dynamic_block_recipe": `unknown recipe "all_supported_int4_dynamic_block_recipe"`,
	} {
		if _, err := Preset(name); err == nil || !strings.Contains(err.Error(), sub) {
			t.Errorf("%s: %v; want %q", name, err, sub)
		}
	}
}

// A small valid catalog; each broken case below edits it.
const miniCatalog = `version: 1
schemes:
  dynamic_int8:
    description: int8 per channel
    weight: int8
    mode: dynamic_range
presets:
  q:
    suffix: q8
    description: all int8
    recipe: {default: dynamic_int8}
deprecated:
  old:
    preset: q
    note: renamed
`

func TestCatalogStrict(t *testing.T) {
	c, err := parseCatalog("mini.yaml", []byte(miniCatalog))
	if err != nil {
		t.Fatal(err)
	}
	if r, w, _ := c.preset("old"); r == nil || r.Name != "q" || w == "" {
		t.Errorf("alias: %v %q", r, w)
	}
	for _, tc := range []struct {
		name, old, new, pos, sub string
	}{
		{"fields do not match the name", "mode: dynamic_range", "mode: weight_only", "3:3", "the fields describe weight_only_int8, not dynamic_int8"},
		{"unknown key in a scheme", "    mode: dynamic_range\n", "    mode: dynamic_range\n    bits: 8\n", "7:5", `unknown key "bits"`},
		{"scheme without description", "    description: int8 per channel\n", "", "3:3", "missing key description"},
		{"unsupported scheme", "    mode: dynamic_range\n", "    mode: dynamic_range\n    symmetric: false\n", "4:5", "unsupported combination"},
		{"preset names an unknown scheme", "{default: dynamic_int8}", "{default: dynamic_int4}", "11:23", `unknown scheme "dynamic_int4"`},
		{"preset without suffix", "    suffix: q8\n", "", "9:5", "a preset needs suffix, description and recipe"},
		{"preset recipe sets a name", "{default: dynamic_int8}", "{name: x, default: dynamic_int8}", "11:13", "a preset's recipe is a mapping"},
		{"alias to an unknown preset", "preset: q\n", "preset: r\n", "14:13", `unknown preset "r"`},
		{"alias shadows a preset", "  old:\n", "  q:\n", "13:3", "q is a preset"},
		{"version 2", "version: 1", "version: 2", "1:10", "unsupported version 2"},
		{"unknown section", "deprecated:", "aliases:", "12:1", `unknown key "aliases"`},
		{"missing presets", "presets:\n  q:\n    suffix: q8\n    description: all int8\n    recipe: {default: dynamic_int8}\n", "", "1:1", "missing key presets"},
		{"duplicate preset", "deprecated:", "  q:\n    suffix: q9\n    description: again\n    recipe: {default: none}\ndeprecated:", "12:3", `duplicate key "q"`},
	} {
		src := strings.Replace(miniCatalog, tc.old, tc.new, 1)
		if src == miniCatalog {
			t.Fatalf("%s: edit does not apply", tc.name)
		}
		_, err := parseCatalog("mini.yaml", []byte(src))
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		ds := err.(Diagnostics)
		if ds[0].Pos.String() != "mini.yaml:"+tc.pos || !strings.Contains(ds[0].Msg, tc.sub) {
			t.Errorf("%s: got %v; want mini.yaml:%s ... %s", tc.name, err, tc.pos, tc.sub)
		}
	}
	// mustParseCatalog refuses a broken embedded file loudly.
	defer func() {
		if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), "recipes.yaml:1:10") {
			t.Errorf("panic %v", p)
		}
	}()
	mustParseCatalog([]byte(strings.Replace(miniCatalog, "version: 1", "version: 3", 1)))
}
