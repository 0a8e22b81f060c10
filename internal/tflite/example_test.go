package tflite_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/qpipe/qpipe/internal/tflite"
)

// Open maps a model; its constant tensors are buffers whose Data is a
// Section of the file, read only when asked.
func ExampleOpen() {
	m, err := tflite.Open("../../testdata/models/aeq_single_fc.tflite")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	for _, t := range m.Meta.Subgraphs[0].Tensors {
		if b := m.Buffers[t.Buffer].Data; b != nil && b.Len() > 0 {
			fmt.Printf("%s %v %s: %d bytes\n", t.Name, t.Shape, tflite.TypeName(t.Type), b.Len())
		}
	}
	// Output:
	// sequential/dense/BiasAdd/ReadVariableOp [16] FLOAT32: 64 bytes
	// sequential/dense/MatMul [16 8] FLOAT32: 512 bytes
}

// WriteFile writes a model back, here in the offset layout that files over
// 2 GB need: buffer bytes follow the flatbuffer at 16-byte aligned offsets.
func ExampleWriteFile() {
	m, err := tflite.Open("../../testdata/models/aeq_single_fc.tflite")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "offset.tflite")
	if err := tflite.WriteFile(context.Background(), out, m, tflite.WriteOptions{Layout: tflite.LayoutOffset}); err != nil {
		log.Fatal(err)
	}
	w, err := tflite.Open(out)
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	weight := w.Buffers[w.Meta.Subgraphs[0].Tensors[2].Buffer].Data.(*tflite.Section)
	fmt.Println(w.Layout, weight.Len(), weight.Offset()%16)
	// Output:
	// offset 512 0
}

// Inspect summarises a model, as `qpipe inspect --json` prints it.
func ExampleInspect() {
	m, err := tflite.Open("../../testdata/models/litert_qwen_fc_blockwise_quantized.tflite")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	s := tflite.Inspect(m)
	for _, tb := range s.WeightsByType {
		fmt.Printf("%s: %d bytes\n", tb.Type, tb.Bytes)
	}
	q := s.Subgraphs[0].Tensors[1].Quantization
	fmt.Printf("%s, block %d, scales in tensor %d\n", q.Kind, q.BlockSize, *q.ScaleTensor)
	// Output:
	// INT4: 524288 bytes
	// FLOAT16: 65536 bytes
	// blockwise, block 32, scales in tensor 3
}
