package litert

import (
	"encoding/binary"
	"math"

	"github.com/qpipe/qpipe/internal/modelinput"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// RandomInputs returns deterministic pseudo-random values for the inputs of
// info's default signature: float32 inputs uniform in [-1, 1), int32 inputs
// valid ids in [0, vocab) (vocab <= 0 means [0, 4)), uint8 inputs any byte.
// The same seed gives the same tensors on every machine, and the runner's
// {"seed": seed, "vocab": vocab} input spec generates the same values.
func RandomInputs(info *ModelInfo, seed int64, vocab int) []Tensor {
	return RandomTensors(info.Inputs, seed, vocab)
}

// RandomTensors is RandomInputs for any list of tensors, such as the inputs
// of a named signature. Element types other than float32, int32 and uint8
// get zero bytes (the runtime refuses them as inputs anyway).
func RandomTensors(inputs []TensorInfo, seed int64, vocab int) []Tensor {
	out := make([]Tensor, len(inputs))
	for i, in := range inputs {
		shape := make([]int, len(in.Shape))
		n := 1
		for d, s := range in.Shape {
			shape[d] = max(s, 1) // a dynamic (-1) dimension runs at size 1
			n *= shape[d]
		}
		out[i] = Tensor{Name: in.Name, DType: in.DType, Shape: shape, Data: randomData(in.DType, n, seed, i, vocab)}
	}
	return out
}

// VocabSize is modelinput.VocabSize: the id range of the model's int32
// token inputs, for RandomInputs.
func VocabSize(meta *fb.ModelT) int { return modelinput.VocabSize(meta) }

// randomData draws n elements for input index of a request with the given
// seed from modelinput's Stream, which runner.mjs (seededFill) implements
// too.
func randomData(dtype string, n int, seed int64, index, vocab int) []byte {
	s := modelinput.NewStream(seed, index)
	switch dtype {
	case "float32":
		data := make([]byte, 4*n)
		for k := 0; k < n; k++ {
			binary.LittleEndian.PutUint32(data[4*k:], math.Float32bits(s.Float()))
		}
		return data
	case "int32":
		data := make([]byte, 4*n)
		for k := 0; k < n; k++ {
			binary.LittleEndian.PutUint32(data[4*k:], s.Below(uint32(max(vocab, 0))))
		}
		return data
	case "uint8":
		data := make([]byte, n)
		for k := range data {
			data[k] = byte(s.Next() >> 24)
		}
		return data
	default:
		return make([]byte, n*elementSize(dtype))
	}
}

// elementSize is the byte size of the element types the runtime names.
func elementSize(dtype string) int {
	switch dtype {
	case "uint8", "int8", "bool":
		return 1
	case "int16", "float16":
		return 2
	case "int64", "float64":
		return 8
	default:
		return 4
	}
}
