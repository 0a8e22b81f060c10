package interp_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/qpipe/qpipe/internal/evaluate"
	"github.com/qpipe/qpipe/internal/interp"
	"github.com/qpipe/qpipe/internal/modelinput"
	"github.com/qpipe/qpipe/internal/tflite"
)

// event is an OpEvent's identity and values, comparable across runs.
type event struct {
	sample, sg, op int
	inputs         string
}

func eventOf(sample int, ev interp.OpEvent) event {
	v := fmt.Sprint(ev.InputTensors)
	for _, x := range append(ev.Inputs, ev.Outputs...) {
		if x != nil {
			v += fmt.Sprintf("%v", *x)
		} else {
			v += " nil"
		}
	}
	return event{sample, ev.Subgraph, ev.Operator, v}
}

// TestRunBatchMatchesRun: RunBatch gives every sample's outputs and
// Observe events bit for bit as Run does one sample at a time (the events
// op by op instead of sample by sample), on every signature of models with
// token and float inputs and several signatures; a before that stops at
// an operator stops the pass there, after seeing that operator's inputs
// for every sample.
func TestRunBatchMatchesRun(t *testing.T) {
	for _, name := range []string{"tiny_decoder.tflite", "aeq_conv_fc_mnist.tflite", "aeq_two_signatures.tflite", "aeq_bmm.tflite", "litert_qwen_fc_blockwise_quantized.tflite", "aeq_mnist_quantized.tflite"} {
		t.Run(name, func(t *testing.T) {
			m, err := tflite.Open(filepath.Join("../../testdata/models", name))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			var seen []event
			sample, batched := 0, false
			in, err := interp.New(m, interp.Options{Observe: func(ev interp.OpEvent) {
				if batched { // samples in order, operator by operator
					sample = 0
					if n := len(seen); n > 0 && seen[n-1].sg == ev.Subgraph && seen[n-1].op == ev.Operator {
						sample = seen[n-1].sample + 1
					}
				}
				seen = append(seen, eventOf(sample, ev))
			}})
			if err != nil {
				t.Fatal(err)
			}
			for _, sig := range in.Signatures() {
				l, err := evaluate.PlanInputs(sig, modelinput.TokenInputs(m.Meta, sig.Subgraph), 0)
				if err != nil {
					t.Fatal(err)
				}
				const n = 3
				var batch []map[string]*interp.Tensor
				var want []map[string]*interp.Tensor
				byOne := map[event]bool{}
				seen = nil
				for k := range n {
					inputs, err := l.Generate(1, k)
					if err != nil {
						t.Fatal(err)
					}
					batch = append(batch, inputs)
					sample = k
					out, err := in.Run(context.Background(), sig.Key, inputs)
					if err != nil {
						t.Fatal(err)
					}
					want = append(want, out)
				}
				for _, e := range seen {
					byOne[e] = true
				}
				seen, batched = nil, true
				var befores []event
				got, err := in.RunBatch(context.Background(), sig.Key, batch, func(k int, ev interp.OpEvent) bool {
					befores = append(befores, event{k, ev.Subgraph, ev.Operator, ""})
					return true
				})
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("signature %q: RunBatch outputs differ from Run's", sig.Key)
				}
				if len(seen) != len(byOne) || len(befores) != len(seen) {
					t.Fatalf("signature %q: %d events, Run gave %d", sig.Key, len(seen), len(byOne))
				}
				for i, e := range seen {
					if !byOne[e] {
						t.Fatalf("signature %q: event %d (sample %d op %d) differs from Run's", sig.Key, i, e.sample, e.op)
					}
				}
				// Stop before the last top-level operator.
				last := befores[len(befores)-1].op
				calls := 0
				seen = nil
				got, err = in.RunBatch(context.Background(), sig.Key, batch, func(k int, ev interp.OpEvent) bool {
					calls++
					return ev.Operator != last
				})
				if err != nil || got != nil {
					t.Fatalf("stopped pass: outputs %v, error %v", got != nil, err)
				}
				batched = false
				if calls != len(befores) || len(seen) != len(befores)-n {
					t.Fatalf("stopped pass: %d before calls (want %d), %d events", calls, len(befores), len(seen))
				}
			}
		})
	}
}

// TestRunBatchErrors: a missing, extra or misshapen input is an error
// naming the sample.
func TestRunBatchErrors(t *testing.T) {
	m, err := tflite.Open("../../testdata/models/tiny_decoder.tflite")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	in, err := interp.New(m, interp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sig := in.Signatures()[0]
	l, err := evaluate.PlanInputs(sig, modelinput.TokenInputs(m.Meta, sig.Subgraph), 0)
	if err != nil {
		t.Fatal(err)
	}
	good, err := l.Generate(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	name := sig.Inputs[0].Name
	extra := map[string]*interp.Tensor{name: good[name], "nope": good[name]}
	bad := map[string]*interp.Tensor{name: interp.F32Tensor([]int{1}, []float32{0})}
	for _, c := range []struct {
		sig   string
		batch []map[string]*interp.Tensor
	}{
		{"nope", []map[string]*interp.Tensor{good}},
		{sig.Key, []map[string]*interp.Tensor{good, {}}},
		{sig.Key, []map[string]*interp.Tensor{good, extra}},
		{sig.Key, []map[string]*interp.Tensor{good, bad}},
	} {
		if _, err := in.RunBatch(context.Background(), c.sig, c.batch, nil); err == nil {
			t.Errorf("%q %v: no error", c.sig, len(c.batch))
		}
	}
}
