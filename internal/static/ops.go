package static

import "github.com/qpipe/qpipe/internal/tflite/fb"

// constraint is how an op's activation parameters are tied
// (reference quantizer: algorithms/utils/common_utils.py:167-179).
type constraint int

const (
	// free: every tensor its own calibrated parameters.
	free constraint = iota
	// sameIn: the outputs take the (first) activation input's parameters.
	sameIn
	// sameOut: the activation inputs must have the output's parameters
	// (a requantizing QUANTIZE is inserted where they differ).
	sameOut
	// fixed: the output has fixed parameters (fixedParams).
	fixed
)

// opRule is what the rewrite knows of one builtin op.
type opRule struct {
	c constraint
	// acts are the input slots that carry activations (or constants
	// quantized as activations); other inputs (shapes, axes, indices) are
	// left alone. nil: every input.
	acts []int
	// weight is the slot of a constant weight quantized int8 symmetric per
	// channel along axis (-1: none); bias the slot of its bias (-1: none).
	weight, axis, bias int
	// int16 says LiteRT has an int16 kernel for the op (docs/SEMANTICS.md §16.3).
	int16 bool
	// v8 and v16 are the operator versions the converter writes for the
	// int8 and the 16x8 form (tflite/converter/tools/versioning/op_version.cc).
	v8, v16 int32
}

func act(c constraint, acts []int, int16 bool, v8, v16 int32) opRule {
	return opRule{c: c, acts: acts, weight: -1, bias: -1, int16: int16, v8: v8, v16: v16}
}

// rules are the ops the rewrite quantizes: the reference quantizer's
// static op lists (default_policy.py:175-275) as far as this rewrite
// implements them.
var rules = map[fb.BuiltinOperator]opRule{
	fb.BuiltinOperatorCONV_2D:           {c: free, acts: []int{0}, weight: 1, axis: 0, bias: 2, int16: true, v8: 3, v16: 1},
	fb.BuiltinOperatorDEPTHWISE_CONV_2D: {c: free, acts: []int{0}, weight: 1, axis: 3, bias: 2, int16: true, v8: 3, v16: 1},
	fb.BuiltinOperatorFULLY_CONNECTED:   {c: free, acts: []int{0}, weight: 1, axis: 0, bias: 2, int16: true, v8: 4, v16: 1},

	fb.BuiltinOperatorADD:          act(free, []int{0, 1}, true, 2, 1),
	fb.BuiltinOperatorSUB:          act(free, []int{0, 1}, true, 2, 1),
	fb.BuiltinOperatorMUL:          act(free, []int{0, 1}, true, 2, 4),
	fb.BuiltinOperatorBATCH_MATMUL: act(free, []int{0, 1}, true, 2, 3),
	fb.BuiltinOperatorGELU:         act(free, []int{0}, true, 2, 1),
	fb.BuiltinOperatorMEAN:         act(free, []int{0}, true, 2, 3),
	fb.BuiltinOperatorSUM:          act(free, []int{0}, false, 2, 2),
	fb.BuiltinOperatorRSQRT:        act(free, []int{0}, true, 2, 3),
	fb.BuiltinOperatorRELU:         act(free, []int{0}, true, 2, 3),
	fb.BuiltinOperatorSOFTMAX:      act(fixed, []int{0}, true, 2, 3),
	fb.BuiltinOperatorLOGISTIC:     act(fixed, []int{0}, true, 2, 3),
	fb.BuiltinOperatorTANH:         act(fixed, []int{0}, true, 2, 3),

	fb.BuiltinOperatorAVERAGE_POOL_2D: act(sameIn, []int{0}, true, 2, 3),
	fb.BuiltinOperatorMAX_POOL_2D:     act(sameIn, []int{0}, true, 2, 3),
	fb.BuiltinOperatorRESHAPE:         act(sameIn, []int{0}, true, 1, 1),
	fb.BuiltinOperatorTRANSPOSE:       act(sameIn, []int{0}, true, 2, 5),
	fb.BuiltinOperatorSLICE:           act(sameIn, []int{0}, true, 2, 4),
	fb.BuiltinOperatorSTRIDED_SLICE:   act(sameIn, []int{0}, true, 2, 2),
	fb.BuiltinOperatorPAD:             act(sameIn, []int{0}, true, 2, 3),
	fb.BuiltinOperatorGATHER:          act(sameIn, []int{0}, true, 2, 4),

	fb.BuiltinOperatorCONCATENATION: act(sameOut, nil, true, 2, 3),

	// The rest of the reference's static lists. Byte-moving ops and the
	// same-scale ones run on LiteRT's generic or integer kernels; only
	// TRANSPOSE_CONV among them has a test model on LiteRT.js here.
	fb.BuiltinOperatorTRANSPOSE_CONV:          {c: free, acts: []int{2}, weight: 1, axis: 0, bias: 3, int16: true, v8: 2, v16: 1},
	fb.BuiltinOperatorSPLIT:                   act(sameIn, []int{1}, true, 2, 4),
	fb.BuiltinOperatorUNPACK:                  act(sameIn, []int{0}, true, 2, 4),
	fb.BuiltinOperatorGATHER_ND:               act(sameIn, []int{0}, true, 1, 3),
	fb.BuiltinOperatorBROADCAST_TO:            act(sameIn, []int{0}, true, 3, 3),
	fb.BuiltinOperatorMIRROR_PAD:              act(sameIn, []int{0}, true, 2, 3),
	fb.BuiltinOperatorRESIZE_BILINEAR:         act(sameIn, []int{0}, true, 2, 4),
	fb.BuiltinOperatorRESIZE_NEAREST_NEIGHBOR: act(sameIn, []int{0}, true, 2, 4),
	fb.BuiltinOperatorSPACE_TO_DEPTH:          act(sameIn, []int{0}, false, 2, 2),
	fb.BuiltinOperatorREDUCE_MIN:              act(sameIn, []int{0}, true, 2, 3),
	fb.BuiltinOperatorPACK:                    act(sameOut, nil, true, 2, 3),
	fb.BuiltinOperatorSELECT:                  act(sameOut, []int{1, 2}, true, 2, 2),
	fb.BuiltinOperatorSELECT_V2:               act(sameOut, []int{1, 2}, true, 1, 1),
	fb.BuiltinOperatorDYNAMIC_UPDATE_SLICE:    act(sameOut, []int{0, 1}, true, 1, 4),
	fb.BuiltinOperatorPADV2:                   act(sameOut, []int{0, 2}, true, 2, 3),
	fb.BuiltinOperatorMAXIMUM:                 act(sameOut, []int{0, 1}, true, 2, 4),
	fb.BuiltinOperatorDIV:                     act(free, []int{0, 1}, true, 1, 1),
	fb.BuiltinOperatorSQRT:                    act(free, []int{0}, true, 2, 2),
	fb.BuiltinOperatorHARD_SWISH:              act(free, []int{0}, false, 1, 1),
	fb.BuiltinOperatorSQUARED_DIFFERENCE:      act(free, []int{0, 1}, false, 2, 2),
}

// fixedParams are the output parameters of the fixed-output ops
// (common_quantize.py:195-231, :639-666; LRT activations.cc:444-491,
// :553-561): scale and zero point for the activation width.
func fixedParams(code fb.BuiltinOperator, bits int) (scale float32, zp int64) {
	if bits == 16 {
		return 1.0 / 32768, 0
	}
	if code == fb.BuiltinOperatorTANH {
		return 1.0 / 128, 0
	}
	return 1.0 / 256, -128
}

// isAct says whether input slot k of op carries an activation under r.
func (r opRule) isAct(k int) bool {
	if r.acts == nil {
		return true
	}
	for _, a := range r.acts {
		if a == k {
			return true
		}
	}
	return false
}

// version is the operator version of op in the integer form of bits.
func (r opRule) version(code fb.BuiltinOperator, op *fb.OperatorT, bits int) int32 {
	v := r.v8
	if bits == 16 {
		v = r.v16
	}
	if code == fb.BuiltinOperatorTRANSPOSE_CONV && bits == 8 && len(op.Inputs) > 3 && op.Inputs[3] >= 0 {
		v = 3
	}
	if code == fb.BuiltinOperatorFULLY_CONNECTED {
		if len(op.Inputs) < 3 { // an absent bias (-1) still counts as an input
			return 6
		}
		if o := fcOptions(op); o != nil {
			if bits == 16 && o.QuantizedBiasType != fb.TensorTypeFLOAT32 {
				return 11
			}
			if o.KeepNumDims {
				return 5
			}
		}
	}
	return v
}

// fcOptions are a FULLY_CONNECTED's options, nil when absent.
func fcOptions(op *fb.OperatorT) *fb.FullyConnectedOptionsT {
	if op.BuiltinOptions == nil {
		return nil
	}
	o, _ := op.BuiltinOptions.Value.(*fb.FullyConnectedOptionsT)
	return o
}
