package conformance

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/qpipe/qpipe/internal/gen"
	"github.com/qpipe/qpipe/internal/litert"
	"github.com/qpipe/qpipe/internal/tflite"
)

// TestInterpreterOnGeneratedDecoders runs generated decoders larger than
// the bundled ones — a GELU variant, a not-divisible feed-forward width, a
// wider SiLU model — float and quantized with the LLM presets, on the
// interpreter and on LiteRT.js, with the bounds of
// TestInterpreterMatchesRuntime.
func TestInterpreterOnGeneratedDecoders(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and runs larger models")
	}
	r := litert.Require(t)
	s := &suite{runner: r}
	cfgs := []gen.Config{
		{Name: "gelu", Vocab: 2048, Dim: 256, Layers: 4, Heads: 4, FFN: 768, Seq: 32, Seed: 7, Activation: gen.ActGELU},
		{Name: "nodiv", Vocab: 1024, Dim: 256, Layers: 3, Heads: 8, FFN: 1024, Seq: 16, Seed: 8, Activation: gen.ActSiLU, NotDivisible: true},
		{Name: "wide", Vocab: 4096, Dim: 512, Layers: 2, Heads: 8, FFN: 1536, Seq: 16, Seed: 9, Activation: gen.ActSiLU},
	}
	presets := []string{"dynamic_int8", "dynamic_int4_block32", "dynamic_int4_block128", "weight_only_int8", "fp16"}
	dir := t.TempDir()
	for _, cfg := range cfgs {
		t.Run(cfg.Name, func(t *testing.T) {
			path := writeDecoder(t, dir, cfg)
			m := &model{name: cfg.Name, path: path, inputs: map[string][][]litert.Tensor{}}
			tm, err := tflite.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			m.vocab = litert.VocabSize(tm.Meta)
			tm.Close()
			info, err := r.Info(path)
			if err != nil {
				t.Fatal(err)
			}
			m.sigs = info.Signatures
			for _, sig := range m.sigs {
				for _, seed := range []int64{1, 2} {
					m.inputs[sig.Key] = append(m.inputs[sig.Key], litert.RandomTensors(sig.Inputs, seed, m.vocab))
				}
			}
			rtFloat, err := s.run(m, path)
			if err != nil {
				t.Fatal(err)
			}
			ipFloat, err := runInterp(m, path)
			if err != nil {
				t.Fatal(err)
			}
			e := compare(m, ipFloat, rtFloat).Errors()
			t.Logf("float: interp vs runtime rel L2 %.2g", e.RelL2)
			if e.RelL2 > 1e-5 {
				t.Errorf("float: interp vs runtime rel L2 %.3g, want <= 1e-5", e.RelL2)
			}
			for _, preset := range presets {
				q := filepath.Join(dir, fmt.Sprintf("%s_%s.tflite", cfg.Name, preset))
				if _, err := Quantize(context.Background(), path, q, preset, false); err != nil {
					t.Logf("%s: %v", preset, err)
					continue
				}
				rtQ, err := s.run(m, q)
				if err != nil {
					t.Fatalf("%s: %v", preset, err)
				}
				ipQ, err := runInterp(m, q)
				if err != nil {
					t.Fatalf("%s: %v", preset, err)
				}
				vsRT := compare(m, ipQ, rtQ).Errors().RelL2
				ipVsF := compare(m, ipQ, ipFloat).Errors().RelL2
				rtVsF := compare(m, rtQ, rtFloat).Errors().RelL2
				t.Logf("%-22s interp vs runtime rel L2 %.2g; vs float: interp %.4g runtime %.4g", preset, vsRT, ipVsF, rtVsF)
				bound := 1e-5
				if preset == "dynamic_int8" || preset[:min(len(preset), 12)] == "dynamic_int4" {
					bound = hybridBound(rtVsF)
				}
				if vsRT > bound {
					t.Errorf("%s: interp vs runtime rel L2 %.3g, want <= %g", preset, vsRT, bound)
				}
				if math.Abs(ipVsF-rtVsF) > max(0.1*rtVsF, 1e-4) {
					t.Errorf("%s: rel L2 vs float %.4g (interp) and %.4g (runtime) differ by more than 10 %% or 1e-4", preset, ipVsF, rtVsF)
				}
			}
		})
	}
}

// writeDecoder generates the decoder cfg describes into dir and returns
// its path (NAME.tflite).
func writeDecoder(t *testing.T, dir string, cfg gen.Config) string {
	t.Helper()
	gm, err := gen.Decoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, cfg.Name+".tflite")
	if err := tflite.WriteFile(context.Background(), path, gm, tflite.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return path
}
