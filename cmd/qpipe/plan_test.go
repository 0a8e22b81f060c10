package main

// `qpipe plan --json` on the generated decoder lists every weight with the
// role and layer its LiteRT Torch names imply, and a job with per-layer
// overrides quantizes exactly the layers it names, checked in the written
// model.

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/gen"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// expectedWeight is what the graph of a generated decoder says a weight
// is, worked out from the op that reads it (not from qpipe's annotate).
type expectedWeight struct {
	role  string
	layer *int
	op    string // e.g. FULLY_CONNECTED#7
}

var (
	blockRE  = regexp.MustCompile(`transformer_blocks\[(\d+)\]`)
	attnRE   = regexp.MustCompile(`attention\.CausalSelfAttention_atten_func/torch\.nn\.modules\.linear\.Linear_(q|k|v|output)_projection;`)
	ffRE     = regexp.MustCompile(`feed_forward\.GatedFeedForward_ff/torch\.nn\.modules\.linear\.Linear_w[123];`)
	logitsRE = regexp.MustCompile(`^StatefulPartitionedCall:0$`)
)

// expectedWeights classifies every weight of a generated decoder by the
// output name of the op reading it.
func expectedWeights(t *testing.T, path string) map[string]expectedWeight {
	t.Helper()
	m, err := tflite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sg := m.Meta.Subgraphs[0]
	out := map[string]expectedWeight{}
	for oi, op := range sg.Operators {
		code := m.OpCode(op)
		opName := fmt.Sprintf("%s#%d", fb.EnumNamesBuiltinOperator[code], oi)
		switch code {
		case fb.BuiltinOperatorEMBEDDING_LOOKUP:
			out[sg.Tensors[op.Inputs[1]].Name] = expectedWeight{role: "embedding", op: opName}
		case fb.BuiltinOperatorFULLY_CONNECTED:
			w := sg.Tensors[op.Inputs[1]].Name
			name := sg.Tensors[op.Outputs[0]].Name
			var e expectedWeight
			switch {
			case logitsRE.MatchString(name):
				e.role = "embedding" // the tied lm_head follows the embedding
			case attnRE.MatchString(name):
				e.role = "attention"
			case ffRE.MatchString(name):
				e.role = "feedforward"
			default:
				t.Fatalf("%s: FULLY_CONNECTED %d writes %q: not a decoder linear", path, oi, name)
			}
			if e.role != "embedding" {
				mm := blockRE.FindStringSubmatch(name)
				if mm == nil {
					t.Fatalf("%q has no block index", name)
				}
				l, _ := strconv.Atoi(mm[1])
				e.layer = &l
			}
			e.op = opName
			out[w] = e
		case fb.BuiltinOperatorBATCH_MATMUL, fb.BuiltinOperatorCONV_2D:
			for _, in := range op.Inputs {
				if b := sg.Tensors[in].Buffer; m.Buffers[b].Data != nil && m.Buffers[b].Data.Len() > 0 {
					t.Fatalf("%s: op %d reads constant %q: the decoder has no such weight", path, oi, sg.Tensors[in].Name)
				}
			}
		}
	}
	return out
}

// planJSON runs qpipe plan --json and decodes its single plan.
func planJSON(t *testing.T, args ...string) (weights []map[string]json.RawMessage, totals map[string]json.RawMessage) {
	t.Helper()
	code, stdout, stderr := e2eRun(t, append([]string{"plan", "--json"}, args...)...)
	if code != exitOK {
		t.Fatalf("plan exit %d:\n%s", code, stderr)
	}
	var doc struct {
		Plans []map[string]json.RawMessage `json:"plans"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("plan --json: %v\n%s", err, stdout)
	}
	if len(doc.Plans) != 1 {
		t.Fatalf("%d plans, want 1", len(doc.Plans))
	}
	p := doc.Plans[0]
	return field[[]map[string]json.RawMessage](t, p, "weights"), field[map[string]json.RawMessage](t, p, "totals")
}

// TestPlanJSONRolesAndLayers: under every preset, plan --json lists every
// weight of the tiny decoder once with the right role, layer (null for the
// embedding table and the tied lm_head), ops, scheme and sizes.
func TestPlanJSONRolesAndLayers(t *testing.T) {
	model := filepath.Join(e2eModels, "tiny_decoder.tflite")
	want := expectedWeights(t, model)
	cfg, _ := gen.Preset("tiny")
	if n := 1 + 7*cfg.Layers + 1; len(want) != n {
		t.Fatalf("the tiny decoder has %d weights, want %d", len(want), n)
	}
	layersSeen := map[string]map[int]int{"attention": {}, "feedforward": {}}
	for _, e := range want {
		if e.layer != nil {
			layersSeen[e.role][*e.layer]++
		}
	}
	for l := 0; l < cfg.Layers; l++ {
		if layersSeen["attention"][l] != 4 || layersSeen["feedforward"][l] != 3 {
			t.Fatalf("layer %d: %d attention and %d feed-forward weights, want 4 and 3", l, layersSeen["attention"][l], layersSeen["feedforward"][l])
		}
	}

	m, err := tflite.Open(model)
	if err != nil {
		t.Fatal(err)
	}
	numel := map[string]int64{}
	for _, tt := range m.Meta.Subgraphs[0].Tensors {
		n := int64(1)
		for _, d := range tt.Shape {
			n *= int64(d)
		}
		numel[tt.Name] = n
	}
	m.Close()

	for _, preset := range []struct {
		name  string
		block int
		// bytesOut is the expected output size of n float32 weights.
		bytesOut func(n int64) int64
	}{
		{"none", 0, func(n int64) int64 { return 4 * n }},
		{"dynamic_int8", 0, func(n int64) int64 { return n }},
		{"fp16", 0, func(n int64) int64 { return 2 * n }},
		{"dynamic_int4_block32", 32, func(n int64) int64 { return n/2 + 2*(n/32) }},
		{"dynamic_int4_block128", 128, func(n int64) int64 { return n/2 + 2*(n/128) }},
	} {
		t.Run(preset.name, func(t *testing.T) {
			weights, totals := planJSON(t, "--recipe", preset.name, model)
			seen := map[string]bool{}
			buffers := map[int64]bool{} // totals count a shared (tied) buffer once
			var sumIn, sumOut int64
			for _, w := range weights {
				for _, k := range []string{"tensor", "ops", "role", "layer", "scheme", "block_size", "buffer", "bytes_in", "bytes_out"} {
					if _, ok := w[k]; !ok {
						t.Fatalf("weight %v lacks %q", keys(w), k)
					}
				}
				name := field[string](t, w, "tensor")
				e, ok := want[name]
				if !ok {
					t.Errorf("plan lists %q, which is not a weight", name)
					continue
				}
				if seen[name] {
					t.Errorf("%q listed twice", name)
				}
				seen[name] = true
				if r := field[string](t, w, "role"); r != e.role {
					t.Errorf("%q (%s): role %q, want %q", name, e.op, r, e.role)
				}
				if l := field[*int](t, w, "layer"); (l == nil) != (e.layer == nil) || (l != nil && *l != *e.layer) {
					t.Errorf("%q (%s): layer %v, want %v", name, e.op, ptrString(l), ptrString(e.layer))
				}
				ops := field[[]string](t, w, "ops")
				if len(ops) != 1 || !strings.HasPrefix(ops[0], e.op) {
					t.Errorf("%q: ops %q, want [%s]", name, ops, e.op)
				}
				scheme := field[*string](t, w, "scheme")
				in, out := field[int64](t, w, "bytes_in"), field[int64](t, w, "bytes_out")
				if in != 4*numel[name] {
					t.Errorf("%q: bytes_in %d, want %d", name, in, 4*numel[name])
				}
				first := !buffers[field[int64](t, w, "buffer")]
				buffers[field[int64](t, w, "buffer")] = true
				if first {
					sumIn += in
				}
				if first || scheme != nil {
					sumOut += out
				}
				if preset.name == "none" {
					if scheme != nil {
						t.Errorf("%q: scheme %q under none, want null", name, *scheme)
					}
					if out != in {
						t.Errorf("%q: bytes_out %d under none, want %d", name, out, in)
					}
					continue
				}
				if scheme == nil || *scheme != preset.name {
					t.Errorf("%q: scheme %v, want %s", name, ptrString(scheme), preset.name)
				}
				var block int
				if raw, ok := w["block_size"]; ok {
					json.Unmarshal(raw, &block)
				}
				if block != preset.block {
					t.Errorf("%q: block_size %d, want %d", name, block, preset.block)
				}
				wantOut := preset.bytesOut(numel[name])
				if strings.Contains(ops[0], "tied lm_head") {
					wantOut = 0 // it reads the embedding's quantized buffer
				}
				if out != wantOut {
					t.Errorf("%q: bytes_out %d, want %d", name, out, wantOut)
				}
			}
			if len(seen) != len(want) {
				t.Errorf("plan lists %d weights, the model has %d", len(seen), len(want))
			}
			if n := field[int](t, totals, "weights"); n != len(want) {
				t.Errorf("totals.weights %d, want %d", n, len(want))
			}
			wantQ := len(want)
			if preset.name == "none" {
				wantQ = 0
			}
			if n := field[int](t, totals, "quantized"); n != wantQ {
				t.Errorf("totals.quantized %d, want %d", n, wantQ)
			}
			if n := field[int64](t, totals, "bytes_in"); n != sumIn {
				t.Errorf("totals.bytes_in %d, weights sum to %d", n, sumIn)
			}
			if n := field[int64](t, totals, "bytes_out"); n != sumOut {
				t.Errorf("totals.bytes_out %d, weights sum to %d", n, sumOut)
			}
		})
	}
}

func ptrString[T any](p *T) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}

// fourLayerDecoder writes a small generated decoder with four blocks (the
// tiny preset has two) into dir.
func fourLayerDecoder(t *testing.T, dir string) string {
	t.Helper()
	cfg, _ := gen.Preset("tiny")
	cfg.Name, cfg.Layers, cfg.Vocab, cfg.Dim, cfg.Heads, cfg.FFN = "four", 4, 128, 128, 2, 256
	m, err := gen.Decoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "four_layers.tflite")
	if err := tflite.WriteFile(context.Background(), path, m, tflite.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return path
}

// writtenWeight is a weight as the output model has it: the tensor its
// op finally reads (through a DEQUANTIZE, if any).
type writtenWeight struct {
	typ       fb.TensorType
	dequant   bool
	block     int32
	buffer    uint32
	perAxisQ  int // number of scales
	readerOps []string
}

// writtenWeights maps each weight (by its original name) to what the
// output model does with it.
func writtenWeights(t *testing.T, path string) map[string]*writtenWeight {
	t.Helper()
	m, err := tflite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sg := m.Meta.Subgraphs[0]
	producer := map[int32]*fb.OperatorT{}
	for _, op := range sg.Operators {
		for _, o := range op.Outputs {
			producer[o] = op
		}
	}
	out := map[string]*writtenWeight{}
	for oi, op := range sg.Operators {
		code := m.OpCode(op)
		if code != fb.BuiltinOperatorFULLY_CONNECTED && code != fb.BuiltinOperatorEMBEDDING_LOOKUP {
			continue
		}
		ti := op.Inputs[1]
		w := &writtenWeight{}
		if p := producer[ti]; p != nil && m.OpCode(p) == fb.BuiltinOperatorDEQUANTIZE {
			w.dequant = true
			ti = p.Inputs[0]
		} else if p != nil {
			continue // an activation (the decoder's FCs all read constants)
		}
		tt := sg.Tensors[ti]
		w.typ, w.buffer = tt.Type, tt.Buffer
		if q := tt.Quantization; q != nil {
			w.perAxisQ = len(q.Scale)
			if q.Details != nil && q.Details.Type == fb.QuantizationDetailsBlockwiseQuantization {
				w.block = q.Details.Value.(*fb.BlockwiseQuantizationT).BlockSize
			}
		}
		w.readerOps = append(w.readerOps, fmt.Sprintf("%s#%d", fb.EnumNamesBuiltinOperator[code], oi))
		name := strings.TrimSuffix(tt.Name, "_dequant")
		if _, dup := out[name]; dup {
			t.Fatalf("%s: weight %q read by two ops", path, name)
		}
		out[name] = w
	}
	return out
}

// TestPerLayerOverrides: a custom recipe with per-layer overrides
// quantizes exactly the layers it names, as the written model shows.
func TestPerLayerOverrides(t *testing.T) {
	dir := t.TempDir()
	model := fourLayerDecoder(t, dir)
	want := expectedWeights(t, model)
	job := e2eWrite(t, filepath.Join(dir, "layers.yaml"), fmt.Sprintf(`version: 1
name: layers
stages:
  - load: {path: %q}
  - quantize:
      recipe:
        default: fp16
        embedding: dynamic_int8
        attention:
          layers: {"0": none, "3": dynamic_int4_block64}
        feedforward:
          all: dynamic_int4_block32
          layers: {"1-2": dynamic_int8}
  - verify: {}
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`, model))

	// scheme is what the recipe says for a weight.
	scheme := func(e expectedWeight) string {
		switch {
		case e.role == "embedding":
			return "dynamic_int8"
		case e.role == "attention" && *e.layer == 0:
			return "none"
		case e.role == "attention" && *e.layer == 3:
			return "dynamic_int4_block64"
		case e.role == "attention":
			return "fp16"
		case e.role == "feedforward" && (*e.layer == 1 || *e.layer == 2):
			return "dynamic_int8"
		case e.role == "feedforward":
			return "dynamic_int4_block32"
		}
		t.Fatalf("unexpected weight %+v", e)
		return ""
	}

	// The plan says so.
	weights, _ := planJSON(t, job)
	for _, w := range weights {
		name := field[string](t, w, "tensor")
		s := "none"
		if p := field[*string](t, w, "scheme"); p != nil {
			s = *p
		}
		if ws := scheme(want[name]); s != ws {
			t.Errorf("plan: %q (%s, layer %s): scheme %s, want %s", name, want[name].role, ptrString(want[name].layer), s, ws)
		}
	}

	// The written model does so.
	code, _, stderr := e2eRun(t, "run", job)
	if code != exitOK {
		t.Fatalf("run exit %d:\n%s", code, stderr)
	}
	got := writtenWeights(t, filepath.Join(dir, "out", "layers_custom.tflite"))
	if len(got) == 0 {
		// The suffix of a custom recipe is the lead's choice: find the file.
		files := e2eFiles(t, filepath.Join(dir, "out"))
		if len(files) != 1 {
			t.Fatalf("out/ holds %v, want one model", files)
		}
		got = writtenWeights(t, filepath.Join(dir, "out", files[0]))
	}
	if len(got) != len(want) {
		t.Fatalf("output has %d weights, input %d", len(got), len(want))
	}
	var table uint32
	for name, e := range want {
		if e.op == "EMBEDDING_LOOKUP#0" {
			table = got[name].buffer
		}
	}
	counts := map[string]int{}
	for name, e := range want {
		w := got[name]
		if w == nil {
			t.Errorf("%q missing from the output", name)
			continue
		}
		s := scheme(e)
		counts[s]++
		what := fmt.Sprintf("%q (%s, layer %s, %s)", name, e.role, ptrString(e.layer), s)
		switch s {
		case "none":
			if w.typ != fb.TensorTypeFLOAT32 || w.dequant {
				t.Errorf("%s: %s (dequantize %v), want FLOAT32 read directly", what, w.typ, w.dequant)
			}
		case "fp16":
			if w.typ != fb.TensorTypeFLOAT16 || !w.dequant {
				t.Errorf("%s: %s (dequantize %v), want FLOAT16 through DEQUANTIZE", what, w.typ, w.dequant)
			}
		case "dynamic_int8":
			if w.typ != fb.TensorTypeINT8 || w.dequant || w.perAxisQ < 2 {
				t.Errorf("%s: %s (dequantize %v, %d scales), want per-channel INT8 read directly", what, w.typ, w.dequant, w.perAxisQ)
			}
		case "dynamic_int4_block32", "dynamic_int4_block64":
			wantBlock := map[string]int32{"dynamic_int4_block32": 32, "dynamic_int4_block64": 64}[s]
			if w.typ != fb.TensorTypeINT4 || w.dequant || w.block != wantBlock {
				t.Errorf("%s: %s block %d (dequantize %v), want INT4 block %d read directly", what, w.typ, w.block, w.dequant, wantBlock)
			}
		}
		if e.role == "embedding" && w.buffer != table {
			t.Errorf("%s: buffer %d, the embedding table's is %d: the tied lm_head must share it", what, w.buffer, table)
		}
	}
	// 4 layers: attention 0 none (4), 1-2 fp16 (8), 3 int4/64 (4); ff 1-2
	// int8 (6), 0 and 3 int4/32 (6); the table and the tied head int8.
	wantCounts := map[string]int{"none": 4, "fp16": 8, "dynamic_int4_block64": 4, "dynamic_int8": 8, "dynamic_int4_block32": 6}
	for s, n := range wantCounts {
		if counts[s] != n {
			t.Errorf("%d weights expected as %s, want %d (the recipe's layers)", counts[s], s, n)
		}
	}
	if !slices.Equal(sortedKeys(counts), sortedKeys(wantCounts)) {
		t.Errorf("schemes %v, want %v", counts, wantCounts)
	}
}

func sortedKeys(m map[string]int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
