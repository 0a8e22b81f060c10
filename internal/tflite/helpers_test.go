package tflite

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

const modelsDir = "../../testdata/models"

// testModels lists every model in testdata/models.
func testModels(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(modelsDir, "*.tflite"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test models in %s (%v)", modelsDir, err)
	}
	return files
}

func modelName(path string) string {
	b := filepath.Base(path)
	return b[:len(b)-len(filepath.Ext(b))]
}

// deepEqual is reflect.DeepEqual except that floats compare by bits, so
// that NaN scales and signed zeros are compared exactly.
func deepEqual(a, b any) bool {
	return valueEqual(reflect.ValueOf(a), reflect.ValueOf(b))
}

func valueEqual(a, b reflect.Value) bool {
	if a.IsValid() != b.IsValid() {
		return false
	}
	if !a.IsValid() {
		return true
	}
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Float32:
		return math.Float32bits(float32(a.Float())) == math.Float32bits(float32(b.Float()))
	case reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return valueEqual(a.Elem(), b.Elem())
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for i := 0; i < a.Len(); i++ {
			if !valueEqual(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if !valueEqual(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		panic("deepEqual: maps not supported")
	default:
		return a.Interface() == b.Interface()
	}
}

// syntheticModel builds a one-subgraph model with one FULLY_CONNECTED
// operator per weight: weight i is a FLOAT32 [rows, cols] tensor whose
// bytes are weights[i], each operator reading the shared [1, cols] input.
// It carries a min_runtime_version metadata entry and a signature.
func syntheticModel(rows, cols int32, weights ...Content) *Model {
	m := &Model{Meta: &fb.ModelT{Version: 3, Description: "qpipe synthetic"}, Name: "synthetic"}
	m.Meta.Buffers = []*fb.BufferT{{}}
	m.Buffers = []Buffer{{}}
	fc := m.OperatorCodeIndex(fb.BuiltinOperatorFULLY_CONNECTED, 1)
	sg := &fb.SubGraphT{Name: "main", Inputs: []int32{0}}
	sg.Tensors = append(sg.Tensors, &fb.TensorT{Name: "input", Shape: []int32{1, cols}, ShapeSignature: []int32{-1, cols}})
	sig := &fb.SignatureDefT{SignatureKey: "serving_default", Inputs: []*fb.TensorMapT{{Name: "input", TensorIndex: 0}}}
	for i, w := range weights {
		wt := int32(len(sg.Tensors))
		sg.Tensors = append(sg.Tensors, &fb.TensorT{Name: fmt.Sprintf("fc%d/weight", i), Shape: []int32{rows, cols}, Buffer: m.AddBuffer(w)})
		out := int32(len(sg.Tensors))
		sg.Tensors = append(sg.Tensors, &fb.TensorT{Name: fmt.Sprintf("fc%d/out", i), Shape: []int32{1, rows}, Buffer: m.AddBuffer(nil)})
		sg.Operators = append(sg.Operators, &fb.OperatorT{OpcodeIndex: fc, Inputs: []int32{0, wt, -1}, Outputs: []int32{out},
			BuiltinOptions: &fb.BuiltinOptionsT{Type: fb.BuiltinOptionsFullyConnectedOptions, Value: &fb.FullyConnectedOptionsT{}}})
		sg.Outputs = append(sg.Outputs, out)
		sig.Outputs = append(sig.Outputs, &fb.TensorMapT{Name: fmt.Sprintf("out%d", i), TensorIndex: uint32(out)})
	}
	m.Meta.Subgraphs = []*fb.SubGraphT{sg}
	m.Meta.SignatureDefs = []*fb.SignatureDefT{sig}
	version := make([]byte, 16)
	copy(version, "1.5.0")
	m.Meta.Metadata = []*fb.MetadataT{{Name: "min_runtime_version", Buffer: m.AddBuffer(Bytes(version))}}
	return m
}

// pattern is deterministic pseudo-random content of n bytes, cheap to
// produce at any size: 1 MiB blocks of xorshift output, each block's first
// 8 bytes replaced by its index.
func pattern(seed uint64, n int64) ContentFunc {
	return ContentFunc{N: n, Write: func(w io.Writer) error {
		block := make([]byte, 1<<20)
		x := seed*0x9e3779b97f4a7c15 | 1
		for i := 0; i+8 <= len(block); i += 8 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			binary.LittleEndian.PutUint64(block[i:], x)
		}
		for k, off := uint64(0), int64(0); off < n; k, off = k+1, off+int64(len(block)) {
			binary.LittleEndian.PutUint64(block, k)
			if _, err := w.Write(block[:min(int64(len(block)), n-off)]); err != nil {
				return err
			}
		}
		return nil
	}}
}
