package interp

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

var F, I, B = fb.TensorTypeFLOAT32, fb.TensorTypeINT32, fb.TensorTypeBOOL

type opCase struct {
	name string
	code fb.BuiltinOperator
	opts any
	args []arg
	want []*Tensor
	err  string // substring of the expected error
}

func runCases(t *testing.T, cases []opCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var types []fb.TensorType
			for _, w := range c.want {
				types = append(types, w.Type)
			}
			if c.err != "" && len(types) == 0 {
				types = []fb.TensorType{c.args[0].v.Type}
			}
			got, err := runOp(t, c.code, c.opts, c.args, types...)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, w := range c.want {
				expect(t, c.name, got[k], w)
			}
		})
	}
}

func TestElementwise(t *testing.T) {
	relu := &fb.AddOptionsT{FusedActivationFunction: fb.ActivationFunctionTypeRELU}
	runCases(t, []opCase{
		{"add broadcast row", fb.BuiltinOperatorADD, nil, []arg{in(f(sh(2, 3), 1, 2, 3, 4, 5, 6)), cst(f(sh(3), 10, 20, 30))}, []*Tensor{f(sh(2, 3), 11, 22, 33, 14, 25, 36)}, ""},
		{"add broadcast both", fb.BuiltinOperatorADD, nil, []arg{in(f(sh(2, 1), 1, 2)), in(f(sh(1, 3), 10, 20, 30))}, []*Tensor{f(sh(2, 3), 11, 21, 31, 12, 22, 32)}, ""},
		{"add scalar relu", fb.BuiltinOperatorADD, relu, []arg{in(f(sh(3), -5, 0, 5)), cst(f(sh(), 1))}, []*Tensor{f(sh(3), 0, 1, 6)}, ""},
		{"add int32", fb.BuiltinOperatorADD, nil, []arg{in(i(sh(2), 1, -2)), cst(i(sh(1), 3))}, []*Tensor{i(sh(2), 4, 1)}, ""},
		{"sub relu6", fb.BuiltinOperatorSUB, &fb.SubOptionsT{FusedActivationFunction: fb.ActivationFunctionTypeRELU6}, []arg{in(f(sh(3), 10, 2, -1)), cst(f(sh(1), 1))}, []*Tensor{f(sh(3), 6, 1, 0)}, ""},
		{"mul relu_n1_to_1", fb.BuiltinOperatorMUL, &fb.MulOptionsT{FusedActivationFunction: fb.ActivationFunctionTypeRELU_N1_TO_1}, []arg{in(f(sh(3), 0.25, 2, -3)), cst(f(sh(1), 2))}, []*Tensor{f(sh(3), 0.5, 1, -1)}, ""},
		{"div", fb.BuiltinOperatorDIV, nil, []arg{in(f(sh(2), 1, 3)), in(f(sh(2), 4, -2))}, []*Tensor{f(sh(2), 0.25, -1.5)}, ""},
		{"div int truncates", fb.BuiltinOperatorDIV, nil, []arg{in(i(sh(2), 7, -7)), cst(i(sh(1), 2))}, []*Tensor{i(sh(2), 3, -3)}, ""},
		{"div int by zero", fb.BuiltinOperatorDIV, nil, []arg{in(i(sh(1), 7)), cst(i(sh(1), 0))}, nil, "division by zero"},
		{"floor_div int", fb.BuiltinOperatorFLOOR_DIV, nil, []arg{in(i(sh(2), 7, -7)), cst(i(sh(1), 2))}, []*Tensor{i(sh(2), 3, -4)}, ""},
		{"pow", fb.BuiltinOperatorPOW, nil, []arg{in(f(sh(2), 2, 9)), cst(f(sh(2), 3, 0.5))}, []*Tensor{f(sh(2), 8, 3)}, ""},
		{"maximum", fb.BuiltinOperatorMAXIMUM, nil, []arg{in(f(sh(3), 1, 5, -1)), cst(f(sh(1), 2))}, []*Tensor{f(sh(3), 2, 5, 2)}, ""},
		{"minimum", fb.BuiltinOperatorMINIMUM, nil, []arg{in(f(sh(3), 1, 5, -1)), cst(f(sh(1), 2))}, []*Tensor{f(sh(3), 1, 2, -1)}, ""},
		{"squared_difference", fb.BuiltinOperatorSQUARED_DIFFERENCE, nil, []arg{in(f(sh(2), 1, 5)), in(f(sh(2), 4, 5))}, []*Tensor{f(sh(2), 9, 0)}, ""},
		{"no broadcast", fb.BuiltinOperatorADD, nil, []arg{in(f(sh(2), 1, 2)), in(f(sh(3), 1, 2, 3))}, nil, "do not broadcast"},
		{"mixed types", fb.BuiltinOperatorADD, nil, []arg{in(f(sh(1), 1)), in(i(sh(1), 1))}, nil, "mixed types"},
		{"sign_bit refused", fb.BuiltinOperatorADD, &fb.AddOptionsT{FusedActivationFunction: fb.ActivationFunctionTypeSIGN_BIT}, []arg{in(f(sh(1), 1)), in(f(sh(1), 1))}, nil, "fused activation SIGN_BIT"},
		{"less", fb.BuiltinOperatorLESS, nil, []arg{in(f(sh(3), 1, 2, 3)), cst(f(sh(1), 2))}, []*Tensor{bl(sh(3), true, false, false)}, ""},
		{"greater int broadcast", fb.BuiltinOperatorGREATER, nil, []arg{in(i(sh(2, 1), 1, 3)), in(i(sh(2), 2, 0))}, []*Tensor{bl(sh(2, 2), false, true, true, true)}, ""},
		{"equal bool", fb.BuiltinOperatorEQUAL, nil, []arg{in(bl(sh(2), true, false)), cst(bl(sh(1), true))}, []*Tensor{bl(sh(2), true, false)}, ""},
		{"select v1 vector", fb.BuiltinOperatorSELECT, nil, []arg{in(bl(sh(2), true, false)), in(f(sh(2, 2), 1, 2, 3, 4)), in(f(sh(2, 2), 5, 6, 7, 8))}, []*Tensor{f(sh(2, 2), 1, 2, 7, 8)}, ""},
		{"select_v2 broadcast", fb.BuiltinOperatorSELECT_V2, nil, []arg{in(bl(sh(1, 2), true, false)), in(f(sh(2, 1), 1, 2)), cst(f(sh(), 0))}, []*Tensor{f(sh(2, 2), 1, 0, 2, 0)}, ""},
		{"logistic", fb.BuiltinOperatorLOGISTIC, nil, []arg{in(f(sh(2), 0, float32(math.Log(3))))}, []*Tensor{f(sh(2), 0.5, 0.75)}, ""},
		{"tanh", fb.BuiltinOperatorTANH, nil, []arg{in(f(sh(1), 0))}, []*Tensor{f(sh(1), 0)}, ""},
		{"rsqrt", fb.BuiltinOperatorRSQRT, nil, []arg{in(f(sh(2), 4, 0.25))}, []*Tensor{f(sh(2), 0.5, 2)}, ""},
		{"sqrt", fb.BuiltinOperatorSQRT, nil, []arg{in(f(sh(2), 4, 0.25))}, []*Tensor{f(sh(2), 2, 0.5)}, ""},
		{"exp sin cos", fb.BuiltinOperatorEXP, nil, []arg{in(f(sh(1), 0))}, []*Tensor{f(sh(1), 1)}, ""},
		{"sin", fb.BuiltinOperatorSIN, nil, []arg{in(f(sh(2), 0, math.Pi/2))}, []*Tensor{f(sh(2), 0, 1)}, ""},
		{"cos", fb.BuiltinOperatorCOS, nil, []arg{in(f(sh(2), 0, math.Pi))}, []*Tensor{f(sh(2), 1, -1)}, ""},
		// GELU(1) exact = Φ(1) = 0.8413447; tanh form = 0.8411920.
		{"gelu exact", fb.BuiltinOperatorGELU, &fb.GeluOptionsT{}, []arg{in(f(sh(3), 0, 1, -1))}, []*Tensor{f(sh(3), 0, 0.8413447, -0.15865526)}, ""},
		{"gelu approximate", fb.BuiltinOperatorGELU, &fb.GeluOptionsT{Approximate: true}, []arg{in(f(sh(2), 0, 1))}, []*Tensor{f(sh(2), 0, 0.8411920)}, ""},
		{"cast float to int truncates", fb.BuiltinOperatorCAST, nil, []arg{in(f(sh(3), 1.7, -1.7, 3))}, []*Tensor{i(sh(3), 1, -1, 3)}, ""},
		{"cast bool to float", fb.BuiltinOperatorCAST, nil, []arg{in(bl(sh(2), true, false))}, []*Tensor{f(sh(2), 1, 0)}, ""},
	})
}

func TestReduceSoftmax(t *testing.T) {
	x := f(sh(2, 3), 1, 2, 3, 4, 5, 6)
	runCases(t, []opCase{
		{"mean last keep", fb.BuiltinOperatorMEAN, &fb.ReducerOptionsT{KeepDims: true}, []arg{in(x), cst(i(sh(1), -1))}, []*Tensor{f(sh(2, 1), 2, 5)}, ""},
		{"mean first", fb.BuiltinOperatorMEAN, &fb.ReducerOptionsT{}, []arg{in(x), cst(i(sh(1), 0))}, []*Tensor{f(sh(3), 2.5, 3.5, 4.5)}, ""},
		{"sum all", fb.BuiltinOperatorSUM, &fb.ReducerOptionsT{}, []arg{in(x), cst(i(sh(2), 0, 1))}, []*Tensor{f(sh(), 21)}, ""},
		{"sum all keep", fb.BuiltinOperatorSUM, &fb.ReducerOptionsT{KeepDims: true}, []arg{in(x), cst(i(sh(2), 1, 0))}, []*Tensor{f(sh(1, 1), 21)}, ""},
		{"reduce_max", fb.BuiltinOperatorREDUCE_MAX, &fb.ReducerOptionsT{}, []arg{in(x), cst(i(sh(1), 1))}, []*Tensor{f(sh(2), 3, 6)}, ""},
		{"mean bad axis", fb.BuiltinOperatorMEAN, nil, []arg{in(x), cst(i(sh(1), 2))}, nil, "axis 2 out of range"},
		// softmax([0, ln 3]) = [1/4, 3/4]; beta 2 on [0, ln 3/2] the same.
		{"softmax", fb.BuiltinOperatorSOFTMAX, &fb.SoftmaxOptionsT{Beta: 1}, []arg{in(f(sh(2, 2), 0, float32(math.Log(3)), 5, 5))}, []*Tensor{f(sh(2, 2), 0.25, 0.75, 0.5, 0.5)}, ""},
		{"softmax beta", fb.BuiltinOperatorSOFTMAX, &fb.SoftmaxOptionsT{Beta: 2}, []arg{in(f(sh(2), 0, float32(math.Log(3)/2)))}, []*Tensor{f(sh(2), 0.25, 0.75)}, ""},
	})
}

func TestShapeOps(t *testing.T) {
	x := f(sh(2, 3), 1, 2, 3, 4, 5, 6)
	x3 := f(sh(2, 2, 2), 1, 2, 3, 4, 5, 6, 7, 8)
	runCases(t, []opCase{
		{"reshape infer", fb.BuiltinOperatorRESHAPE, nil, []arg{in(x), cst(i(sh(2), 3, -1))}, []*Tensor{f(sh(3, 2), 1, 2, 3, 4, 5, 6)}, ""},
		{"reshape options", fb.BuiltinOperatorRESHAPE, &fb.ReshapeOptionsT{NewShape: []int32{6}}, []arg{in(x)}, []*Tensor{f(sh(6), 1, 2, 3, 4, 5, 6)}, ""},
		{"reshape bad", fb.BuiltinOperatorRESHAPE, nil, []arg{in(x), cst(i(sh(2), 4, -1))}, nil, "does not divide"},
		{"transpose", fb.BuiltinOperatorTRANSPOSE, nil, []arg{in(x), cst(i(sh(2), 1, 0))}, []*Tensor{f(sh(3, 2), 1, 4, 2, 5, 3, 6)}, ""},
		{"transpose 3d", fb.BuiltinOperatorTRANSPOSE, nil, []arg{in(x3), cst(i(sh(3), 1, 0, 2))}, []*Tensor{f(sh(2, 2, 2), 1, 2, 5, 6, 3, 4, 7, 8)}, ""},
		{"transpose bad perm", fb.BuiltinOperatorTRANSPOSE, nil, []arg{in(x), cst(i(sh(2), 0, 0))}, nil, "not a permutation"},
		{"slice", fb.BuiltinOperatorSLICE, nil, []arg{in(x), cst(i(sh(2), 1, 1)), cst(i(sh(2), 1, -1))}, []*Tensor{f(sh(1, 2), 5, 6)}, ""},
		{"slice out of range", fb.BuiltinOperatorSLICE, nil, []arg{in(x), cst(i(sh(2), 1, 1)), cst(i(sh(2), 2, 1))}, nil, "out of range"},
		{"strided basic", fb.BuiltinOperatorSTRIDED_SLICE, &fb.StridedSliceOptionsT{}, []arg{in(x), cst(i(sh(2), 0, 0)), cst(i(sh(2), 2, 3)), cst(i(sh(2), 1, 2))}, []*Tensor{f(sh(2, 2), 1, 3, 4, 6)}, ""},
		{"strided negative stride", fb.BuiltinOperatorSTRIDED_SLICE, &fb.StridedSliceOptionsT{BeginMask: 2, EndMask: 2}, []arg{in(x), cst(i(sh(2), 0, 0)), cst(i(sh(2), 1, 0)), cst(i(sh(2), 1, -1))}, []*Tensor{f(sh(1, 3), 3, 2, 1)}, ""},
		{"strided shrink", fb.BuiltinOperatorSTRIDED_SLICE, &fb.StridedSliceOptionsT{ShrinkAxisMask: 1}, []arg{in(x), cst(i(sh(2), -1, 0)), cst(i(sh(2), 0, 3)), cst(i(sh(2), 1, 1))}, []*Tensor{f(sh(3), 4, 5, 6)}, ""},
		{"strided ellipsis", fb.BuiltinOperatorSTRIDED_SLICE, &fb.StridedSliceOptionsT{EllipsisMask: 1}, []arg{in(x3), cst(i(sh(2), 0, 1)), cst(i(sh(2), 0, 2)), cst(i(sh(2), 1, 1))}, []*Tensor{f(sh(2, 2, 1), 2, 4, 6, 8)}, ""},
		{"strided new axis", fb.BuiltinOperatorSTRIDED_SLICE, &fb.StridedSliceOptionsT{NewAxisMask: 1}, []arg{in(x), cst(i(sh(2), 0, 0)), cst(i(sh(2), 0, 1)), cst(i(sh(2), 1, 1))}, []*Tensor{f(sh(1, 1, 3), 1, 2, 3)}, ""},
		{"strided offset", fb.BuiltinOperatorSTRIDED_SLICE, &fb.StridedSliceOptionsT{Offset: true}, []arg{in(x), cst(i(sh(2), 1, 1)), cst(i(sh(2), 1, 2)), cst(i(sh(2), 1, 1))}, []*Tensor{f(sh(1, 2), 5, 6)}, ""},
		{"strided clamps end", fb.BuiltinOperatorSTRIDED_SLICE, &fb.StridedSliceOptionsT{}, []arg{in(x), cst(i(sh(2), 0, 1)), cst(i(sh(2), 9, 9)), cst(i(sh(2), 1, 1))}, []*Tensor{f(sh(2, 2), 2, 3, 5, 6)}, ""},
		{"concat axis 1", fb.BuiltinOperatorCONCATENATION, &fb.ConcatenationOptionsT{Axis: -1}, []arg{in(f(sh(2, 1), 1, 2)), cst(f(sh(2, 2), 3, 4, 5, 6))}, []*Tensor{f(sh(2, 3), 1, 3, 4, 2, 5, 6)}, ""},
		{"concat mismatch", fb.BuiltinOperatorCONCATENATION, &fb.ConcatenationOptionsT{Axis: 0}, []arg{in(f(sh(2, 1), 1, 2)), cst(f(sh(2, 2), 3, 4, 5, 6))}, nil, "does not concatenate"},
		{"split", fb.BuiltinOperatorSPLIT, &fb.SplitOptionsT{NumSplits: 3}, []arg{cst(i(sh(), 1)), in(x)}, []*Tensor{f(sh(2, 1), 1, 4), f(sh(2, 1), 2, 5), f(sh(2, 1), 3, 6)}, ""},
		{"split_v", fb.BuiltinOperatorSPLIT_V, nil, []arg{in(x), cst(i(sh(2), 1, -1)), cst(i(sh(), 1))}, []*Tensor{f(sh(2, 1), 1, 4), f(sh(2, 2), 2, 3, 5, 6)}, ""},
		{"pack axis 1", fb.BuiltinOperatorPACK, &fb.PackOptionsT{ValuesCount: 2, Axis: 1}, []arg{in(f(sh(2), 1, 2)), in(f(sh(2), 3, 4))}, []*Tensor{f(sh(2, 2), 1, 3, 2, 4)}, ""},
		{"unpack axis 1", fb.BuiltinOperatorUNPACK, &fb.UnpackOptionsT{Num: 3, Axis: 1}, []arg{in(x)}, []*Tensor{f(sh(2), 1, 4), f(sh(2), 2, 5), f(sh(2), 3, 6)}, ""},
		{"gather axis 0", fb.BuiltinOperatorGATHER, &fb.GatherOptionsT{}, []arg{cst(x), in(i(sh(3), 1, 0, 1))}, []*Tensor{f(sh(3, 3), 4, 5, 6, 1, 2, 3, 4, 5, 6)}, ""},
		{"gather axis 1", fb.BuiltinOperatorGATHER, &fb.GatherOptionsT{Axis: 1}, []arg{in(x), cst(i(sh(2), 2, 0))}, []*Tensor{f(sh(2, 2), 3, 1, 6, 4)}, ""},
		{"gather batch_dims", fb.BuiltinOperatorGATHER, &fb.GatherOptionsT{Axis: 1, BatchDims: 1}, []arg{in(x), cst(i(sh(2, 1), 2, 0))}, []*Tensor{f(sh(2, 1), 3, 4)}, ""},
		{"gather out of range", fb.BuiltinOperatorGATHER, &fb.GatherOptionsT{}, []arg{cst(x), in(i(sh(1), 2))}, nil, "out of range"},
		{"gather_nd", fb.BuiltinOperatorGATHER_ND, nil, []arg{in(x), cst(i(sh(2, 2), 1, 2, 0, 0))}, []*Tensor{f(sh(2), 6, 1)}, ""},
		{"gather_nd rows", fb.BuiltinOperatorGATHER_ND, nil, []arg{in(x), cst(i(sh(1, 1), 1))}, []*Tensor{f(sh(1, 3), 4, 5, 6)}, ""},
		{"dynamic_update_slice", fb.BuiltinOperatorDYNAMIC_UPDATE_SLICE, nil, []arg{in(x), in(f(sh(1, 2), 9, 8)), cst(i(sh(2), 1, 1))}, []*Tensor{f(sh(2, 3), 1, 2, 3, 4, 9, 8)}, ""},
		{"dynamic_update_slice clamps", fb.BuiltinOperatorDYNAMIC_UPDATE_SLICE, nil, []arg{in(x), in(f(sh(1, 2), 9, 8)), cst(i(sh(2), 5, 5))}, []*Tensor{f(sh(2, 3), 1, 2, 3, 4, 9, 8)}, ""},
	})
}

func TestMatmulOps(t *testing.T) {
	x := f(sh(2, 3), 1, 2, 3, 4, 5, 6)
	w := f(sh(2, 3), 1, 0, 1, 0, 1, 0) // out0 = x0+x2, out1 = x1
	runCases(t, []opCase{
		{"fc", fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{}, []arg{in(x), cst(w), cst(f(sh(2), 10, 20))}, []*Tensor{f(sh(2, 2), 14, 22, 20, 25)}, ""},
		{"fc no bias relu", fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{FusedActivationFunction: fb.ActivationFunctionTypeRELU}, []arg{in(f(sh(1, 3), -1, 2, -3)), cst(w), none()}, []*Tensor{f(sh(1, 2), 0, 2)}, ""},
		{"fc keep_num_dims", fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{KeepNumDims: true}, []arg{in(f(sh(1, 2, 3), 1, 2, 3, 4, 5, 6)), cst(w)}, []*Tensor{f(sh(1, 2, 2), 4, 2, 10, 5)}, ""},
		{"fc flattens", fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{}, []arg{in(f(sh(1, 2, 3), 1, 2, 3, 4, 5, 6)), cst(w)}, []*Tensor{f(sh(2, 2), 4, 2, 10, 5)}, ""},
		{"fc activation weights", fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{}, []arg{in(x), in(w)}, []*Tensor{f(sh(2, 2), 4, 2, 10, 5)}, ""},
		{"fc bad shapes", fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{}, []arg{in(f(sh(1, 4), 1, 2, 3, 4)), cst(w)}, nil, "does not divide"},
		{"fc shuffled format", fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{WeightsFormat: fb.FullyConnectedOptionsWeightsFormatSHUFFLED4x16INT8}, []arg{in(x), cst(w)}, nil, "weights_format"},
		// [2,3]·[3,2]
		{"bmm", fb.BuiltinOperatorBATCH_MATMUL, &fb.BatchMatMulOptionsT{}, []arg{in(x), cst(f(sh(3, 2), 1, 0, 0, 1, 1, 0))}, []*Tensor{f(sh(2, 2), 4, 2, 10, 5)}, ""},
		{"bmm adj_y", fb.BuiltinOperatorBATCH_MATMUL, &fb.BatchMatMulOptionsT{AdjY: true}, []arg{in(x), in(w)}, []*Tensor{f(sh(2, 2), 4, 2, 10, 5)}, ""},
		{"bmm adj_x", fb.BuiltinOperatorBATCH_MATMUL, &fb.BatchMatMulOptionsT{AdjX: true}, []arg{in(f(sh(3, 2), 1, 4, 2, 5, 3, 6)), in(f(sh(3, 2), 1, 0, 0, 1, 1, 0))}, []*Tensor{f(sh(2, 2), 4, 2, 10, 5)}, ""},
		{"bmm broadcast batch", fb.BuiltinOperatorBATCH_MATMUL, &fb.BatchMatMulOptionsT{}, []arg{in(f(sh(2, 1, 2), 1, 2, 3, 4)), in(f(sh(2, 1), 1, 1))}, []*Tensor{f(sh(2, 1, 1), 3, 7)}, ""},
		{"bmm mismatch", fb.BuiltinOperatorBATCH_MATMUL, &fb.BatchMatMulOptionsT{}, []arg{in(x), in(w)}, nil, "do not multiply"},
		{"embedding", fb.BuiltinOperatorEMBEDDING_LOOKUP, nil, []arg{in(i(sh(3), 1, 1, 0)), cst(x)}, []*Tensor{f(sh(3, 3), 4, 5, 6, 4, 5, 6, 1, 2, 3)}, ""},
		{"embedding out of range", fb.BuiltinOperatorEMBEDDING_LOOKUP, nil, []arg{in(i(sh(1), 2)), cst(x)}, []*Tensor{f(sh())}, "out of range"},
	})
}

func TestConvPool(t *testing.T) {
	// 1×3×3×1 input 1..9.
	img := f(sh(1, 3, 3, 1), 1, 2, 3, 4, 5, 6, 7, 8, 9)
	ones := f(sh(1, 2, 2, 1), 1, 1, 1, 1)
	runCases(t, []opCase{
		{"conv valid", fb.BuiltinOperatorCONV_2D, &fb.Conv2DOptionsT{Padding: fb.PaddingVALID, StrideH: 1, StrideW: 1}, []arg{in(img), cst(ones), cst(f(sh(1), 0.5))}, []*Tensor{f(sh(1, 2, 2, 1), 12.5, 16.5, 24.5, 28.5)}, ""},
		// SAME, 2×2 kernel, stride 1: pad total 1 → 0 before, 1 after.
		{"conv same", fb.BuiltinOperatorCONV_2D, &fb.Conv2DOptionsT{Padding: fb.PaddingSAME, StrideH: 1, StrideW: 1}, []arg{in(img), cst(ones), none()}, []*Tensor{f(sh(1, 3, 3, 1), 12, 16, 9, 24, 28, 15, 15, 17, 9)}, ""},
		{"conv stride 2 same", fb.BuiltinOperatorCONV_2D, &fb.Conv2DOptionsT{Padding: fb.PaddingSAME, StrideH: 2, StrideW: 2}, []arg{in(img), cst(ones), none()}, []*Tensor{f(sh(1, 2, 2, 1), 12, 9, 15, 9)}, ""},
		// dilation 2 with a 2×2 kernel reads corners: 1+3+7+9.
		{"conv dilation", fb.BuiltinOperatorCONV_2D, &fb.Conv2DOptionsT{Padding: fb.PaddingVALID, StrideH: 1, StrideW: 1, DilationHFactor: 2, DilationWFactor: 2}, []arg{in(img), cst(ones), none()}, []*Tensor{f(sh(1, 1, 1, 1), 20)}, ""},
		{"conv relu", fb.BuiltinOperatorCONV_2D, &fb.Conv2DOptionsT{Padding: fb.PaddingVALID, StrideH: 1, StrideW: 1, FusedActivationFunction: fb.ActivationFunctionTypeRELU}, []arg{in(img), cst(f(sh(1, 2, 2, 1), -1, -1, -1, -1)), none()}, []*Tensor{f(sh(1, 2, 2, 1), 0, 0, 0, 0)}, ""},
		{"conv bad channels", fb.BuiltinOperatorCONV_2D, &fb.Conv2DOptionsT{Padding: fb.PaddingVALID, StrideH: 1, StrideW: 1}, []arg{in(img), cst(f(sh(1, 1, 1, 2), 1, 1)), none()}, nil, "does not fit"},
		// depthwise, multiplier 2: channel 0 ×1, channel 1 ×−1 (1×1 kernel).
		{"depthwise mult", fb.BuiltinOperatorDEPTHWISE_CONV_2D, &fb.DepthwiseConv2DOptionsT{Padding: fb.PaddingVALID, StrideH: 1, StrideW: 1, DepthMultiplier: 2}, []arg{in(f(sh(1, 1, 2, 1), 3, 4)), cst(f(sh(1, 1, 1, 2), 1, -1)), none()}, []*Tensor{f(sh(1, 1, 2, 2), 3, -3, 4, -4)}, ""},
		// transpose conv: 1×2×2×1 input, 2×2 ones kernel, stride 2 VALID → each input fills a 2×2 block.
		{"transpose_conv", fb.BuiltinOperatorTRANSPOSE_CONV, &fb.TransposeConvOptionsT{Padding: fb.PaddingVALID, StrideH: 2, StrideW: 2}, []arg{cst(i(sh(4), 1, 4, 4, 1)), cst(ones), in(f(sh(1, 2, 2, 1), 1, 2, 3, 4)), cst(f(sh(1), 1))},
			[]*Tensor{f(sh(1, 4, 4, 1), 2, 2, 3, 3, 2, 2, 3, 3, 4, 4, 5, 5, 4, 4, 5, 5)}, ""},
		// SAME, stride 1, 2×2 kernel on 2×2 → out 2×2, pad total 1, before 0.
		{"transpose_conv same", fb.BuiltinOperatorTRANSPOSE_CONV, &fb.TransposeConvOptionsT{Padding: fb.PaddingSAME, StrideH: 1, StrideW: 1}, []arg{cst(i(sh(4), 1, 2, 2, 1)), cst(ones), in(f(sh(1, 2, 2, 1), 1, 2, 3, 4))},
			[]*Tensor{f(sh(1, 2, 2, 1), 1, 3, 4, 10)}, ""},
		{"avg pool same counts valid cells", fb.BuiltinOperatorAVERAGE_POOL_2D, &fb.Pool2DOptionsT{Padding: fb.PaddingSAME, StrideH: 2, StrideW: 2, FilterHeight: 2, FilterWidth: 2}, []arg{in(img)}, []*Tensor{f(sh(1, 2, 2, 1), 3, 4.5, 7.5, 9)}, ""},
		{"max pool valid", fb.BuiltinOperatorMAX_POOL_2D, &fb.Pool2DOptionsT{Padding: fb.PaddingVALID, StrideH: 1, StrideW: 1, FilterHeight: 2, FilterWidth: 2}, []arg{in(img)}, []*Tensor{f(sh(1, 2, 2, 1), 5, 6, 8, 9)}, ""},
	})
}

func TestUnsupportedNamesOp(t *testing.T) {
	_, err := runOp(t, fb.BuiltinOperatorLSTM, nil, []arg{in(f(sh(1), 1))}, F)
	var ue *UnsupportedError
	if !errors.As(err, &ue) || ue.Op != "LSTM" || ue.Subgraph != 0 || ue.Operator != 0 {
		t.Fatalf("got %v, want an UnsupportedError for LSTM at subgraph 0 operator 0", err)
	}
}

// TestUnsupportedRealModels: the bundled models the interpreter cannot run
// are refused by New naming the op, subgraph and operator.
func TestUnsupportedRealModels(t *testing.T) {
	for name, want := range map[string]string{
		"litert_tfl_with_metadata": "subgraph 0 operator 0 (NPU_OP): not supported: operator not implemented",
	} {
		m, err := tflite.Open("../../testdata/models/" + name + ".tflite")
		if err != nil {
			t.Fatal(err)
		}
		_, err = New(m, Options{})
		var ue *UnsupportedError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an UnsupportedError containing %q", name, err, want)
		}
		m.Close()
	}
}

// hybridFC builds FC(x, int8 weight) with the given quantization and runs it.
func runHybridFC(t *testing.T, x *Tensor, w []int8, shape []int, q *fb.QuantizationParametersT) (*Tensor, error) {
	t.Helper()
	b := newBuilder()
	xi := b.tensor("x", fb.TensorTypeFLOAT32, x.Shape, nil)
	raw := make([]byte, len(w))
	for i, v := range w {
		raw[i] = byte(v)
	}
	wi := b.tensor("w", fb.TensorTypeINT8, shape, raw)
	b.sg.Tensors[wi].Quantization = q
	oi := b.tensor("out", fb.TensorTypeFLOAT32, nil, nil)
	b.op(fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{}, []int32{xi, wi}, []int32{oi})
	in, err := New(b.model([]int32{xi}, []int32{oi}), Options{})
	if err != nil {
		return nil, err
	}
	out, err := in.Run(t.Context(), "", map[string]*Tensor{"x": x})
	if err != nil {
		return nil, err
	}
	return out["out"], nil
}

// TestHybridFC: x = [1, −0.5] quantizes (XNNPACK qd8) with multiplier
// 255/1.5 = 170 and zero point −128+85 = −43 to [127, −128]; with weights
// [2, −1]·0.5 the int32 sum is (127+43)·2 + (−128+43)·(−1) = 425 and the
// output 425/170·0.5 = 1.25. Weights quantized along the input axis, with a
// zero point, or blockwise on a BMM are refused.
func TestHybridFC(t *testing.T) {
	x := f(sh(1, 2), 1, -0.5)
	out, err := runHybridFC(t, x, []int8{2, -1, 4, 0}, sh(2, 2), &fb.QuantizationParametersT{Scale: []float32{0.5, 0.25}, ZeroPoint: []int64{0, 0}})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "hybrid", out, f(sh(1, 2), 1.25, 1))
	for _, c := range []struct {
		q    *fb.QuantizationParametersT
		want string
	}{
		{&fb.QuantizationParametersT{Scale: []float32{0.5, 0.25}, ZeroPoint: []int64{0, 0}, QuantizedDimension: 1}, "quantized along dimension 1"},
		{&fb.QuantizationParametersT{Scale: []float32{0.5}, ZeroPoint: []int64{3}}, "zero point 3"},
	} {
		_, err := runHybridFC(t, x, []int8{2, -1, 4, 0}, sh(2, 2), c.q)
		var ue *UnsupportedError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want an UnsupportedError containing %q", err, c.want)
		}
	}
}
