package litert

import (
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// VocabSize returns how many ids the model's int32 inputs may take: the
// number of rows of the table that an int32 subgraph input indexes through
// EMBEDDING_LOOKUP (table = input 1) or GATHER (params = input 0, along the
// op's axis), the smallest if several do. It is 0 when no input is used as
// ids that way; RandomInputs then draws ids from [0, 4). The table's shape
// is read whether it is a constant or computed (a DEQUANTIZE output after
// weight-only quantization).
func VocabSize(meta *fb.ModelT) int {
	vocab := 0
	for _, sg := range meta.Subgraphs {
		if sg == nil {
			continue
		}
		isInput := map[int32]bool{}
		for _, i := range sg.Inputs {
			isInput[i] = true
		}
		tensor := func(i int32) *fb.TensorT {
			if i < 0 || int(i) >= len(sg.Tensors) {
				return nil
			}
			return sg.Tensors[i]
		}
		for _, op := range sg.Operators {
			if op == nil || int(op.OpcodeIndex) >= len(meta.OperatorCodes) || len(op.Inputs) < 2 {
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
			if !isInput[ids] || idsT == nil || tableT == nil || idsT.Type != fb.TensorTypeINT32 {
				continue
			}
			if axis < 0 {
				axis += len(tableT.Shape)
			}
			if axis < 0 || axis >= len(tableT.Shape) || tableT.Shape[axis] <= 0 {
				continue
			}
			if n := int(tableT.Shape[axis]); vocab == 0 || n < vocab {
				vocab = n
			}
		}
	}
	return vocab
}
