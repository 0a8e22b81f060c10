package interp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/litert"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// qt is a quantized tensor of an integer op test: a graph input when data
// is nil, a constant otherwise (INT8, INT16, INT32 or INT64 data as int64s).
type qt struct {
	typ    fb.TensorType
	shape  []int
	scales []float32
	zps    []int64
	axis   int32
	data   []int64
	min    []float32 // recorded minimum: bounds the values drawn for an input
}

func (q qt) bytes() []byte {
	size, _ := tflite.DataSize(q.typ, 1)
	b := make([]byte, int(size)*len(q.data))
	for i, v := range q.data {
		switch size {
		case 1:
			b[i] = byte(v)
		case 2:
			binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
		case 4:
			binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
		case 8:
			binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
		}
	}
	return b
}

// intOpModel builds a one-operator model over quantized tensors; INT32
// inputs without scales are plain (shapes, indices, axes).
func intOpModel(code fb.BuiltinOperator, opts any, ins []qt, out qt) *tflite.Model {
	b := newBuilder()
	var idx, sigIns []int32
	for k, q := range ins {
		if q.typ < 0 {
			idx = append(idx, -1)
			continue
		}
		var data []byte
		if q.data != nil {
			data = q.bytes()
		}
		t := b.tensor(fmt.Sprintf("in%d", k), q.typ, q.shape, data)
		if q.scales != nil {
			b.sg.Tensors[t].Quantization = &fb.QuantizationParametersT{Scale: q.scales, ZeroPoint: q.zps, QuantizedDimension: q.axis, Min: q.min}
		}
		idx = append(idx, t)
		if q.data == nil {
			sigIns = append(sigIns, t)
		}
	}
	o := b.tensor("out", out.typ, out.shape, nil)
	b.sg.Tensors[o].Quantization = &fb.QuantizationParametersT{Scale: out.scales, ZeroPoint: out.zps}
	b.op(code, opts, idx, []int32{o})
	return b.model(sigIns, []int32{o})
}

func act(typ fb.TensorType, shape []int, scale float32, zp int64) qt {
	return qt{typ: typ, shape: shape, scales: []float32{scale}, zps: []int64{zp}}
}

// seqScales returns n scales from lo in steps of step.
func seqScales(n int, lo, step float32) []float32 {
	r := make([]float32, n)
	for i := range r {
		r[i] = lo + float32(i)*step
	}
	return r
}

// seq returns n values cycling over [lo, hi].
func seq(n int, lo, hi int64, step int64) []int64 {
	r := make([]int64, n)
	v := lo
	for i := range r {
		r[i] = v
		v += step
		if v > hi {
			v = lo + (v-hi-1)%(hi-lo+1)
		}
	}
	return r
}

const (
	i8  = fb.TensorTypeINT8
	i16 = fb.TensorTypeINT16
	i32 = fb.TensorTypeINT32
	i64 = fb.TensorTypeINT64
)

// intOpCases are single integer operators, each checked against
// LiteRT.js: want is "exact" (every integer equal) or "step" (within one
// quantisation step on ≥ 99.9 % and equal on ≥ 50 %: XNNPACK runs the op
// with its own rounding; the small samples of some cases put the equal
// share of these between 0.61 and 1).
var intOpCases = []struct {
	name string
	code fb.BuiltinOperator
	opts any
	ins  []qt
	out  qt
	want string
}{
	{"add_i8_bcast", fb.BuiltinOperatorADD, &fb.AddOptionsT{}, []qt{act(i8, sh(2, 3, 8), 0.05, 3), act(i8, sh(1, 8), 0.031, -7)}, act(i8, sh(2, 3, 8), 0.07, -2), "step"},
	{"add_i16", fb.BuiltinOperatorADD, &fb.AddOptionsT{PotScaleInt16: true}, []qt{act(i16, sh(4, 16), 0.0005, 0), act(i16, sh(4, 16), 0.0003, 0)}, act(i16, sh(4, 16), 0.0007, 0), "exact"},
	{"add_i16_relu_bcast", fb.BuiltinOperatorADD, &fb.AddOptionsT{FusedActivationFunction: fb.ActivationFunctionTypeRELU}, []qt{act(i16, sh(4, 16), 0.0005, 0), act(i16, sh(16), 0.0011, 0)}, act(i16, sh(4, 16), 0.0009, 0), "exact"},
	{"sub_i8", fb.BuiltinOperatorSUB, &fb.SubOptionsT{}, []qt{act(i8, sh(3, 16), 0.05, 3), act(i8, sh(3, 16), 0.02, -100)}, act(i8, sh(3, 16), 0.06, 1), "step"},
	{"sub_i16", fb.BuiltinOperatorSUB, &fb.SubOptionsT{PotScaleInt16: true}, []qt{act(i16, sh(3, 16), 0.0005, 0), act(i16, sh(1, 16), 0.0002, 0)}, act(i16, sh(3, 16), 0.0006, 0), "exact"},
	{"mul_i8_bcast", fb.BuiltinOperatorMUL, &fb.MulOptionsT{}, []qt{act(i8, sh(2, 4, 8), 0.05, 3), act(i8, sh(8), 0.02, -10)}, act(i8, sh(2, 4, 8), 0.01, 5), "step"},
	{"mul_i16", fb.BuiltinOperatorMUL, &fb.MulOptionsT{}, []qt{act(i16, sh(4, 16), 0.0005, 0), act(i16, sh(4, 16), 0.0003, 0)}, act(i16, sh(4, 16), 0.0001, 0), "exact"},
	{"maximum_i8", fb.BuiltinOperatorMAXIMUM, nil, []qt{act(i8, sh(4, 8), 0.05, 3), act(i8, sh(8), 0.05, 3)}, act(i8, sh(4, 8), 0.05, 3), "exact"},
	{"minimum_i16", fb.BuiltinOperatorMINIMUM, nil, []qt{act(i16, sh(4, 8), 0.001, 0), act(i16, sh(4, 8), 0.001, 0)}, act(i16, sh(4, 8), 0.001, 0), "exact"},
	{"fc_i16_bias64", fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{}, []qt{act(i16, sh(3, 32), 0.0004, 0),
		{typ: i8, shape: sh(8, 32), scales: []float32{0.01, 0.02, 0.015, 0.03, 0.011, 0.012, 0.013, 0.014}, zps: make([]int64, 8), data: seq(256, -127, 127, 37)},
		{typ: i64, shape: sh(8), data: seq(8, -5000, 5000, 1234)}}, act(i16, sh(3, 8), 0.002, 0), "exact"},
	{"fc_i16_bias32", fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{}, []qt{act(i16, sh(3, 32), 0.0004, 0),
		{typ: i8, shape: sh(8, 32), scales: []float32{0.01, 0.02, 0.015, 0.03, 0.011, 0.012, 0.013, 0.014}, zps: make([]int64, 8), data: seq(256, -127, 127, 37)},
		{typ: i32, shape: sh(8), data: seq(8, -5000, 5000, 1234)}}, act(i16, sh(3, 8), 0.002, 0), "exact"},
	// A wide 16x8 FC without bias, as the decoders' projections: the
	// runtime's ruy kernel rescales with one rounding.
	{"fc_i16_nobias_wide", fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{}, []qt{act(i16, sh(64, 256), 0.0005, 0),
		{typ: i8, shape: sh(16, 256), scales: seqScales(16, 0.0016, 0.0001), zps: make([]int64, 16), data: seq(4096, -127, 127, 37)},
		{typ: -1}}, act(i16, sh(64, 16), 0.003, 0), "exact"},
	{"fc_i16_bias32_wide", fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{}, []qt{act(i16, sh(64, 256), 0.0005, 0),
		{typ: i8, shape: sh(16, 256), scales: seqScales(16, 0.0016, 0.0001), zps: make([]int64, 16), data: seq(4096, -127, 127, 37)},
		{typ: i32, shape: sh(16), data: seq(16, -50000, 50000, 12345)}}, act(i16, sh(64, 16), 0.003, 0), "exact"},
	{"fc_i8", fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{}, []qt{act(i8, sh(3, 32), 0.04, -3),
		{typ: i8, shape: sh(8, 32), scales: []float32{0.01, 0.02, 0.015, 0.03, 0.011, 0.012, 0.013, 0.014}, zps: make([]int64, 8), data: seq(256, -127, 127, 37)},
		{typ: i32, shape: sh(8), data: seq(8, -500, 500, 123)}}, act(i8, sh(3, 8), 0.2, 4), "step"},
	{"conv_i16", fb.BuiltinOperatorCONV_2D, &fb.Conv2DOptionsT{Padding: fb.PaddingSAME, StrideH: 1, StrideW: 2, DilationHFactor: 1, DilationWFactor: 1, FusedActivationFunction: fb.ActivationFunctionTypeRELU6},
		[]qt{act(i16, sh(1, 5, 6, 3), 0.0003, 0),
			{typ: i8, shape: sh(4, 3, 3, 3), scales: []float32{0.01, 0.02, 0.015, 0.03}, zps: make([]int64, 4), data: seq(108, -127, 127, 29)},
			{typ: i64, shape: sh(4), data: seq(4, -5000, 5000, 1234)}}, act(i16, sh(1, 5, 3, 4), 0.0004, 0), "exact"},
	{"dwconv_i16", fb.BuiltinOperatorDEPTHWISE_CONV_2D, &fb.DepthwiseConv2DOptionsT{Padding: fb.PaddingVALID, StrideH: 1, StrideW: 1, DilationHFactor: 1, DilationWFactor: 1, DepthMultiplier: 2},
		[]qt{act(i16, sh(1, 5, 6, 2), 0.0003, 0),
			{typ: i8, shape: sh(1, 3, 3, 4), axis: 3, scales: []float32{0.01, 0.02, 0.015, 0.03}, zps: make([]int64, 4), data: seq(36, -127, 127, 29)},
			{typ: i64, shape: sh(4), data: seq(4, -5000, 5000, 1234)}}, act(i16, sh(1, 3, 4, 4), 0.0004, 0), "exact"},
	{"quantize_i8_i16", fb.BuiltinOperatorQUANTIZE, nil, []qt{act(i8, sh(64), 0.05, 3)}, act(i16, sh(64), 0.0002, 0), "exact"},
	{"quantize_i16_i8", fb.BuiltinOperatorQUANTIZE, nil, []qt{act(i16, sh(64), 0.0002, 0)}, act(i8, sh(64), 0.05, 3), "exact"},
	{"quantize_i16_i16", fb.BuiltinOperatorQUANTIZE, nil, []qt{act(i16, sh(64), 0.0002, 0)}, act(i16, sh(64), 0.00031, 0), "exact"},
	{"quantize_i8_i8", fb.BuiltinOperatorQUANTIZE, nil, []qt{act(i8, sh(64), 0.05, 3)}, act(i8, sh(64), 0.07, -9), "step"},
	{"avgpool_i16", fb.BuiltinOperatorAVERAGE_POOL_2D, &fb.Pool2DOptionsT{Padding: fb.PaddingSAME, StrideH: 2, StrideW: 2, FilterHeight: 3, FilterWidth: 3}, []qt{act(i16, sh(1, 5, 6, 3), 0.001, 0)}, act(i16, sh(1, 3, 3, 3), 0.001, 0), "exact"},
	{"maxpool_i8", fb.BuiltinOperatorMAX_POOL_2D, &fb.Pool2DOptionsT{Padding: fb.PaddingVALID, StrideH: 2, StrideW: 2, FilterHeight: 2, FilterWidth: 2}, []qt{act(i8, sh(1, 4, 6, 3), 0.01, -3)}, act(i8, sh(1, 2, 3, 3), 0.01, -3), "exact"},
	{"logistic_i8", fb.BuiltinOperatorLOGISTIC, nil, []qt{act(i8, sh(256), 0.05, 3)}, act(i8, sh(256), 1.0/256, -128), "exact"},
	{"tanh_i8", fb.BuiltinOperatorTANH, nil, []qt{act(i8, sh(256), 0.03, -5)}, act(i8, sh(256), 1.0/128, 0), "exact"},
	{"logistic_i16", fb.BuiltinOperatorLOGISTIC, nil, []qt{act(i16, sh(4096), 0.0003, 0)}, act(i16, sh(4096), 1.0/32768, 0), "exact"},
	{"tanh_i16", fb.BuiltinOperatorTANH, nil, []qt{act(i16, sh(4096), 0.00021, 0)}, act(i16, sh(4096), 1.0/32768, 0), "exact"},
	{"gelu_i8", fb.BuiltinOperatorGELU, &fb.GeluOptionsT{}, []qt{act(i8, sh(256), 0.04, 10)}, act(i8, sh(256), 0.03, -100), "exact"},
	{"gelu_i8_approx", fb.BuiltinOperatorGELU, &fb.GeluOptionsT{Approximate: true}, []qt{act(i8, sh(256), 0.04, 10)}, act(i8, sh(256), 0.03, -100), "exact"},
	{"gelu_i16", fb.BuiltinOperatorGELU, &fb.GeluOptionsT{}, []qt{act(i16, sh(4096), 0.0003, 0)}, act(i16, sh(4096), 0.0003, 0), "exact"},
	{"gelu_i16_approx", fb.BuiltinOperatorGELU, &fb.GeluOptionsT{Approximate: true}, []qt{act(i16, sh(4096), 0.0002, 0)}, act(i16, sh(4096), 0.0002, 0), "exact"},
	{"softmax_i16", fb.BuiltinOperatorSOFTMAX, &fb.SoftmaxOptionsT{Beta: 1}, []qt{act(i16, sh(8, 100), 0.0004, 0)}, act(i16, sh(8, 100), 1.0/32768, 0), "exact"},
	{"softmax_i16_beta", fb.BuiltinOperatorSOFTMAX, &fb.SoftmaxOptionsT{Beta: 0.7}, []qt{act(i16, sh(8, 7), 0.0011, 0)}, act(i16, sh(8, 7), 1.0/32768, 0), "exact"},
	{"mean_i8_last", fb.BuiltinOperatorMEAN, &fb.ReducerOptionsT{KeepDims: true}, []qt{act(i8, sh(2, 3, 40), 0.05, 7), {typ: i32, shape: sh(1), data: []int64{-1}}}, act(i8, sh(2, 3, 1), 0.01, -3), "step"},
	{"mean_i16_axes", fb.BuiltinOperatorMEAN, &fb.ReducerOptionsT{}, []qt{act(i16, sh(2, 3, 40), 0.0005, 0), {typ: i32, shape: sh(2), data: []int64{0, 2}}}, act(i16, sh(3), 0.0001, 0), "exact"},
	{"sum_i8", fb.BuiltinOperatorSUM, &fb.ReducerOptionsT{}, []qt{act(i8, sh(4, 30), 0.05, 7), {typ: i32, shape: sh(1), data: []int64{1}}}, act(i8, sh(4), 0.5, -3), "step"},
	{"sum_i16", fb.BuiltinOperatorSUM, &fb.ReducerOptionsT{KeepDims: true}, []qt{act(i16, sh(4, 30), 0.0005, 0), {typ: i32, shape: sh(1), data: []int64{1}}}, act(i16, sh(4, 1), 0.004, 0), "exact"},
	{"bmm_i8", fb.BuiltinOperatorBATCH_MATMUL, &fb.BatchMatMulOptionsT{}, []qt{act(i8, sh(2, 3, 16), 0.05, 7), act(i8, sh(2, 16, 5), 0.04, 0)}, act(i8, sh(2, 3, 5), 0.5, -3), "step"},
	{"bmm_i16_adj", fb.BuiltinOperatorBATCH_MATMUL, &fb.BatchMatMulOptionsT{AdjX: true, AdjY: true}, []qt{act(i16, sh(2, 16, 3), 0.0005, 0), act(i16, sh(1, 5, 16), 0.0004, 0)}, act(i16, sh(2, 3, 5), 0.002, 0), "exact"},
	{"bmm_i16_i8", fb.BuiltinOperatorBATCH_MATMUL, &fb.BatchMatMulOptionsT{}, []qt{act(i16, sh(2, 3, 16), 0.0005, 0), {typ: i8, shape: sh(16, 5), scales: []float32{0.02}, zps: []int64{0}, data: seq(80, -127, 127, 19)}}, act(i16, sh(2, 3, 5), 0.003, 0), "exact"},
	{"rsqrt_i8", fb.BuiltinOperatorRSQRT, nil, []qt{act(i8, sh(256), 0.05, -128)}, act(i8, sh(256), 0.02, -128), "exact"},
	{"rsqrt_i16", fb.BuiltinOperatorRSQRT, nil, []qt{{typ: i16, shape: sh(4096), scales: []float32{0.0005}, zps: []int64{0}, min: []float32{0}}}, act(i16, sh(4096), 0.002, 0), "exact"},
	{"squared_difference_i8", fb.BuiltinOperatorSQUARED_DIFFERENCE, nil, []qt{act(i8, sh(3, 16), 0.05, 3), act(i8, sh(16), 0.03, -20)}, act(i8, sh(3, 16), 0.2, -128), "exact"},
	{"concat_i8", fb.BuiltinOperatorCONCATENATION, &fb.ConcatenationOptionsT{Axis: 1}, []qt{act(i8, sh(2, 3), 0.05, 3), act(i8, sh(2, 5), 0.05, 3)}, act(i8, sh(2, 8), 0.05, 3), "exact"},
	{"concat_i16", fb.BuiltinOperatorCONCATENATION, &fb.ConcatenationOptionsT{Axis: -1}, []qt{act(i16, sh(2, 3), 0.001, 0), act(i16, sh(2, 5), 0.002, 0)}, act(i16, sh(2, 8), 0.001, 0), "exact"},
	{"pad_i8", fb.BuiltinOperatorPAD, nil, []qt{act(i8, sh(2, 3, 4), 0.05, 7), {typ: i32, shape: sh(3, 2), data: []int64{0, 1, 2, 0, 1, 3}}}, act(i8, sh(3, 5, 8), 0.05, 7), "exact"},
	{"padv2_i16", fb.BuiltinOperatorPADV2, nil, []qt{act(i16, sh(2, 3), 0.001, 0), {typ: i32, shape: sh(2, 2), data: []int64{1, 1, 0, 2}}, {typ: i16, shape: sh(1), scales: []float32{0.001}, zps: []int64{0}, data: []int64{-77}}}, act(i16, sh(4, 5), 0.001, 0), "exact"},
	{"transpose_i8", fb.BuiltinOperatorTRANSPOSE, nil, []qt{act(i8, sh(2, 3, 4), 0.05, 7), {typ: i32, shape: sh(3), data: []int64{2, 0, 1}}}, act(i8, sh(4, 2, 3), 0.05, 7), "exact"},
	{"transpose_i16", fb.BuiltinOperatorTRANSPOSE, nil, []qt{act(i16, sh(2, 3, 4, 5), 0.001, 0), {typ: i32, shape: sh(4), data: []int64{0, 2, 1, 3}}}, act(i16, sh(2, 4, 3, 5), 0.001, 0), "exact"},
	{"gather_i16", fb.BuiltinOperatorGATHER, &fb.GatherOptionsT{Axis: 0}, []qt{act(i16, sh(10, 6), 0.001, 0), {typ: i32, shape: sh(4), data: []int64{3, 0, 9, 3}}}, act(i16, sh(4, 6), 0.001, 0), "exact"},
	{"gather_i8_axis1", fb.BuiltinOperatorGATHER, &fb.GatherOptionsT{Axis: 1}, []qt{act(i8, sh(3, 10), 0.05, 1), {typ: i32, shape: sh(2), data: []int64{7, 2}}}, act(i8, sh(3, 2), 0.05, 1), "exact"},
	{"slice_i16", fb.BuiltinOperatorSLICE, nil, []qt{act(i16, sh(4, 6), 0.001, 0), {typ: i32, shape: sh(2), data: []int64{1, 2}}, {typ: i32, shape: sh(2), data: []int64{2, -1}}}, act(i16, sh(2, 4), 0.001, 0), "exact"},
	{"strided_slice_i8", fb.BuiltinOperatorSTRIDED_SLICE, &fb.StridedSliceOptionsT{}, []qt{act(i8, sh(4, 6), 0.05, 3), {typ: i32, shape: sh(2), data: []int64{0, 5}}, {typ: i32, shape: sh(2), data: []int64{4, 0}}, {typ: i32, shape: sh(2), data: []int64{2, -2}}}, act(i8, sh(2, 3), 0.05, 3), "exact"},
	{"strided_slice_i16", fb.BuiltinOperatorSTRIDED_SLICE, &fb.StridedSliceOptionsT{}, []qt{act(i16, sh(4, 6), 0.001, 0), {typ: i32, shape: sh(2), data: []int64{1, 1}}, {typ: i32, shape: sh(2), data: []int64{3, 6}}, {typ: i32, shape: sh(2), data: []int64{1, 2}}}, act(i16, sh(2, 3), 0.001, 0), "exact"},
	{"reshape_i16", fb.BuiltinOperatorRESHAPE, nil, []qt{act(i16, sh(4, 6), 0.001, 0), {typ: i32, shape: sh(3), data: []int64{2, -1, 3}}}, act(i16, sh(2, 4, 3), 0.001, 0), "exact"},
	{"dus_i16", fb.BuiltinOperatorDYNAMIC_UPDATE_SLICE, nil, []qt{act(i16, sh(4, 6), 0.001, 0), act(i16, sh(2, 3), 0.001, 0), {typ: i32, shape: sh(2), data: []int64{1, 2}}}, act(i16, sh(4, 6), 0.001, 0), "exact"},
	{"dus_i8", fb.BuiltinOperatorDYNAMIC_UPDATE_SLICE, nil, []qt{act(i8, sh(4, 6), 0.05, 2), act(i8, sh(1, 6), 0.05, 2), {typ: i32, shape: sh(2), data: []int64{3, 0}}}, act(i8, sh(4, 6), 0.05, 2), "exact"},
	{"select_v2_i16", fb.BuiltinOperatorSELECT_V2, nil, []qt{{typ: fb.TensorTypeBOOL, shape: sh(1, 6), data: []int64{1, 0, 0, 1, 1, 0}}, act(i16, sh(4, 6), 0.001, 0), act(i16, sh(4, 1), 0.001, 0)}, act(i16, sh(4, 6), 0.001, 0), "exact"},
	{"select_v2_i8", fb.BuiltinOperatorSELECT_V2, nil, []qt{{typ: fb.TensorTypeBOOL, shape: sh(4, 1), data: []int64{1, 0, 0, 1}}, act(i8, sh(4, 6), 0.05, 2), act(i8, sh(4, 6), 0.05, 2)}, act(i8, sh(4, 6), 0.05, 2), "exact"},
	{"softmax_i8", fb.BuiltinOperatorSOFTMAX, &fb.SoftmaxOptionsT{Beta: 1}, []qt{act(i8, sh(4, 10), 0.1, 3)}, act(i8, sh(4, 10), 1.0/256, -128), "exact"},
}

// TestIntOpsMatchLiteRT runs every case on the interpreter and LiteRT.js,
// with the reference arithmetic (want) and with IntXNNPACK (every integer
// equal, except the int8 ops whose XNNPACK kernels are not emulated:
// xnnStep).
func TestIntOpsMatchLiteRT(t *testing.T) {
	r := litert.Require(t)
	for _, tc := range intOpCases {
		for _, arith := range []IntArithmetic{IntReference, IntXNNPACK} {
			want := tc.want
			if arith == IntXNNPACK {
				want = "exact"
				if xnnStep[tc.name] {
					want = "step"
				}
			}
			intOpCase(t, r, tc.name, tc.code, tc.opts, tc.ins, tc.out, want, arith)
		}
	}
}

// xnnStep are the cases whose int8 XNNPACK kernel IntXNNPACK does not
// emulate (SUM, BATCH_MATMUL, requantizing QUANTIZE).
var xnnStep = map[string]bool{"sum_i8": true, "bmm_i8": true, "quantize_i8_i8": true}

func intOpCase(t *testing.T, r *litert.Runner, name string, code fb.BuiltinOperator, opts any, ins []qt, out qt, want string, arith IntArithmetic) {
	t.Helper()
	t.Run(fmt.Sprintf("%s/arith=%d", name, arith), func(t *testing.T) {
		m := intOpModel(code, opts, ins, out)
		path := filepath.Join(t.TempDir(), name+".tflite")
		if err := tflite.WriteFile(context.Background(), path, m, tflite.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		exact, within, worst, n := intAgreement(t, r, path, []int64{1, 2, 3}, false, Options{IntArithmetic: arith})
		t.Logf("%d integers: %.4f equal, %.4f within one step, largest difference %d", n, exact, within, worst)
		switch want {
		case "exact":
			if exact != 1 {
				t.Errorf("%.4f equal, want all", exact)
			}
		case "step":
			if within < 0.999 || exact < 0.5 {
				t.Errorf("%.4f equal, %.4f within one step, want ≥ 0.5 and ≥ 0.999", exact, within)
			}
		}
	})
}

// TestSigmoid16MatchesLiteRT: int16 LOGISTIC and TANH over all 65,536
// inputs, for input scales that give each of the kernels' shifts (small
// and large ranges, scales near the power-of-two ones the runtime routes
// elsewhere), equal to LiteRT.js on every integer.
func TestSigmoid16MatchesLiteRT(t *testing.T) {
	r := litert.Require(t)
	scales := []float32{1e-5, 0.00012, 0.000243, 0.00049, 0.0003, 0.001, 0.0031, 0.02, 0.5, 3}
	for _, code := range []fb.BuiltinOperator{fb.BuiltinOperatorLOGISTIC, fb.BuiltinOperatorTANH} {
		for _, s := range scales {
			name := fmt.Sprintf("%s_%g", strings.ToLower(fb.EnumNamesBuiltinOperator[code]), s)
			t.Run(name, func(t *testing.T) {
				m := intOpModel(code, nil, []qt{act(i16, sh(65536), s, 0)}, act(i16, sh(65536), 1.0/32768, 0))
				path := filepath.Join(t.TempDir(), name+".tflite")
				if err := tflite.WriteFile(context.Background(), path, m, tflite.WriteOptions{}); err != nil {
					t.Fatal(err)
				}
				exact, _, worst, n := intAgreement(t, r, path, []int64{sweep}, false, Options{})
				if n != 65536 || exact != 1 {
					t.Errorf("%d integers, %.6f equal (largest difference %d), want all 65536", n, exact, worst)
				}
			})
		}
	}
}

// TestSigmoidTable16: the recomputed table starts at sigmoid(0) = 1/2,
// never falls, stays within one unit of 65536·sigmoid(i/24) plus its
// interpolation correction (at most 2 units here), and ends at the
// kernels' saturation value.
func TestSigmoidTable16(t *testing.T) {
	tb := sigmoidTable16
	if tb[0] != 32768 || tb[255] != 65535 {
		t.Fatalf("ends %d, %d; want 32768, 65535", tb[0], tb[255])
	}
	for i := 1; i < 256; i++ {
		if tb[i] < tb[i-1] {
			t.Fatalf("entry %d = %d below entry %d = %d", i, tb[i], i-1, tb[i-1])
		}
		exact := 65536 / (1 + math.Exp(-float64(i)/24))
		if d := math.Abs(float64(tb[i]) - exact); d > 2 {
			t.Errorf("entry %d = %d, sigmoid gives %.2f", i, tb[i], exact)
		}
	}
}

// TestPadFloat: PAD fills with 0, PADV2 with its constant.
func TestPadFloat(t *testing.T) {
	got, err := runOp(t, fb.BuiltinOperatorPAD, nil, []arg{in(f(sh(1, 2), 1, 2)), cst(i(sh(2, 2), 1, 0, 0, 1))}, fb.TensorTypeFLOAT32)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "PAD", got[0], f(sh(2, 3), 0, 0, 0, 1, 2, 0))
	got, err = runOp(t, fb.BuiltinOperatorPADV2, nil, []arg{in(f(sh(2), 1, 2)), cst(i(sh(1, 2), 2, 1)), cst(f(sh(1), -3))}, fb.TensorTypeFLOAT32)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "PADV2", got[0], f(sh(5), -3, -3, 1, 2, -3))
}

// TestIntHostile: bad quantization parameters and type mixes are refused
// by New with an error naming the tensor (never a panic, never a run).
func TestIntHostile(t *testing.T) {
	good := func() []qt { return []qt{act(i8, sh(2, 4), 0.05, 3), act(i8, sh(2, 4), 0.02, -1)} }
	w := qt{typ: i8, shape: sh(3, 4), scales: []float32{0.1, 0.2, 0.3}, zps: []int64{0, 0, 0}, data: seq(12, -127, 127, 11)}
	cases := []struct {
		name string
		code fb.BuiltinOperator
		opts any
		ins  []qt
		out  qt
		want string
	}{
		{"zero scale", fb.BuiltinOperatorADD, nil, []qt{act(i8, sh(2, 4), 0, 3), good()[1]}, act(i8, sh(2, 4), 0.1, 0), `input "in0" has scale 0`},
		{"NaN scale", fb.BuiltinOperatorADD, nil, []qt{good()[0], act(i8, sh(2, 4), float32(math.NaN()), 0)}, act(i8, sh(2, 4), 0.1, 0), `input "in1" has scale NaN`},
		{"infinite output scale", fb.BuiltinOperatorMUL, nil, good(), act(i8, sh(2, 4), float32(math.Inf(1)), 0), `output "out" has scale +Inf`},
		{"zero point out of range", fb.BuiltinOperatorADD, nil, []qt{act(i8, sh(2, 4), 0.05, 300), good()[1]}, act(i8, sh(2, 4), 0.1, 0), `input "in0" (INT8) has zero point 300 outside [-128, 127]`},
		{"int16 zero point out of range", fb.BuiltinOperatorQUANTIZE, nil, []qt{act(i8, sh(4), 0.05, 0)}, act(i16, sh(4), 0.1, -40000), `output "out" (INT16) has zero point -40000`},
		{"int16 zero point not 0", fb.BuiltinOperatorADD, nil, []qt{act(i16, sh(4), 0.05, 5), act(i16, sh(4), 0.05, 0)}, act(i16, sh(4), 0.1, 0), `INT16 tensor "in0" has zero point 5`},
		{"no quantization", fb.BuiltinOperatorADD, nil, []qt{{typ: i8, shape: sh(2, 4)}, good()[1]}, act(i8, sh(2, 4), 0.1, 0), `input "in0" (INT8) has no quantization parameters`},
		{"per-channel activation", fb.BuiltinOperatorADD, nil, []qt{{typ: i8, shape: sh(2, 4), scales: []float32{0.1, 0.2}, zps: []int64{0, 0}}, good()[1]}, act(i8, sh(2, 4), 0.1, 0), `input "in0" has 2 scales`},
		{"mixed widths", fb.BuiltinOperatorADD, nil, []qt{good()[0], act(i16, sh(2, 4), 0.02, 0)}, act(i8, sh(2, 4), 0.1, 0), `input 1 ("in1") has type INT16`},
		{"float output of int add", fb.BuiltinOperatorADD, nil, good(), qt{typ: fb.TensorTypeFLOAT32, shape: sh(2, 4)}, `output 0 ("out") has type FLOAT32`},
		{"filter scale count", fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{}, []qt{act(i8, sh(2, 4), 0.05, 3), {typ: i8, shape: sh(3, 4), scales: []float32{0.1, 0.2}, zps: []int64{0, 0}, data: seq(12, -127, 127, 11)}}, act(i8, sh(2, 3), 0.1, 0), `filter: tensor "in1": 2 scales`},
		{"filter zero filter scale", fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{}, []qt{act(i8, sh(2, 4), 0.05, 3), {typ: i8, shape: sh(3, 4), scales: []float32{0.1, 0, 0.3}, zps: []int64{0, 0, 0}, data: seq(12, -127, 127, 11)}}, act(i8, sh(2, 3), 0.1, 0), `scale 0 at channel 1`},
		{"int8 bias of int64", fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{}, []qt{act(i8, sh(2, 4), 0.05, 3), w, {typ: i64, shape: sh(3), data: []int64{1, 2, 3}}}, act(i8, sh(2, 3), 0.1, 0), `input 2 ("in2") has type INT64`},
		{"bias length", fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{}, []qt{act(i8, sh(2, 4), 0.05, 3), w, {typ: i32, shape: sh(2), data: []int64{1, 2}}}, act(i8, sh(2, 3), 0.1, 0), `bias "in2" has 2 elements, want 3`},
		{"16x8 dwconv int32 bias", fb.BuiltinOperatorDEPTHWISE_CONV_2D, &fb.DepthwiseConv2DOptionsT{Padding: fb.PaddingVALID, StrideH: 1, StrideW: 1, DepthMultiplier: 1}, []qt{act(i16, sh(1, 3, 3, 2), 0.001, 0), {typ: i8, shape: sh(1, 2, 2, 2), axis: 3, scales: []float32{0.1, 0.2}, zps: []int64{0, 0}, data: seq(8, -127, 127, 11)}, {typ: i32, shape: sh(2), data: []int64{1, 2}}}, act(i16, sh(1, 2, 2, 2), 0.001, 0), `INT32 bias "in2"`},
		{"softmax output", fb.BuiltinOperatorSOFTMAX, &fb.SoftmaxOptionsT{Beta: 1}, []qt{act(i8, sh(2, 4), 0.05, 3)}, act(i8, sh(2, 4), 0.01, 0), `softmax output "out" has scale 0.01 zero point 0`},
		{"logistic output", fb.BuiltinOperatorLOGISTIC, nil, []qt{act(i8, sh(4), 0.05, 3)}, act(i8, sh(4), 0.01, -128), `LOGISTIC output "out" has scale 0.01`},
		{"int16 logistic pot input", fb.BuiltinOperatorLOGISTIC, nil, []qt{act(i16, sh(4), 1.0/4096, 0)}, act(i16, sh(4), 1.0/32768, 0), `power-of-two fixed-point kernel`},
		{"int16 tanh pot input", fb.BuiltinOperatorTANH, nil, []qt{act(i16, sh(4), 1.0/2048, 0)}, act(i16, sh(4), 1.0/32768, 0), `power-of-two fixed-point kernel`},
		{"int16 tanh output", fb.BuiltinOperatorTANH, nil, []qt{act(i16, sh(4), 0.0003, 0)}, act(i16, sh(4), 1.0/30000, 0), `INT16 TANH output "out" has scale`},
		{"int16 logistic output zero point", fb.BuiltinOperatorLOGISTIC, nil, []qt{act(i16, sh(4), 0.0003, 0)}, act(i16, sh(4), 1.0/32768, 7), `zero point 7`},
		{"int16 logistic huge input scale", fb.BuiltinOperatorLOGISTIC, nil, []qt{act(i16, sh(4), 100, 0)}, act(i16, sh(4), 1.0/32768, 0), `too large for the runtime's 16-bit multiplier`},
		{"concat scales", fb.BuiltinOperatorCONCATENATION, &fb.ConcatenationOptionsT{}, []qt{act(i8, sh(2), 0.05, 3), act(i8, sh(2), 0.06, 3)}, act(i8, sh(4), 0.05, 3), `input 1 "in1" (scale 0.06, zero point 3) differs`},
		{"pool parameters", fb.BuiltinOperatorMAX_POOL_2D, &fb.Pool2DOptionsT{Padding: fb.PaddingVALID, StrideH: 1, StrideW: 1, FilterHeight: 1, FilterWidth: 1}, []qt{act(i8, sh(1, 2, 2, 1), 0.05, 3)}, act(i8, sh(1, 2, 2, 1), 0.05, 4), `differ: the pooling kernels keep the parameters`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := intOpModel(tc.code, tc.opts, tc.ins, tc.out)
			_, err := New(m, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			var ue *UnsupportedError
			var oe *OpError
			if !errors.As(err, &ue) && !errors.As(err, &oe) {
				t.Fatalf("%v is neither an UnsupportedError nor an OpError", err)
			}
		})
	}
}

// TestIntRunHostile: inputs that do not fit are errors at Run.
func TestIntRunHostile(t *testing.T) {
	m := intOpModel(fb.BuiltinOperatorADD, nil, []qt{act(i8, sh(2, 2), 0.05, 3), act(i8, sh(2, 2), 0.05, 3)}, act(i8, sh(2, 2), 0.1, 0))
	in, err := New(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	x := NewTensor(i8, sh(2, 2))
	for _, bad := range []map[string]*Tensor{
		{"in0": NewTensor(i16, sh(2, 2)), "in1": x},                   // wrong type
		{"in0": {Type: i8, Shape: sh(2, 2), I8: []int8{1}}, "in1": x}, // short data
		{"in0": x, "in1": NewTensor(i8, sh(2, 3))},                    // wrong shape
	} {
		if _, err := in.Run(context.Background(), "", bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// TestQuantizeFloatMatchesLiteRT: FLOAT32 → INT8/INT16 QUANTIZE of
// arbitrary floats (ties and out-of-range values included) against
// LiteRT.js: int16 runs the builtin kernel (round half away from zero,
// both modes equal); int8 runs XNNPACK's convert, which IntXNNPACK matches
// and IntReference differs from on ties only.
func TestQuantizeFloatMatchesLiteRT(t *testing.T) {
	r := litert.Require(t)
	vals := make([]float32, 0, 4096)
	for i := -2048; i < 2048; i++ {
		vals = append(vals, float32(i)*0.0125) // many exact ties of s = 0.025 and 0.05
	}
	for _, tc := range []struct {
		out   qt
		arith IntArithmetic
		exact bool
	}{
		{act(i8, sh(4096), 0.05, 3), IntXNNPACK, true},
		{act(i8, sh(4096), 0.05, 3), IntReference, false},
		{act(i16, sh(4096), 0.025, 0), IntReference, true},
		{act(i16, sh(4096), 0.025, 0), IntXNNPACK, true},
	} {
		t.Run(fmt.Sprintf("%s/arith=%d", tflite.TypeName(tc.out.typ), tc.arith), func(t *testing.T) {
			b := newBuilder()
			x := b.tensor("x", fb.TensorTypeFLOAT32, sh(4096), nil)
			q := b.tensor("q", tc.out.typ, sh(4096), nil)
			b.sg.Tensors[q].Quantization = &fb.QuantizationParametersT{Scale: tc.out.scales, ZeroPoint: tc.out.zps}
			y := b.tensor("y", fb.TensorTypeFLOAT32, sh(4096), nil)
			b.op(fb.BuiltinOperatorQUANTIZE, nil, []int32{x}, []int32{q})
			b.op(fb.BuiltinOperatorDEQUANTIZE, nil, []int32{q}, []int32{y})
			m := b.model([]int32{x}, []int32{y})
			path := filepath.Join(t.TempDir(), "q.tflite")
			if err := tflite.WriteFile(context.Background(), path, m, tflite.WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			in, err := New(m, Options{IntArithmetic: tc.arith})
			if err != nil {
				t.Fatal(err)
			}
			got, err := in.Run(context.Background(), "", map[string]*Tensor{"x": F32Tensor(sh(4096), vals)})
			if err != nil {
				t.Fatal(err)
			}
			lout, err := r.Run(path, []litert.Tensor{litert.NewFloat32("x", sh(4096), vals)})
			if err != nil {
				t.Fatal(err)
			}
			diff := 0
			for i, w := range lout[0].Float32s() {
				if w != got["y"].F32[i] {
					diff++
				}
			}
			t.Logf("%d of %d values differ", diff, len(vals))
			if (diff == 0) != tc.exact {
				t.Errorf("%d differ, want exact=%v", diff, tc.exact)
			}
		})
	}
}

// TestInt16BlockMatchesLiteRT: a small int16 decoder-like block (FC,
// RMS-norm from MUL/MEAN/RSQRT/MUL, GELU, residual ADD, attention-like
// BATCH_MATMUL and SOFTMAX, TRANSPOSE, CONCATENATION, a requantizing
// QUANTIZE to int8) runs on the interpreter as on LiteRT.js, every output
// integer of every layer equal (int16 runs LiteRT's builtin kernels only).
func TestInt16BlockMatchesLiteRT(t *testing.T) {
	r := litert.Require(t)
	b := newBuilder()
	a := func(name string, typ fb.TensorType, shape []int, scale float32, zp int64) int32 {
		i := b.tensor(name, typ, shape, nil)
		b.sg.Tensors[i].Quantization = &fb.QuantizationParametersT{Scale: []float32{scale}, ZeroPoint: []int64{zp}}
		return i
	}
	cst := func(name string, q qt) int32 {
		i := b.tensor(name, q.typ, q.shape, q.bytes())
		if q.scales != nil {
			b.sg.Tensors[i].Quantization = &fb.QuantizationParametersT{Scale: q.scales, ZeroPoint: q.zps, QuantizedDimension: q.axis}
		}
		return i
	}
	const T, D = 4, 32
	wsc := make([]float32, D)
	for i := range wsc {
		wsc[i] = 0.004 + float32(i%5)*0.0005
	}
	x := a("x", i16, sh(T, D), 0.0003, 0)
	w := cst("w", qt{typ: i8, shape: sh(D, D), scales: wsc, zps: make([]int64, D), data: seq(D*D, -127, 127, 53)})
	bias := cst("bias", qt{typ: i64, shape: sh(D), data: seq(D, -300, 300, 41)})
	h := a("h", i16, sh(T, D), 0.0012, 0)
	b.op(fb.BuiltinOperatorFULLY_CONNECTED, &fb.FullyConnectedOptionsT{}, []int32{x, w, bias}, []int32{h})
	sq := a("sq", i16, sh(T, D), 0.05, 0)
	b.op(fb.BuiltinOperatorMUL, &fb.MulOptionsT{}, []int32{h, h}, []int32{sq})
	ax := cst("axis", qt{typ: i32, shape: sh(1), data: []int64{-1}})
	ms := a("ms", i16, sh(T, 1), 0.01, 0)
	b.op(fb.BuiltinOperatorMEAN, &fb.ReducerOptionsT{KeepDims: true}, []int32{sq, ax}, []int32{ms})
	rs := a("rs", i16, sh(T, 1), 0.00001, 0)
	b.op(fb.BuiltinOperatorRSQRT, nil, []int32{ms}, []int32{rs})
	nrm := a("norm", i16, sh(T, D), 0.0002, 0)
	b.op(fb.BuiltinOperatorMUL, &fb.MulOptionsT{}, []int32{h, rs}, []int32{nrm})
	g := a("gelu", i16, sh(T, D), 0.0002, 0)
	b.op(fb.BuiltinOperatorGELU, &fb.GeluOptionsT{Approximate: true}, []int32{nrm}, []int32{g})
	res := a("res", i16, sh(T, D), 0.0005, 0)
	b.op(fb.BuiltinOperatorADD, &fb.AddOptionsT{}, []int32{g, x}, []int32{res})
	sc := a("scores", i16, sh(T, T), 0.01, 0)
	b.op(fb.BuiltinOperatorBATCH_MATMUL, &fb.BatchMatMulOptionsT{AdjY: true}, []int32{res, nrm}, []int32{sc})
	p := a("probs", i16, sh(T, T), 1.0/32768, 0)
	b.op(fb.BuiltinOperatorSOFTMAX, &fb.SoftmaxOptionsT{Beta: 1}, []int32{sc}, []int32{p})
	perm := cst("perm", qt{typ: i32, shape: sh(2), data: []int64{1, 0}})
	pt := a("probs_t", i16, sh(T, T), 1.0/32768, 0)
	b.op(fb.BuiltinOperatorTRANSPOSE, nil, []int32{p, perm}, []int32{pt})
	cat := a("cat", i16, sh(T, 2*T), 1.0/32768, 0)
	b.op(fb.BuiltinOperatorCONCATENATION, &fb.ConcatenationOptionsT{Axis: 1}, []int32{p, pt}, []int32{cat})
	o8 := a("out8", i8, sh(T, 2*T), 1.0/256, -128)
	b.op(fb.BuiltinOperatorQUANTIZE, nil, []int32{cat}, []int32{o8})
	m := b.model([]int32{x}, []int32{o8, res, nrm})
	path := filepath.Join(t.TempDir(), "block.tflite")
	if err := tflite.WriteFile(context.Background(), path, m, tflite.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Every layer must carry information (not one saturated value).
	in, err := New(m, Options{Observe: func(ev OpEvent) {
		seen := map[int32]bool{}
		o := ev.Outputs[0]
		for i := 0; i < o.Len(); i++ {
			seen[o.intAt(i)] = true
		}
		if len(seen) < 3 {
			t.Errorf("operator %d (%s): %d distinct values", ev.Operator, fb.EnumNamesBuiltinOperator[ev.Code], len(seen))
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	ints, _, err := intInputs(m, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Run(context.Background(), "", ints); err != nil {
		t.Fatal(err)
	}
	for _, arith := range []IntArithmetic{IntReference, IntXNNPACK} {
		exact, within, worst, n := intAgreement(t, r, path, []int64{1, 2, 3, 4}, true, Options{IntArithmetic: arith})
		t.Logf("arith %d: %d integers: %.4f equal, %.4f within one step, largest difference %d", arith, n, exact, within, worst)
		if exact != 1 {
			t.Errorf("arith %d: %.4f equal, want all", arith, exact)
		}
	}
}

// TestIntThreadsDeterministic: the person-detection model gives the same
// integers for 1 and 3 workers, in both arithmetics.
func TestIntThreadsDeterministic(t *testing.T) {
	m, err := tflite.Open("../../testdata/models/tflm_person_detect.tflite")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	all := allOutputs(t, m)
	ints, _, err := intInputs(all, 7)
	if err != nil {
		t.Fatal(err)
	}
	for _, arith := range []IntArithmetic{IntReference, IntXNNPACK} {
		var ref map[string]*Tensor
		for _, threads := range []int{1, 3} {
			in, err := New(all, Options{Threads: threads, IntArithmetic: arith})
			if err != nil {
				t.Fatal(err)
			}
			got, err := in.Run(context.Background(), "", ints)
			if err != nil {
				t.Fatal(err)
			}
			if ref == nil {
				ref = got
				continue
			}
			for name, v := range ref {
				if fmt.Sprint(v.I8) != fmt.Sprint(got[name].I8) {
					t.Errorf("arith %d: output %q differs between 1 and %d threads", arith, name, threads)
				}
			}
		}
	}
}
