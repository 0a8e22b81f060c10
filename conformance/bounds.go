package conformance

import (
	"fmt"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// Family groups the presets whose outputs err alike: the same weight
// type and the same way of reading it (hybrid kernel or DEQUANTIZE).
type Family string

// The families of the presets of recipes.yaml.
const (
	FamilyFloat          Family = "float"              // preset none: nothing quantized
	FamilyFP16           Family = "fp16"               // float16 weights behind DEQUANTIZE
	FamilyWeightOnlyInt8 Family = "weight_only_int8"   // int8 behind DEQUANTIZE, symmetric or not
	FamilyDynamicInt8    Family = "dynamic_int8"       // int8 read by hybrid kernels
	FamilyInt4Block      Family = "dynamic_int4_block" // int4 blockwise read by hybrid kernels

	// The tensorwise int8 schemes (one scale per tensor), which AI Edge
	// Quantizer recipes reach with TENSORWISE: coarser rounding than per
	// channel, so looser bounds against the float model.
	FamilyDynamicInt8PerTensor    Family = "dynamic_int8_per_tensor"
	FamilyWeightOnlyInt8PerTensor Family = "weight_only_int8_per_tensor"

	// int4 with a scale (and zero point) per channel or per tensor, read
	// through a DEQUANTIZE: the reference quantizer's weight-only int4.
	FamilyWeightOnlyInt4          Family = "weight_only_int4"
	FamilyWeightOnlyInt4PerTensor Family = "weight_only_int4_per_tensor"

	// Static (full-integer) recipes: integer activations with calibrated
	// ranges (docs/SEMANTICS.md §16). Their "reference" is the same static
	// model (there is no dequantized form of integer activations).
	FamilyStaticInt8  Family = "static_int8"
	FamilyStaticInt16 Family = "static_int16x8"
)

// FamilyOf classifies a preset by the scheme its default slot sets (every
// preset of recipes.yaml sets only that slot).
func FamilyOf(r *config.Recipe) (Family, error) {
	if r.Static != nil {
		if r.Static.Activations == 16 {
			return FamilyStaticInt16, nil
		}
		return FamilyStaticInt8, nil
	}
	s := r.Resolve(config.RoleDefault, -1)
	switch {
	case s == nil:
		return FamilyFloat, nil
	case s.Weight == config.WeightFP16:
		return FamilyFP16, nil
	case s.Weight == config.WeightInt4 && s.Mode == config.ModeWeightOnly && s.Granularity == config.GranularityTensorwise:
		return FamilyWeightOnlyInt4PerTensor, nil
	case s.Weight == config.WeightInt4 && s.Mode == config.ModeWeightOnly:
		return FamilyWeightOnlyInt4, nil
	case s.Weight == config.WeightInt8 && s.Granularity == config.GranularityTensorwise && s.Mode == config.ModeWeightOnly:
		return FamilyWeightOnlyInt8PerTensor, nil
	case s.Weight == config.WeightInt8 && s.Granularity == config.GranularityTensorwise && s.Mode == config.ModeDynamicRange:
		return FamilyDynamicInt8PerTensor, nil
	case s.Weight == config.WeightInt8 && s.Mode == config.ModeWeightOnly:
		return FamilyWeightOnlyInt8, nil
	case s.Weight == config.WeightInt8 && s.Mode == config.ModeDynamicRange:
		return FamilyDynamicInt8, nil
	case s.Weight == config.WeightInt4 && s.Mode == config.ModeDynamicRange:
		return FamilyInt4Block, nil
	}
	return "", fmt.Errorf("conformance: preset %s: no error bounds for scheme %s (weight %s, mode %s); add a family to conformance/bounds.go", r.Name, s.Name, s.Weight, s.Mode)
}

// Class groups models by how much they amplify a weight or activation
// error: each weight op in a chain adds its own rounding to the errors of
// the ops before it, and attention and normalisation amplify them. The
// test models fall into two groups far apart: graphs of one to three
// weight ops (the aeq_, litert_ and tflm_ models), and the generated
// decoders (a tied embedding table, seven weights per block, the logits
// head: 9 or more), which amplify the same rounding about tenfold.
type Class string

const (
	ClassShallow Class = "shallow" // at most DeepFrom−1 weight ops
	ClassDeep    Class = "deep"    // DeepFrom weight ops or more
)

// DeepFrom is the number of weight ops from which a model is ClassDeep.
const DeepFrom = 6

// ClassOf counts the ops of m that read a constant FLOAT32 weight
// (FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV,
// BATCH_MATMUL, EMBEDDING_LOOKUP) and classifies m by that count.
func ClassOf(m *tflite.Model) (Class, int) {
	n := 0
	for _, sg := range m.Meta.Subgraphs {
		for _, op := range sg.Operators {
			switch m.OpCode(op) {
			case fb.BuiltinOperatorFULLY_CONNECTED, fb.BuiltinOperatorCONV_2D, fb.BuiltinOperatorDEPTHWISE_CONV_2D,
				fb.BuiltinOperatorTRANSPOSE_CONV, fb.BuiltinOperatorBATCH_MATMUL, fb.BuiltinOperatorEMBEDDING_LOOKUP:
			default:
				continue
			}
			for _, in := range op.Inputs {
				if in >= 0 && int(in) < len(sg.Tensors) && sg.Tensors[in].Type == fb.TensorTypeFLOAT32 && constant(m, sg.Tensors[in]) {
					n++
					break
				}
			}
		}
	}
	if n >= DeepFrom {
		return ClassDeep, n
	}
	return ClassShallow, n
}

// constant reports whether t has data.
func constant(m *tflite.Model, t *fb.TensorT) bool {
	if t.Buffer == 0 || int(t.Buffer) >= len(m.Buffers) {
		return false
	}
	d := m.Buffers[t.Buffer].Data
	return d != nil && d.Len() > 0
}

// Limit bounds Errors: RelL2 and RelMax. (MaxAbs depends on the scale of
// each model's outputs; it is reported, not bounded.)
type Limit struct {
	RelL2, RelMax float64
}

// Bound is what a quantized model's outputs may differ by from the float
// model's (loose: the cost of rounding the weights) and from the
// dequantized reference's (sharp: only the runtime's own arithmetic, such
// as the int8 quantization of activations in hybrid kernels).
type Bound struct {
	VsFloat, VsReference Limit
}

// BoundKey selects a Bound.
type BoundKey struct {
	Family Family
	Class  Class
}

// Bounds were set from measurement: each is the worst value measured over
// every applicable test model and seed (REPORT.md, regenerated by `go test
// ./conformance -update`) plus a margin of 20–75 %, rounded. For fp16
// and weight-only int8 the model and its reference compute in float32 on
// the same weights and agree bit for bit or within a few float32 ulps
// (≤ 3e-7 measured), bounded at 1e-6. Each deliberate bug of
// mutants_test.go breaks at least one bound, or is refused by the runtime
// or the static checks, on every model it applies to.
var Bounds = map[BoundKey]Bound{
	{FamilyFloat, ClassShallow}: {},
	{FamilyFloat, ClassDeep}:    {},

	{FamilyFP16, ClassShallow}: {VsFloat: Limit{1e-3, 1e-3}, VsReference: Limit{1e-6, 1e-6}},
	{FamilyFP16, ClassDeep}:    {VsFloat: Limit{1e-3, 1e-3}, VsReference: Limit{1e-6, 1e-6}},

	{FamilyWeightOnlyInt8, ClassShallow}: {VsFloat: Limit{0.015, 0.015}, VsReference: Limit{1e-6, 1e-6}},
	{FamilyWeightOnlyInt8, ClassDeep}:    {VsFloat: Limit{0.13, 0.09}, VsReference: Limit{1e-6, 1e-6}},

	{FamilyDynamicInt8, ClassShallow}: {VsFloat: Limit{0.02, 0.022}, VsReference: Limit{0.008, 0.008}},
	{FamilyDynamicInt8, ClassDeep}:    {VsFloat: Limit{0.13, 0.095}, VsReference: Limit{0.045, 0.05}},

	{FamilyInt4Block, ClassShallow}: {VsFloat: Limit{0.15, 0.19}, VsReference: Limit{0.006, 0.006}},
	{FamilyInt4Block, ClassDeep}:    {VsFloat: Limit{0.95, 0.6}, VsReference: Limit{0.055, 0.055}},

	// Measured by TestAEQTensorwiseOnRuntime (aeq_test.go): one scale for a
	// whole decoder weight costs up to 0.85 rel L2 on the generated
	// decoders, whose rows differ widely in range; the runtime's own
	// arithmetic stays as small as per channel.
	{FamilyDynamicInt8PerTensor, ClassShallow}:    {VsFloat: Limit{0.025, 0.03}, VsReference: Limit{0.013, 0.012}},
	{FamilyDynamicInt8PerTensor, ClassDeep}:       {VsFloat: Limit{1.0, 0.75}, VsReference: Limit{0.055, 0.055}},
	{FamilyWeightOnlyInt8PerTensor, ClassShallow}: {VsFloat: Limit{0.024, 0.025}, VsReference: Limit{1e-6, 1e-6}},
	{FamilyWeightOnlyInt8PerTensor, ClassDeep}:    {VsFloat: Limit{1.0, 0.75}, VsReference: Limit{1e-6, 1e-6}},
	// Weight-only int4 (same test): LiteRT.js computes it within 1.2e-6 of
	// the dequantized reference (float32 summation order); against float
	// up to 0.17 (shallow) and 0.81 (decoders) per channel, and 2.6 rel L2
	// (7.5 max) on the decoders per tensor — one 4-bit grid for a whole
	// decoder weight is not usable, but it is what the recipe asks.
	{FamilyWeightOnlyInt4, ClassShallow}:          {VsFloat: Limit{0.2, 0.2}, VsReference: Limit{3e-6, 3e-6}},
	{FamilyWeightOnlyInt4, ClassDeep}:             {VsFloat: Limit{1.0, 0.95}, VsReference: Limit{3e-6, 3e-6}},
	{FamilyWeightOnlyInt4PerTensor, ClassShallow}: {VsFloat: Limit{0.2, 0.24}, VsReference: Limit{3e-6, 3e-6}},
	{FamilyWeightOnlyInt4PerTensor, ClassDeep}:    {VsFloat: Limit{3.2, 9}, VsReference: Limit{3e-6, 3e-6}},
	// Static (TestStaticOnRuntime, static_test.go): calibrated on generated
	// inputs, measured on the suite's seeds; worst rel L2 / rel max
	// measured: shallow int8 0.042 / 0.064 (aeq_two_signatures), int16
	// 0.015 / 0.024 (tflm_hello_world_float); the generated decoders int8
	// 0.68 / 0.87, int16 0.11 / 0.091 (docs/SEMANTICS.md §16.5). There is no dequantized reference of
	// integer activations: VsReference is not used.
	{FamilyStaticInt8, ClassShallow}:  {VsFloat: Limit{0.06, 0.09}},
	{FamilyStaticInt8, ClassDeep}:     {VsFloat: Limit{0.95, 1.1}},
	{FamilyStaticInt16, ClassShallow}: {VsFloat: Limit{0.02, 0.03}},
	{FamilyStaticInt16, ClassDeep}:    {VsFloat: Limit{0.15, 0.13}},
}

// BoundFor returns the bound of a family and class.
func BoundFor(f Family, c Class) (Bound, error) {
	b, ok := Bounds[BoundKey{f, c}]
	if !ok {
		return Bound{}, fmt.Errorf("conformance: no bound for family %s, class %s in conformance/bounds.go", f, c)
	}
	return b, nil
}

// Check returns every way vsFloat and vsReference break the bound; none
// means the outputs conform.
func (b Bound) Check(vsFloat, vsReference Errors) []string {
	var bad []string
	check := func(what string, e Errors, l Limit) {
		// !(x <= bound) also rejects NaN.
		if !(e.RelL2 <= l.RelL2) {
			bad = append(bad, fmt.Sprintf("rel L2 vs %s %.3g > bound %.3g", what, e.RelL2, l.RelL2))
		}
		if !(e.RelMax <= l.RelMax) {
			bad = append(bad, fmt.Sprintf("rel max vs %s %.3g > bound %.3g", what, e.RelMax, l.RelMax))
		}
	}
	check("float", vsFloat, b.VsFloat)
	check("reference", vsReference, b.VsReference)
	return bad
}
