package litert

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/modelinput"
	"github.com/qpipe/qpipe/internal/tflite"
)

// runtimeRefuses lists the test models LiteRT.js 2.5.3 does not load, each
// with a part of the runtime's error. A model that starts to run, or fails
// for another reason, fails TestRoundTripRunsBitIdentical: the change in
// behaviour is then noticed and this table updated.
var runtimeRefuses = map[string]string{
	// Signature "lookup" lists no outputs while its subgraph has one; the
	// newer loader rejects mismatched counts (FORMAT.md §8).
	"aeq_embedding_lookup.tflite": "Signature has incorrect number of input/outputs",
	// A LiteRtStamp metadata entry of a size this runtime does not expect,
	// for a model compiled for an NPU (one CUSTOM NPU_OP op).
	"litert_tfl_with_metadata.tflite": "Build stamp size mismatch",
	// TOCO-era int8 model: per-channel quantization with
	// quantized_dimension 3 on 1-D bias tensors.
	"tflm_person_detect.tflite": "quantized_dimension must be in range",
}

// roundTripSeeds are the input seeds every signature is run with.
var roundTripSeeds = []int64{1, 2}

// Reading a model and writing it back unchanged must not change what the
// runtime computes: for every test model and both buffer layouts, the
// rewritten model's outputs are bit-identical to the original's on the same
// inputs, for every signature. Models the runtime refuses must be refused
// for the same reason after the rewrite.
func TestRoundTripRunsBitIdentical(t *testing.T) {
	r := Require(t)
	paths, err := filepath.Glob(filepath.Join(models, "*.tflite"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no test models in %s (%v)", models, err)
	}
	for _, path := range paths {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".tflite"), func(t *testing.T) {
			m, err := tflite.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			rewritten := map[tflite.Layout]string{}
			for _, layout := range []tflite.Layout{tflite.LayoutInline, tflite.LayoutOffset} {
				out := filepath.Join(t.TempDir(), fmt.Sprintf("%s.%s.tflite", strings.TrimSuffix(name, ".tflite"), layout))
				if err := tflite.WriteFile(context.Background(), out, m, tflite.WriteOptions{Layout: layout}); err != nil {
					t.Fatalf("%s layout: %v", layout, err)
				}
				checkLayout(t, out, layout)
				rewritten[layout] = out
			}

			info, err := r.Info(path)
			if reason, refused := runtimeRefuses[name]; refused {
				checkRefused(t, r, path, err, reason)
				for layout, out := range rewritten {
					_, err := r.Info(out)
					checkRefused(t, r, fmt.Sprintf("%s (rewritten, %s layout)", path, layout), err, reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("the runtime refuses %s (add it to runtimeRefuses if that is expected): %v", name, err)
			}

			vocab := modelinput.VocabSize(m.Meta)
			for _, sig := range info.Signatures {
				for _, seed := range roundTripSeeds {
					inputs := RandomTensors(sig.Inputs, seed, vocab)
					want, err := r.RunSignature(path, sig.Key, inputs)
					if err != nil {
						t.Fatalf("signature %q, seed %d: original: %v", sig.Key, seed, err)
					}
					for _, layout := range []tflite.Layout{tflite.LayoutInline, tflite.LayoutOffset} {
						got, err := r.RunSignature(rewritten[layout], sig.Key, inputs)
						if err != nil {
							t.Fatalf("signature %q, seed %d, %s layout: rewritten: %v", sig.Key, seed, layout, err)
						}
						if diff := firstDifference(got, want); diff != "" {
							t.Errorf("signature %q, seed %d, %s layout: rewritten model computes differently: %s", sig.Key, seed, layout, diff)
						}
					}
				}
			}
		})
	}
}

// checkLayout makes sure the file at path was written in layout, so that
// both layouts really are run.
func checkLayout(t *testing.T, path string, layout tflite.Layout) {
	t.Helper()
	m, err := tflite.Open(path)
	if err != nil {
		t.Fatalf("reading back %s: %v", path, err)
	}
	defer m.Close()
	if m.Layout == layout {
		return
	}
	// Only non-metadata buffers with data can move out of line: a file
	// without any reads back as inline.
	metadata := map[uint32]bool{}
	for _, md := range m.Meta.Metadata {
		metadata[md.Buffer] = true
	}
	for i, b := range m.Buffers {
		if b.Data != nil && b.Data.Len() > 0 && !metadata[uint32(i)] {
			t.Fatalf("%s: asked for the %s layout, the file has %s (buffer %d holds data)", path, layout, m.Layout, i)
		}
	}
}

// The comparison above can fail: a model whose weights each moved by one
// ulp is caught.
func TestRoundTripComparisonDetectsAChangedWeight(t *testing.T) {
	r := Require(t)
	path := filepath.Join(models, "tflm_hello_world_float.tflite")
	m, err := tflite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// The [16, 16] weight of the second FULLY_CONNECTED.
	w := m.Meta.Subgraphs[0].Tensors[m.Meta.Subgraphs[0].Operators[1].Inputs[1]]
	data, err := tflite.ReadAll(m.Buffers[w.Buffer].Data)
	if err != nil {
		t.Fatal(err)
	}
	changed := slices.Clone(data)
	for i := 0; i < len(changed); i += 4 {
		changed[i] ^= 1 // the lowest mantissa bit
	}
	m.Buffers[w.Buffer].Data = tflite.Bytes(changed)
	out := filepath.Join(t.TempDir(), "changed.tflite")
	if err := tflite.WriteFile(context.Background(), out, m, tflite.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	info, err := r.Info(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []float32{1, 2, 3, 4, 5, 6} {
		in := []Tensor{NewFloat32(info.Inputs[0].Name, info.Inputs[0].Shape, []float32{x})}
		want, err := r.Run(path, in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Run(out, in)
		if err != nil {
			t.Fatal(err)
		}
		if firstDifference(got, want) != "" {
			return
		}
	}
	t.Error("1-ulp changes of a weight went unnoticed on every input")
}

func checkRefused(t *testing.T, r *Runner, what string, err error, reason string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("the runtime now loads %s, listed in runtimeRefuses (%q): move it out of the table", what, reason)
	case !strings.Contains(err.Error(), reason):
		t.Errorf("%s: refused for another reason than %q: %v", what, reason, err)
	}
}

// firstDifference describes the first way got differs from want, bit for
// bit, or returns "".
func firstDifference(got, want []Tensor) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d outputs, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		switch {
		case g.Name != w.Name || g.DType != w.DType || !slices.Equal(g.Shape, w.Shape):
			return fmt.Sprintf("output %d is %s %s %v, want %s %s %v", i, g.Name, g.DType, g.Shape, w.Name, w.DType, w.Shape)
		case len(g.Data) != len(w.Data):
			return fmt.Sprintf("output %d (%s) has %d bytes, want %d", i, w.Name, len(g.Data), len(w.Data))
		}
		if k := slices.Compare(g.Data, w.Data); k != 0 {
			at := 0
			for at < len(w.Data) && g.Data[at] == w.Data[at] {
				at++
			}
			if w.DType == "float32" {
				e := at / 4
				return fmt.Sprintf("output %d (%s) element %d: %g, want %g", i, w.Name, e, g.Float32s()[e], w.Float32s()[e])
			}
			return fmt.Sprintf("output %d (%s) byte %d: %#x, want %#x", i, w.Name, at, g.Data[at], w.Data[at])
		}
	}
	return ""
}
