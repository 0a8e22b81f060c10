package interp

import (
	"context"
	"math"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// seededInputs returns deterministic inputs: floats in [-1, 1), ids in
// [0, 16).
func seededInputs(sig Signature, seed uint32) map[string]*Tensor {
	args := zeroInputs(sig)
	x := seed
	next := func() uint32 { x = x*1664525 + 1013904223; return x >> 8 }
	for _, io := range sig.Inputs {
		v := args[io.Name]
		for i := range v.F32 {
			v.F32[i] = float32(int32(next())-1<<23) / (1 << 23)
		}
		for i := range v.I32 {
			v.I32[i] = int32(next() % 16)
		}
	}
	return args
}

// TestThreadsBitIdentical: every output of every bundled model the
// interpreter runs is bit-identical for 1, 2 and 7 threads.
func TestThreadsBitIdentical(t *testing.T) {
	for _, name := range []string{"tiny_decoder", "tiny_decoder_nodiv", "litert_qwen_fc_blockwise_quantized", "aeq_conv_fc_mnist",
		"aeq_single_depthwise_conv2d_bias", "aeq_single_conv2d_transpose_bias", "aeq_bmm", "aeq_mnist_quantized"} {
		m, err := tflite.Open("../../testdata/models/" + name + ".tflite")
		if err != nil {
			t.Fatal(err)
		}
		var ref map[string]*Tensor
		for _, th := range []int{1, 2, 7} {
			in, err := New(m, Options{Threads: th})
			if err != nil {
				t.Fatal(err)
			}
			sig := in.Signatures()[0]
			out, err := in.Run(context.Background(), sig.Key, seededInputs(sig, 7))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if ref == nil {
				ref = out
				continue
			}
			for k, v := range out {
				for i := range v.F32 {
					if math.Float32bits(v.F32[i]) != math.Float32bits(ref[k].F32[i]) {
						t.Fatalf("%s: output %q element %d differs with %d threads: %v vs %v", name, k, i, th, v.F32[i], ref[k].F32[i])
					}
				}
			}
		}
		m.Close()
	}
}

// TestObserve: events come in operator order with the op's values; the
// FULLY_CONNECTED weight is nil (read in place), its activation is given.
func TestObserve(t *testing.T) {
	m, err := tflite.Open("../../testdata/models/tiny_decoder.tflite")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var events []OpEvent
	fcSeen := 0
	in, err := New(m, Options{Observe: func(ev OpEvent) {
		events = append(events, OpEvent{Subgraph: ev.Subgraph, Operator: ev.Operator, Code: ev.Code})
		if ev.Code == fb.BuiltinOperatorFULLY_CONNECTED {
			fcSeen++
			if ev.Inputs[0] == nil || ev.Inputs[1] != nil || ev.InputTensors[1] < 0 || len(ev.Outputs) != 1 || ev.Outputs[0] == nil {
				t.Fatalf("FC event: inputs %v outputs %v tensors %v", ev.Inputs, ev.Outputs, ev.InputTensors)
			}
			if k := ev.Inputs[0].Shape[len(ev.Inputs[0].Shape)-1]; k != int(m.Meta.Subgraphs[0].Tensors[ev.InputTensors[1]].Shape[1]) {
				t.Fatalf("FC activation shape %v does not match its weight", ev.Inputs[0].Shape)
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	sig := in.Signatures()[0]
	if _, err := in.Run(context.Background(), sig.Key, seededInputs(sig, 1)); err != nil {
		t.Fatal(err)
	}
	if len(events) != len(m.Meta.Subgraphs[0].Operators) || fcSeen != 15 {
		t.Fatalf("%d events (%d FC) for %d operators", len(events), fcSeen, len(m.Meta.Subgraphs[0].Operators))
	}
	for i, ev := range events {
		if ev.Operator != i || ev.Subgraph != 0 {
			t.Fatalf("event %d is operator %d of subgraph %d", i, ev.Operator, ev.Subgraph)
		}
	}
}
