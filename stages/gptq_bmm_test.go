package stages

import (
	"context"
	"testing"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/calib"
	"github.com/qpipe/qpipe/internal/tflite"
)

// TestGoldenGPTQBMMBytes pins the bytes `scales: gptq` writes for
// BATCH_MATMUL right operands (aeq_bmm_constant_input: two [2,16,8]
// weights, one read with adj_y, each batch under its own covariance) and
// for a FULLY_CONNECTED that an einsum was lowered to, whose input is
// rank 4 (litert_attn_vec_einsum), for any GOMAXPROCS; the bytes differ
// from nearest rounding's.
func TestGoldenGPTQBMMBytes(t *testing.T) {
	t.Setenv("QPIPE_CACHE_DIR", "off")
	for _, c := range []struct{ model, sha256 string }{
		{"aeq_bmm_constant_input.tflite", "f9467ef18e17f367763dc6402f7eb24cda169e2175a09175bd53d59342a7417c"},
		{"litert_attn_vec_einsum.tflite", "5891dfff11f57e8bc864f2bd9b4a5a4ce0707435483f52741d24b4f2133db68d"},
	} {
		t.Run(c.model, func(t *testing.T) {
			near := scalesOutputSHA256(t, c.model, `{recipe: dynamic_int8, calibration: {samples: 16}}`, 1)
			for _, procs := range []int{1, 3} {
				got := scalesOutputSHA256(t, c.model, `{recipe: dynamic_int8, scales: gptq, calibration: {samples: 16}}`, procs)
				if got != c.sha256 {
					t.Errorf("GOMAXPROCS=%d: %s gptq output sha256 %s, want %s", procs, c.model, got, c.sha256)
				}
				if got == near {
					t.Errorf("GOMAXPROCS=%d: gptq wrote nearest rounding's bytes", procs)
				}
			}
		})
	}
}

// TestGPTQBMMLowersOutputError: on the calibration inputs, every batch of
// every BATCH_MATMUL right operand gptq touches has an output error
// E‖ΔW_b·x‖² (over the left operand's rows that multiply batch b) no
// higher than nearest rounding's, and the total is lower.
func TestGPTQBMMLowersOutputError(t *testing.T) {
	t.Setenv("QPIPE_CACHE_DIR", "off")
	path := absModel(t, "aeq_bmm_constant_input.tflite")
	outs := map[string]*tflite.Model{}
	for _, sc := range []string{"minmax", "gptq"} {
		out := runReference(t, scalesJob(path, `{recipe: dynamic_int8, scales: `+sc+`, calibration: {samples: 16}}`))
		m, err := tflite.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		outs[sc] = m
	}
	m, err := tflite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	in, err := calib.RunInputs(context.Background(), m, &config.Calibration{Samples: 16}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	touched := 0
	total := map[string]float64{}
	for i, tt := range m.Meta.Subgraphs[0].Tensors {
		var uses []*weightUse
		for o, op := range m.Meta.Subgraphs[0].Operators {
			if len(op.Inputs) > 1 && int(op.Inputs[1]) == i {
				uses = append(uses, &weightUse{sg: 0, op: o, input: 1, tensor: i, code: m.OpCode(op)})
			}
		}
		shape := make([]int, len(tt.Shape))
		for d, v := range tt.Shape {
			shape[d] = int(v)
		}
		v := bmmViewOf(m, uses, shape)
		if v == nil {
			continue
		}
		w := floats(t, m, i)
		got := map[string][]float32{}
		for sc, o := range outs {
			got[sc] = floats(t, o, tensorIndex(t, o, 0, tt.Name))
		}
		size := v.n * v.k
		for b := range v.batches {
			k := calib.Matrix{Weight: calib.Key{Subgraph: 0, Tensor: i}, BMM: true, Batch: b}
			if !in.Has(k) {
				t.Fatalf("%s batch %d: no calibration rows", tt.Name, b)
			}
			h := in.Hessian(k, v.k)
			// The batch's matrix as rows of k inputs, one per output channel.
			rows := func(x []float32) []float32 {
				xb := x[b*size : (b+1)*size]
				if v.adjY {
					return xb
				}
				out := make([]float32, size)
				transposeTo(out, xb, v.k, v.n)
				return out
			}
			errs := map[string]float64{}
			for sc := range outs {
				errs[sc] = quadForm(rows(w), rows(got[sc]), h, v.k)
				total[sc] += errs[sc]
			}
			touched++
			if errs["gptq"] > errs["minmax"]*(1+1e-6) {
				t.Errorf("%s batch %d (adj_y %v): output error gptq %g, nearest %g", tt.Name, b, v.adjY, errs["gptq"], errs["minmax"])
			}
		}
	}
	if touched != 4 {
		t.Fatalf("%d weight matrices with calibration rows, want 4 (2 weights × 2 batches)", touched)
	}
	if !(total["gptq"] < total["minmax"]) {
		t.Errorf("total output error gptq %g, nearest %g", total["gptq"], total["minmax"])
	}
	t.Logf("%d matrices: output error gptq/nearest %.3f", touched, total["gptq"]/total["minmax"])
}
