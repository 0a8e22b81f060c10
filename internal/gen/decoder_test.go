package gen

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

func tinyConfig(t testing.TB) Config {
	t.Helper()
	c, ok := Preset("tiny")
	if !ok {
		t.Fatal("no tiny preset")
	}
	return c
}

// smallConfig is a one-block model with a 256-token vocabulary: enough
// for tests of the file, cheap under -race.
func smallConfig(t testing.TB) Config {
	c := tinyConfig(t)
	c.Layers, c.Vocab = 1, 256
	return c
}

func mustDecoder(t testing.TB, c Config) *tflite.Model {
	t.Helper()
	m, err := Decoder(c)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func constInt32s(t *testing.T, m *tflite.Model, tensor int32) []int32 {
	t.Helper()
	tt := m.Meta.Subgraphs[0].Tensors[tensor]
	raw, err := tflite.ReadAll(m.Buffers[tt.Buffer].Data)
	if err != nil || tt.Type != fb.TensorTypeINT32 || raw == nil {
		t.Fatalf("tensor %d (%s) is not an int32 constant (err %v)", tensor, tt.Name, err)
	}
	v := make([]int32, len(raw)/4)
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return v
}

func broadcast(t *testing.T, a, b []int32) []int32 {
	t.Helper()
	n := max(len(a), len(b))
	out := make([]int32, n)
	for i := 0; i < n; i++ {
		da, db := int32(1), int32(1)
		if j := i - (n - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (n - len(b)); j >= 0 {
			db = b[j]
		}
		switch {
		case da == db || db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			t.Fatalf("shapes %v and %v do not broadcast", a, b)
		}
	}
	return out
}

func prod(s []int32) int64 {
	p := int64(1)
	for _, d := range s {
		p *= int64(d)
	}
	return p
}

// inferShape computes the output shape of op from its input shapes, for
// the ops the generator emits.
func inferShape(t *testing.T, m *tflite.Model, op *fb.OperatorT) []int32 {
	t.Helper()
	ts := m.Meta.Subgraphs[0].Tensors
	in := func(i int) []int32 { return ts[op.Inputs[i]].Shape }
	switch code := m.OpCode(op); code {
	case fb.BuiltinOperatorEMBEDDING_LOOKUP:
		if len(in(0)) != 1 || len(in(1)) != 2 || ts[op.Inputs[0]].Type != fb.TensorTypeINT32 {
			t.Fatalf("EMBEDDING_LOOKUP inputs %v %v", in(0), in(1))
		}
		return []int32{in(0)[0], in(1)[1]}
	case fb.BuiltinOperatorFULLY_CONNECTED:
		x, w := in(0), in(1)
		if len(op.Inputs) != 3 || op.Inputs[2] != -1 || len(x) != 2 || len(w) != 2 || x[1] != w[1] {
			t.Fatalf("FULLY_CONNECTED inputs %v: %v × %v", op.Inputs, x, w)
		}
		return []int32{x[0], w[0]}
	case fb.BuiltinOperatorADD, fb.BuiltinOperatorMUL:
		return broadcast(t, in(0), in(1))
	case fb.BuiltinOperatorMEAN:
		axis := constInt32s(t, m, op.Inputs[1])
		out := append([]int32(nil), in(0)...)
		if len(axis) != 1 || (axis[0] != -1 && int(axis[0]) != len(out)-1) {
			t.Fatalf("MEAN axis %v", axis)
		}
		out[len(out)-1] = 1
		return out
	case fb.BuiltinOperatorRSQRT, fb.BuiltinOperatorLOGISTIC, fb.BuiltinOperatorGELU, fb.BuiltinOperatorSOFTMAX:
		return in(0)
	case fb.BuiltinOperatorRESHAPE:
		shape := constInt32s(t, m, op.Inputs[1])
		if prod(shape) != prod(in(0)) {
			t.Fatalf("RESHAPE %v to %v", in(0), shape)
		}
		return shape
	case fb.BuiltinOperatorTRANSPOSE:
		perm := constInt32s(t, m, op.Inputs[1])
		out := make([]int32, len(perm))
		for i, p := range perm {
			out[i] = in(0)[p]
		}
		return out
	case fb.BuiltinOperatorBATCH_MATMUL:
		a, b := in(0), in(1)
		opts := op.BuiltinOptions.Value.(*fb.BatchMatMulOptionsT)
		k, n := b[1], b[2]
		if opts.AdjY {
			k, n = b[2], b[1]
		}
		if len(a) != 3 || len(b) != 3 || a[0] != b[0] || a[2] != k || opts.AdjX {
			t.Fatalf("BATCH_MATMUL %v × %v (adj_y %v)", a, b, opts.AdjY)
		}
		return []int32{a[0], a[1], n}
	default:
		t.Fatalf("unexpected op %v", code)
		return nil
	}
}

func TestDecoderGraphIsConsistent(t *testing.T) {
	for _, act := range []string{ActSiLU, ActGELU} {
		t.Run(act, func(t *testing.T) {
			c := tinyConfig(t)
			c.Activation = act
			m := mustDecoder(t, c)
			sg := m.Meta.Subgraphs[0]
			if len(m.Buffers) != len(m.Meta.Buffers) || m.Buffers[0].Data != nil {
				t.Fatalf("buffers: %d contents for %d entries; buffer 0 data %v", len(m.Buffers), len(m.Meta.Buffers), m.Buffers[0].Data)
			}
			if m.Meta.Version != 3 || m.Meta.Description != "MLIR Converted." {
				t.Errorf("version %d description %q", m.Meta.Version, m.Meta.Description)
			}
			// Every tensor is a constant, the graph input, or the output
			// of exactly one earlier op; every op's inputs exist when it runs.
			ready := map[int32]bool{}
			for i, tt := range sg.Tensors {
				if int(tt.Buffer) >= len(m.Buffers) || tt.Buffer == 0 {
					t.Fatalf("tensor %d (%s): buffer %d", i, tt.Name, tt.Buffer)
				}
				for _, d := range tt.Shape {
					if d < 1 {
						t.Fatalf("tensor %d (%s): shape %v", i, tt.Name, tt.Shape)
					}
				}
				if data := m.Buffers[tt.Buffer].Data; data != nil {
					if data.Len() != 4*prod(tt.Shape) {
						t.Fatalf("tensor %d (%s): %d bytes for shape %v", i, tt.Name, data.Len(), tt.Shape)
					}
					ready[int32(i)] = true
				}
			}
			for _, in := range sg.Inputs {
				ready[in] = true
			}
			produced := map[int32]bool{}
			for i, op := range sg.Operators {
				for j, in := range op.Inputs {
					if in == -1 && m.OpCode(op) == fb.BuiltinOperatorFULLY_CONNECTED && j == 2 {
						continue
					}
					if in < 0 || int(in) >= len(sg.Tensors) || !ready[in] {
						t.Fatalf("op %d (%v): input %d = %d not ready", i, m.OpCode(op), j, in)
					}
				}
				if len(op.Outputs) != 1 || produced[op.Outputs[0]] || ready[op.Outputs[0]] {
					t.Fatalf("op %d: outputs %v produced twice or constant", i, op.Outputs)
				}
				out := op.Outputs[0]
				if got, want := sg.Tensors[out].Shape, inferShape(t, m, op); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("op %d (%v) output %s: shape %v, inputs give %v", i, m.OpCode(op), sg.Tensors[out].Name, got, want)
				}
				produced[out], ready[out] = true, true
			}
			// Every activation is used: produced ops reach the output.
			used := map[int32]bool{sg.Outputs[0]: true}
			for _, op := range sg.Operators {
				for _, in := range op.Inputs {
					used[in] = true
				}
			}
			for i, tt := range sg.Tensors {
				if !used[int32(i)] {
					t.Errorf("tensor %d (%s) is never read", i, tt.Name)
				}
			}
			if got := sg.Tensors[sg.Outputs[0]].Shape; fmt.Sprint(got) != fmt.Sprint([]int32{int32(c.Seq), int32(c.Vocab)}) {
				t.Errorf("logits shape %v", got)
			}
		})
	}
}

func TestDecoderSignature(t *testing.T) {
	m := mustDecoder(t, tinyConfig(t))
	sg := m.Meta.Subgraphs[0]
	if len(m.Meta.SignatureDefs) != 1 {
		t.Fatalf("%d signatures", len(m.Meta.SignatureDefs))
	}
	sig := m.Meta.SignatureDefs[0]
	if sig.SignatureKey != "serving_default" || len(sig.Inputs) != len(sg.Inputs) || len(sig.Outputs) != len(sg.Outputs) {
		t.Fatalf("signature %+v for subgraph inputs %v outputs %v", sig, sg.Inputs, sg.Outputs)
	}
	in, out := sg.Tensors[sig.Inputs[0].TensorIndex], sg.Tensors[sig.Outputs[0].TensorIndex]
	if sig.Inputs[0].Name != "tokens" || int32(sig.Inputs[0].TensorIndex) != sg.Inputs[0] || in.Type != fb.TensorTypeINT32 || in.Name != "serving_default_tokens:0" {
		t.Errorf("input %+v → tensor %q type %v", sig.Inputs[0], in.Name, in.Type)
	}
	if sig.Outputs[0].Name != "logits" || int32(sig.Outputs[0].TensorIndex) != sg.Outputs[0] || out.Name != "StatefulPartitionedCall:0" {
		t.Errorf("output %+v → tensor %q", sig.Outputs[0], out.Name)
	}
}

func TestDecoderTiesLMHeadToEmbedding(t *testing.T) {
	m := mustDecoder(t, tinyConfig(t))
	sg := m.Meta.Subgraphs[0]
	var emb, head int32 = -1, -1
	for _, op := range sg.Operators {
		switch {
		case m.OpCode(op) == fb.BuiltinOperatorEMBEDDING_LOOKUP:
			emb = op.Inputs[1]
		case m.OpCode(op) == fb.BuiltinOperatorFULLY_CONNECTED && op.Outputs[0] == sg.Outputs[0]:
			head = op.Inputs[1]
		}
	}
	if emb < 0 || head < 0 || emb == head {
		t.Fatalf("embedding table tensor %d, lm_head weight tensor %d: want two distinct tensors", emb, head)
	}
	te, th := sg.Tensors[emb], sg.Tensors[head]
	if te.Buffer != th.Buffer || fmt.Sprint(te.Shape) != fmt.Sprint(th.Shape) || te.Type != th.Type {
		t.Errorf("embedding %s buffer %d %v, lm_head %s buffer %d %v", te.Name, te.Buffer, te.Shape, th.Name, th.Buffer, th.Shape)
	}
	for i, tt := range sg.Tensors {
		if tt.Buffer == te.Buffer && int32(i) != emb && int32(i) != head {
			t.Errorf("tensor %d (%s) also uses the table buffer", i, tt.Name)
		}
	}
}

// opScope is the reference quantizer's op scope: the output names joined
// by ";" plus a trailing ";".
func opScope(sg *fb.SubGraphT, op *fb.OperatorT) string {
	var names []string
	for _, o := range op.Outputs {
		if o >= 0 && sg.Tensors[o].Name != "" {
			names = append(names, sg.Tensors[o].Name)
		}
	}
	return strings.Join(names, ";") + ";"
}

// The role rules the LiteRT Torch generative quantizer emits (SEMANTICS.md
// §4), with both package spellings.
const upstreamPkg = "(ai_edge_torch|litert_torch)"

// blockRules returns the per-index attention and feed-forward rules of
// blocks 0…n−1.
func blockRules(n int) (attention, feedForward []*regexp.Regexp) {
	for i := 0; i < n; i++ {
		attention = append(attention, regexp.MustCompile(fmt.Sprintf(`transformer_blocks\[%d\]/%s.generative.layers.attention`, i, upstreamPkg)))
		feedForward = append(feedForward, regexp.MustCompile(fmt.Sprintf(`transformer_blocks\[%d\]/%s.generative.layers.feed_forward`, i, upstreamPkg)))
	}
	return attention, feedForward
}

var (
	embeddingRule = regexp.MustCompile(`Embedding_tok_embedding`)
	lmHeadRule    = regexp.MustCompile(`StatefulPartitionedCall`)
	singleRules   = []*regexp.Regexp{
		regexp.MustCompile(`transformer_block/` + upstreamPkg + `.generative.layers.attention`),
		regexp.MustCompile(`transformer_block/` + upstreamPkg + `.generative.layers.feed_forward`),
	}
)

// TestDecoderNamesMatchRoleRules checks that each weight op matches exactly
// the upstream role rules of its role, layer by layer.
func TestDecoderNamesMatchRoleRules(t *testing.T) {
	c := tinyConfig(t)
	c.Layers = 12 // blocks 1 and 10, 11: "[1]" must not match "[10]"
	m := mustDecoder(t, c)
	sg := m.Meta.Subgraphs[0]
	attentionRules, feedForwardRules := blockRules(c.Layers)
	want := map[string]int{}
	got := map[string]int{}
	fcs := map[string]int{}
	for _, op := range sg.Operators {
		code := m.OpCode(op)
		scope := opScope(sg, op)
		var matched []string
		if embeddingRule.MatchString(scope) {
			matched = append(matched, "embedding")
		}
		if code == fb.BuiltinOperatorFULLY_CONNECTED && lmHeadRule.MatchString(scope) {
			matched = append(matched, "lm_head")
		}
		for i := 0; i < c.Layers; i++ {
			if attentionRules[i].MatchString(scope) {
				matched = append(matched, fmt.Sprintf("attention[%d]", i))
			}
			if feedForwardRules[i].MatchString(scope) {
				matched = append(matched, fmt.Sprintf("feedforward[%d]", i))
			}
		}
		for _, r := range singleRules {
			if r.MatchString(scope) {
				t.Errorf("op %q matches the single-block rule %v; the stock decoder has none", scope, r)
			}
		}
		if len(matched) > 1 {
			t.Errorf("op %v %q matches %v", code, scope, matched)
		}
		for _, r := range matched {
			got[r]++
			if code == fb.BuiltinOperatorFULLY_CONNECTED || code == fb.BuiltinOperatorEMBEDDING_LOOKUP {
				fcs[r]++
			}
		}
		if len(matched) == 0 && (code == fb.BuiltinOperatorFULLY_CONNECTED || code == fb.BuiltinOperatorEMBEDDING_LOOKUP) {
			t.Errorf("weight op %v %q matches no role", code, scope)
		}
	}
	want["embedding"], want["lm_head"] = 1, 1
	for i := 0; i < c.Layers; i++ {
		want[fmt.Sprintf("attention[%d]", i)] = 4   // q, k, v, output
		want[fmt.Sprintf("feedforward[%d]", i)] = 3 // w1, w3, w2
	}
	if fmt.Sprint(fcs) != fmt.Sprint(want) {
		t.Errorf("weight ops per role:\n got %v\nwant %v", fcs, want)
	}
	// Non-weight ops of attention (reshape, BMM, softmax…) and of the
	// feed-forward (activation, gating MUL) carry the same module paths.
	if got["attention[0]"] <= 4 || got["feedforward[0]"] <= 3 {
		t.Errorf("ops per role %v: the attention/feed-forward internals should share the module scope", got)
	}
}

func TestDecoderNamesAreConverterStyle(t *testing.T) {
	m := mustDecoder(t, tinyConfig(t))
	sg := m.Meta.Subgraphs[0]
	names := map[string]bool{}
	for i, tt := range sg.Tensors {
		if tt.Name == "" || names[tt.Name] {
			t.Errorf("tensor %d: name %q empty or repeated", i, tt.Name)
		}
		names[tt.Name] = true
	}
	for _, want := range []string{
		"torch.nn.modules.sparse.Embedding_tok_embedding;",
		"litert_torch.generative.layers.attention.TransformerBlock_transformer_blocks[1]/litert_torch.generative.layers.attention.CausalSelfAttention_atten_func/torch.nn.modules.linear.Linear_q_projection;",
		"litert_torch.generative.layers.attention.TransformerBlock_transformer_blocks[1]/litert_torch.generative.layers.attention.CausalSelfAttention_atten_func/torch.nn.modules.linear.Linear_output_projection;",
		"litert_torch.generative.layers.attention.TransformerBlock_transformer_blocks[0]/litert_torch.generative.layers.attention.CausalSelfAttention_atten_func;",
		"litert_torch.generative.layers.attention.TransformerBlock_transformer_blocks[0]/litert_torch.generative.layers.attention.CausalSelfAttention_atten_func;1",
		"litert_torch.generative.layers.attention.TransformerBlock_transformer_blocks[0]/litert_torch.generative.layers.feed_forward.GatedFeedForward_ff/torch.nn.modules.linear.Linear_w2;",
		"litert_torch.generative.layers.attention.TransformerBlock_transformer_blocks[0]/litert_torch.generative.layers.normalization.RMSNorm_pre_atten_norm;4",
		"litert_torch.generative.layers.attention.TransformerBlock_transformer_blocks[0];1",
		"litert_torch.generative.layers.normalization.RMSNorm_final_norm;",
		"arith.constant", "arith.constant1",
		"StatefulPartitionedCall:0",
		"serving_default_tokens:0",
	} {
		if !names[want] {
			t.Errorf("no tensor named %q", want)
		}
	}
	for _, op := range sg.Operators {
		for _, in := range op.Inputs {
			if in >= 0 && sg.Tensors[in].Buffer != 0 && m.Buffers[sg.Tensors[in].Buffer].Data != nil && !strings.HasPrefix(sg.Tensors[in].Name, "arith.constant") {
				t.Errorf("constant %q is not named arith.constantN", sg.Tensors[in].Name)
			}
		}
	}
}

func TestDecoderOpcodes(t *testing.T) {
	c := tinyConfig(t)
	c.Activation = ActGELU
	m := mustDecoder(t, c)
	seen := map[fb.BuiltinOperator]bool{}
	for _, oc := range m.Meta.OperatorCodes {
		code := tflite.BuiltinCode(oc)
		if seen[code] {
			t.Errorf("operator code %v listed twice", code)
		}
		seen[code] = true
		if oc.Version != 1 || oc.BuiltinCode != code || int32(oc.DeprecatedBuiltinCode) != int32(min(code, 127)) {
			t.Errorf("%v: version %d, builtin %d, deprecated %d", code, oc.Version, oc.BuiltinCode, oc.DeprecatedBuiltinCode)
		}
	}
	for _, code := range []fb.BuiltinOperator{fb.BuiltinOperatorEMBEDDING_LOOKUP, fb.BuiltinOperatorFULLY_CONNECTED,
		fb.BuiltinOperatorBATCH_MATMUL, fb.BuiltinOperatorSOFTMAX, fb.BuiltinOperatorGELU, fb.BuiltinOperatorRSQRT, fb.BuiltinOperatorMEAN} {
		if !seen[code] {
			t.Errorf("no %v", code)
		}
	}
	if seen[fb.BuiltinOperatorLOGISTIC] {
		t.Error("gelu model uses LOGISTIC")
	}
}

func bufferHashes(t *testing.T, m *tflite.Model) map[string][32]byte {
	t.Helper()
	h := map[string][32]byte{}
	for _, tt := range m.Meta.Subgraphs[0].Tensors {
		if c := m.Buffers[tt.Buffer].Data; c != nil {
			raw, err := tflite.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			h[tt.Name] = sha256.Sum256(raw)
		}
	}
	return h
}

func TestDecoderWeightsAreDeterministic(t *testing.T) {
	c := smallConfig(t)
	a, b := bufferHashes(t, mustDecoder(t, c)), bufferHashes(t, mustDecoder(t, c))
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatal("two builds of the same config differ")
	}
	c2 := c
	c2.Seed++
	other := bufferHashes(t, mustDecoder(t, c2))
	same := 0
	for name, h := range a {
		if other[name] == h {
			same++
		}
	}
	// Only the graph constants (shapes, axis, eps, scale, mask) may agree.
	if same > 7 {
		t.Errorf("seed %d and %d share %d of %d constants", c.Seed, c2.Seed, same, len(a))
	}
}

// A weight's values depend on the seed and its module path only, so block 0
// of a 2-block and of a 3-block model are the same.
func TestWeightValuesDependOnKeyOnly(t *testing.T) {
	w := weight{key: "transformer_blocks[0].ff.w1.weight", kind: kindMatrix, rows: 8, cols: 64}
	a, b := w.values(7), w.values(7)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatal("same key and seed differ")
	}
	w2 := w
	w2.key = "transformer_blocks[1].ff.w1.weight"
	if fmt.Sprint(a) == fmt.Sprint(w2.values(7)) || fmt.Sprint(a) == fmt.Sprint(w.values(8)) {
		t.Fatal("different key or seed gives the same values")
	}
	raw, err := tflite.ReadAll(w.content(7))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range a {
		if got := binary.LittleEndian.Uint32(raw[4*i:]); got != math.Float32bits(v) {
			t.Fatalf("content byte %d differs from value %d", 4*i, i)
		}
	}
}

func TestDecoderParamCount(t *testing.T) {
	for _, tc := range []struct {
		preset string
		nodiv  bool
		want   int64
	}{
		{"tiny", false, 1_574_144},
		{"tiny", true, 1_524_992},
		{"1gb", false, 271_075_328},
		{"4gb", false, 990_455_808},
		{"7b", false, 6_708_006_912},
	} {
		c, _ := Preset(tc.preset)
		c.NotDivisible = tc.nodiv
		if got := c.Params(); got != tc.want {
			t.Errorf("%s (not divisible %v): %d params, want %d", tc.preset, tc.nodiv, got, tc.want)
		}
		if tc.preset != "tiny" && tc.preset != "1gb" {
			continue
		}
		// Count what the graph holds: every float32 constant buffer of
		// rank ≥ 1 except the mask, each buffer once.
		m := mustDecoder(t, c)
		seen := map[uint32]bool{}
		var n int64
		for _, tt := range m.Meta.Subgraphs[0].Tensors {
			if m.Buffers[tt.Buffer].Data == nil || seen[tt.Buffer] || tt.Type != fb.TensorTypeFLOAT32 || len(tt.Shape) == 0 {
				continue
			}
			seen[tt.Buffer] = true
			if _, ok := m.Buffers[tt.Buffer].Data.(tflite.ContentFunc); ok {
				n += prod(tt.Shape)
			}
		}
		if n != c.Params() || 4*n != c.WeightBytes() {
			t.Errorf("%s: graph holds %d generated weights, Params says %d", tc.preset, n, c.Params())
		}
	}
}

func TestNotDivisible(t *testing.T) {
	c := tinyConfig(t)
	c.NotDivisible = true
	m := mustDecoder(t, c)
	sg := m.Meta.Subgraphs[0]
	blocks := func(in int32) string {
		var ok []string
		for _, b := range []int32{32, 64, 128, 256} {
			if in%b == 0 {
				ok = append(ok, fmt.Sprint(b))
			}
		}
		return strings.Join(ok, ",")
	}
	count := map[string]int{}
	for _, op := range sg.Operators {
		if code := m.OpCode(op); code == fb.BuiltinOperatorFULLY_CONNECTED || code == fb.BuiltinOperatorEMBEDDING_LOOKUP {
			w := sg.Tensors[op.Inputs[1]]
			isDown := strings.Contains(opScope(sg, op), "Linear_w2;")
			got := blocks(w.Shape[1])
			if isDown && got != "32" || !isDown && got != "32,64,128,256" {
				t.Errorf("%s %v: blocks %s", opScope(sg, op), w.Shape, got)
			}
			count[got]++
		}
	}
	if count["32"] != c.Layers {
		t.Errorf("%d weights take block 32 only, want one per block (%d)", count["32"], c.Layers)
	}
}

func TestConfigValidate(t *testing.T) {
	base := tinyConfig(t)
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"ok", func(*Config) {}, ""},
		{"zero vocab", func(c *Config) { c.Vocab = 0 }, "vocab = 0"},
		{"negative layers", func(c *Config) { c.Layers = -1 }, "layers = -1"},
		{"huge dim", func(c *Config) { c.Dim = 1 << 22 }, "dim = 4194304"},
		{"heads", func(c *Config) { c.Heads = 3 }, "not divisible by heads 3"},
		{"activation", func(c *Config) { c.Activation = "relu" }, `activation "relu"`},
		{"not divisible too small", func(c *Config) { c.FFN = 32; c.NotDivisible = true }, "ffn must exceed 32"},
		{"too many elements", func(c *Config) { c.Vocab = 1 << 20; c.Dim = 1 << 12; c.Heads = 1 }, "more than 2^31"},
	} {
		c := base
		tc.edit(&c)
		err := c.Validate()
		if _, derr := Decoder(c); fmt.Sprint(derr) != fmt.Sprint(err) {
			t.Errorf("%s: Decoder error %v, Validate %v", tc.name, derr, err)
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

func TestPresetNames(t *testing.T) {
	if got := strings.Join(PresetNames(), " "); got != "tiny 1gb 4gb 7b" {
		t.Errorf("presets %q", got)
	}
	for _, n := range PresetNames() {
		c, _ := Preset(n)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", n, err)
		}
		if c.Dim%256 != 0 || c.FFN%256 != 0 {
			t.Errorf("%s: dim %d ffn %d not multiples of 256", n, c.Dim, c.FFN)
		}
	}
}
