package modelinput

import (
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// TokenInputs returns the inputs of subgraph sg of meta that are token ids:
// integer (INT32 or INT64) subgraph inputs read as the ids of an
// EMBEDDING_LOOKUP (table = input 1) or a GATHER (params = input 0, along
// the op's axis). Each maps its tensor index to the number of rows of the
// table it indexes, the smallest if it indexes several. The table's shape
// is read whether it is a constant or computed (a DEQUANTIZE output after
// weight-only quantization), so a float model and its quantized versions
// give the same answer. A bad index or shape is ignored, never a panic.
func TokenInputs(meta *fb.ModelT, sg int) map[int]int {
	out := map[int]int{}
	if meta == nil || sg < 0 || sg >= len(meta.Subgraphs) || meta.Subgraphs[sg] == nil {
		return out
	}
	g := meta.Subgraphs[sg]
	isInput := map[int32]bool{}
	for _, i := range g.Inputs {
		isInput[i] = true
	}
	tensor := func(i int32) *fb.TensorT {
		if i < 0 || int(i) >= len(g.Tensors) {
			return nil
		}
		return g.Tensors[i]
	}
	for _, op := range g.Operators {
		if op == nil || op.OpcodeIndex >= uint32(len(meta.OperatorCodes)) || meta.OperatorCodes[op.OpcodeIndex] == nil || len(op.Inputs) < 2 {
			continue
		}
		var ids, table int32
		axis := 0
		switch tflite.BuiltinCode(meta.OperatorCodes[op.OpcodeIndex]) {
		case fb.BuiltinOperatorEMBEDDING_LOOKUP:
			ids, table = op.Inputs[0], op.Inputs[1]
		case fb.BuiltinOperatorGATHER:
			ids, table = op.Inputs[1], op.Inputs[0]
			if op.BuiltinOptions != nil {
				if o, ok := op.BuiltinOptions.Value.(*fb.GatherOptionsT); ok && o != nil {
					axis = int(o.Axis)
				}
			}
		default:
			continue
		}
		idsT, tableT := tensor(ids), tensor(table)
		if !isInput[ids] || idsT == nil || tableT == nil || (idsT.Type != fb.TensorTypeINT32 && idsT.Type != fb.TensorTypeINT64) {
			continue
		}
		if axis < 0 {
			axis += len(tableT.Shape)
		}
		if axis < 0 || axis >= len(tableT.Shape) || tableT.Shape[axis] <= 0 {
			continue
		}
		if n, seen := out[int(ids)]; !seen || int(tableT.Shape[axis]) < n {
			out[int(ids)] = int(tableT.Shape[axis])
		}
	}
	return out
}

// VocabSize returns how many ids the model's int32 token inputs may take:
// the smallest table any of them indexes in any subgraph (TokenInputs). It
// is 0 when no input is used as ids that way.
func VocabSize(meta *fb.ModelT) int {
	vocab := 0
	if meta == nil {
		return 0
	}
	for sg := range meta.Subgraphs {
		for t, n := range TokenInputs(meta, sg) {
			if meta.Subgraphs[sg].Tensors[t].Type != fb.TensorTypeINT32 {
				continue
			}
			if vocab == 0 || n < vocab {
				vocab = n
			}
		}
	}
	return vocab
}
