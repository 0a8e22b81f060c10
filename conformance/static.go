package conformance

import (
	"fmt"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
	"github.com/qpipe/qpipe/stages"
)

// WeightRead is one op input of a quantized model that reads a weight
// qpipe quantized.
type WeightRead struct {
	Subgraph, Op int
	Code         fb.BuiltinOperator
	Tensor       string
	Type         fb.TensorType
	Form         stages.WeightForm
	// Hybrid is true when an op other than DEQUANTIZE reads the weight
	// with float32 activations (its kernel quantizes them on the fly).
	Hybrid bool
	// ZeroPoints are the weight's zero points (int8 only).
	ZeroPoints []int64
	// Version is the op's OperatorCode.version; Required is
	// stages.RequiredVersion for the form.
	Version, Required int32
}

// FormName names a stages.WeightForm for reports.
func FormName(f stages.WeightForm) string {
	switch f {
	case stages.FormInt8PerChannel:
		return "int8 per-channel (hybrid)"
	case stages.FormInt8PerTensor:
		return "int8 per-tensor (hybrid)"
	case stages.FormInt4Blockwise:
		return "int4 blockwise (hybrid)"
	case stages.FormDequantInt8PerChannel:
		return "int8 per-channel"
	case stages.FormDequantInt8PerTensor:
		return "int8 per-tensor"
	case stages.FormDequantFloat16:
		return "float16"
	case stages.FormDequantInt4:
		return "int4"
	}
	return "float"
}

// WeightReads lists every op input of out that reads a weight qpipe
// quantized: a constant INT8, INT4 or FLOAT16 tensor that was FLOAT32 in
// in (at the same subgraph and index: qpipe only appends tensors) or that
// qpipe added. Weights that were quantized already in in are left out:
// qpipe copies them unchanged. The classification of forms is written
// here independently of stages' own verify step; the version table is the
// one in stages/opversions.go.
func WeightReads(in, out *tflite.Model) []WeightRead {
	var reads []WeightRead
	for si, sg := range out.Meta.Subgraphs {
		var before []*fb.TensorT
		if si < len(in.Meta.Subgraphs) {
			before = in.Meta.Subgraphs[si].Tensors
		}
		for oi, op := range sg.Operators {
			code := out.OpCode(op)
			for _, ti := range op.Inputs {
				if ti < 0 || int(ti) >= len(sg.Tensors) {
					continue
				}
				t := sg.Tensors[ti]
				if !quantizedWeight(out, t) || (int(ti) < len(before) && before[ti].Type != fb.TensorTypeFLOAT32) {
					continue
				}
				form, ok := formOf(sg, op, code, t)
				if !ok {
					continue
				}
				hasBias, asym := versionFlags(code, op)
				w := WeightRead{
					Subgraph: si, Op: oi, Code: code, Tensor: t.Name, Type: t.Type, Form: form,
					Hybrid:   code != fb.BuiltinOperatorDEQUANTIZE,
					Version:  out.Meta.OperatorCodes[op.OpcodeIndex].Version,
					Required: stages.RequiredVersion(code, form, hasBias, asym),
				}
				if t.Quantization != nil {
					w.ZeroPoints = t.Quantization.ZeroPoint
				}
				reads = append(reads, w)
			}
		}
	}
	return reads
}

// CheckOpVersions returns every weight read whose op has an
// OperatorCode.version below what stages.RequiredVersion demands for the
// weight's form. The runtime does not check this: current LiteRT kernels
// choose their code path from tensor types, while older runtimes trust the
// version and compute a too-old hybrid op silently wrong.
func CheckOpVersions(reads []WeightRead) []string {
	var bad []string
	for _, w := range reads {
		if w.Version < w.Required {
			bad = append(bad, fmt.Sprintf("subgraph %d op %d (%s): OperatorCode version %d, but reading %s weight %q needs %d",
				w.Subgraph, w.Op, w.Code, w.Version, FormName(w.Form), w.Tensor, w.Required))
		}
	}
	return bad
}

// CheckHybridZeroPoints returns every int8 weight read by a hybrid kernel
// with a zero point other than 0. Hybrid kernels take weights as
// symmetric: measured on LiteRT.js, XNNPACK refuses a non-zero weight zero
// point for FULLY_CONNECTED ("unsupported zero-point value"), while the
// builtin BATCH_MATMUL, DEPTHWISE_CONV_2D and TRANSPOSE_CONV hybrid kernels
// ignore it and compute as if it were 0, so running the model cannot show
// a wrong one there.
func CheckHybridZeroPoints(reads []WeightRead) []string {
	var bad []string
	for _, w := range reads {
		if !w.Hybrid || w.Type != fb.TensorTypeINT8 {
			continue
		}
		for c, zp := range w.ZeroPoints {
			if zp != 0 {
				bad = append(bad, fmt.Sprintf("subgraph %d op %d (%s): hybrid weight %q has zero point %d in channel %d; hybrid kernels need 0",
					w.Subgraph, w.Op, w.Code, w.Tensor, zp, c))
				break
			}
		}
	}
	return bad
}

// quantizedWeight reports whether t is a constant of a quantized type.
func quantizedWeight(m *tflite.Model, t *fb.TensorT) bool {
	switch t.Type {
	case fb.TensorTypeINT8, fb.TensorTypeINT4, fb.TensorTypeFLOAT16:
		return constant(m, t)
	}
	return false
}

// formOf is how op reads weight t. ok is false when the read adds no
// version requirement: a static int8 op (its output is not float32)
// reading int8 weights is not a hybrid op, and no op but DEQUANTIZE reads
// a FLOAT16 weight (a blockwise scale tensor has no reader).
func formOf(sg *fb.SubGraphT, op *fb.OperatorT, code fb.BuiltinOperator, t *fb.TensorT) (stages.WeightForm, bool) {
	perChannel := t.Quantization != nil && len(t.Quantization.Scale) > 1
	if code == fb.BuiltinOperatorDEQUANTIZE {
		switch {
		case t.Type == fb.TensorTypeFLOAT16:
			return stages.FormDequantFloat16, true
		case t.Type == fb.TensorTypeINT4:
			return stages.FormDequantInt4, true
		case perChannel:
			return stages.FormDequantInt8PerChannel, true
		default:
			return stages.FormDequantInt8PerTensor, true
		}
	}
	if len(op.Outputs) == 0 || op.Outputs[0] < 0 || int(op.Outputs[0]) >= len(sg.Tensors) ||
		sg.Tensors[op.Outputs[0]].Type != fb.TensorTypeFLOAT32 {
		return stages.FormFloat, false
	}
	switch {
	case t.Type == fb.TensorTypeINT4:
		return stages.FormInt4Blockwise, true
	case t.Type == fb.TensorTypeINT8 && perChannel:
		return stages.FormInt8PerChannel, true
	case t.Type == fb.TensorTypeINT8:
		return stages.FormInt8PerTensor, true
	}
	return stages.FormFloat, false
}

// versionFlags reads the op's bias input and options that the version
// rules depend on (FORMAT.md §5).
func versionFlags(code fb.BuiltinOperator, op *fb.OperatorT) (hasBias, asymmetricInputs bool) {
	if code == fb.BuiltinOperatorTRANSPOSE_CONV {
		// TRANSPOSE_CONV's inputs are (output_shape, weights, input, bias).
		hasBias = len(op.Inputs) > 3 && op.Inputs[3] >= 0
	}
	if op.BuiltinOptions != nil {
		switch o := op.BuiltinOptions.Value.(type) {
		case *fb.FullyConnectedOptionsT:
			asymmetricInputs = o != nil && o.AsymmetricQuantizeInputs
		case *fb.BatchMatMulOptionsT:
			asymmetricInputs = o != nil && o.AsymmetricQuantizeInputs
		}
	}
	return hasBias, asymmetricInputs
}
