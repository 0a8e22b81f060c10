package tflite

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// viaAPI edits a model through the object API and writes it back: for
// corruptions a byte patch cannot make (absent fields, new operators).
func viaAPI(edit func(t *testing.T, m *Model)) mutation {
	return func(t *testing.T, b []byte) []byte {
		t.Helper()
		m, err := Read(bytes.NewReader(b), int64(len(b)), "in.tflite")
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		edit(t, m)
		var out bytes.Buffer
		if _, err := Write(&out, m, WriteOptions{Layout: m.Layout}); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
}

// vtableOf is the position of tab's vtable.
func vtableOf(tab flatbuffers.Table) int {
	return int(tab.Pos) - int(int32(binary.LittleEndian.Uint32(tab.Bytes[tab.Pos:])))
}

// slotPos is the position of the vtable entry for field offset vo of tab.
func slotPos(tab flatbuffers.Table, vo flatbuffers.VOffsetT) int { return vtableOf(tab) + int(vo) }

func quantOf(m *Model, sg, ti int) *fb.QuantizationParametersT {
	return m.Meta.Subgraphs[sg].Tensors[ti].Quantization
}

func blockwiseOf(t *testing.T, m *Model) *fb.BlockwiseQuantizationT {
	t.Helper()
	bq, ok := quantOf(m, 0, 1).Details.Value.(*fb.BlockwiseQuantizationT)
	if !ok {
		t.Fatal("tensor 1 is not blockwise")
	}
	return bq
}

// addOp appends to subgraph sg an operator of the given code whose options
// are opts (a *fb.BuiltinOptionsT or *fb.BuiltinOptions2T).
func addOp(m *Model, sg int, code fb.BuiltinOperator, opts any) {
	op := &fb.OperatorT{OpcodeIndex: m.OperatorCodeIndex(code, 1), Inputs: []int32{}, Outputs: []int32{}}
	switch o := opts.(type) {
	case *fb.BuiltinOptionsT:
		op.BuiltinOptions = o
	case *fb.BuiltinOptions2T:
		op.BuiltinOptions2 = o
	}
	s := m.Meta.Subgraphs[sg]
	s.Operators = append(s.Operators, op)
}

func opts(t fb.BuiltinOptions, v any) *fb.BuiltinOptionsT {
	return &fb.BuiltinOptionsT{Type: t, Value: v}
}

// denseSparsity makes weight tensor 2 of aeq_single_fc ([16, 8]) a
// "sparse" tensor whose CSR second level stores every element: the
// buffer's size stays right, so it loads; the cases below break one
// thing at a time.
func denseSparsity(m *Model) *fb.SparsityParametersT {
	t := m.Meta.Subgraphs[0].Tensors[2]
	rows, cols := t.Shape[0], t.Shape[1]
	seg := make([]int32, rows+1)
	idx := make([]int32, 0, rows*cols)
	for r := int32(0); r < rows; r++ {
		seg[r+1] = seg[r] + cols
		for c := int32(0); c < cols; c++ {
			idx = append(idx, c)
		}
	}
	sp := &fb.SparsityParametersT{
		TraversalOrder: []int32{0, 1},
		DimMetadata: []*fb.DimensionMetadataT{
			{Format: fb.DimensionTypeDENSE, DenseSize: rows},
			{Format: fb.DimensionTypeSPARSE_CSR,
				ArraySegments: &fb.SparseIndexVectorT{Type: fb.SparseIndexVectorInt32Vector, Value: &fb.Int32VectorT{Values: seg}},
				ArrayIndices:  &fb.SparseIndexVectorT{Type: fb.SparseIndexVectorInt32Vector, Value: &fb.Int32VectorT{Values: idx}}},
		},
	}
	t.Sparsity = sp
	return sp
}

// TestValidEditsLoad covers edits that look odd but that the runtime
// accepts: they must keep loading.
func TestValidEditsLoad(t *testing.T) {
	for _, c := range validEdits() {
		t.Run(c.name, func(t *testing.T) {
			b := c.edit(t, loadModel(t, c.model))
			m, err := Read(bytes.NewReader(b), int64(len(b)), c.model+".tflite")
			if err != nil {
				t.Fatal(err)
			}
			m.Close()
		})
	}
}

type validEdit struct {
	name, model string
	edit        mutation
}

func validEdits() []validEdit {
	return []validEdit{
		{"CSR sparse weight storing every element", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) { denseSparsity(m) })},
		{"single scale, quantized_dimension past the rank", "aeq_mnist_quantized", viaAPI(func(t *testing.T, m *Model) {
			q := quantOf(m, 0, 1)
			q.Scale, q.ZeroPoint, q.QuantizedDimension = q.Scale[:1], q.ZeroPoint[:1], 7
		})},
		{"only builtin_code set", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) { m.Meta.OperatorCodes[0].DeprecatedBuiltinCode = 0 })},
		{"only deprecated_builtin_code set", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) { m.Meta.OperatorCodes[0].BuiltinCode = 0 })},
		{"WHILE calling two other subgraphs", "aeq_two_signatures", viaAPI(func(t *testing.T, m *Model) {
			m.Meta.Subgraphs = append(m.Meta.Subgraphs, &fb.SubGraphT{Tensors: []*fb.TensorT{}})
			addOp(m, 0, fb.BuiltinOperatorWHILE, opts(fb.BuiltinOptionsWhileOptions, &fb.WhileOptionsT{CondSubgraphIndex: 1, BodySubgraphIndex: 2}))
			addOp(m, 1, fb.BuiltinOperatorCALL_ONCE, opts(fb.BuiltinOptionsCallOnceOptions, &fb.CallOnceOptionsT{InitSubgraphIndex: 2}))
		})},
	}
}

// TestHostileModels: real models made bad in one way each, one case per
// class of problem the reader must refuse (see validate.go,
// validate_semantic.go and verify_flatbuffer.go).
func TestHostileModels(t *testing.T) {
	runCorrupt(t, hostileCases())
}

func hostileCases() []corruptCase {
	return []corruptCase{
		// Quantization parameters of already-quantized tensors.
		{"scale count differs from quantized dimension", "aeq_mnist_quantized", viaAPI(func(t *testing.T, m *Model) {
			q := quantOf(m, 0, 1)
			q.Scale, q.ZeroPoint = q.Scale[:9], q.ZeroPoint[:9]
		}), []string{`subgraph 0 tensor 1 ("arith.constant")`, "9 scales, but dimension 0 (quantized_dimension) of shape [10 32] has size 10"}},
		{"zero point count differs from scale count", "aeq_mnist_quantized", viaAPI(func(t *testing.T, m *Model) {
			q := quantOf(m, 0, 2)
			q.ZeroPoint = q.ZeroPoint[:5]
		}), []string{"subgraph 0 tensor 2", "32 scales but 5 zero points"}},
		{"zero point vector absent", "aeq_mnist_quantized", viaAPI(func(t *testing.T, m *Model) { quantOf(m, 0, 2).ZeroPoint = nil }),
			[]string{"subgraph 0 tensor 2", "no zero_point vector"}},
		{"quantized dimension past the rank", "aeq_mnist_quantized", viaAPI(func(t *testing.T, m *Model) { quantOf(m, 0, 1).QuantizedDimension = 2 }),
			[]string{"subgraph 0 tensor 1", "quantized_dimension 2 outside the tensor's rank 2"}},
		{"quantized dimension negative", "tflm_person_detect", func(t *testing.T, b []byte) []byte {
			var q fb.QuantizationParameters
			tensor(b, 0, 0).Quantization(&q)
			must(t, q.MutateQuantizedDimension(-1))
			return b
		}, []string{"subgraph 0 tensor 0", "quantized_dimension -1 is negative"}},
		{"per-channel on the wrong dimension", "tflm_person_detect", func(t *testing.T, b []byte) []byte {
			var q fb.QuantizationParameters
			tensor(b, 0, 0).Quantization(&q) // [1 3 3 8], 8 scales, dimension 3
			must(t, q.MutateQuantizedDimension(1))
			return b
		}, []string{"subgraph 0 tensor 0", "8 scales, but dimension 1 (quantized_dimension) of shape [1 3 3 8] has size 3"}},
		{"blockwise scales tensor missing", "litert_qwen_fc_blockwise_quantized", viaAPI(func(t *testing.T, m *Model) { blockwiseOf(t, m).Scales = 4 }),
			[]string{"subgraph 0 tensor 1", "BlockwiseQuantization scales tensor 4 out of range (subgraph has 4 tensors)"}},
		{"blockwise scales tensor negative", "litert_qwen_fc_blockwise_quantized", viaAPI(func(t *testing.T, m *Model) { blockwiseOf(t, m).Scales = -1 }),
			[]string{"subgraph 0 tensor 1", "scales tensor -1 out of range"}},
		{"blockwise scales tensor is the weight", "litert_qwen_fc_blockwise_quantized", viaAPI(func(t *testing.T, m *Model) { blockwiseOf(t, m).Scales = 1 }),
			[]string{"scales tensor 1 is the quantized tensor itself"}},
		{"blockwise scales tensor wrong shape", "litert_qwen_fc_blockwise_quantized", viaAPI(func(t *testing.T, m *Model) {
			m.Meta.Subgraphs[0].Tensors[3].Shape = []int32{1024, 16}
		}), []string{"scales tensor 3", "has shape [1024 16]; a weight of shape [1024 1024] in blocks of 32 needs [1024 32]"}},
		{"blockwise scales tensor not constant", "litert_qwen_fc_blockwise_quantized", viaAPI(func(t *testing.T, m *Model) {
			m.Meta.Subgraphs[0].Tensors[3].Buffer = 0
		}), []string{"scales tensor 3", "holds no constant data"}},
		{"blockwise block size zero", "litert_qwen_fc_blockwise_quantized", viaAPI(func(t *testing.T, m *Model) { blockwiseOf(t, m).BlockSize = 0 }),
			[]string{"block_size 0 must be positive"}},
		{"blockwise block size does not divide", "litert_qwen_fc_blockwise_quantized", viaAPI(func(t *testing.T, m *Model) { blockwiseOf(t, m).BlockSize = 48 }),
			[]string{"block_size 48 does not divide the last dimension of shape [1024 1024]"}},
		{"blockwise zero points wrong shape", "litert_qwen_fc_blockwise_quantized", viaAPI(func(t *testing.T, m *Model) { blockwiseOf(t, m).ZeroPoints = 0 }),
			[]string{"zero_points tensor 0", "needs [1024 32]"}},
		{"multi-axis dimension past the rank", "litert_qwen_fc_blockwise_quantized", viaAPI(func(t *testing.T, m *Model) {
			quantOf(m, 0, 1).Details = &fb.QuantizationDetailsT{Type: fb.QuantizationDetailsMultiAxisQuantization,
				Value: &fb.MultiAxisQuantizationT{Scales: 3, ZeroPoints: -1, QuantizedDimensions: []int32{0, 2}}}
		}), []string{"MultiAxisQuantization quantized dimension 2 outside the tensor's rank 2"}},

		// Enum values outside the schema.
		{"tensor type 23", "aeq_mnist_quantized", func(t *testing.T, b []byte) []byte {
			must(t, tensor(b, 0, 1).MutateType(23))
			return b
		}, []string{"subgraph 0 tensor 1 type", "23 is not a TensorType value"}},
		{"tensor type -1", "aeq_mnist_quantized", func(t *testing.T, b []byte) []byte {
			must(t, tensor(b, 0, 1).MutateType(-1))
			return b
		}, []string{"-1 is not a TensorType value"}},
		{"builtin code past the schema", "litert_simple_group_norm_op_bufoffset", func(t *testing.T, b []byte) []byte {
			var oc fb.OperatorCode
			root(b).OperatorCodes(&oc, 0)
			must(t, oc.MutateBuiltinCode(210))
			return b
		}, []string{"operator code 0 builtin_code", "210 is not a BuiltinOperator value"}},
		{"placeholder code with a small builtin code", "litert_simple_group_norm_op_bufoffset", func(t *testing.T, b []byte) []byte {
			var oc fb.OperatorCode
			root(b).OperatorCodes(&oc, 0)
			must(t, oc.MutateBuiltinCode(fb.BuiltinOperatorFULLY_CONNECTED))
			return b
		}, []string{"operator code 0", "deprecated_builtin_code is 127 (PLACEHOLDER_FOR_GREATER_OP_CODES) but builtin_code is 9 (FULLY_CONNECTED)"}},
		{"deprecated and extended codes disagree", "litert_simple_group_norm_op_bufoffset", func(t *testing.T, b []byte) []byte {
			var oc fb.OperatorCode
			root(b).OperatorCodes(&oc, 1) // SUB: 41, 41
			must(t, oc.MutateDeprecatedBuiltinCode(9))
			return b
		}, []string{"operator code 1", "deprecated_builtin_code 9 (FULLY_CONNECTED) and builtin_code 41 (SUB) name different operators"}},
		{"deprecated code negative", "litert_simple_group_norm_op_bufoffset", func(t *testing.T, b []byte) []byte {
			var oc fb.OperatorCode
			root(b).OperatorCodes(&oc, 1)
			must(t, oc.MutateDeprecatedBuiltinCode(-3))
			return b
		}, []string{"operator code 1", "deprecated_builtin_code -3 is negative"}},
		{"placeholder as the operator", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) {
			oc := m.Meta.OperatorCodes[0]
			oc.BuiltinCode, oc.DeprecatedBuiltinCode = fb.BuiltinOperatorPLACEHOLDER_FOR_GREATER_OP_CODES, 127
		}), []string{"operator code 0", "builtin code 127 is not an operator"}},
		{"custom operator without a name", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) {
			oc := m.Meta.OperatorCodes[0]
			oc.BuiltinCode, oc.DeprecatedBuiltinCode = fb.BuiltinOperatorCUSTOM, int8(fb.BuiltinOperatorCUSTOM)
		}), []string{"operator code 0", "CUSTOM operator code without a custom_code"}},
		{"fused activation 9", "aeq_conv_fc_mnist", func(t *testing.T, b []byte) []byte {
			var tab flatbuffers.Table
			must(t, operator(b, 0, 0).BuiltinOptions(&tab))
			var o fb.Conv2DOptions
			o.Init(tab.Bytes, tab.Pos)
			must(t, o.MutateFusedActivationFunction(9))
			return b
		}, []string{"subgraph 0 operator 0 builtin_options(Conv2DOptions).fused_activation_function", "9 is not a ActivationFunctionType value"}},
		{"padding 2", "aeq_conv_fc_mnist", viaAPI(func(t *testing.T, m *Model) {
			m.Meta.Subgraphs[0].Operators[0].BuiltinOptions.Value.(*fb.Conv2DOptionsT).Padding = 2
		}), []string{"builtin_options(Conv2DOptions).padding", "2 is not a Padding value"}},
		{"builtin options type unknown", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			must(t, operator(b, 0, 0).MutateBuiltinOptionsType(250))
			return b
		}, []string{"subgraph 0 operator 0 builtin_options_type", "union type 250 is not a member of BuiltinOptions"}},
		{"blockwise type without its details", "litert_qwen_fc_blockwise_quantized", func(t *testing.T, b []byte) []byte {
			var q fb.QuantizationParameters
			tensor(b, 0, 1).Quantization(&q)
			binary.LittleEndian.PutUint16(b[slotPos(q.Table(), 14):], 0) // details
			return b
		}, []string{"subgraph 0 tensor 1 quantization.details_type", "union type 2 (BlockwiseQuantization) is set but its details value is absent"}},
		{"options type without options", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			binary.LittleEndian.PutUint16(b[slotPos(operator(b, 0, 0).Table(), 12):], 0) // builtin_options
			return b
		}, []string{"subgraph 0 operator 0 builtin_options_type", "union type 8 (FullyConnectedOptions) is set but its builtin_options value is absent"}},
		{"quantization details type unknown", "litert_qwen_fc_blockwise_quantized", func(t *testing.T, b []byte) []byte {
			var q fb.QuantizationParameters
			tensor(b, 0, 1).Quantization(&q)
			must(t, q.MutateDetailsType(4))
			return b
		}, []string{"subgraph 0 tensor 1 quantization.details_type", "union type 4 is not a member of QuantizationDetails"}},

		// Subgraph indices in operator options.
		{"composite decomposition out of range", "litert_simple_group_norm_op_bufoffset", compositeIndex(2),
			[]string{"subgraph 0 operator 0 (STABLEHLO_COMPOSITE)", "StableHLOCompositeOptions.decomposition_subgraph_index is subgraph 2, out of range (model has 2 subgraphs)"}},
		{"composite decomposition negative", "litert_simple_group_norm_op_bufoffset", compositeIndex(-1),
			[]string{"is subgraph -1, out of range"}},
		{"composite decomposition is its own subgraph", "litert_simple_group_norm_op_bufoffset", compositeIndex(0),
			[]string{"subgraph 0 operator 0 (STABLEHLO_COMPOSITE)", "is subgraph 0, the operator's own subgraph"}},
		{"decomposition leads back to its caller", "litert_simple_group_norm_op_bufoffset", viaAPI(func(t *testing.T, m *Model) {
			addOp(m, 1, fb.BuiltinOperatorCALL_ONCE, opts(fb.BuiltinOptionsCallOnceOptions, &fb.CallOnceOptionsT{InitSubgraphIndex: 0}))
		}), []string{"subgraph 1 operator 11 (CALL_ONCE)", "CallOnceOptions.init_subgraph_index calls subgraph 0, closing a cycle of subgraph calls 0 -> 1 -> 0"}},
		{"WHILE body out of range", "aeq_two_signatures", viaAPI(func(t *testing.T, m *Model) {
			addOp(m, 0, fb.BuiltinOperatorWHILE, opts(fb.BuiltinOptionsWhileOptions, &fb.WhileOptionsT{CondSubgraphIndex: 1, BodySubgraphIndex: 7}))
		}), []string{"subgraph 0 operator 1 (WHILE)", "WhileOptions.body_subgraph_index is subgraph 7, out of range"}},
		{"IF else is its own subgraph", "aeq_two_signatures", viaAPI(func(t *testing.T, m *Model) {
			addOp(m, 1, fb.BuiltinOperatorIF, opts(fb.BuiltinOptionsIfOptions, &fb.IfOptionsT{ThenSubgraphIndex: 0, ElseSubgraphIndex: 1}))
		}), []string{"subgraph 1 operator 1 (IF)", "IfOptions.else_subgraph_index is subgraph 1, the operator's own subgraph"}},
		{"three-subgraph cycle", "aeq_two_signatures", viaAPI(func(t *testing.T, m *Model) {
			m.Meta.Subgraphs = append(m.Meta.Subgraphs, &fb.SubGraphT{Tensors: []*fb.TensorT{}})
			addOp(m, 0, fb.BuiltinOperatorCALL_ONCE, opts(fb.BuiltinOptionsCallOnceOptions, &fb.CallOnceOptionsT{InitSubgraphIndex: 1}))
			addOp(m, 1, fb.BuiltinOperatorWHILE, opts(fb.BuiltinOptionsWhileOptions, &fb.WhileOptionsT{CondSubgraphIndex: 2, BodySubgraphIndex: 2}))
			addOp(m, 2, fb.BuiltinOperatorIF, opts(fb.BuiltinOptionsIfOptions, &fb.IfOptionsT{ThenSubgraphIndex: 0, ElseSubgraphIndex: 1}))
		}), []string{"subgraph 2 operator 0 (IF)", "closing a cycle of subgraph calls 0 -> 1 -> 2 -> 0"}},
		{"call cycle through 20000 subgraphs", "aeq_two_signatures", viaAPI(func(t *testing.T, m *Model) {
			const n = 20000
			for len(m.Meta.Subgraphs) < n {
				m.Meta.Subgraphs = append(m.Meta.Subgraphs, &fb.SubGraphT{Tensors: []*fb.TensorT{}})
			}
			for i := 0; i < n; i++ {
				addOp(m, i, fb.BuiltinOperatorCALL_ONCE, opts(fb.BuiltinOptionsCallOnceOptions, &fb.CallOnceOptionsT{InitSubgraphIndex: int32((i + 1) % n)}))
			}
		}), []string{"subgraph 19999 operator 0 (CALL_ONCE)", "closing a cycle of subgraph calls 0 -> 1 -> 2 -> 3 -> 4 -> (19990 more) -> 19995 -> 19996 -> 19997 -> 19998 -> 19999 -> 0"}},
		{"StableHLO case branch out of range", "aeq_two_signatures", viaAPI(func(t *testing.T, m *Model) {
			addOp(m, 0, fb.BuiltinOperatorSTABLEHLO_CASE, &fb.BuiltinOptions2T{Type: fb.BuiltinOptions2StablehloCaseOptions,
				Value: &fb.StablehloCaseOptionsT{BranchSubgraphIndices: []int32{1, 9}}})
		}), []string{"StablehloCaseOptions.branch_subgraph_indices[1] is subgraph 9, out of range"}},

		// Flatbuffer structure.
		{"table is its own vtable", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			binary.LittleEndian.PutUint32(b[tensor(b, 0, 1).Table().Pos:], 0)
			return b
		}, []string{"subgraph 0 tensor 1", "vtable offset is 0: the table is its own vtable"}},
		{"vtable overlaps its table", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			// A vtable 6 bytes before tensor 1 whose second slot is the
			// low half of the table's own soffset.
			pos := int(tensor(b, 0, 1).Table().Pos)
			binary.LittleEndian.PutUint32(b[pos:], 6)
			binary.LittleEndian.PutUint16(b[pos-6:], 8)  // vtable size
			binary.LittleEndian.PutUint16(b[pos-4:], 16) // table size
			binary.LittleEndian.PutUint16(b[pos-2:], 0)  // slot 0 absent
			return b
		}, []string{"subgraph 0 tensor 1", "Tensor table's vtable", "overlaps the table's own vtable offset"}},
		{"offset pointing at itself", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			tab := subgraph(b, 0).Table()
			binary.LittleEndian.PutUint32(b[int(tab.Pos)+int(tab.Offset(4)):], 0) // tensors
			return b
		}, []string{"subgraph 0 tensors", "offset is 0: it points at itself"}},
		{"misaligned table", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			p := vectorLenPos(subgraph(b, 0).Table(), 4) + 4 // tensors[0]
			binary.LittleEndian.PutUint32(b[p:], binary.LittleEndian.Uint32(b[p:])+2)
			return b
		}, []string{"subgraph 0 tensor 0", "Tensor table at a position not aligned to 4"}},
		{"misaligned field", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			s := slotPos(tensor(b, 0, 1).Table(), 8) // buffer:uint
			binary.LittleEndian.PutUint16(b[s:], binary.LittleEndian.Uint16(b[s:])+1)
			return b
		}, []string{"subgraph 0 tensor 1 buffer", "not aligned to 4"}},
		{"field past its table", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			s := slotPos(tensor(b, 0, 1).Table(), 8)
			binary.LittleEndian.PutUint16(b[s:], 0xfff0)
			return b
		}, []string{"subgraph 0 tensor 1 buffer", "field lies outside its Tensor table"}},
		{"field inside the table's vtable offset", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			s := slotPos(tensor(b, 0, 1).Table(), 8)
			binary.LittleEndian.PutUint16(b[s:], 0)
			binary.LittleEndian.PutUint16(b[s:], 2)
			return b
		}, []string{"subgraph 0 tensor 1 buffer"}},
		{"odd vtable size", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			vt := vtableOf(tensor(b, 0, 1).Table())
			binary.LittleEndian.PutUint16(b[vt:], binary.LittleEndian.Uint16(b[vt:])+1)
			return b
		}, []string{"subgraph 0 tensor 1", "vtable has size"}},
		{"vtable size past the end", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			vt := vtableOf(tensor(b, 0, 1).Table())
			binary.LittleEndian.PutUint16(b[vt:], 0xfffe)
			return b
		}, []string{"subgraph 0 tensor 1", "vtable has size 65534"}},
		{"table inline size past the end", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			vt := vtableOf(tensor(b, 0, 1).Table())
			binary.LittleEndian.PutUint16(b[vt+2:], 0xfffc)
			return b
		}, []string{"Tensor table has inline size 65532"}},
		{"vtable outside the file", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			binary.LittleEndian.PutUint32(b[tensor(b, 0, 1).Table().Pos:], 0x80000000)
			return b
		}, []string{"subgraph 0 tensor 1", "vtable at byte", "outside the flatbuffer"}},
		{"string without terminator", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			p := vectorLenPos(tensor(b, 0, 1).Table(), 10) // name
			binary.LittleEndian.PutUint32(b[p:], binary.LittleEndian.Uint32(b[p:])-1)
			return b
		}, []string{"subgraph 0 tensor 1 name", "lacks its NUL terminator"}},
		{"string past the end", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			p := vectorLenPos(tensor(b, 0, 1).Table(), 10)
			binary.LittleEndian.PutUint32(b[p:], 1<<30)
			return b
		}, []string{"subgraph 0 tensor 1 name", "runs past the end of the flatbuffer"}},
		{"offset negative as signed", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			tab := subgraph(b, 0).Table()
			binary.LittleEndian.PutUint32(b[int(tab.Pos)+int(tab.Offset(4)):], 0x90000000)
			return b
		}, []string{"subgraph 0 tensors", "negative as a signed offset"}},
		{"nested shared vectors", "aeq_single_fc", func(t *testing.T, b []byte) []byte { return sharedTablesModel(1, 1000, 1000) },
			[]string{"more objects are referenced than the flatbuffer"}},
		{"wide vtable shared by many tables", "aeq_single_fc", func(t *testing.T, b []byte) []byte { return wideVtableModel(200000) },
			[]string{"SubGraph table's vtable has 32764 slots", "more vtable slots than a flatbuffer"}},
		{"enum vector shared by many options", "aeq_single_fc", func(t *testing.T, b []byte) []byte { return sharedEnumVectorModel(100000, 20000) },
			[]string{"precision_config", "more objects are referenced than the flatbuffer"}},
		{"unknown field", "aeq_single_fc", func(t *testing.T, b []byte) []byte { return unknownFieldModel(t) },
			[]string{"Metadata table has field id 2, unknown to qpipe's schema"}},

		// What the interpreter builder refuses up front.
		{"no subgraph", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) {
			m.Meta.Subgraphs, m.Meta.SignatureDefs = []*fb.SubGraphT{}, nil
		}), []string{"model table", "the model has no subgraph"}},
		{"no buffers vector", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) {
			m.Meta.Buffers, m.Buffers = nil, nil
		}), []string{"the model has no buffers vector"}},
		{"subgraph without tensors vector", "aeq_two_signatures", viaAPI(func(t *testing.T, m *Model) {
			m.Meta.Subgraphs[1].Tensors = nil
		}), []string{"subgraph 1", "no tensors vector"}},
		{"data in buffer 0", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) { m.Buffers[0].Data = Bytes{1, 2, 3, 4} }),
			[]string{"buffer 0", "buffer 0 holds 4 bytes: it must be the empty sentinel"}},
		{"constant variable", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) { m.Meta.Subgraphs[0].Tensors[2].IsVariable = true }),
			[]string{"subgraph 0 tensor 2", "a constant (buffer 3 holds data) that is also a variable"}},
		{"constant with an external buffer", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) { m.Meta.Subgraphs[0].Tensors[2].ExternalBuffer = 1 }),
			[]string{"subgraph 0 tensor 2", "a constant (buffer 3 holds data) that also names external buffer 1"}},

		// Sparsity, variant subtypes, external buffers.
		{"sparsity traversal order not a permutation", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) {
			denseSparsity(m).TraversalOrder = []int32{1, 1}
		}), []string{"subgraph 0 tensor 2", "traversal_order [1 1] is not a permutation"}},
		{"sparsity dense size wrong", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) {
			denseSparsity(m).DimMetadata[0].DenseSize = 17
		}), []string{"dense level 0 has dense_size 17, the dimension is 16"}},
		{"sparsity index out of range", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) {
			denseSparsity(m).DimMetadata[1].ArrayIndices.Value.(*fb.Int32VectorT).Values[5] = 8
		}), []string{"sparse level 1 index 8 outside the dimension size 8"}},
		{"sparsity segments decreasing", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) {
			denseSparsity(m).DimMetadata[1].ArraySegments.Value.(*fb.Int32VectorT).Values[3] = 1
		}), []string{"array_segments are not non-decreasing"}},
		{"sparsity without segments", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) {
			denseSparsity(m).DimMetadata[1].ArraySegments = nil
		}), []string{"sparse level 1 lacks array_segments or array_indices"}},
		{"sparsity level count", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) {
			sp := denseSparsity(m)
			sp.DimMetadata = sp.DimMetadata[:1]
		}), []string{"traversal_order has 2 entries and dim_metadata 1"}},
		{"sparsity block map missing", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) {
			sp := denseSparsity(m)
			sp.TraversalOrder = append(sp.TraversalOrder, 2)
			sp.DimMetadata = append(sp.DimMetadata, &fb.DimensionMetadataT{Format: fb.DimensionTypeDENSE, DenseSize: 4})
		}), []string{"1 block dimensions but block_map has 0 entries"}},
		{"sparse buffer size", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) {
			sp := denseSparsity(m)
			v := sp.DimMetadata[1].ArrayIndices.Value.(*fb.Int32VectorT)
			v.Values = v.Values[:len(v.Values)-1]
			sp.DimMetadata[1].ArraySegments.Value.(*fb.Int32VectorT).Values[16]--
		}), []string{"sparse tensor stores 127 elements (508 bytes of FLOAT32) but buffer 3 holds 512 bytes"}},
		{"variant subtype shape without rank", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) {
			x := m.Meta.Subgraphs[0].Tensors[0]
			x.Type = fb.TensorTypeVARIANT
			x.VariantTensors = []*fb.VariantSubTypeT{{Shape: []int32{2, 3}, Type: fb.TensorTypeFLOAT32}}
		}), []string{"subgraph 0 tensor 0", "variant subtype 0 has shape [2 3] but has_rank false"}},
		{"variant subtype type unknown", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) {
			x := m.Meta.Subgraphs[0].Tensors[0]
			x.Type = fb.TensorTypeVARIANT
			x.VariantTensors = []*fb.VariantSubTypeT{{Shape: []int32{2}, HasRank: true, Type: 40}}
		}), []string{"subgraph 0 tensor 0 variant_tensors[0].type", "40 is not a TensorType value"}},
		{"variant subtype dimension", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) {
			x := m.Meta.Subgraphs[0].Tensors[0]
			x.VariantTensors = []*fb.VariantSubTypeT{{Shape: []int32{2, -4}, HasRank: true}}
		}), []string{"variant subtype 0 shape [2 -4]: dimension 1 is -4"}},
		{"external buffer group out of range", "aeq_single_fc", viaAPI(func(t *testing.T, m *Model) {
			m.Meta.ExternalBuffers = []*fb.ExternalBufferT{{Id: 1, Group: 3}}
		}), []string{"external buffer 0", "group 3 out of range (model has 0 external buffer groups)"}},
		{"signature subgraph out of range", "aeq_two_signatures", viaAPI(func(t *testing.T, m *Model) {
			m.Meta.SignatureDefs[0].SubgraphIndex = 2
		}), []string{`signature 0`, "subgraph 2 out of range (model has 2 subgraphs)"}},
	}
}

// compositeIndex sets the decomposition subgraph of group-norm's composite.
func compositeIndex(i int32) mutation {
	return func(t *testing.T, b []byte) []byte {
		var tab flatbuffers.Table
		must(t, operator(b, 0, 0).BuiltinOptions2(&tab))
		var o fb.StableHLOCompositeOptions
		o.Init(tab.Bytes, tab.Pos)
		must(t, o.MutateDecompositionSubgraphIndex(i))
		return b
	}
}

// sharedTablesModel is a small file whose subgraphs vector points nsg
// times at one subgraph, whose tensors vector points nt times at one
// tensor of rank rank: a file of a few KB that describes far more.
func sharedTablesModel(rank, nt, nsg int) []byte {
	b := flatbuffers.NewBuilder(0)
	tensor := (&fb.TensorT{Shape: make([]int32, rank)}).Pack(b)
	fb.SubGraphStartTensorsVector(b, nt)
	for i := 0; i < nt; i++ {
		b.PrependUOffsetT(tensor)
	}
	tensors := b.EndVector(nt)
	fb.SubGraphStart(b)
	fb.SubGraphAddTensors(b, tensors)
	sg := fb.SubGraphEnd(b)
	fb.ModelStartSubgraphsVector(b, nsg)
	for i := 0; i < nsg; i++ {
		b.PrependUOffsetT(sg)
	}
	sgs := b.EndVector(nsg)
	fb.ModelStart(b)
	fb.ModelAddVersion(b, 3)
	fb.ModelAddSubgraphs(b, sgs)
	b.FinishWithFileIdentifier(fb.ModelEnd(b), []byte("TFL3"))
	return b.FinishedBytes()
}

// unknownFieldModel is a model whose Metadata table carries a third field,
// as a newer schema might add: qpipe would drop it, so it must refuse it.
func unknownFieldModel(t *testing.T) []byte {
	b := flatbuffers.NewBuilder(0)
	name := b.CreateString("future")
	b.StartObject(3)
	b.PrependUOffsetTSlot(0, name, 0)
	b.PrependUint32Slot(1, 0, 0)
	b.PrependUint32Slot(2, 7, 0)
	md := b.EndObject()
	fb.ModelStartMetadataVector(b, 1)
	b.PrependUOffsetT(md)
	mds := b.EndVector(1)
	fb.BufferStart(b)
	buf := fb.BufferEnd(b)
	fb.ModelStartBuffersVector(b, 1)
	b.PrependUOffsetT(buf)
	bufs := b.EndVector(1)
	fb.ModelStart(b)
	fb.ModelAddVersion(b, 3)
	fb.ModelAddBuffers(b, bufs)
	fb.ModelAddMetadata(b, mds)
	b.FinishWithFileIdentifier(fb.ModelEnd(b), []byte("TFL3"))
	return b.FinishedBytes()
}

// TestFuzzSeeds keeps testdata/fuzz/FuzzRead in step with the hostile
// cases: each small hostile model, and the valid edits (sparse tensors,
// subgraph calls), is a seed so that the fuzzer starts from the
// structures the validation checks. QPIPE_UPDATE_SEEDS=1 rewrites them.
func TestFuzzSeeds(t *testing.T) {
	const dir = "testdata/fuzz/FuzzRead"
	seeds := map[string][]byte{}
	add := func(name string, b []byte) {
		if len(b) <= maxSeedHostile {
			seeds[strings.Map(func(r rune) rune {
				if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
					return r
				}
				if r == ' ' {
					return '-'
				}
				return -1
			}, strings.ToLower(name))] = b
		}
	}
	for _, c := range hostileCases() {
		t.Run(c.name, func(t *testing.T) { add("hostile "+c.name, c.edit(t, loadModel(t, c.model))) })
	}
	for _, c := range validEdits() {
		t.Run(c.name, func(t *testing.T) { add("valid "+c.name, c.edit(t, loadModel(t, c.model))) })
	}
	if os.Getenv("QPIPE_UPDATE_SEEDS") == "1" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range seeds {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, b := range seeds {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("seed %s missing (QPIPE_UPDATE_SEEDS=1 go test -run TestFuzzSeeds ./internal/tflite writes it): %v", name, err)
			continue
		}
		if want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b); string(got) != want {
			t.Errorf("seed %s is stale (QPIPE_UPDATE_SEEDS=1 go test -run TestFuzzSeeds ./internal/tflite rewrites it)", name)
		}
	}
}

// maxSeedHostile bounds the hostile models kept as fuzzing seeds.
const maxSeedHostile = 8 << 10

// wideVtableModel is a model of n subgraphs, each a 4-byte table, all
// sharing one vtable of 32764 empty slots: n·32764 slot reads for a
// verifier that does not bound them.
func wideVtableModel(n int) []byte {
	const vsize = 65532
	vec := 32
	vt := vec + 4 + 4*n
	tables := vt + vsize
	b := make([]byte, tables+4*n)
	le := binary.LittleEndian
	le.PutUint32(b[0:], 20) // root: the Model table
	copy(b[4:], "TFL3")
	// Model vtable at 8: size 10, table size 12, version at 4, subgraphs at 8.
	le.PutUint16(b[8:], 10)
	le.PutUint16(b[10:], 12)
	le.PutUint16(b[12:], 4)
	le.PutUint16(b[16:], 8)
	le.PutUint32(b[20:], 12) // soffset: vtable at 20-12
	le.PutUint32(b[24:], 3)  // version
	le.PutUint32(b[28:], uint32(vec-28))
	le.PutUint32(b[vec:], uint32(n))
	le.PutUint16(b[vt:], vsize)
	le.PutUint16(b[vt+2:], 4)
	for i := 0; i < n; i++ {
		e, tab := vec+4+4*i, tables+4*i
		le.PutUint32(b[e:], uint32(tab-e))
		le.PutUint32(b[tab:], uint32(tab-vt))
	}
	return b
}

// sharedEnumVectorModel is a model of nops STABLEHLO_DOT_GENERAL operators
// whose options share one precision_config vector of n elements: nops·n
// enum checks for a verifier that does not charge them.
func sharedEnumVectorModel(n, nops int) []byte {
	b := flatbuffers.NewBuilder(0)
	fb.StablehloDotGeneralOptionsStartPrecisionConfigVector(b, n)
	for i := 0; i < n; i++ {
		b.PrependUint32(uint32(fb.StablehloPrecisionConfigHIGH))
	}
	pc := b.EndVector(n)
	ops := make([]flatbuffers.UOffsetT, nops)
	for i := range ops {
		fb.StablehloDotGeneralOptionsStart(b)
		fb.StablehloDotGeneralOptionsAddPrecisionConfig(b, pc)
		o := fb.StablehloDotGeneralOptionsEnd(b)
		fb.OperatorStart(b)
		fb.OperatorAddBuiltinOptions2Type(b, fb.BuiltinOptions2StablehloDotGeneralOptions)
		fb.OperatorAddBuiltinOptions2(b, o)
		ops[i] = fb.OperatorEnd(b)
	}
	fb.SubGraphStartOperatorsVector(b, nops)
	for i := nops - 1; i >= 0; i-- {
		b.PrependUOffsetT(ops[i])
	}
	opv := b.EndVector(nops)
	fb.SubGraphStart(b)
	fb.SubGraphAddOperators(b, opv)
	sg := fb.SubGraphEnd(b)
	fb.ModelStartSubgraphsVector(b, 1)
	b.PrependUOffsetT(sg)
	sgs := b.EndVector(1)
	fb.ModelStart(b)
	fb.ModelAddVersion(b, 3)
	fb.ModelAddSubgraphs(b, sgs)
	b.FinishWithFileIdentifier(fb.ModelEnd(b), []byte("TFL3"))
	return b.FinishedBytes()
}
