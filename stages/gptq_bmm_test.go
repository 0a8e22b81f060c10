package stages

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/calib"
	"github.com/qpipe/qpipe/internal/quant"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
	"github.com/qpipe/qpipe/pipeline"
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
	m, outs, in := referencesAndRows(t, "aeq_bmm_constant_input.tflite", &config.Calibration{Samples: 16}, func(sc string) string {
		return `{recipe: dynamic_int8, scales: ` + sc + `, calibration: {samples: 16}}`
	}, "minmax", "gptq")
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
				quant.Transpose(out, xb, v.k, v.n)
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

// TestGPTQBMMMatchesFC: tiny_decoder's FULLY_CONNECTEDs rewritten as
// BATCH_MATMULs of the same weights, as [N, K] with adj_y (read in rows
// like a FULLY_CONNECTED's) and transposed to [K, N] without (one unit,
// each output channel a column), get from gptq at int8 the codes and
// scales the FULLY_CONNECTED weights get: the same rows, covariance and
// sweep, whichever way the op reads them. The tied embedding, also read by
// the lookup, is left a FULLY_CONNECTED.
func TestGPTQBMMMatchesFC(t *testing.T) {
	t.Setenv("QPIPE_CACHE_DIR", "off")
	const quantize = `{recipe: dynamic_int8, scales: gptq, calibration: {samples: 4, seq: 16}}`
	src := absModel(t, "tiny_decoder.tflite")
	want := gptqWeights(t, src, quantize)
	for _, adjY := range []bool{true, false} {
		t.Run(fmt.Sprint("adj_y=", adjY), func(t *testing.T) {
			path, rewritten := fcAsBMM(t, src, adjY)
			if want := map[bool]int{true: 15, false: 14}[adjY]; len(rewritten) != want {
				t.Fatalf("%d FULLY_CONNECTEDs rewritten, want %d", len(rewritten), want)
			}
			got := gptqWeights(t, path, quantize)
			for name, shape := range rewritten {
				w, g := want[name], got[name]
				if g.codes == nil {
					t.Fatalf("%s: not quantized", name)
				}
				codes := g.codes
				if !adjY {
					codes = make([]int8, len(g.codes))
					quant.Transpose(codes, g.codes, shape[1], shape[0])
				}
				if !slices.Equal(codes, w.codes) || !slices.Equal(g.scales, w.scales) {
					diff := 0
					for i := range codes {
						if codes[i] != w.codes[i] {
							diff++
						}
					}
					t.Errorf("%s: %d of %d codes differ from the FULLY_CONNECTED's (scales equal: %v)", name, diff, len(codes), slices.Equal(g.scales, w.scales))
				}
				if slices.Equal(w.codes, w.nearest) {
					t.Errorf("%s: gptq wrote nearest rounding's codes: the test compares nothing", name)
				}
			}
		})
	}
}

// quantized is an int8 weight of an output model: its codes and scales,
// and the nearest rounding of the same weight under those scales.
type quantized struct {
	codes, nearest []int8
	scales         []float32
}

// gptqWeights runs quantize on the model at path and returns its int8
// weights by name, with nearest rounding's codes from a min-max run.
func gptqWeights(t *testing.T, path, quantize string) map[string]quantized {
	t.Helper()
	read := func(q string) map[string]quantized {
		_, branches, err := runJobFileWith(t, scalesJob(path, q), false)
		if err != nil {
			t.Fatal(err)
		}
		m, err := tflite.Open(branches[0].Output.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		out := map[string]quantized{}
		for _, tt := range m.Meta.Subgraphs[0].Tensors {
			if tt.Type != fb.TensorTypeINT8 || tt.Quantization == nil {
				continue
			}
			data, err := tflite.ReadAll(m.Buffers[tt.Buffer].Data)
			if err != nil {
				t.Fatal(err)
			}
			out[tt.Name] = quantized{codes: slices.Clone(quant.BytesInt8(data)), scales: tt.Quantization.Scale}
		}
		return out
	}
	g, n := read(quantize), read(strings.Replace(quantize, "scales: gptq", "scales: minmax", 1))
	for name, q := range g {
		q.nearest = n[name].codes
		g[name] = q
	}
	return g
}

// fcAsBMM writes a copy of the model at path whose FULLY_CONNECTEDs
// without bias or fused activation, on a weight no other op reads, are
// BATCH_MATMULs of the same weight (adj_y; without it the weight is
// transposed to [K, N]), and returns it with the shapes ([N, K]) of the
// weights rewritten, by name.
func fcAsBMM(t *testing.T, path string, adjY bool) (string, map[string][]int) {
	t.Helper()
	m, err := tflite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sg := m.Meta.Subgraphs[0]
	readers := map[int32]int{}
	for _, op := range sg.Operators {
		for _, in := range op.Inputs {
			readers[in]++
		}
	}
	tensors := map[uint32]int{} // tensors by buffer
	for _, tt := range sg.Tensors {
		tensors[tt.Buffer]++
	}
	rewritten := map[string][]int{}
	for _, op := range sg.Operators {
		if m.OpCode(op) != fb.BuiltinOperatorFULLY_CONNECTED || len(op.Inputs) < 2 || (len(op.Inputs) > 2 && op.Inputs[2] >= 0) || readers[op.Inputs[1]] != 1 {
			continue
		}
		if o, ok := op.BuiltinOptions.Value.(*fb.FullyConnectedOptionsT); !ok || o.FusedActivationFunction != fb.ActivationFunctionTypeNONE {
			continue
		}
		w := sg.Tensors[op.Inputs[1]]
		n, k := int(w.Shape[0]), int(w.Shape[1])
		if !adjY && tensors[w.Buffer] > 1 {
			continue // the tied head: transposing it would change the embedding
		}
		if !adjY {
			data, err := tflite.ReadAll(m.Buffers[w.Buffer].Data)
			if err != nil {
				t.Fatal(err)
			}
			tr := make([]float32, n*k)
			quant.Transpose(tr, quant.Float32s(data), n, k)
			m.Buffers[w.Buffer].Data = tflite.Bytes(quant.Float32Bytes(tr))
			w.Shape = []int32{int32(k), int32(n)}
		}
		op.OpcodeIndex = m.OperatorCodeIndex(fb.BuiltinOperatorBATCH_MATMUL, 1)
		op.Inputs = op.Inputs[:2]
		op.BuiltinOptions = &fb.BuiltinOptionsT{Type: fb.BuiltinOptionsBatchMatMulOptions, Value: &fb.BatchMatMulOptionsT{AdjY: adjY}}
		rewritten[w.Name] = []int{n, k}
	}
	out := filepath.Join(t.TempDir(), fmt.Sprintf("bmm_adj_y_%v.tflite", adjY))
	if err := tflite.WriteFile(context.Background(), out, m, tflite.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return out, rewritten
}

// TestGPTQMemoryEstimate: the plan of a memory estimate (no calibration
// pass) counts, for gptq jobs, exactly the bytes of calibration rows the
// pass then keeps (FULLY_CONNECTED inputs shared by several weights once,
// BATCH_MATMUL left operands per batch of the weight, a rank-4 input read
// as rows), plus the factors' share.
func TestGPTQMemoryEstimate(t *testing.T) {
	t.Setenv("QPIPE_CACHE_DIR", "off")
	for _, c := range []struct{ model, recipe, cal string }{
		{"tiny_decoder.tflite", "dynamic_int4_block32", ""},
		{"tiny_decoder.tflite", "dynamic_int8", "{samples: 4, seq: 16}"},
		{"aeq_conv_fc_mnist.tflite", "dynamic_int8", "{samples: 64}"},
		{"aeq_bmm_constant_input.tflite", "dynamic_int8", "{samples: 16}"},
		{"litert_attn_vec_einsum.tflite", "dynamic_int8", ""},
	} {
		t.Run(c.model+c.recipe, func(t *testing.T) {
			q := `{recipe: ` + c.recipe + `, scales: gptq}`
			cal := config.DefaultCalibration()
			if c.cal != "" {
				q = `{recipe: ` + c.recipe + `, scales: gptq, calibration: ` + c.cal + `}`
				var samples, seq int
				fmt.Sscanf(strings.ReplaceAll(c.cal, "seq:", " "), "{samples: %d, %d}", &samples, &seq)
				cal = &config.Calibration{Samples: samples, Seq: seq}
			}
			path := filepath.Join(t.TempDir(), "job.yaml")
			if err := os.WriteFile(path, []byte(scalesJob(absModel(t, c.model), q)), 0o644); err != nil {
				t.Fatal(err)
			}
			job, err := config.LoadJob(path)
			if err != nil {
				t.Fatal(err)
			}
			pj, err := Build(job, Options{})
			if err != nil {
				t.Fatal(err)
			}
			s := &pipeline.State{Log: zerolog.Nop(), DryRun: true, Estimate: true}
			branches, err := pipeline.Run(context.Background(), pj, s)
			t.Cleanup(func() { Close(s) })
			if err != nil {
				t.Fatal(err)
			}
			m, err := tflite.Open(absModel(t, c.model))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			in, err := calib.RunInputs(context.Background(), m, cal, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			got := branches[0].Plan.CalibrationBytes
			jobs := branches[0].Model.(*modelState).jobs
			rows, factors, err := gptqMemory(m, cal, jobs)
			if err != nil {
				t.Fatal(err)
			}
			if rows != in.Bytes() || got != rows+factors || factors <= 0 {
				t.Errorf("estimate %d = rows %d + factors %d; the pass kept %d bytes of rows", got, rows, factors, in.Bytes())
			}
		})
	}
}

// TestGPTQPerTensorInt8: a FULLY_CONNECTED weight with one int8 scale for
// the whole tensor is quantized as one unit; gptq compensates it too (it
// used to round it to nearest): on the calibration inputs every weight's
// output error is at most nearest rounding's, and the total is lower.
func TestGPTQPerTensorInt8(t *testing.T) {
	t.Setenv("QPIPE_CACHE_DIR", "off")
	m, outs, in := referencesAndRows(t, "tiny_decoder.tflite", &config.Calibration{Samples: 4, Seq: 16}, func(sc string) string {
		return `{recipe: {name: r, default: dynamic_int8_per_tensor}, scales: ` + sc + `, calibration: {samples: 4, seq: 16}}`
	}, "minmax", "gptq")
	total, touched := fcOutputErrors(t, m, outs, in, func(name string, errs map[string]float64) {
		if errs["gptq"] > errs["minmax"]*(1+1e-6) {
			t.Errorf("%s: output error gptq %g, nearest %g", name, errs["gptq"], errs["minmax"])
		}
	})
	if !(total["gptq"] < total["minmax"]) {
		t.Fatalf("%d weights: total output error gptq %g, nearest %g", touched, total["gptq"], total["minmax"])
	}
	t.Logf("%d weights: output error gptq/nearest %.3f", touched, total["gptq"]/total["minmax"])
}
