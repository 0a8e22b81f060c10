package config

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/qpipe/qpipe"
	"go.yaml.in/yaml/v3"
)

// catalogFile names the embedded catalog in diagnostics.
const catalogFile = "recipes.yaml"

// defaultCatalog is recipes.yaml from the repository root. It is parsed
// when the package is initialised; a broken embedded file is a build defect
// (TestCatalog fails) and panics here with every problem listed.
var defaultCatalog = mustParseCatalog(qpipe.RecipesYAML)

func mustParseCatalog(data []byte) *catalog {
	c, err := parseCatalog(catalogFile, data)
	if err != nil {
		panic("config: the embedded recipes.yaml is invalid:\n" + err.Error())
	}
	return c
}

// catalog is the parsed recipes.yaml: schemes, presets and deprecated names.
type catalog struct {
	schemes    map[string]*Scheme
	schemeList []SchemeInfo // file order
	presets    map[string]*Recipe
	presetList []PresetInfo // file order
	aliases    map[string]alias
}

type alias struct {
	preset, note string
}

// SchemeInfo describes a canonical scheme of recipes.yaml.
type SchemeInfo struct {
	Name        string
	Description string
	Scheme      *Scheme
}

// MarshalJSON writes the scheme as `qpipe recipes --json` lists it: name,
// description, then what the scheme does.
func (s SchemeInfo) MarshalJSON() ([]byte, error) {
	out := struct {
		Name        string `json:"name"`
		Description string `json:"description"`
		Weight      string `json:"weight,omitempty"`
		Mode        string `json:"mode,omitempty"`
		Granularity string `json:"granularity,omitempty"`
		BlockSize   int    `json:"block_size,omitempty"`
		Symmetric   bool   `json:"symmetric"`
	}{Name: s.Name, Description: s.Description}
	if c := s.Scheme; c != nil {
		out.Weight, out.Mode, out.Granularity, out.BlockSize, out.Symmetric = c.Weight, c.Mode, c.Granularity, c.BlockSize, c.Symmetric
	}
	return json.Marshal(out)
}

// PresetInfo describes a recipe preset of recipes.yaml, for listings such as
// `qpipe recipes`.
type PresetInfo struct {
	Name        string `json:"name"`
	Suffix      string `json:"suffix"`      // the output-name suffix, {suffix} in serialize paths
	Description string `json:"description"` // one paragraph
	Summary     string `json:"recipe"`      // the recipe's slots, e.g. "default: dynamic_int8"
	// Deprecated are old upstream names accepted for this preset, in file
	// order.
	Deprecated []string `json:"deprecated_aliases,omitempty"`
}

// Preset returns a copy of the named recipe preset. Besides the names of
// recipes.yaml it accepts the deprecated upstream names listed there (the
// returned Recipe then carries a Warning to log) and dynamic_int4_block<B>
// for any multiple B of 32 (suffix q4_block<B>). The error lists the valid
// names.
func Preset(name string) (*Recipe, error) {
	r, warning, msg := defaultCatalog.preset(name)
	if r == nil {
		return nil, fmt.Errorf("config: %s", msg)
	}
	r.Warning = warning
	return r, nil
}

// Presets lists the presets of recipes.yaml in file order.
func Presets() []PresetInfo {
	out := make([]PresetInfo, len(defaultCatalog.presetList))
	for i, p := range defaultCatalog.presetList {
		p.Deprecated = append([]string(nil), p.Deprecated...)
		out[i] = p
	}
	return out
}

// Schemes lists the canonical schemes of recipes.yaml in file order.
func Schemes() []SchemeInfo {
	return append([]SchemeInfo(nil), defaultCatalog.schemeList...)
}

// preset looks a recipe name up. It returns a fresh copy, the deprecation
// warning for an old name, or nil and the reason.
func (c *catalog) preset(name string) (r *Recipe, warning, msg string) {
	if p, ok := c.presets[name]; ok {
		return p.clone(), "", ""
	}
	if a, ok := c.aliases[name]; ok {
		r = c.presets[a.preset].clone()
		warning = fmt.Sprintf("recipe %s is a deprecated upstream name (%s); using the preset %s (suffix %s)", quote(name), a.note, r.Name, r.Suffix)
		r.Warning = warning
		return r, warning, ""
	}
	if strings.HasPrefix(name, int4Prefix) {
		s, msg := c.scheme(name)
		if s == nil {
			return nil, "", msg
		}
		return &Recipe{Name: s.Name, Suffix: "q4_block" + strconv.Itoa(s.BlockSize), Default: &RoleRecipe{All: s}}, "", ""
	}
	names := make([]string, len(c.presetList))
	for i, p := range c.presetList {
		names[i] = p.Name
	}
	all := append(names[:len(names):len(names)], c.aliasNames()...)
	return nil, "", fmt.Sprintf("unknown recipe %s%s; valid: %s (or dynamic_int4_block<B> for any multiple B of 32, or a mapping with default/embedding/attention/feedforward)",
		quote(name), suggest(name, all), strings.Join(names, ", "))
}

func (c *catalog) aliasNames() []string {
	var names []string
	for _, p := range c.presetList {
		names = append(names, p.Deprecated...)
	}
	return names
}

// scheme looks a scheme name up: "none", a scheme of recipes.yaml, or
// dynamic_int4_block<B>. It returns nil and the reason for anything else.
func (c *catalog) scheme(name string) (*Scheme, string) {
	if name == SchemeNone {
		return noneScheme, ""
	}
	if s, ok := c.schemes[name]; ok {
		return s, ""
	}
	if s := weightOnlyInt4(name); s != nil {
		return s, ""
	}
	if base, ok := strings.CutSuffix(name, perTensorSuffix); ok {
		if s, ok := c.schemes[base]; ok && s.Weight == WeightInt8 && s.Granularity == GranularityChannelwise {
			return perTensor(s), ""
		}
	}
	if rest, ok := strings.CutPrefix(name, int4Prefix); ok && rest != "" && strings.Trim(rest, "0123456789") == "" && (rest == "0" || rest[0] != '0') {
		if len(rest) > 9 {
			return nil, fmt.Sprintf("%s: block size too large (at most %d)", quote(name), maxBlockSize)
		}
		b, _ := strconv.Atoi(rest)
		if msg := checkBlockSize(b); msg != "" {
			return nil, fmt.Sprintf("%s: %s", quote(name), msg)
		}
		return int4Scheme(b), ""
	}
	names := []string{SchemeNone}
	for _, s := range c.schemeList {
		names = append(names, s.Name)
	}
	return nil, fmt.Sprintf("unknown scheme %s%s; valid: %s (or dynamic_int4_block<B> for any multiple B of 32, or a scheme mapping)",
		quote(name), suggest(name, names), strings.Join(names, ", "))
}

// parseCatalog decodes recipes.yaml strictly.
func parseCatalog(file string, data []byte) (*catalog, error) {
	root, err := parseYAML(file, data)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, Diagnostics{{Pos: Pos{File: file}, Msg: "empty file; expected version, schemes, presets"}}
	}
	c := &catalog{schemes: map[string]*Scheme{}, presets: map[string]*Recipe{}, aliases: map[string]alias{}}
	d := &decoder{file: file, cat: c}
	var version, schemes, presets, deprecated *yaml.Node
	if !d.mapping(root, "", []string{"version", "schemes", "presets", "deprecated"}, false, func(key string, k, v *yaml.Node) {
		switch key {
		case "version":
			version = v
		case "schemes":
			schemes = v
		case "presets":
			presets = v
		case "deprecated":
			deprecated = v
		}
	}) {
		return nil, d.errs
	}
	for _, req := range []struct {
		name string
		n    *yaml.Node
	}{{"version", version}, {"schemes", schemes}, {"presets", presets}} {
		if req.n == nil {
			d.errorf(root, "", "missing key %s", req.name)
		}
	}
	if version != nil {
		if v, ok := d.integer(version, "version"); ok && v != 1 {
			d.errorf(d.deref(version), "version", "unsupported version %d; this qpipe reads version 1", v)
		}
	}
	// Presets name schemes and aliases name presets: decode in that order
	// whatever the order in the file.
	if schemes != nil {
		d.catalogSchemes(c, schemes)
	}
	if presets != nil {
		d.catalogPresets(c, presets)
	}
	if deprecated != nil {
		d.catalogAliases(c, deprecated)
	}
	if len(d.errs) > 0 {
		return nil, d.errs.Sorted()
	}
	return c, nil
}

func (d *decoder) catalogSchemes(c *catalog, n *yaml.Node) {
	d.mapping(n, "schemes", nil, false, func(name string, k, v *yaml.Node) {
		f := join("schemes", name)
		desc := ""
		s, ok := d.schemeMapping(v, f, map[string]func(k, v *yaml.Node){
			"description": func(_, v *yaml.Node) { desc, _ = d.nonEmpty(v, join(f, "description")) },
		})
		switch {
		case !ok:
		case name != s.Name:
			d.errorf(k, f, "the fields describe %s, not %s", s.Name, name)
		case desc == "":
			d.errorf(k, f, "missing key description")
		default:
			c.schemes[name] = s
			c.schemeList = append(c.schemeList, SchemeInfo{Name: name, Description: desc, Scheme: s})
		}
	})
}

func (d *decoder) catalogPresets(c *catalog, n *yaml.Node) {
	suffixes := map[string]string{}
	d.mapping(n, "presets", nil, false, func(name string, k, v *yaml.Node) {
		f := join("presets", name)
		if !wordRE.MatchString(name) {
			d.errorf(k, f, "a preset name may use letters, digits, '.', '_' and '-'")
			return
		}
		info := PresetInfo{Name: name}
		var recipe *yaml.Node
		before := len(d.errs)
		d.mapping(v, f, []string{"suffix", "description", "recipe"}, false, func(key string, k, v *yaml.Node) {
			switch key {
			case "suffix":
				info.Suffix, _ = d.word(v, join(f, key))
			case "description":
				info.Description, _ = d.nonEmpty(v, join(f, key))
			case "recipe":
				recipe = v
			}
		})
		if len(d.errs) > before {
			return
		}
		if info.Suffix == "" || info.Description == "" || recipe == nil {
			d.errorf(v, f, "a preset needs suffix, description and recipe")
			return
		}
		if other, dup := suffixes[info.Suffix]; dup {
			d.errorf(v, join(f, "suffix"), "suffix %s is also the suffix of %s", info.Suffix, other)
			return
		}
		suffixes[info.Suffix] = name
		if r := d.deref(recipe); r == nil || r.Kind != yaml.MappingNode || contains(d.keys(r), "name") || contains(d.keys(r), "suffix") {
			if r != nil {
				d.errorf(r, join(f, "recipe"), "a preset's recipe is a mapping of default/embedding/attention/feedforward")
			}
			return
		}
		r := d.customRecipe(recipe, join(f, "recipe"), name, info.Suffix)
		if r == nil {
			return
		}
		info.Summary = r.String()
		c.presets[name] = r
		c.presetList = append(c.presetList, info)
	})
}

func (d *decoder) catalogAliases(c *catalog, n *yaml.Node) {
	d.mapping(n, "deprecated", nil, false, func(name string, k, v *yaml.Node) {
		f := join("deprecated", name)
		if _, clash := c.presets[name]; clash {
			d.errorf(k, f, "%s is a preset; it cannot also be a deprecated name", name)
			return
		}
		var a alias
		before := len(d.errs)
		d.mapping(v, f, []string{"preset", "note"}, false, func(key string, k, v *yaml.Node) {
			switch key {
			case "preset":
				a.preset, _ = d.str(v, join(f, key))
				if _, ok := c.presets[a.preset]; a.preset != "" && !ok {
					d.errorf(d.deref(v), join(f, key), "unknown preset %s", quote(a.preset))
					a.preset = ""
				}
			case "note":
				a.note, _ = d.nonEmpty(v, join(f, key))
			}
		})
		if len(d.errs) > before {
			return
		}
		if a.preset == "" || a.note == "" {
			d.errorf(v, f, "a deprecated name needs preset and note")
			return
		}
		c.aliases[name] = a
		for i := range c.presetList {
			if c.presetList[i].Name == a.preset {
				c.presetList[i].Deprecated = append(c.presetList[i].Deprecated, name)
			}
		}
	})
}
