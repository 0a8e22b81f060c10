package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// AI Edge Quantizer recipes.
//
// The reference quantizer (google-ai-edge/ai-edge-quantizer) keeps a recipe
// as a JSON list of rules {regex, operation, algorithm_key, op_config}. Its
// RecipeManager (recipe_manager.py) files each rule under its regex, in the
// order the regexes first appear: a rule for every op ("*") replaces all the
// rules of its regex, a rule for one op replaces that op's rule of the regex
// or is appended to them. For an op it then walks the regexes in that order
// and takes the last rule whose regex is found in the op's scope, whose
// operation is "*" or the op, and whose config the policy accepts for the
// op (skip_checks: true skips that check; no_quantize needs none). qpipe
// keeps those rules, in that effective order, as the Recipe's Rules; the
// quantize stage resolves them with the same last-valid-wins walk it uses
// for the role slots.

// ScopeRule is one rule of an AI Edge Quantizer recipe, as qpipe applies it.
type ScopeRule struct {
	// Index is the rule's position in the recipe file (0-based).
	Index int
	// Pattern is the regex as written; Match is it compiled (Go RE2, which
	// accepts the Python patterns recipes use, except lookarounds and
	// backreferences, which are refused). Matching is an unanchored search
	// in the op scope.
	Pattern string
	Match   *regexp.Regexp
	// Op is the builtin op name the rule is limited to (TRANSPOSE_CONV for
	// upstream's CONV_2D_TRANSPOSE), or "" for every op ("*").
	Op string
	// Scheme is what the rule asks for; the keep-float marker for
	// no_quantize.
	Scheme *Scheme
	// MinWeightElements keeps smaller weights of FULLY_CONNECTED, CONV_2D,
	// DEPTHWISE_CONV_2D and TRANSPOSE_CONV float when this rule wins.
	MinWeightElements int64
	// SkipChecks makes the rule win for every op it matches, valid or not;
	// an op qpipe cannot give the scheme then fails the job.
	SkipChecks bool
	P          Pos
}

// String names the rule for messages: `rule 2 (regex ".*", operation
// FULLY_CONNECTED)`.
func (r *ScopeRule) String() string {
	op := "*"
	if r.Op != "" {
		op = r.Op
	}
	return fmt.Sprintf("rule %d (regex %s, operation %s)", r.Index, quote(r.Pattern), op)
}

// Matches reports whether the rule applies to an op by its scope and name;
// whether its scheme is valid for the op is the caller's check.
func (r *ScopeRule) Matches(op, scope string) bool {
	return (r.Op == "" || r.Op == op) && r.Match.MatchString(scope)
}

// MinWeightOps are the ops min_weight_elements applies to.
var MinWeightOps = []string{"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"}

// MaxAEQRecipeSize bounds a recipe file, in bytes.
const MaxAEQRecipeSize = 1 << 20

// Algorithm keys of the reference quantizer (algorithm_manager.py).
const (
	AEQMinMax      = "min_max_uniform_quantize"
	AEQFloatCast   = "float_casting"
	AEQNoQuantize  = "no_quantize"
	aeqAllOps      = "*"
	aeqRulesField  = "rules"
	aeqOpConfig    = "op_config"
	aeqWeightCfg   = "weight_tensor_config"
	aeqActivation  = "activation_tensor_config"
	aeqTransConvOp = "CONV_2D_TRANSPOSE"
)

// aeqOtherAlgorithms are the reference quantizer's other algorithms, with
// why qpipe does not run them.
var aeqOtherAlgorithms = map[string]string{
	"MSE":                          "a scale from the weights' RMS",
	"OCTAV":                        "an iterative clipping search",
	"GPTQ":                         "needs calibration data",
	"HADAMARD_ROTATION":            "rotates weights and adds a custom op",
	"DECOMPOSED_HADAMARD_ROTATION": "rotates weights and adds ops to the graph",
	"dequantized_weight_recovery":  "recovers the grid of already-quantized (QAT) weights",
	"OSCAR":                        "a search-based scale",
}

// aeqOps are the reference quantizer's operation names (qtyping.py,
// TFLOperationName) besides "*".
var aeqOps = []string{"INPUT", "OUTPUT", "FULLY_CONNECTED", "BATCH_MATMUL", "DEPTHWISE_CONV_2D", "CONV_2D",
	aeqTransConvOp, "AVERAGE_POOL_2D", "RESHAPE", "CUSTOM_OP", "EMBEDDING_LOOKUP", "SOFTMAX", "TANH", "TRANSPOSE",
	"GELU", "ADD", "SUB", "MUL", "MEAN", "RSQRT", "CONCATENATION", "STRIDED_SLICE", "SPLIT", "LOGISTIC", "SLICE",
	"SUM", "SELECT", "SELECT_V2", "DYNAMIC_UPDATE_SLICE", "STABLEHLO_COMPOSITE", "PAD", "SQUARED_DIFFERENCE",
	"MAX_POOL_2D", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "GATHER_ND", "PACK", "UNPACK", "DIV",
	"BROADCAST_TO", "SQRT", "GATHER", "HARD_SWISH", "MAXIMUM", "PADV2", "REDUCE_MIN", "EQUAL", "NOT_EQUAL",
	"MIRROR_PAD", "SPACE_TO_DEPTH", "RELU"}

// LoadAEQRecipe reads an AI Edge Quantizer recipe file. See ParseAEQRecipe.
func LoadAEQRecipe(path string) (*Recipe, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: read AI Edge Quantizer recipe: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxAEQRecipeSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: read AI Edge Quantizer recipe %s: %w", path, err)
	}
	return ParseAEQRecipe(path, data)
}

// LoadAEQMapping reads an --aeq-recipe file that may be, besides a recipe,
// the reference quantizer's mapping for LiteRT-LM bundles (aeq.py,
// recipe_utils.resolve_litertlm_recipe_or_mapping): a JSON object from
// "default" and model types ("tf_lite_prefill_decode", ...) to a recipe, each
// either a list of rules or the path of a recipe file (absolute, else
// relative to the mapping file's folder, else to the working folder). The
// result is the default recipe with the others in its Sections; without a
// "default" it is the preset none, so that sections of other model types
// stay as they are (as the reference leaves them). A recipe file that is a
// list comes back as LoadAEQRecipe returns it.
func LoadAEQMapping(path string) (*Recipe, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: read AI Edge Quantizer recipe: %w", err)
	}
	if len(data) > MaxAEQRecipeSize {
		return nil, Diagnostics{{Pos: Pos{File: path}, Msg: fmt.Sprintf("recipe file larger than %d bytes", MaxAEQRecipeSize)}}
	}
	root, jerr := parseJSONTree(data)
	if jerr != nil || root.kind != jsonObject {
		return ParseAEQRecipe(path, data)
	}
	d := &aeqDecoder{file: path, data: data}
	name := aeqName(path)
	byType := map[string]*Recipe{}
	for _, m := range root.keys {
		var r *Recipe
		switch m.val.kind {
		case jsonArray:
			rules := d.rules(m.val)
			sub := name + "_" + aeqName(m.name)
			r = &Recipe{Name: sub, Suffix: sub, Rules: effectiveOrder(rules), AEQ: path, P: posAt(path, data, m.off)}
		case jsonString:
			file := m.val.str
			if !filepath.IsAbs(file) {
				if near := filepath.Join(filepath.Dir(path), file); fileExists(near) {
					file = near
				}
			}
			var err error
			if r, err = LoadAEQRecipe(file); err != nil {
				d.errorf(m.val.off, m.name, "%v", err)
				continue
			}
		default:
			d.errorf(m.val.off, m.name, "expected a recipe file name or a list of rules, got %s", describeJSON(m.val))
			continue
		}
		byType[m.name] = r
	}
	if len(d.errs) > 0 {
		return nil, d.errs.Sorted()
	}
	def := byType["default"]
	delete(byType, "default")
	if def == nil {
		def, err = Preset(SchemeNone)
		if err != nil {
			return nil, err
		}
	}
	c := *def
	c.Name, c.Suffix, c.Sections = name, name, byType
	return &c, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// ParseAEQRecipe decodes an AI Edge Quantizer recipe (a JSON list of rules)
// into a Recipe whose Rules hold them in the order the reference quantizer
// resolves them. path names the file in diagnostics and gives the recipe
// its name and suffix (the file name without .json). Everything the file
// asks that qpipe cannot do exactly — activation quantization, another
// algorithm, int4 channelwise, a file that points at another file — is an
// error naming the rule and the field; so are invalid JSON and unknown
// fields, with their line and column. All problems come back together as
// Diagnostics.
func ParseAEQRecipe(path string, data []byte) (*Recipe, error) {
	if len(data) > MaxAEQRecipeSize {
		return nil, Diagnostics{{Pos: Pos{File: path}, Msg: fmt.Sprintf("recipe file larger than %d bytes", MaxAEQRecipeSize)}}
	}
	root, jerr := parseJSONTree(data)
	if jerr != nil {
		return nil, Diagnostics{{Pos: posAt(path, data, jerr.off), Msg: jerr.msg}}
	}
	d := &aeqDecoder{file: path, data: data}
	rules := d.rules(root)
	if len(d.errs) > 0 {
		return nil, d.errs.Sorted()
	}
	name := aeqName(path)
	return &Recipe{Name: name, Suffix: name, Rules: effectiveOrder(rules), AEQ: path, P: Pos{File: path, Line: 1, Col: 1}}, nil
}

// aeqName is the recipe's name: the file name without .json, restricted to
// characters that are safe in output file names.
func aeqName(path string) string {
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	var b strings.Builder
	for _, c := range base {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '.':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	if s := b.String(); s != "" && s != "." && s != ".." {
		return s
	}
	return "aeq"
}

// effectiveOrder files the rules as the reference RecipeManager does (see
// the package comment above) and flattens them in resolution order.
func effectiveOrder(rules []ScopeRule) []ScopeRule {
	var order []string
	byRegex := map[string][]ScopeRule{}
	for _, r := range rules {
		list, seen := byRegex[r.Pattern]
		if !seen {
			order = append(order, r.Pattern)
		}
		if r.Op == "" {
			byRegex[r.Pattern] = []ScopeRule{r}
			continue
		}
		replaced := false
		for i := range list {
			if list[i].Op == r.Op {
				list[i], replaced = r, true
			}
		}
		if !replaced {
			list = append(list, r)
		}
		byRegex[r.Pattern] = list
	}
	var out []ScopeRule
	for _, re := range order {
		out = append(out, byRegex[re]...)
	}
	return out
}

type aeqDecoder struct {
	file string
	data []byte
	errs Diagnostics
}

func (d *aeqDecoder) errorf(off int64, field, format string, args ...any) {
	d.errs = append(d.errs, Diagnostic{Pos: posAt(d.file, d.data, off), Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (d *aeqDecoder) rules(root *jsonNode) []ScopeRule {
	switch root.kind {
	case jsonArray:
	case jsonObject:
		var names []string
		for _, m := range root.keys {
			names = append(names, fmt.Sprintf("%s: %s", m.name, describeJSON(m.val)))
		}
		d.errorf(root.off, "", "the recipe is an object (%s), not a list of rules: a recipe that names another recipe file is not followed; give qpipe that file's path instead", strings.Join(names, ", "))
		return nil
	default:
		d.errorf(root.off, "", "expected a list of rules ([{\"regex\": ..., \"operation\": ..., \"algorithm_key\": ..., \"op_config\": ...}]), got %s", describeJSON(root))
		return nil
	}
	if len(root.items) == 0 {
		d.errorf(root.off, "", "no rules: the reference quantizer would leave the model float; use the preset none for that")
		return nil
	}
	var out []ScopeRule
	for i, item := range root.items {
		if r, ok := d.rule(i, item); ok {
			out = append(out, r)
		}
	}
	return out
}

// aeqHints explain keys that look like recipe fields but are not.
var aeqHints = map[string]string{
	"op_scope_regex": "write regex (op_scope_regex is a spelling of an unreleased upstream branch)",
	"operations":     "write operation with one op name or \"*\" (a list of operations is a spelling of an unreleased upstream branch)",
	"channel_wise":   "older recipes' channel_wise is not read by the current reference quantizer (it would quantize TENSORWISE); write \"granularity\": \"CHANNELWISE\" or \"TENSORWISE\"",
	"execution_mode": "write compute_precision (INTEGER or FLOAT) and explicit_dequantize",
}

// object checks that n is an object with only valid keys, each once, and
// calls fn for each member in file order.
func (d *aeqDecoder) object(n *jsonNode, field string, valid []string, fn func(m jsonMember, f string)) bool {
	if n.kind != jsonObject {
		d.errorf(n.off, field, "expected an object, got %s", describeJSON(n))
		return false
	}
	seen := map[string]int64{}
	ok := true
	for _, m := range n.keys {
		f := join(field, m.name)
		if prev, dup := seen[m.name]; dup {
			p := posAt(d.file, d.data, prev)
			d.errorf(m.off, f, "duplicate key %s (first at line %d, column %d); write each key once", quote(m.name), p.Line, p.Col)
			ok = false
			continue
		}
		seen[m.name] = m.off
		if !slices.Contains(valid, m.name) {
			msg := fmt.Sprintf("unknown field %s%s; valid: %s", quote(m.name), suggest(m.name, valid), strings.Join(valid, ", "))
			if h, ok := aeqHints[m.name]; ok {
				msg = fmt.Sprintf("unknown field %s: %s", quote(m.name), h)
			}
			d.errorf(m.off, f, "%s", msg)
			ok = false
			continue
		}
		fn(m, f)
	}
	return ok
}

func (d *aeqDecoder) str(n *jsonNode, field string) (string, bool) {
	if n.kind != jsonString {
		d.errorf(n.off, field, "expected a string, got %s", describeJSON(n))
		return "", false
	}
	return n.str, true
}

func (d *aeqDecoder) boolean(n *jsonNode, field string) (bool, bool) {
	if n.kind != jsonBool {
		d.errorf(n.off, field, "expected true or false, got %s", describeJSON(n))
		return false, false
	}
	return n.b, true
}

func (d *aeqDecoder) integer(n *jsonNode, field string) (int64, bool) {
	if n.kind == jsonNumber {
		if v, err := strconv.ParseInt(string(n.num), 10, 64); err == nil {
			return v, true
		}
	}
	d.errorf(n.off, field, "expected an integer, got %s", describeJSON(n))
	return 0, false
}

func (d *aeqDecoder) enum(n *jsonNode, field string, valid []string) (string, bool) {
	s, ok := d.str(n, field)
	if !ok {
		return "", false
	}
	if !slices.Contains(valid, s) {
		d.errorf(n.off, field, "unknown value %s%s; valid: %s", quote(s), suggest(s, valid), strings.Join(valid, ", "))
		return "", false
	}
	return s, true
}

// describeJSON names a value for "expected X, got Y" messages.
func describeJSON(n *jsonNode) string {
	switch n.kind {
	case jsonString:
		return "the string " + quote(n.str)
	case jsonNumber:
		return "the number " + shorten(string(n.num))
	case jsonBool:
		return strconv.FormatBool(n.b)
	}
	return n.kind.String()
}

var aeqRuleKeys = []string{"regex", "operation", "algorithm_key", aeqOpConfig}

// rule decodes and maps one rule.
func (d *aeqDecoder) rule(i int, n *jsonNode) (ScopeRule, bool) {
	field := index(aeqRulesField, i)
	r := ScopeRule{Index: i, P: posAt(d.file, d.data, n.off)}
	before := len(d.errs)
	var alg string
	var algNode, cfgNode, opNode *jsonNode
	var sawRegex bool
	if !d.object(n, field, aeqRuleKeys, func(m jsonMember, f string) {
		switch m.name {
		case "regex":
			s, ok := d.str(m.val, f)
			if !ok {
				return
			}
			sawRegex = true
			re, err := regexp.Compile(s)
			if err != nil {
				msg := strings.TrimPrefix(err.Error(), "error parsing regexp: ")
				d.errorf(m.val.off, f, "regex %s: %s; qpipe matches with Go's RE2, which has no lookarounds or backreferences", quote(s), msg)
				return
			}
			r.Pattern, r.Match = s, re
		case "operation":
			opNode = m.val
			s, ok := d.str(m.val, f)
			if !ok {
				return
			}
			switch {
			case s == aeqAllOps:
			case s == aeqTransConvOp:
				r.Op = "TRANSPOSE_CONV"
			case slices.Contains(aeqOps, s):
				r.Op = s
			default:
				d.errorf(m.val.off, f, "unknown operation %s%s; write \"*\" or a reference-quantizer op name such as FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D, CONV_2D_TRANSPOSE, EMBEDDING_LOOKUP, BATCH_MATMUL", quote(s), suggest(s, aeqOps))
			}
		case "algorithm_key":
			s, ok := d.str(m.val, f)
			if !ok {
				return
			}
			alg, algNode = s, m.val
		case aeqOpConfig:
			cfgNode = m.val
		}
	}) {
		return r, false
	}
	if len(d.errs) > before {
		return r, false
	}
	var missing []string
	if !sawRegex {
		missing = append(missing, "regex")
	}
	if opNode == nil {
		missing = append(missing, "operation")
	}
	if algNode == nil {
		missing = append(missing, "algorithm_key")
	}
	if len(missing) > 0 {
		d.errorf(n.off, field, "missing %s; a rule is {\"regex\", \"operation\", \"algorithm_key\", \"op_config\"}", strings.Join(missing, " and "))
		return r, false
	}
	algField := join(field, "algorithm_key")
	switch alg {
	case AEQNoQuantize:
		r.Scheme = noneScheme
		if cfgNode != nil { // upstream does not read it; still refuse typos
			d.opConfig(cfgNode, join(field, aeqOpConfig))
		}
		return r, len(d.errs) == before
	case AEQMinMax, AEQFloatCast:
	default:
		if why, ok := aeqOtherAlgorithms[alg]; ok {
			d.errorf(algNode.off, algField, "rule %d: algorithm %s (%s) is not one qpipe runs; qpipe runs %s, %s and %s", i, alg, why, AEQMinMax, AEQFloatCast, AEQNoQuantize)
		} else {
			valid := []string{AEQMinMax, AEQFloatCast, AEQNoQuantize}
			for k := range aeqOtherAlgorithms {
				valid = append(valid, k)
			}
			d.errorf(algNode.off, algField, "rule %d: unknown algorithm %s%s; qpipe runs %s, %s and %s", i, quote(alg), suggest(alg, valid), AEQMinMax, AEQFloatCast, AEQNoQuantize)
		}
		return r, false
	}
	if cfgNode == nil {
		d.errorf(n.off, field, "rule %d: missing op_config (algorithm %s needs a weight_tensor_config)", i, alg)
		return r, false
	}
	c, ok := d.opConfig(cfgNode, join(field, aeqOpConfig))
	if !ok {
		return r, false
	}
	s, at, f, msg := c.scheme(alg)
	if s == nil {
		if at == nil {
			at = cfgNode
		}
		d.errorf(at.off, join(field, f), "rule %d: %s", i, msg)
		return r, false
	}
	r.Scheme, r.MinWeightElements, r.SkipChecks = s, c.minElems, c.skipChecks
	// Upstream checks a rule for one op when it loads the recipe.
	if r.Op != "" && !c.skipChecks && !s.AppliesTo(r.Op) {
		d.errorf(opNode.off, join(field, "operation"), "rule %d: the reference quantizer refuses %s on %s (it has no such kernel); give the rule another operation or scheme", i, s.Name, opNode.str)
		return r, false
	}
	return r, true
}

// aeqConfig is a decoded op_config, with the nodes to point messages at.
type aeqConfig struct {
	node                 *jsonNode
	bits                 int64
	bitsNode             *jsonNode
	symmetric            bool
	granularity          string
	granNode             *jsonNode
	block                int64
	blockNode            *jsonNode
	dtype                string
	dtypeNode            *jsonNode
	compute              string
	computeNode          *jsonNode
	dequantize           bool
	dqNode               *jsonNode
	skipChecks           bool
	minElems             int64
	activation, hasWCfgs *jsonNode
}

var aeqGranularities = []string{"TENSORWISE", "CHANNELWISE", "BLOCKWISE_32", "BLOCKWISE_64", "BLOCKWISE_128", "BLOCKWISE_256", "BLOCKWISE"}

func (d *aeqDecoder) opConfig(n *jsonNode, field string) (*aeqConfig, bool) {
	c := &aeqConfig{node: n, symmetric: true, granularity: "TENSORWISE", dtype: "INT", compute: "FLOAT"}
	before := len(d.errs)
	d.object(n, field, []string{aeqActivation, aeqWeightCfg, "compute_precision", "explicit_dequantize", "skip_checks", "min_weight_elements"}, func(m jsonMember, f string) {
		switch m.name {
		case aeqActivation:
			if m.val.kind != jsonNull {
				c.activation = m.val
			}
		case aeqWeightCfg:
			c.hasWCfgs = m.val
			d.weightConfig(m.val, f, c)
		case "compute_precision":
			c.compute, _ = d.enum(m.val, f, []string{"INTEGER", "FLOAT"})
			c.computeNode = m.val
		case "explicit_dequantize":
			c.dequantize, _ = d.boolean(m.val, f)
			c.dqNode = m.val
		case "skip_checks":
			c.skipChecks, _ = d.boolean(m.val, f)
		case "min_weight_elements":
			if v, ok := d.integer(m.val, f); ok {
				if v < 0 {
					d.errorf(m.val.off, f, "min_weight_elements %d: must not be negative", v)
				}
				c.minElems = v
			}
		}
	})
	return c, len(d.errs) == before
}

func (d *aeqDecoder) weightConfig(n *jsonNode, field string, c *aeqConfig) {
	d.object(n, field, []string{"num_bits", "symmetric", "granularity", "dtype", "block_size", "algorithm_params"}, func(m jsonMember, f string) {
		switch m.name {
		case "num_bits":
			c.bits, _ = d.integer(m.val, f)
			c.bitsNode = m.val
		case "symmetric":
			c.symmetric, _ = d.boolean(m.val, f)
		case "granularity":
			c.granularity, _ = d.enum(m.val, f, aeqGranularities)
			c.granNode = m.val
		case "dtype":
			c.dtype, _ = d.enum(m.val, f, []string{"INT", "FLOAT"})
			c.dtypeNode = m.val
		case "block_size":
			c.block, _ = d.integer(m.val, f)
			c.blockNode = m.val
		case "algorithm_params":
			// Read only by the Hadamard algorithms; a no-op for min-max and
			// float casting.
			if m.val.kind != jsonObject && m.val.kind != jsonNull {
				d.errorf(m.val.off, f, "expected an object, got %s", describeJSON(m.val))
			}
		}
	})
	if c.bitsNode == nil && len(d.errs) == 0 {
		d.errorf(n.off, field, "missing num_bits (8, 4 or 16)")
	}
}

// scheme maps the config onto a qpipe scheme for algorithm alg, or says
// which field asks for something qpipe does not write (at, the node; f,
// the field below the rule; msg, why).
func (c *aeqConfig) scheme(alg string) (s *Scheme, at *jsonNode, f, msg string) {
	wf := func(k string) string { return aeqOpConfig + "." + aeqWeightCfg + "." + k }
	if c.activation != nil {
		return nil, c.activation, aeqOpConfig + "." + aeqActivation,
			"activation quantization (static int8/int16 activations, the a8w8 and a16w8 recipes) needs calibration data and integer kernels for every op; qpipe keeps activations float32 and quantizes weights only: remove activation_tensor_config for a weight-only or dynamic recipe"
	}
	if c.hasWCfgs == nil {
		return nil, c.node, aeqOpConfig + "." + aeqWeightCfg, "missing weight_tensor_config"
	}
	// Legacy block_size: upstream turns 32/64/128/256 into BLOCKWISE_<n>,
	// whatever granularity says; 0 means none.
	if c.block != 0 {
		switch c.block {
		case 32, 64, 128, 256:
		default:
			return nil, c.blockNode, wf("block_size"), fmt.Sprintf("block_size %d: the reference quantizer accepts 32, 64, 128 or 256 (or 0 for none)", c.block)
		}
		g := fmt.Sprintf("BLOCKWISE_%d", c.block)
		if c.granNode != nil && c.granularity != "BLOCKWISE" && c.granularity != g {
			return nil, c.blockNode, wf("block_size"), fmt.Sprintf("block_size %d contradicts granularity %s; write granularity %s and drop block_size", c.block, c.granularity, g)
		}
		c.granularity = g
	} else if c.granularity == "BLOCKWISE" {
		return nil, c.granNode, wf("granularity"), "granularity BLOCKWISE needs a block size: write BLOCKWISE_32, BLOCKWISE_64, BLOCKWISE_128 or BLOCKWISE_256"
	}
	floatCompute := c.compute == "FLOAT"
	if alg == AEQFloatCast {
		switch {
		case c.bits != 16:
			return nil, c.bitsNode, wf("num_bits"), fmt.Sprintf("float_casting writes float16: num_bits must be 16, not %d", c.bits)
		case c.dtype != "FLOAT":
			return nil, c.dtypeNode, wf("dtype"), "float_casting needs dtype FLOAT"
		case !floatCompute:
			return nil, c.computeNode, aeqOpConfig + ".compute_precision", "float_casting is weight-only: the reference quantizer accepts it only with compute_precision FLOAT"
		}
		// symmetric, granularity and explicit_dequantize are not read by
		// float casting: fp16 weights always go through a DEQUANTIZE.
		s, _ := defaultCatalog.scheme("fp16")
		return s, nil, "", ""
	}
	if c.dtype != "INT" {
		return nil, c.dtypeNode, wf("dtype"), "min_max_uniform_quantize needs dtype INT; for float16 weights use the algorithm float_casting"
	}
	// The policy (default_policy.py) pairs INTEGER compute with no
	// DEQUANTIZE (dynamic range) and FLOAT compute with one (weight-only).
	if floatCompute != c.dequantize {
		at := c.dqNode
		if at == nil {
			at = c.node
		}
		return nil, at, aeqOpConfig + ".explicit_dequantize", fmt.Sprintf("compute_precision %s with explicit_dequantize %t matches no configuration of the reference quantizer's policy (INTEGER goes with false: dynamic range; FLOAT with true: weight-only), so it would quantize nothing", c.compute, c.dequantize)
	}
	mode := ModeDynamicRange
	if floatCompute {
		mode = ModeWeightOnly
	}
	switch c.bits {
	case 8:
		name := "dynamic_int8"
		switch {
		case strings.HasPrefix(c.granularity, "BLOCKWISE"):
			return nil, c.granNode, wf("granularity"), fmt.Sprintf("int8 %s: int8 weights are channelwise or tensorwise; blockwise is int4 only", c.granularity)
		case mode == ModeDynamicRange && !c.symmetric:
			return nil, c.node, wf("symmetric"), "dynamic-range (INTEGER) int8 weights must be symmetric: the runtime's hybrid kernels have no weight zero point (the reference policy accepts this rule for no op)"
		case mode == ModeWeightOnly && c.symmetric:
			name = "weight_only_int8"
		case mode == ModeWeightOnly:
			name = "weight_only_int8_asym"
		}
		s, _ := defaultCatalog.scheme(name)
		if c.granularity == "TENSORWISE" {
			s = perTensor(s)
		}
		return s, nil, "", ""
	case 4:
		if !strings.HasPrefix(c.granularity, "BLOCKWISE") {
			if mode == ModeDynamicRange {
				return nil, c.granNode, wf("granularity"), fmt.Sprintf("dynamic-range int4 %s is not a scheme qpipe writes: dynamic int4 is blockwise (BLOCKWISE_32/64/128/256); int4 %s is written weight-only (compute_precision FLOAT, explicit_dequantize true)", c.granularity, c.granularity)
			}
			s := weightOnlyInt4("weight_only_int4")
			if !c.symmetric {
				s = weightOnlyInt4("weight_only_int4_asym")
			}
			if c.granularity == "TENSORWISE" {
				s = perTensor(s)
			}
			return s, nil, "", ""
		}
		if mode != ModeDynamicRange {
			return nil, c.computeNode, aeqOpConfig + ".compute_precision", "int4 blockwise weights are dynamic-range only (compute_precision INTEGER, explicit_dequantize false), as in the reference policy"
		}
		if !c.symmetric {
			return nil, c.node, wf("symmetric"), "int4 blockwise weights must be symmetric"
		}
		b, _ := strconv.Atoi(strings.TrimPrefix(c.granularity, "BLOCKWISE_"))
		return int4Scheme(b), nil, "", ""
	case 16:
		return nil, c.bitsNode, wf("num_bits"), "16-bit integer weights are not a scheme qpipe writes (for float16 weights use the algorithm float_casting with dtype FLOAT)"
	case 2:
		return nil, c.bitsNode, wf("num_bits"), "2-bit weights are not a scheme qpipe writes; use 4 (blockwise) or 8"
	}
	return nil, c.bitsNode, wf("num_bits"), fmt.Sprintf("num_bits %d: qpipe writes 8 (int8), 4 (int4 blockwise) or 16 (float_casting)", c.bits)
}

// aeqRuleJSON is a rule as the reference quantizer writes it
// (recipe_manager.py, get_quantization_recipe), field order included.
type aeqRuleJSON struct {
	Regex        string        `json:"regex"`
	Operation    string        `json:"operation"`
	AlgorithmKey string        `json:"algorithm_key"`
	OpConfig     *aeqOpCfgJSON `json:"op_config,omitempty"`
}

type aeqOpCfgJSON struct {
	Weight             aeqTensorCfgJSON `json:"weight_tensor_config"`
	ComputePrecision   string           `json:"compute_precision"`
	ExplicitDequantize bool             `json:"explicit_dequantize"`
	SkipChecks         bool             `json:"skip_checks"`
	MinWeightElements  int64            `json:"min_weight_elements"`
}

type aeqTensorCfgJSON struct {
	NumBits     int    `json:"num_bits"`
	Symmetric   bool   `json:"symmetric"`
	Granularity string `json:"granularity"`
	DType       string `json:"dtype"`
}

// AEQRule builds the rule that gives the ops whose scope Pattern finds (and,
// unless op is "", only ops of that builtin name) scheme s; the keep-float
// marker (or nil) becomes no_quantize.
func AEQRule(pattern, op string, s *Scheme) (ScopeRule, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return ScopeRule{}, fmt.Errorf("config: regex %s: %v", quote(pattern), err)
	}
	if s == nil {
		s = noneScheme
	}
	return ScopeRule{Pattern: pattern, Match: re, Op: op, Scheme: s}, nil
}

// AEQRules expresses a preset-like recipe (only the default slot set, plus
// any scope rules) as AI Edge Quantizer rules. Role slots depend on the
// model's names: export those with the model (qpipe plan --export-aeq).
func (r *Recipe) AEQRules() ([]ScopeRule, error) {
	if r.Embedding != nil || r.Attention != nil || r.Feedforward != nil {
		return nil, fmt.Errorf("config: recipe %s sets role slots (%s), which depend on the model's op names; export it with `qpipe plan JOB --export-aeq`, which resolves them on the model", r.Name, r.String())
	}
	var out []ScopeRule
	if r.Default != nil || len(r.Rules) == 0 {
		var s *Scheme
		if r.Default != nil {
			s = r.Default.All
		}
		base, err := AEQRule(".*", "", s)
		if err != nil {
			return nil, err
		}
		out = append(out, base)
	}
	return append(out, r.Rules...), nil
}

// MarshalAEQ writes rules as an AI Edge Quantizer recipe file (JSON, two
// spaces of indentation, a final newline). Every scheme qpipe has is
// expressible except int4 blocks other than 32, 64, 128 and 256.
func MarshalAEQ(rules []ScopeRule) ([]byte, error) {
	out := make([]aeqRuleJSON, 0, len(rules))
	for _, r := range rules {
		op := aeqAllOps
		switch r.Op {
		case "":
		case "TRANSPOSE_CONV":
			op = aeqTransConvOp
		default:
			op = r.Op
		}
		j := aeqRuleJSON{Regex: r.Pattern, Operation: op}
		s := r.Scheme
		if s == nil || s.IsNone() {
			j.AlgorithmKey = AEQNoQuantize
			out = append(out, j)
			continue
		}
		c := &aeqOpCfgJSON{SkipChecks: r.SkipChecks, MinWeightElements: r.MinWeightElements}
		c.Weight = aeqTensorCfgJSON{NumBits: s.Bits(), Symmetric: s.Symmetric, Granularity: "CHANNELWISE", DType: "INT"}
		j.AlgorithmKey = AEQMinMax
		switch s.Granularity {
		case GranularityTensorwise:
			c.Weight.Granularity = "TENSORWISE"
		case GranularityBlockwise:
			switch s.BlockSize {
			case 32, 64, 128, 256:
			default:
				return nil, fmt.Errorf("config: %s has no AI Edge Quantizer spelling: the reference quantizer's blocks are 32, 64, 128 or 256", s.Name)
			}
			c.Weight.Granularity = fmt.Sprintf("BLOCKWISE_%d", s.BlockSize)
		}
		if s.Weight == WeightFP16 {
			j.AlgorithmKey = AEQFloatCast
			c.Weight = aeqTensorCfgJSON{NumBits: 16, Symmetric: true, Granularity: "TENSORWISE", DType: "FLOAT"}
		}
		c.ComputePrecision = "INTEGER"
		if s.Mode == ModeWeightOnly {
			c.ComputePrecision, c.ExplicitDequantize = "FLOAT", true
		}
		j.OpConfig = c
		out = append(out, j)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // regexes keep their < > &
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
