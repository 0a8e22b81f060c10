package stages

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/quant"
	"github.com/qpipe/qpipe/internal/tflite/fb"
	"github.com/qpipe/qpipe/pipeline"
)

func scalesJob(in, quantize string) string {
	return fmt.Sprintf(`version: 1
name: sc
stages:
  - load: {path: %q}
  - quantize: %s
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`, in, quantize)
}

// TestSearchScalesDeterministic: searched scales write the same bytes for
// any GOMAXPROCS and kernel worker count, different bytes from min-max, and
// a run reports both SQNRs with the search's above min-max's.
func TestSearchScalesDeterministic(t *testing.T) {
	in := absModel(t, "tiny_decoder.tflite")
	var runs [][]byte
	for _, procs := range []int{1, 2, 3} {
		prev := runtime.GOMAXPROCS(procs)
		_, branches, err := runJobFileWith(t, scalesJob(in, `{recipe: dynamic_int4_block32, scales: search}`), procs == 2)
		runtime.GOMAXPROCS(prev)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(branches[0].Output.Path)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, data)
		if procs != 2 {
			continue
		}
		ts := branches[0].Output.Tensors
		if len(ts) != 16 {
			t.Fatalf("%d tensor metrics, want 16", len(ts))
		}
		for _, m := range ts {
			if m.Scales != "search" || m.SQNRMinMax == nil || m.SQNR < *m.SQNRMinMax+0.3 {
				t.Errorf("%s: scales %q, SQNR %.2f dB, min-max %v", m.Tensor, m.Scales, m.SQNR, m.SQNRMinMax)
			}
		}
	}
	for i := 1; i < len(runs); i++ {
		if !bytes.Equal(runs[0], runs[i]) {
			t.Fatalf("run %d differs from run 0 at byte %d", i, firstDiff(runs[0], runs[i]))
		}
	}
	_, branches, err := runJobFileWith(t, scalesJob(in, `{recipe: dynamic_int4_block32}`), false)
	if err != nil {
		t.Fatal(err)
	}
	mm, err := os.ReadFile(branches[0].Output.Path)
	if err != nil {
		t.Fatal(err)
	}
	if len(mm) != len(runs[0]) || bytes.Equal(mm, runs[0]) {
		t.Fatalf("min-max and search outputs: %d and %d bytes, equal %v", len(mm), len(runs[0]), bytes.Equal(mm, runs[0]))
	}
}

// TestScalesPrecedence: a scheme's own scales beat its recipe's, which beat
// the quantize stage's (or --scales); int8 schemes keep min-max.
func TestScalesPrecedence(t *testing.T) {
	in := absModel(t, "tiny_decoder.tflite")
	for _, c := range []struct {
		quantize string
		opt      string
		want     map[string]string // role/layer -> scales ("" = not searched)
	}{
		{`{recipe: dynamic_int4_block64, scales: search}`, "", map[string]string{"embedding": "search", "attention/0": "search", "feedforward/1": "search"}},
		{`{recipe: dynamic_int4_block64}`, "search", map[string]string{"embedding": "search", "attention/0": "search"}},
		{`{recipe: dynamic_int4_block64, scales: search}`, "minmax", map[string]string{"embedding": "", "attention/0": ""}},
		{`{recipe: {scales: search, default: dynamic_int4_block32, attention: {scheme: dynamic_int4_block32, scales: minmax}}, scales: minmax}`, "",
			map[string]string{"embedding": "search", "attention/0": "", "feedforward/0": "search"}},
		{`{recipe: {default: dynamic_int8, feedforward: {all: dynamic_int4_block32, layers: {"1": {scheme: dynamic_int4_block32, scales: search}}}}, scales: minmax}`, "",
			map[string]string{"embedding": "", "attention/0": "", "feedforward/0": "", "feedforward/1": "search"}},
		{`{recipe: dynamic_int8, scales: search}`, "", map[string]string{"embedding": "", "attention/0": ""}},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "job.yaml")
		if err := os.WriteFile(path, []byte(scalesJob(in, c.quantize)), 0o644); err != nil {
			t.Fatal(err)
		}
		job, err := config.LoadJob(path)
		if err != nil {
			t.Fatalf("%s: %v", c.quantize, err)
		}
		pj, err := Build(job, Options{Scales: c.opt})
		if err != nil {
			t.Fatal(err)
		}
		s := &pipeline.State{Log: zerolog.Nop(), DryRun: true}
		branches, err := pipeline.Run(context.Background(), pj, s)
		Close(s)
		if err != nil {
			t.Fatalf("%s: %v", c.quantize, err)
		}
		got := map[string]string{}
		for _, w := range branches[0].Plan.Weights {
			k := w.Role
			if w.Layer != nil {
				k = fmt.Sprintf("%s/%d", w.Role, *w.Layer)
			}
			got[k] = w.Scales
			if w.Scales != "" && (w.SQNR == nil || w.SQNRMinMax == nil || *w.SQNR <= *w.SQNRMinMax) {
				t.Errorf("%s: %s: plan SQNR %v, min-max %v", c.quantize, w.Name, w.SQNR, w.SQNRMinMax)
			}
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%s --scales %q: %s has scales %q, want %q", c.quantize, c.opt, k, got[k], v)
			}
		}
	}
}

// TestSearchScalesStoredExactly: every int4 weight written with searched
// scales holds exactly clip(rint(x/s)) for its stored scales s.
func TestSearchScalesStoredExactly(t *testing.T) {
	in := absModel(t, "tiny_decoder.tflite")
	_, branches, err := runJobFileWith(t, scalesJob(in, `{recipe: dynamic_int4_block128, scales: search}`), false)
	if err != nil {
		t.Fatal(err)
	}
	src := openModel(t, in)
	out := openModel(t, branches[0].Output.Path)
	n := 0
	for ti, tt := range out.Meta.Subgraphs[0].Tensors {
		if tt.Quantization == nil || tt.Quantization.Details == nil {
			continue
		}
		bw, ok := tt.Quantization.Details.Value.(*fb.BlockwiseQuantizationT)
		if !ok {
			continue
		}
		orig := src.Meta.Subgraphs[0].Tensors[ti]
		x := quant.Float32s(bufferBytes(t, src, orig.Buffer))
		scales := quant.Uint16View(bufferBytes(t, out, out.Meta.Subgraphs[0].Tensors[bw.Scales].Buffer))
		want := make([]byte, len(x)/2)
		quant.QuantizeInt4(want, x, int(tt.Shape[1]), int(bw.BlockSize), scales)
		if !bytes.Equal(want, bufferBytes(t, out, tt.Buffer)) {
			t.Errorf("%s: stored values are not QuantizeInt4 of the stored scales", tt.Name)
		}
		n++
	}
	if n != 16 {
		t.Fatalf("checked %d int4 weights, want 16", n)
	}
}
