package stages

import "github.com/qpipe/qpipe/internal/tflite/fb"

// WeightForm is how a quantized weight reaches the op that reads it.
type WeightForm int

const (
	FormFloat                 WeightForm = iota
	FormInt8PerChannel                   // hybrid: the op reads int8 weights with per-channel scales
	FormInt8PerTensor                    // hybrid, one scale
	FormInt4Blockwise                    // hybrid, INT4 with a FLOAT16 block-scale tensor
	FormDequantInt8PerChannel            // DEQUANTIZE input: INT8, per-channel
	FormDequantInt8PerTensor             // DEQUANTIZE input: INT8, one scale
	FormDequantFloat16                   // DEQUANTIZE input: FLOAT16
	FormDequantInt4                      // DEQUANTIZE input: INT4
)

// RequiredVersion is the lowest OperatorCode.version an op needs to read a
// weight in the given form, per the converter's versioning rules (LiteRT,
// tflite/converter/tools/versioning/op_version.cc; runtime minima from
// runtime_version.cc; registry maxima from tflite/core/kernels/register.cc —
// see FORMAT.md §5). A runtime older than the version may compute the op
// silently wrong (a per-channel hybrid FULLY_CONNECTED labelled v3, say),
// and XNNPACK accepts it anyway, so the version is checked, not only run.
// This table is the single place qpipe keeps these numbers; verify and the
// conformance tests read it from here.
//
// hasBias and asymmetricInputs refine the rule for the ops whose version
// depends on them. The result is 1 when the form adds no requirement.
func RequiredVersion(code fb.BuiltinOperator, form WeightForm, hasBias, asymmetricInputs bool) int32 {
	switch code {
	case fb.BuiltinOperatorFULLY_CONNECTED:
		switch form {
		case FormInt8PerChannel:
			return 12 // runtime 2.17.0
		case FormInt8PerTensor:
			if asymmetricInputs {
				return 9
			}
			return 3
		}
	case fb.BuiltinOperatorCONV_2D:
		switch form {
		case FormInt8PerChannel:
			return 5 // 2.4.0
		case FormInt8PerTensor:
			return 2
		}
	case fb.BuiltinOperatorDEPTHWISE_CONV_2D:
		switch form {
		case FormInt8PerChannel:
			return 6 // 2.3.0
		case FormInt8PerTensor:
			return 4
		}
	case fb.BuiltinOperatorTRANSPOSE_CONV:
		if form == FormInt8PerChannel || form == FormInt8PerTensor {
			if hasBias {
				return 3
			}
			return 2
		}
	case fb.BuiltinOperatorBATCH_MATMUL:
		if form == FormInt8PerChannel || form == FormInt8PerTensor {
			if asymmetricInputs {
				return 4 // 2.5.0
			}
			return 1
		}
	case fb.BuiltinOperatorEMBEDDING_LOOKUP:
		if form == FormInt8PerChannel || form == FormInt4Blockwise {
			return 4 // 2.18.0
		}
	case fb.BuiltinOperatorDEQUANTIZE:
		switch form {
		case FormDequantInt8PerTensor:
			return 2 // 1.14.0
		case FormDequantFloat16:
			return 3 // 1.15.0
		case FormDequantInt8PerChannel:
			return 5 // 2.7.0
		case FormDequantInt4:
			return 6 // 2.18.0
		}
	}
	return 1
}

// weightForm classifies how op input reads tensor t.
func weightForm(t *fb.TensorT, viaDequantize bool) WeightForm {
	q := t.Quantization
	switch t.Type {
	case fb.TensorTypeINT8:
		perChannel := q != nil && len(q.Scale) > 1
		switch {
		case viaDequantize && perChannel:
			return FormDequantInt8PerChannel
		case viaDequantize:
			return FormDequantInt8PerTensor
		case perChannel:
			return FormInt8PerChannel
		default:
			return FormInt8PerTensor
		}
	case fb.TensorTypeINT4:
		if viaDequantize {
			return FormDequantInt4
		}
		return FormInt4Blockwise
	case fb.TensorTypeFLOAT16:
		if viaDequantize {
			return FormDequantFloat16
		}
	}
	return FormFloat
}

// opFlags reads the inputs and option bits that the version rules depend on.
func opFlags(code fb.BuiltinOperator, op *fb.OperatorT) (hasBias, asymmetricInputs bool) {
	if code == fb.BuiltinOperatorTRANSPOSE_CONV {
		hasBias = len(op.Inputs) > 3 && op.Inputs[3] >= 0
	}
	if op.BuiltinOptions != nil {
		switch o := op.BuiltinOptions.Value.(type) {
		case *fb.FullyConnectedOptionsT:
			asymmetricInputs = o.AsymmetricQuantizeInputs
		case *fb.BatchMatMulOptionsT:
			asymmetricInputs = o.AsymmetricQuantizeInputs
		}
	}
	return hasBias, asymmetricInputs
}
