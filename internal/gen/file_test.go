package gen

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/qpipe/qpipe/internal/litert"
	"github.com/qpipe/qpipe/internal/tflite"
)

var update = flag.Bool("update", false, "rewrite the committed models in testdata/models")

// The committed models and the Configs that generate them.
var committed = []struct {
	path string
	cfg  func(t testing.TB) Config
}{
	{"../../testdata/models/tiny_decoder.tflite", func(t testing.TB) Config { return tinyConfig(t) }},
	{"../../testdata/models/tiny_decoder_nodiv.tflite", nodivConfig},
}

// nodivConfig is the tiny preset with NotDivisible and one block.
func nodivConfig(t testing.TB) Config {
	c := tinyConfig(t)
	c.Name = "tiny_nodiv"
	c.Layers = 1
	c.NotDivisible = true
	return c
}

func writeModel(t testing.TB, c Config, path string, layout tflite.Layout) {
	t.Helper()
	m := mustDecoder(t, c)
	if err := tflite.WriteFile(context.Background(), path, m, tflite.WriteOptions{Layout: layout}); err != nil {
		t.Fatal(err)
	}
}

func fileSHA(t testing.TB, path string) [32]byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(raw)
}

// TestCommittedModelsAreGenerated regenerates the committed models and
// demands identical bytes; -update rewrites them.
func TestCommittedModelsAreGenerated(t *testing.T) {
	for _, cm := range committed {
		t.Run(filepath.Base(cm.path), func(t *testing.T) {
			tmp := filepath.Join(t.TempDir(), "m.tflite")
			writeModel(t, cm.cfg(t), tmp, tflite.LayoutInline)
			got, err := os.ReadFile(tmp)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(cm.path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(cm.path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/gen -run TestCommittedModelsAreGenerated -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("generated %d bytes (sha256 %x) differ from %s (%d bytes, sha256 %x); if the change is intended, rerun with -update",
					len(got), sha256.Sum256(got), cm.path, len(want), sha256.Sum256(want))
			}
		})
	}
}

// Two generations give the same file, whatever GOMAXPROCS, in both layouts.
func TestWriteIsDeterministic(t *testing.T) {
	c := smallConfig(t)
	dir := t.TempDir()
	for _, layout := range []tflite.Layout{tflite.LayoutInline, tflite.LayoutOffset} {
		a, b := filepath.Join(dir, "a.tflite"), filepath.Join(dir, "b.tflite")
		writeModel(t, c, a, layout)
		prev := runtime.GOMAXPROCS(1)
		writeModel(t, c, b, layout)
		runtime.GOMAXPROCS(prev)
		if fileSHA(t, a) != fileSHA(t, b) {
			t.Errorf("%v layout: two generations differ", layout)
		}
	}
}

// The written file reads back as the model that was built: same tensors,
// same weight bytes, the tied buffer kept shared.
func TestWrittenModelReadsBack(t *testing.T) {
	c := smallConfig(t)
	for _, layout := range []tflite.Layout{tflite.LayoutInline, tflite.LayoutOffset} {
		t.Run(layout.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.tflite")
			built := mustDecoder(t, c)
			writeModel(t, c, path, layout)
			read, err := tflite.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer read.Close()
			if read.Layout != layout {
				t.Errorf("read layout %v, wrote %v", read.Layout, layout)
			}
			bs, rs := built.Meta.Subgraphs[0], read.Meta.Subgraphs[0]
			if len(bs.Tensors) != len(rs.Tensors) || len(bs.Operators) != len(rs.Operators) {
				t.Fatalf("%d tensors / %d ops read, %d / %d built", len(rs.Tensors), len(rs.Operators), len(bs.Tensors), len(bs.Operators))
			}
			want, got := bufferHashes(t, built), bufferHashes(t, read)
			if fmt.Sprint(want) != fmt.Sprint(got) {
				t.Error("weight bytes differ after writing and reading")
			}
			for i, bt := range bs.Tensors {
				rt := rs.Tensors[i]
				if rt.Name != bt.Name || fmt.Sprint(rt.Shape) != fmt.Sprint(bt.Shape) || rt.Type != bt.Type {
					t.Fatalf("tensor %d: read %q %v %v, built %q %v %v", i, rt.Name, rt.Shape, rt.Type, bt.Name, bt.Shape, bt.Type)
				}
				// Tensor 1 is the embedding table (tensor 0 the token ids).
				if (rt.Buffer == rs.Tensors[1].Buffer) != (bt.Buffer == bs.Tensors[1].Buffer) {
					t.Errorf("tensor %d (%s): sharing of the table buffer changed", i, rt.Name)
				}
			}
		})
	}
}

var runTokens = []int32{1, 17, 1023, 5, 300, 999, 0, 512}

// runLogits runs a model file on LiteRT.js and returns its logits.
func runLogits(t *testing.T, r *litert.Runner, path string, c Config) []float32 {
	t.Helper()
	out, err := r.Run(path, []litert.Tensor{litert.NewInt32("tokens", []int{c.Seq}, runTokens[:c.Seq])})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(out) != 1 || fmt.Sprint(out[0].Shape) != fmt.Sprint([]int{c.Seq, c.Vocab}) {
		t.Fatalf("%s: outputs %v", path, out)
	}
	return out[0].Float32s()
}

// TestDecoderRunsOnLiteRT runs the committed models and a GELU variant on
// the runtime: finite logits, identical across runs, and equal to the
// float64 reference forward pass within float32 rounding.
func TestDecoderRunsOnLiteRT(t *testing.T) {
	r := litert.Require(t)
	gelu := tinyConfig(t)
	gelu.Activation = ActGELU
	gelu.Seed = 5
	geluPath := filepath.Join(t.TempDir(), "gelu.tflite")
	writeModel(t, gelu, geluPath, tflite.LayoutOffset)
	cases := []struct {
		name string
		path string
		cfg  Config
	}{
		{"tiny", committed[0].path, committed[0].cfg(t)},
		{"nodiv", committed[1].path, committed[1].cfg(t)},
		{"gelu offset", geluPath, gelu},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := runLogits(t, r, tc.path, tc.cfg)
			b := runLogits(t, r, tc.path, tc.cfg)
			for i := range a {
				if math.IsNaN(float64(a[i])) || math.IsInf(float64(a[i]), 0) {
					t.Fatalf("logit %d is %v", i, a[i])
				}
				if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
					t.Fatalf("logit %d: %v then %v", i, a[i], b[i])
				}
			}
			ref := referenceLogits(tc.cfg, runTokens[:tc.cfg.Seq])
			var num, den float64
			for s := range ref {
				for v, want := range ref[s] {
					d := float64(a[s*tc.cfg.Vocab+v]) - want
					num += d * d
					den += want * want
				}
			}
			rel := math.Sqrt(num / den)
			t.Logf("relative L2 against the float64 reference: %.2g (logits RMS %.2f)", rel, math.Sqrt(den/float64(len(a))))
			if rel > 1e-4 {
				t.Errorf("relative L2 %.3g against the float64 reference, want < 1e-4", rel)
			}
		})
	}
}
