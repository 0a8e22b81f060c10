package interp

import (
	"math"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// kernels maps every implemented builtin operator to its kernel. An
// operator missing here is refused by New with an *UnsupportedError.
var kernels map[fb.BuiltinOperator]*kernel

func init() {
	kernels = map[fb.BuiltinOperator]*kernel{
		fb.BuiltinOperatorFULLY_CONNECTED:     fcKernel(),
		fb.BuiltinOperatorBATCH_MATMUL:        bmmKernel(),
		fb.BuiltinOperatorEMBEDDING_LOOKUP:    embeddingKernel(),
		fb.BuiltinOperatorDEQUANTIZE:          dequantizeKernel(),
		fb.BuiltinOperatorSTABLEHLO_COMPOSITE: compositeKernel(),
		fb.BuiltinOperatorCONV_2D:             convKernel(false),
		fb.BuiltinOperatorDEPTHWISE_CONV_2D:   convKernel(true),
		fb.BuiltinOperatorTRANSPOSE_CONV:      transposeConvKernel(),
		fb.BuiltinOperatorAVERAGE_POOL_2D:     poolKernel(false),
		fb.BuiltinOperatorMAX_POOL_2D:         poolKernel(true),

		fb.BuiltinOperatorSOFTMAX:     softmaxKernel(false),
		fb.BuiltinOperatorLOG_SOFTMAX: softmaxKernel(true),
		fb.BuiltinOperatorMEAN:        reduceKernel(fb.BuiltinOperatorMEAN),
		fb.BuiltinOperatorSUM:         reduceKernel(fb.BuiltinOperatorSUM),
		fb.BuiltinOperatorREDUCE_MAX:  reduceKernel(fb.BuiltinOperatorREDUCE_MAX),
		fb.BuiltinOperatorREDUCE_MIN:  reduceKernel(fb.BuiltinOperatorREDUCE_MIN),
		fb.BuiltinOperatorREDUCE_PROD: reduceKernel(fb.BuiltinOperatorREDUCE_PROD),

		fb.BuiltinOperatorRSQRT:    unaryKernel(func(x float64) float64 { return 1 / math.Sqrt(x) }),
		fb.BuiltinOperatorSQRT:     unaryKernel(math.Sqrt),
		fb.BuiltinOperatorLOGISTIC: unaryKernel(sigmoid),
		fb.BuiltinOperatorTANH:     unaryKernel(math.Tanh),
		fb.BuiltinOperatorSIN:      unaryKernel(math.Sin),
		fb.BuiltinOperatorCOS:      unaryKernel(math.Cos),
		fb.BuiltinOperatorEXP:      unaryKernel(math.Exp),
		fb.BuiltinOperatorLOG:      unaryKernel(math.Log),
		fb.BuiltinOperatorRELU:     unaryKernel(func(x float64) float64 { return max(x, 0) }),
		fb.BuiltinOperatorRELU6:    unaryKernel(func(x float64) float64 { return min(max(x, 0), 6) }),
		fb.BuiltinOperatorFLOOR:    unaryKernel(math.Floor),
		fb.BuiltinOperatorCEIL:     unaryKernel(math.Ceil),
		fb.BuiltinOperatorGELU:     geluKernel(),
		fb.BuiltinOperatorNEG:      numUnaryKernel(func(x float64) float64 { return -x }, func(x int32) int32 { return -x }),
		fb.BuiltinOperatorABS:      numUnaryKernel(math.Abs, func(x int32) int32 { return max(x, -x) }),
		fb.BuiltinOperatorSQUARE:   numUnaryKernel(func(x float64) float64 { return float64(float32(x) * float32(x)) }, func(x int32) int32 { return x * x }),

		fb.BuiltinOperatorLESS:          compareKernel(func(d int) bool { return d == -1 }, false),
		fb.BuiltinOperatorLESS_EQUAL:    compareKernel(func(d int) bool { return d == -1 || d == 0 }, false),
		fb.BuiltinOperatorGREATER:       compareKernel(func(d int) bool { return d == 1 }, false),
		fb.BuiltinOperatorGREATER_EQUAL: compareKernel(func(d int) bool { return d == 1 || d == 0 }, false),
		fb.BuiltinOperatorEQUAL:         compareKernel(func(d int) bool { return d == 0 }, true),
		fb.BuiltinOperatorNOT_EQUAL:     compareKernel(func(d int) bool { return d != 0 }, true),
		fb.BuiltinOperatorLOGICAL_AND:   logicalKernel(func(a, b bool) bool { return a && b }),
		fb.BuiltinOperatorLOGICAL_OR:    logicalKernel(func(a, b bool) bool { return a || b }),
		fb.BuiltinOperatorLOGICAL_NOT:   logicalNotKernel(),
		fb.BuiltinOperatorSELECT:        selectKernel(false),
		fb.BuiltinOperatorSELECT_V2:     selectKernel(true),
		fb.BuiltinOperatorCAST:          castKernel(),

		fb.BuiltinOperatorRESHAPE:              reshapeKernel(),
		fb.BuiltinOperatorSQUEEZE:              squeezeKernel(),
		fb.BuiltinOperatorEXPAND_DIMS:          expandDimsKernel(),
		fb.BuiltinOperatorTRANSPOSE:            transposeKernel(),
		fb.BuiltinOperatorSLICE:                sliceKernel(),
		fb.BuiltinOperatorSTRIDED_SLICE:        stridedSliceKernel(),
		fb.BuiltinOperatorCONCATENATION:        concatKernel(),
		fb.BuiltinOperatorSPLIT:                splitKernel(false),
		fb.BuiltinOperatorSPLIT_V:              splitKernel(true),
		fb.BuiltinOperatorPACK:                 packKernel(),
		fb.BuiltinOperatorUNPACK:               unpackKernel(),
		fb.BuiltinOperatorGATHER:               gatherKernel(),
		fb.BuiltinOperatorGATHER_ND:            gatherNDKernel(),
		fb.BuiltinOperatorDYNAMIC_UPDATE_SLICE: dynamicUpdateSliceKernel(),
		fb.BuiltinOperatorPAD:                  padKernel(false),
		fb.BuiltinOperatorPADV2:                padKernel(true),
	}
	for code := range arithOps {
		kernels[code] = arithKernel(code)
	}
}
