package stages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/calib"
	"github.com/qpipe/qpipe/internal/quant"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/pipeline"
)

// TestGoldenGPTQBytes pins the bytes `scales: gptq` writes (int4 blocks,
// int8 channels) under fixed calibration settings, for any GOMAXPROCS; CI
// runs it with QPIPE_SIMD=off too.
func TestGoldenGPTQBytes(t *testing.T) {
	t.Setenv("QPIPE_CACHE_DIR", "off")
	for _, c := range []struct {
		model, quantize, sha256 string
	}{
		{"tiny_decoder.tflite", `{recipe: dynamic_int4_block32, scales: gptq, calibration: {samples: 4, seq: 16}}`,
			"e5b347c7876cbcf5d62be2bbe440bf4fc3d481cfd6f12d3f05b039b1f11ce8a7"},
		{"tiny_decoder.tflite", `{recipe: dynamic_int4_block128, scales: gptq, calibration: {samples: 4, seq: 16}}`,
			"d8ed62c7ae4d6616fdca60623e734b652c6c998ea06d93345a0a754be22c8760"},
		{"aeq_conv_fc_mnist.tflite", `{recipe: dynamic_int8, scales: gptq, calibration: {samples: 64}}`,
			"093bb72850d16ac4b7e3d87373950c2db5d26e57f11eae2bba03383a69ce875f"},
	} {
		t.Run(c.model+c.quantize, func(t *testing.T) {
			for _, procs := range []int{1, 3} {
				if got := scalesOutputSHA256(t, c.model, c.quantize, procs); got != c.sha256 {
					t.Errorf("GOMAXPROCS=%d: %s gptq output sha256 %s, want %s", procs, c.model, got, c.sha256)
				}
			}
		})
	}
}

// TestGPTQFactorMemoryWaits: with room for one factor only, the jobs that
// need one take turns, and with three workers the run neither deadlocks
// (a job never waits while it holds a factor) nor changes a byte.
func TestGPTQFactorMemoryWaits(t *testing.T) {
	t.Setenv("QPIPE_CACHE_DIR", "off")
	defer func(m int64) { factorMemory = m }(factorMemory)
	factorMemory = 1
	got := scalesOutputSHA256(t, "tiny_decoder.tflite", `{recipe: dynamic_int4_block32, scales: gptq, calibration: {samples: 4, seq: 16}}`, 3)
	if want := "e5b347c7876cbcf5d62be2bbe440bf4fc3d481cfd6f12d3f05b039b1f11ce8a7"; got != want {
		t.Errorf("sha256 %s, want %s (TestGoldenGPTQBytes's)", got, want)
	}
}

// runReference runs a job file writing dequantized-reference models.
func runReference(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	job, err := config.LoadJob(path)
	if err != nil {
		t.Fatal(err)
	}
	pj, err := Build(job, Options{DequantizedReference: true})
	if err != nil {
		t.Fatal(err)
	}
	s := &pipeline.State{Log: zerolog.Nop()}
	branches, err := pipeline.Run(context.Background(), pj, s)
	t.Cleanup(func() { Close(s) })
	if err != nil {
		t.Fatal(err)
	}
	return branches[0].Output.Path
}

// TestGPTQLowersOutputError: on the calibration inputs, every weight gptq
// touches has an output error E‖ΔW·x‖² no higher than calibrated scales'
// nearest rounding (and min-max's), and the total is lower.
func TestGPTQLowersOutputError(t *testing.T) {
	t.Setenv("QPIPE_CACHE_DIR", "off")
	for _, c := range []struct{ model, block, cal string }{
		{"tiny_decoder.tflite", "32", "{samples: 4, seq: 16}"},
		{"tiny_decoder.tflite", "128", "{samples: 4, seq: 16}"},
		{"aeq_conv_fc_mnist.tflite", "32", "{samples: 64}"},
	} {
		t.Run(c.model+c.block, func(t *testing.T) {
			var cal config.Calibration
			if c.model == "tiny_decoder.tflite" {
				cal = config.Calibration{Samples: 4, Seq: 16}
			} else {
				cal = config.Calibration{Samples: 64, Seq: 64}
			}
			m, outs, in := referencesAndRows(t, c.model, &cal, func(sc string) string {
				return `{recipe: dynamic_int4_block` + c.block + `, scales: ` + sc + `, calibration: ` + c.cal + `}`
			}, "minmax", "calibrated", "gptq")
			total, touched := fcOutputErrors(t, m, outs, in, func(name string, errs map[string]float64) {
				if errs["gptq"] > errs["calibrated"]*(1+1e-6) || errs["gptq"] > errs["minmax"]*(1+1e-6) {
					t.Errorf("%s: output error gptq %g, calibrated %g, min-max %g", name, errs["gptq"], errs["calibrated"], errs["minmax"])
				}
			})
			if !(total["gptq"] < total["calibrated"]) {
				t.Errorf("total output error gptq %g, calibrated %g", total["gptq"], total["calibrated"])
			}
			t.Logf("%d weights: output error gptq/calibrated %.3f, gptq/min-max %.3f", touched, total["gptq"]/total["calibrated"], total["gptq"]/total["minmax"])
		})
	}
}

// referencesAndRows opens model, the dequantized references the quantize
// stages quantize(sc) write for each scale method of scs, and the
// calibration rows of cal on the float model (the models close with t).
func referencesAndRows(t *testing.T, model string, cal *config.Calibration, quantize func(sc string) string, scs ...string) (*tflite.Model, map[string]*tflite.Model, *calib.Inputs) {
	t.Helper()
	path := absModel(t, model)
	outs := map[string]*tflite.Model{}
	for _, sc := range append([]string{""}, scs...) {
		p := path
		if sc != "" {
			p = runReference(t, scalesJob(path, quantize(sc)))
		}
		m, err := tflite.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		outs[sc] = m
	}
	m := outs[""]
	delete(outs, "")
	in, err := calib.RunInputs(context.Background(), m, cal, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return m, outs, in
}

// fcOutputErrors measures, for every 2-D weight of m some calibration row
// in reached (a FULLY_CONNECTED's), the output error E‖ΔW·x‖² of each
// reference in outs on those rows, hands each weight's errors by method to
// check, and returns their totals and how many weights there were (it
// fails the test when there were none).
func fcOutputErrors(t *testing.T, m *tflite.Model, outs map[string]*tflite.Model, in *calib.Inputs, check func(name string, errs map[string]float64)) (map[string]float64, int) {
	t.Helper()
	total := map[string]float64{}
	touched := 0
	for i, tt := range m.Meta.Subgraphs[0].Tensors {
		k := calib.Matrix{Weight: calib.Key{Subgraph: 0, Tensor: i}}
		if !in.Has(k) || len(tt.Shape) != 2 {
			continue
		}
		cols := int(tt.Shape[1])
		h := in.Hessian(k, cols)
		w := floats(t, m, i)
		errs := map[string]float64{}
		for sc, o := range outs {
			errs[sc] = quadForm(w, floats(t, o, tensorIndex(t, o, 0, tt.Name)), h, cols)
			total[sc] += errs[sc]
		}
		touched++
		check(tt.Name, errs)
	}
	if touched == 0 {
		t.Fatal("no weight with calibration inputs: the test tests nothing")
	}
	return total, touched
}

func floats(t *testing.T, m *tflite.Model, i int) []float32 {
	t.Helper()
	data, err := tflite.ReadAll(m.Buffers[m.Meta.Subgraphs[0].Tensors[i].Buffer].Data)
	if err != nil {
		t.Fatal(err)
	}
	return quant.Float32s(data)
}

// quadForm is Σ_r (w_r−ŵ_r) H (w_r−ŵ_r)ᵀ.
func quadForm(w, got []float32, h *quant.Covariance, cols int) float64 {
	var s float64
	e := make([]float64, cols)
	for r := 0; r < len(w)/cols; r++ {
		for j := range e {
			e[j] = float64(w[r*cols+j] - got[r*cols+j])
		}
		for i := range cols {
			var d float64
			for j := range cols {
				d += h.At(i, j) * e[j]
			}
			s += e[i] * d
		}
	}
	return s
}

// TestGPTQBadInput: calibration that cannot run is an error naming the
// cause; a scheme gptq does not apply to is refused up front.
func TestGPTQBadInput(t *testing.T) {
	t.Setenv("QPIPE_CACHE_DIR", "off")
	path := absModel(t, "aeq_conv_fc_mnist.tflite")
	missing := filepath.Join(t.TempDir(), "nope.jsonl")
	_, _, err := runJobFileWith(t, scalesJob(path, `{recipe: dynamic_int4_block32, scales: gptq, calibration: {inputs: `+missing+`}}`), false)
	if err == nil || !strings.Contains(err.Error(), "calibration.inputs") || !strings.Contains(err.Error(), "nope.jsonl") {
		t.Errorf("missing calibration inputs: %v", err)
	}
	dir := t.TempDir()
	job := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(job, []byte(scalesJob(path, `{recipe: {name: r, default: {scheme: fp16, scales: gptq}}}`)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := config.LoadJob(job); err == nil || !strings.Contains(err.Error(), "gptq applies to int4 blockwise and int8 channelwise") {
		t.Errorf("gptq on fp16: %v", err)
	}
}

// TestGPTQReleasesRows: a job's only quantize run gathers its own
// calibration rows and gives each activation's back once the weights that
// read it are written, dropping the factors no job needs again; a job of
// two recipes shares the process's rows and keeps them. Both write the
// golden bytes, and a weight whose rows were released refuses to be
// compensated again with an error that says so.
func TestGPTQReleasesRows(t *testing.T) {
	t.Setenv("QPIPE_CACHE_DIR", "off")
	const want = "e5b347c7876cbcf5d62be2bbe440bf4fc3d481cfd6f12d3f05b039b1f11ce8a7" // TestGoldenGPTQBytes's
	in := absModel(t, "tiny_decoder.tflite")
	cal := `calibration: {samples: 4, seq: 16}`
	for _, c := range []struct {
		name, quantize string
		released       bool
	}{
		{"one recipe", `{recipe: dynamic_int4_block32, scales: gptq, ` + cal + `}`, true},
		{"two recipes", `{recipes: [dynamic_int4_block32, dynamic_int4_block128], scales: gptq, ` + cal + `}`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, branches, err := runJobFileWith(t, scalesJob(in, c.quantize), false)
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(branches[0].Output.Path)
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != want {
				got := hex.EncodeToString(sum[:])
				t.Errorf("output sha256 %s, want %s", got, want)
			}
			var g *gptqSource
			var job *bufferJob
			for _, j := range branches[0].Model.(*modelState).jobs {
				if j.gptq != nil {
					g, job = j.gptq, j
				}
			}
			if g == nil {
				t.Fatal("no gptq job")
			}
			rows := g.in.Bytes()
			if c.released != (rows == 0) {
				t.Errorf("%d bytes of rows left after every weight was written; want them released: %v", rows, c.released)
			}
			if c.released {
				if n := len(g.cache.byKey); n != 0 {
					t.Errorf("%d factors kept after every weight was written", n)
				}
				if _, err := job.holdFactor(0); err == nil || !strings.Contains(err.Error(), "were released") {
					t.Errorf("compensating a weight again after its rows were released: %v, want an error that says they were released", err)
				}
			}
		})
	}
}
