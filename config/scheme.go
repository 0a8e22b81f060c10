package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Scheme is how one weight tensor is quantized. Activations are always
// float32, so only the weight side is described. The valid combinations are
// the seven of the upstream generative layer (dynamic int8, weight-only int8,
// fp16, int4 blockwise 32/64/128/256) with any block size that is a multiple
// of 32, plus asymmetric weight-only int8, the three int8 schemes with one
// scale per tensor (tensorwise), and weight-only int4 per channel or per
// tensor, symmetric or not: what the reference quantizer's own recipes add.
//
// Schemes handed out by this package are shared: treat them as read-only.
// Two schemes are the same iff their Names and Scales are equal.
type Scheme struct {
	// Name is canonical: dynamic_int8, weight_only_int8,
	// weight_only_int8_asym (each also with _per_tensor),
	// weight_only_int4[_asym][_per_tensor], fp16, dynamic_int4_block<B>, or
	// "none" for the keep-float marker (see IsNone).
	Name        string
	Weight      string // WeightInt8, WeightFP16 or WeightInt4
	Mode        string // ModeDynamicRange or ModeWeightOnly
	Algorithm   string // AlgorithmMinMax or AlgorithmFloatCast
	Granularity string // GranularityChannelwise, GranularityTensorwise, GranularityBlockwise or GranularityNone
	BlockSize   int    // elements per block along the input dimension; blockwise only, else 0
	Symmetric   bool   // zero points all 0; false only for the _asym schemes (and fp16, where it does not apply)
	// Scales is how an int4 blockwise scheme picks its block scales:
	// ScalesMinMax, ScalesSearch, ScalesCalibrated or ScalesGPTQ (which
	// also applies to int8 channelwise and tensorwise schemes); "" leaves
	// it to the recipe's or the quantize stage's `scales` (then min-max).
	Scales string
}

// Scale methods (Scheme.Scales). All store the same format; they differ in
// which scale each int4 block gets.
const (
	// ScalesMinMax is max|x|/7 per block: the reference quantizer's.
	ScalesMinMax = "minmax"
	// ScalesSearch picks, per block, the scale of lowest squared weight
	// error among candidates (data-free).
	ScalesSearch = "search"
	// ScalesCalibrated picks the scale of lowest expected output error
	// under the statistics of the op's input activations, gathered by
	// running the model (quantize.calibration).
	ScalesCalibrated = "calibrated"
	// ScalesGPTQ rounds with error compensation (GPTQ): each column's
	// rounding error is pushed onto the columns not yet quantized, under
	// the full covariance of the op's input gathered by running the model
	// (quantize.calibration); int4 blockwise and int8 channelwise and
	// tensorwise schemes of FULLY_CONNECTED weights and (int8) BATCH_MATMUL
	// right operands.
	ScalesGPTQ = "gptq"
)

// ScaleMethods lists the valid values of `scales`.
var ScaleMethods = []string{ScalesMinMax, ScalesSearch, ScalesCalibrated, ScalesGPTQ}

// scalesFor is why a scheme cannot take scale method m, or "".
func scalesFor(s *Scheme, m string) string {
	if m == ScalesMinMax || m == "" || (s.Weight == WeightInt4 && s.Granularity == GranularityBlockwise) {
		return ""
	}
	if m == ScalesGPTQ && s.Weight == WeightInt8 && (s.Granularity == GranularityChannelwise || s.Granularity == GranularityTensorwise) {
		return ""
	}
	if m == ScalesGPTQ {
		return fmt.Sprintf("%s applies to int4 blockwise and int8 channelwise or tensorwise schemes only; %s keeps its min-max scales", m, s.Name)
	}
	return fmt.Sprintf("%s applies to int4 blockwise schemes only; %s keeps its min-max scales (remove scales here, or choose a dynamic_int4_block scheme)", m, s.Name)
}

// Field values of Scheme.
const (
	WeightInt8 = "int8"
	WeightInt4 = "int4"
	WeightFP16 = "fp16"

	// ModeDynamicRange stores quantized weights that the consumer op reads
	// directly with its hybrid kernel (no new op).
	ModeDynamicRange = "dynamic_range"
	// ModeWeightOnly stores quantized weights behind a DEQUANTIZE op; the
	// model computes in float32.
	ModeWeightOnly = "weight_only"

	AlgorithmMinMax    = "min_max"
	AlgorithmFloatCast = "float_cast"

	GranularityChannelwise = "channelwise"
	// GranularityTensorwise is one scale (and zero point) for the whole
	// tensor, as the reference quantizer's TENSORWISE.
	GranularityTensorwise = "tensorwise"
	GranularityBlockwise  = "blockwise"
	GranularityNone       = "none"
)

// SchemeNone is the name of the keep-float marker.
const SchemeNone = "none"

// noneScheme marks a slot explicitly set to keep weights float.
var noneScheme = &Scheme{Name: SchemeNone}

// maxBlockSize keeps block sizes far from integer overflow in the stages'
// arithmetic; no weight dimension comes near it.
const maxBlockSize = 1 << 20

// IsNone reports whether s is the keep-float marker ("none"). A nil Scheme
// is not the marker: it means "not set".
func (s *Scheme) IsNone() bool { return s != nil && s.Name == SchemeNone }

// SchemeLabel names a scheme as plans, budgets, metrics and reports show
// it: the name, followed by "+" and the scale method when that is not
// min-max ("dynamic_int4_block32+search"). Scheme.String, which a lock
// records, keeps an explicit min-max too: it is what the job file set.
func SchemeLabel(name, scales string) string {
	if scales == "" || scales == ScalesMinMax {
		return name
	}
	return name + "+" + scales
}

// String returns the canonical name, followed by "+" and the scale method
// when one is set ("dynamic_int4_block32+search"); a nil Scheme (what
// Resolve returns to keep a weight float) prints as "none".
func (s *Scheme) String() string {
	if s == nil {
		return SchemeNone
	}
	if s.Scales != "" {
		return s.Name + "+" + s.Scales
	}
	return s.Name
}

// Bits is the storage width of one quantized weight element: 8, 4 or 16;
// 32 for the keep-float marker.
func (s *Scheme) Bits() int {
	switch s.Weight {
	case WeightInt8:
		return 8
	case WeightInt4:
		return 4
	case WeightFP16:
		return 16
	}
	return 32
}

// fields formats the scheme's fields as a YAML flow mapping.
func (s *Scheme) fields() string {
	var b strings.Builder
	fmt.Fprintf(&b, "{weight: %s, mode: %s, algorithm: %s, granularity: %s", s.Weight, s.Mode, s.Algorithm, s.Granularity)
	if s.BlockSize != 0 {
		fmt.Fprintf(&b, ", block_size: %d", s.BlockSize)
	}
	if s.Weight != WeightFP16 {
		fmt.Fprintf(&b, ", symmetric: %t", s.Symmetric)
	}
	b.WriteString("}")
	return b.String()
}

// validCombinations lists the supported field combinations for messages.
const validCombinations = "dynamic_int8 {weight: int8, mode: dynamic_range, algorithm: min_max, granularity: channelwise}; " +
	"weight_only_int8 {weight: int8, mode: weight_only, algorithm: min_max, granularity: channelwise}; " +
	"weight_only_int8_asym {weight: int8, mode: weight_only, algorithm: min_max, granularity: channelwise, symmetric: false}; " +
	"the same three with granularity: tensorwise (dynamic_int8_per_tensor, weight_only_int8_per_tensor, weight_only_int8_asym_per_tensor); " +
	"weight_only_int4[_asym][_per_tensor] {weight: int4, mode: weight_only, algorithm: min_max, granularity: channelwise or tensorwise}; " +
	"fp16 {weight: fp16, mode: weight_only, algorithm: float_cast, granularity: none}; " +
	"dynamic_int4_block<B> {weight: int4, mode: dynamic_range, algorithm: min_max, granularity: blockwise, block_size: B} " +
	"with B a multiple of 32, at least 32; activation is always fp32"

// canonicalName returns the name of a supported combination of fields, or
// false. The block size must already have passed checkBlockSize.
func canonicalName(s *Scheme) (string, bool) {
	switch {
	case s.Weight == WeightInt8 && s.Algorithm == AlgorithmMinMax && s.Granularity == GranularityChannelwise && s.BlockSize == 0:
		switch {
		case s.Mode == ModeDynamicRange && s.Symmetric:
			return "dynamic_int8", true
		case s.Mode == ModeWeightOnly && s.Symmetric:
			return "weight_only_int8", true
		case s.Mode == ModeWeightOnly:
			return "weight_only_int8_asym", true
		}
	case s.Weight == WeightInt8 && s.Algorithm == AlgorithmMinMax && s.Granularity == GranularityTensorwise && s.BlockSize == 0:
		switch {
		case s.Mode == ModeDynamicRange && s.Symmetric:
			return "dynamic_int8" + perTensorSuffix, true
		case s.Mode == ModeWeightOnly && s.Symmetric:
			return "weight_only_int8" + perTensorSuffix, true
		case s.Mode == ModeWeightOnly:
			return "weight_only_int8_asym" + perTensorSuffix, true
		}
	case s.Weight == WeightFP16 && s.Mode == ModeWeightOnly && s.Algorithm == AlgorithmFloatCast &&
		s.Granularity == GranularityNone && s.BlockSize == 0 && !s.Symmetric:
		return "fp16", true
	case s.Weight == WeightInt4 && s.Mode == ModeWeightOnly && s.Algorithm == AlgorithmMinMax && s.BlockSize == 0 &&
		(s.Granularity == GranularityChannelwise || s.Granularity == GranularityTensorwise):
		name := "weight_only_int4"
		if !s.Symmetric {
			name += "_asym"
		}
		if s.Granularity == GranularityTensorwise {
			name += perTensorSuffix
		}
		return name, true
	case s.Weight == WeightInt4 && s.Mode == ModeDynamicRange && s.Algorithm == AlgorithmMinMax &&
		s.Granularity == GranularityBlockwise && s.Symmetric && checkBlockSize(s.BlockSize) == "":
		return int4Prefix + strconv.Itoa(s.BlockSize), true
	}
	return "", false
}

const int4Prefix = "dynamic_int4_block"

// perTensorSuffix ends the names of the tensorwise int8 schemes.
const perTensorSuffix = "_per_tensor"

// weightOnlyInt4 returns the weight-only int4 scheme of that name
// (weight_only_int4[_asym][_per_tensor]), or nil.
func weightOnlyInt4(name string) *Scheme {
	rest, ok := strings.CutPrefix(name, "weight_only_int4")
	if !ok {
		return nil
	}
	s := &Scheme{Name: name, Weight: WeightInt4, Mode: ModeWeightOnly, Algorithm: AlgorithmMinMax, Granularity: GranularityChannelwise, Symmetric: true}
	if r, ok := strings.CutPrefix(rest, "_asym"); ok {
		s.Symmetric, rest = false, r
	}
	if r, ok := strings.CutPrefix(rest, perTensorSuffix); ok {
		s.Granularity, rest = GranularityTensorwise, r
	}
	if rest != "" {
		return nil
	}
	return s
}

// perTensor is the tensorwise variant of a channelwise int8 scheme.
func perTensor(s *Scheme) *Scheme {
	t := *s
	t.Granularity = GranularityTensorwise
	t.Name = s.Name + perTensorSuffix
	return &t
}

// AppliesTo says whether the scheme is one the runtime has kernels for on
// the op (a builtin op name such as FULLY_CONNECTED), per the reference
// quantizer's policy (SEMANTICS.md §5): int8 on FULLY_CONNECTED,
// EMBEDDING_LOOKUP, CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV and
// BATCH_MATMUL; fp16 on all of those but BATCH_MATMUL; int4 blockwise on
// FULLY_CONNECTED and EMBEDDING_LOOKUP; weight-only int4 per channel or
// tensor on FULLY_CONNECTED, EMBEDDING_LOOKUP, CONV_2D and BATCH_MATMUL. The
// keep-float marker applies to
// every op. A recipe rule whose scheme does not apply to an op is skipped
// for it, as upstream.
func (s *Scheme) AppliesTo(op string) bool {
	switch s.Weight {
	case WeightInt8:
		return slices.Contains(int8Ops, op)
	case WeightFP16:
		return op != "BATCH_MATMUL" && slices.Contains(int8Ops, op)
	case WeightInt4:
		if s.Granularity == GranularityBlockwise {
			return op == "FULLY_CONNECTED" || op == "EMBEDDING_LOOKUP"
		}
		// int4 per channel or tensor, through a DEQUANTIZE.
		return op == "FULLY_CONNECTED" || op == "EMBEDDING_LOOKUP" || op == "CONV_2D" || op == "BATCH_MATMUL"
	}
	return s.IsNone()
}

// int8Ops are the ops whose constant weights the reference quantizer
// quantizes to int8.
var int8Ops = []string{"FULLY_CONNECTED", "EMBEDDING_LOOKUP", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "BATCH_MATMUL"}

// checkBlockSize returns why b is not a usable block size, or "".
func checkBlockSize(b int) string {
	switch {
	case b < 32 || b%32 != 0:
		return fmt.Sprintf("block size %d: must be a multiple of 32, at least 32 (32, 64, 128, 256, ...)", b)
	case b > maxBlockSize:
		return fmt.Sprintf("block size %d: too large (at most %d)", b, maxBlockSize)
	}
	return ""
}

// int4Scheme builds dynamic_int4_block<b> for a block size that passed
// checkBlockSize.
func int4Scheme(b int) *Scheme {
	return &Scheme{
		Name:        int4Prefix + strconv.Itoa(b),
		Weight:      WeightInt4,
		Mode:        ModeDynamicRange,
		Algorithm:   AlgorithmMinMax,
		Granularity: GranularityBlockwise,
		BlockSize:   b,
		Symmetric:   true,
	}
}

// ParseScheme parses a scheme given as YAML text: a name ("dynamic_int8",
// "dynamic_int4_block64", "none") or a full mapping such as
// "{weight: int4, mode: dynamic_range, granularity: blockwise, block_size: 64}".
// It returns the canonical Scheme (for "none", the keep-float marker) or
// Diagnostics whose positions are line:column within text.
func ParseScheme(text string) (*Scheme, error) {
	root, err := parseYAML("", []byte(text))
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, Diagnostics{{Pos: Pos{Line: 1, Col: 1}, Msg: "empty scheme; give a name such as dynamic_int8 or a mapping"}}
	}
	d := &decoder{cat: defaultCatalog}
	s, ok := d.scheme(root, "")
	if !ok {
		return nil, d.errs.Sorted()
	}
	return s, nil
}

// scheme decodes a scheme name or a full scheme mapping. "none" yields the
// keep-float marker.
func (d *decoder) scheme(n *yaml.Node, field string) (*Scheme, bool) {
	if n = d.deref(n); n == nil {
		return nil, false
	}
	if n.Kind == yaml.MappingNode {
		if contains(d.keys(n), "scheme") {
			return d.namedScheme(n, field)
		}
		return d.schemeMapping(n, field, nil)
	}
	name, ok := d.str(n, field)
	if !ok {
		return nil, false
	}
	s, msg := d.cat.scheme(name)
	if s == nil {
		d.errorf(n, field, "%s", msg)
		return nil, false
	}
	return s, true
}

var schemeKeys = []string{"activation", "weight", "mode", "algorithm", "granularity", "block_size", "symmetric", "scales"}

// schemeMapping decodes a full scheme mapping. extra adds keys (with their
// decoders) that may appear beside the scheme fields, as `description` does
// in recipes.yaml.
func (d *decoder) schemeMapping(n *yaml.Node, field string, extra map[string]func(k, v *yaml.Node)) (*Scheme, bool) {
	s := &Scheme{Symmetric: true}
	var weightSet, modeSet, algSet, granSet bool
	var blockNode, granBlockNode, symNode, scalesNode *yaml.Node
	granBlock := 0
	valid := schemeKeys
	for k := range extra {
		valid = append(valid[:len(valid):len(valid)], k)
	}
	slices.Sort(valid[len(schemeKeys):])
	before := len(d.errs)
	if !d.mapping(n, field, valid, false, func(key string, k, v *yaml.Node) {
		f := join(field, key)
		switch key {
		case "activation":
			if a, ok := d.str(v, f); ok && !strings.EqualFold(a, "fp32") && !strings.EqualFold(a, "float32") {
				d.errorf(d.deref(v), f, "unsupported activation %s: activations stay fp32 (float32) in every supported scheme", quote(a))
			}
		case "weight":
			if w, ok := d.enum(v, f, []string{WeightInt8, WeightInt4, WeightFP16, "float16"}); ok {
				if w == "float16" {
					w = WeightFP16
				}
				s.Weight, weightSet = w, true
			}
		case "mode":
			s.Mode, modeSet = d.enum(v, f, []string{ModeDynamicRange, ModeWeightOnly})
		case "algorithm":
			s.Algorithm, algSet = d.enum(v, f, []string{AlgorithmMinMax, AlgorithmFloatCast})
		case "granularity":
			s.Granularity, granBlock, granSet = d.granularity(v, f)
			if granBlock != 0 {
				granBlockNode = d.deref(v)
			}
		case "block_size":
			b, ok := d.integer(v, f)
			if !ok {
				return
			}
			if msg := checkBlockSize(b); msg != "" {
				d.errorf(d.deref(v), f, "%s", msg)
				return
			}
			s.BlockSize, blockNode = b, d.deref(v)
		case "symmetric":
			if sym, ok := d.boolean(v, f); ok {
				s.Symmetric, symNode = sym, d.deref(v)
			}
		case "scales":
			s.Scales, _ = d.enum(v, f, ScaleMethods)
			scalesNode = d.deref(v)
		default:
			extra[key](k, v)
		}
	}) {
		return nil, false
	}
	if !weightSet && len(d.errs) == before {
		d.errorf(n, field, "missing key weight (int8, int4 or fp16)")
	}
	if !modeSet && len(d.errs) == before {
		d.errorf(n, field, "missing key mode (dynamic_range or weight_only)")
	}
	if len(d.errs) > before {
		return nil, false
	}
	if !algSet {
		s.Algorithm = AlgorithmMinMax
		if s.Weight == WeightFP16 {
			s.Algorithm = AlgorithmFloatCast
		}
	}
	if !granSet {
		switch s.Weight {
		case WeightFP16:
			s.Granularity = GranularityNone
		case WeightInt4:
			s.Granularity = GranularityBlockwise
		default:
			s.Granularity = GranularityChannelwise
		}
	}
	switch {
	case granBlock != 0 && blockNode != nil && granBlock != s.BlockSize:
		d.errorf(blockNode, join(field, "block_size"), "block_size %d contradicts granularity blockwise_%d", s.BlockSize, granBlock)
	case granBlock != 0:
		s.BlockSize, blockNode = granBlock, granBlockNode
	case s.Granularity == GranularityBlockwise && blockNode == nil:
		d.errorf(n, field, "granularity blockwise needs block_size (32, 64, 128, 256 or another multiple of 32)")
	case s.Granularity != GranularityBlockwise && blockNode != nil:
		d.errorf(blockNode, join(field, "block_size"), "block_size applies only to granularity blockwise (this scheme is %s)", s.Granularity)
	}
	if s.Weight == WeightFP16 {
		if symNode != nil {
			d.errorf(symNode, join(field, "symmetric"), "symmetric does not apply to fp16 weights (float_cast); remove it")
		}
		s.Symmetric = false
	}
	if len(d.errs) > before {
		return nil, false
	}
	name, ok := canonicalName(s)
	if !ok {
		d.errorf(n, field, "unsupported combination %s; valid: %s", s.fields(), validCombinations)
		return nil, false
	}
	s.Name = name
	if msg := scalesFor(s, s.Scales); msg != "" {
		d.errorf(scalesNode, join(field, "scales"), "%s", msg)
		return nil, false
	}
	return s, true
}

// namedScheme decodes {scheme: NAME, scales: METHOD}: a named scheme with
// its scale method.
func (d *decoder) namedScheme(n *yaml.Node, field string) (*Scheme, bool) {
	var base *Scheme
	var scales string
	var scalesNode *yaml.Node
	before := len(d.errs)
	d.mapping(n, field, []string{"scheme", "scales"}, false, func(key string, k, v *yaml.Node) {
		f := join(field, key)
		switch key {
		case "scheme":
			name, ok := d.str(v, f)
			if !ok {
				return
			}
			s, msg := d.cat.scheme(name)
			if s == nil {
				d.errorf(d.deref(v), f, "%s", msg)
				return
			}
			base = s
		case "scales":
			scales, _ = d.enum(v, f, ScaleMethods)
			scalesNode = d.deref(v)
		}
	})
	if len(d.errs) > before || base == nil {
		return nil, false
	}
	if base.IsNone() || scales == "" {
		return base, true
	}
	if msg := scalesFor(base, scales); msg != "" {
		d.errorf(scalesNode, join(field, "scales"), "%s", msg)
		return nil, false
	}
	c := *base
	c.Scales = scales
	return &c, true
}

// granularity decodes channelwise, blockwise, none, or the upstream spelling
// blockwise_<B>, which also sets the block size.
func (d *decoder) granularity(n *yaml.Node, field string) (g string, block int, ok bool) {
	s, ok := d.str(n, field)
	if !ok {
		return "", 0, false
	}
	valid := []string{GranularityChannelwise, GranularityTensorwise, GranularityBlockwise, GranularityNone}
	for _, v := range valid {
		if strings.EqualFold(s, v) {
			return v, 0, true
		}
	}
	if low := strings.ToLower(s); strings.HasPrefix(low, "blockwise_") {
		if b, err := strconv.Atoi(low[len("blockwise_"):]); err == nil {
			if msg := checkBlockSize(b); msg != "" {
				d.errorf(d.deref(n), field, "%s", msg)
				return "", 0, false
			}
			return GranularityBlockwise, b, true
		}
	}
	d.errorf(d.deref(n), field, "unknown value %s%s; valid: %s, or blockwise_<B>", quote(s), suggest(s, valid), strings.Join(valid, ", "))
	return "", 0, false
}
