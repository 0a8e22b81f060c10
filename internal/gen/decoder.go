package gen

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// Names of the signature and its tensors (see doc.go).
const (
	SignatureKey     = "serving_default"
	InputName        = "tokens"
	OutputName       = "logits"
	inputTensorName  = "serving_default_tokens:0"
	outputTensorName = "StatefulPartitionedCall:0"
	description      = "MLIR Converted."
	rmsEps           = 1e-6
)

// Module paths of the LiteRT Torch decoder, as its converter names scopes:
// one level per module, "<class qualified name>_<attribute>", joined by "/".
const (
	pkg            = "litert_torch.generative.layers."
	scopeEmbedding = "torch.nn.modules.sparse.Embedding_tok_embedding"
	scopeFinalNorm = pkg + "normalization.RMSNorm_final_norm"
	linearPrefix   = "torch.nn.modules.linear.Linear_"
)

// blockScope is the scope of transformer block i.
func blockScope(i int) string {
	return fmt.Sprintf("%sattention.TransformerBlock_transformer_blocks[%d]", pkg, i)
}

func attnScope(i int) string {
	return blockScope(i) + "/" + pkg + "attention.CausalSelfAttention_atten_func"
}
func ffScope(i int) string { return blockScope(i) + "/" + pkg + "feed_forward.GatedFeedForward_ff" }
func normScope(i int, attr string) string {
	return blockScope(i) + "/" + pkg + "normalization.RMSNorm_" + attr
}

// Decoder builds the float32 decoder-only transformer that cfg describes.
// Weight buffers are tflite.ContentFunc values that compute their bytes
// from (cfg.Seed, the weight's module path) each time they are written, so
// a model of any size costs only its tables in memory.
func Decoder(cfg Config) (*tflite.Model, error) {
	b, err := newBuilder(cfg, nil)
	if err != nil {
		return nil, err
	}
	return b.m, nil
}

// WeightSpec names one parameter tensor of the decoder: its module path
// (for example "transformer_blocks[0].atten_func.q_projection.weight") and
// its shape, [Rows, Cols] for a matrix (Cols the input dimension), [Cols]
// for a norm weight (Rows 0).
type WeightSpec struct {
	Key        string
	Rows, Cols int
}

// Numel is the number of elements.
func (w WeightSpec) Numel() int {
	if w.Rows == 0 {
		return w.Cols
	}
	return w.Rows * w.Cols
}

// Weights lists the decoder's parameter tensors in the order the graph
// holds them (the embedding table first; lm_head shares it).
func Weights(cfg Config) ([]WeightSpec, error) {
	b, err := newBuilder(cfg, nil)
	if err != nil {
		return nil, err
	}
	return b.specs, nil
}

// DecoderFrom builds the decoder of cfg with the given weight values
// (row-major float32, keyed by WeightSpec.Key) in place of generated ones:
// the same graph, names and roles as Decoder. Every key of Weights(cfg)
// must be present with its number of elements, and no other key.
func DecoderFrom(cfg Config, values map[string][]float32) (*tflite.Model, error) {
	if values == nil {
		return nil, fmt.Errorf("gen: DecoderFrom: no weights")
	}
	b, err := newBuilder(cfg, values)
	if err != nil {
		return nil, err
	}
	if b.err != nil {
		return nil, b.err
	}
	if len(b.specs) != len(values) {
		known := map[string]bool{}
		for _, s := range b.specs {
			known[s.Key] = true
		}
		for k := range values {
			if !known[k] {
				return nil, fmt.Errorf("gen: weight %q is not a weight of %s", k, cfg.Name)
			}
		}
	}
	return b.m, nil
}

func newBuilder(cfg Config, values map[string][]float32) (*builder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &builder{
		values:  values,
		cfg:     cfg,
		counts:  map[string]int{},
		created: map[string]int32{},
		m: &tflite.Model{
			Meta: &fb.ModelT{
				Version:     3,
				Description: description,
				Buffers:     []*fb.BufferT{{}},
			},
			Buffers: []tflite.Buffer{{}},
			Layout:  tflite.LayoutAuto,
			Name:    cfg.Name,
		},
		sg: &fb.SubGraphT{Name: "main", DebugMetadataIndex: -1},
	}
	if b.m.Name == "" {
		b.m.Name = "generated decoder"
	}
	b.m.Meta.Subgraphs = []*fb.SubGraphT{b.sg}
	b.build()
	return b, nil
}

// builder appends tensors, buffers and operators in converter order.
type builder struct {
	cfg    Config
	m      *tflite.Model
	sg     *fb.SubGraphT
	counts map[string]int // op outputs named so far per scope
	consts int            // arith.constant tensors so far
	// created holds the small graph constants (shapes, axes, scalars, the
	// mask) by purpose: one tensor serves every op that needs it, as the
	// converter's constant deduplication leaves them.
	created map[string]int32
	// values, when set, holds the weights by key (DecoderFrom); err is the
	// first weight missing from it or of the wrong size.
	values map[string][]float32
	err    error
	specs  []WeightSpec
}

// tensor appends a tensor; a nil content gives it its own empty buffer, as
// the MLIR converter does for activations.
func (b *builder) tensor(name string, typ fb.TensorType, shape []int32, c tflite.Content) int32 {
	buf := uint32(len(b.m.Buffers))
	b.m.Meta.Buffers = append(b.m.Meta.Buffers, &fb.BufferT{})
	b.m.Buffers = append(b.m.Buffers, tflite.Buffer{Data: c})
	return b.tensorOnBuffer(name, typ, shape, buf)
}

func (b *builder) tensorOnBuffer(name string, typ fb.TensorType, shape []int32, buf uint32) int32 {
	b.sg.Tensors = append(b.sg.Tensors, &fb.TensorT{
		Shape:        shape,
		Type:         typ,
		Buffer:       buf,
		Name:         name,
		Quantization: &fb.QuantizationParametersT{},
		HasRank:      true,
	})
	return int32(len(b.sg.Tensors) - 1)
}

// constName is the converter's name for the n-th constant.
func (b *builder) constName() string {
	n := b.consts
	b.consts++
	if n == 0 {
		return "arith.constant"
	}
	return fmt.Sprintf("arith.constant%d", n)
}

// activation appends the output tensor of an op in scope: "<scope>;" for the
// first, "<scope>;1", "<scope>;2"… after, the converter's counter suffixes.
func (b *builder) activation(scope string, shape ...int32) int32 {
	n := b.counts[scope]
	b.counts[scope] = n + 1
	name := scope + ";"
	if n > 0 {
		name = fmt.Sprintf("%s;%d", scope, n)
	}
	return b.tensor(name, fb.TensorTypeFLOAT32, shape, nil)
}

func (b *builder) weight(w weight) int32 {
	spec := WeightSpec{Key: w.key, Cols: w.cols}
	if w.kind == kindMatrix {
		spec.Rows = w.rows
	}
	b.specs = append(b.specs, spec)
	var c tflite.Content = w.content(b.cfg.Seed)
	if b.values != nil {
		v, ok := b.values[w.key]
		if !ok || int64(len(v)) != w.numel() {
			if b.err == nil {
				b.err = fmt.Errorf("gen: weight %s: %d values given, want %d", w.key, len(v), w.numel())
			}
		}
		raw := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
		}
		c = tflite.Bytes(raw)
	}
	return b.tensor(b.constName(), fb.TensorTypeFLOAT32, w.shape(), c)
}

func (b *builder) constInt32(key string, v ...int32) int32 {
	if t, ok := b.created[key]; ok {
		return t
	}
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(x))
	}
	t := b.tensor(b.constName(), fb.TensorTypeINT32, []int32{int32(len(v))}, tflite.Bytes(raw))
	b.created[key] = t
	return t
}

func (b *builder) constFloat32(key string, shape []int32, v []float32) int32 {
	if t, ok := b.created[key]; ok {
		return t
	}
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	t := b.tensor(b.constName(), fb.TensorTypeFLOAT32, shape, tflite.Bytes(raw))
	b.created[key] = t
	return t
}

// op appends an operator. Every OperatorCode keeps version 1: that is what
// LiteRT's op_version.cc gives each of these ops in float32, including
// FULLY_CONNECTED written as the converter writes a bias-free one (three
// inputs, the bias −1, so not the two-input form of version 6) with
// keep_num_dims false (not version 5).
func (b *builder) op(code fb.BuiltinOperator, opts *fb.BuiltinOptionsT, inputs []int32, output int32) int32 {
	idx := b.m.OperatorCodeIndex(code, 1)
	b.sg.Operators = append(b.sg.Operators, &fb.OperatorT{
		OpcodeIndex:        idx,
		Inputs:             inputs,
		Outputs:            []int32{output},
		BuiltinOptions:     opts,
		DebugMetadataIndex: -1,
	})
	return output
}

func addOpts() *fb.BuiltinOptionsT {
	return &fb.BuiltinOptionsT{Type: fb.BuiltinOptionsAddOptions, Value: &fb.AddOptionsT{PotScaleInt16: true}}
}

func mulOpts() *fb.BuiltinOptionsT {
	return &fb.BuiltinOptionsT{Type: fb.BuiltinOptionsMulOptions, Value: &fb.MulOptionsT{}}
}

func (b *builder) add(scope string, x, y int32, shape ...int32) int32 {
	return b.op(fb.BuiltinOperatorADD, addOpts(), []int32{x, y}, b.activation(scope, shape...))
}

func (b *builder) mul(scope string, x, y int32, shape ...int32) int32 {
	return b.op(fb.BuiltinOperatorMUL, mulOpts(), []int32{x, y}, b.activation(scope, shape...))
}

// linear is a FULLY_CONNECTED without bias (input 2 = −1, as the converter
// writes it) and keep_num_dims false: [seq, in] → [seq, out].
func (b *builder) linear(scope string, x int32, w weight) int32 {
	wt := b.weight(w)
	opts := &fb.BuiltinOptionsT{Type: fb.BuiltinOptionsFullyConnectedOptions, Value: &fb.FullyConnectedOptionsT{}}
	return b.op(fb.BuiltinOperatorFULLY_CONNECTED, opts, []int32{x, wt, -1}, b.activation(scope, int32(b.cfg.Seq), int32(w.rows)))
}

// rmsNorm is x·rsqrt(mean(x²) + eps)·weight over the last axis.
func (b *builder) rmsNorm(scope, key string, x int32) int32 {
	s, d := int32(b.cfg.Seq), int32(b.cfg.Dim)
	w := b.weight(weight{key: key, kind: kindNorm, cols: b.cfg.Dim})
	sq := b.mul(scope, x, x, s, d)
	axis := b.constInt32("mean axis", -1)
	mean := b.op(fb.BuiltinOperatorMEAN,
		&fb.BuiltinOptionsT{Type: fb.BuiltinOptionsReducerOptions, Value: &fb.ReducerOptionsT{KeepDims: true}},
		[]int32{sq, axis}, b.activation(scope, s, 1))
	eps := b.constFloat32("eps", []int32{}, []float32{rmsEps})
	sum := b.add(scope, mean, eps, s, 1)
	r := b.op(fb.BuiltinOperatorRSQRT, nil, []int32{sum}, b.activation(scope, s, 1))
	n := b.mul(scope, x, r, s, d)
	return b.mul(scope, n, w, s, d)
}

// heads reshapes [seq, dim] to [seq, heads, headDim] and transposes to
// [heads, seq, headDim].
func (b *builder) heads(scope string, x int32) int32 {
	s, h, hd := int32(b.cfg.Seq), int32(b.cfg.Heads), int32(b.cfg.HeadDim())
	shape := b.constInt32("shape heads", s, h, hd)
	r := b.op(fb.BuiltinOperatorRESHAPE, nil, []int32{x, shape}, b.activation(scope, s, h, hd))
	perm := b.constInt32("perm", 1, 0, 2)
	return b.op(fb.BuiltinOperatorTRANSPOSE,
		&fb.BuiltinOptionsT{Type: fb.BuiltinOptionsTransposeOptions, Value: &fb.TransposeOptionsT{}},
		[]int32{r, perm}, b.activation(scope, h, s, hd))
}

func bmmOpts(adjY bool) *fb.BuiltinOptionsT {
	return &fb.BuiltinOptionsT{Type: fb.BuiltinOptionsBatchMatMulOptions, Value: &fb.BatchMatMulOptionsT{AdjY: adjY}}
}

func (b *builder) attention(i int, x int32) int32 {
	c := b.cfg
	s, d, h, hd := int32(c.Seq), int32(c.Dim), int32(c.Heads), int32(c.HeadDim())
	scope := attnScope(i)
	proj := func(attr string) weight {
		return weight{key: fmt.Sprintf("transformer_blocks[%d].atten_func.%s.weight", i, attr), kind: kindMatrix, rows: c.Dim, cols: c.Dim}
	}
	q := b.linear(scope+"/"+linearPrefix+"q_projection", x, proj("q_projection"))
	k := b.linear(scope+"/"+linearPrefix+"k_projection", x, proj("k_projection"))
	v := b.linear(scope+"/"+linearPrefix+"v_projection", x, proj("v_projection"))
	qh, kh, vh := b.heads(scope, q), b.heads(scope, k), b.heads(scope, v)
	scores := b.op(fb.BuiltinOperatorBATCH_MATMUL, bmmOpts(true), []int32{qh, kh}, b.activation(scope, h, s, s))
	scale := b.constFloat32("scale", []int32{}, []float32{float32(1 / math.Sqrt(float64(c.HeadDim())))})
	scaled := b.mul(scope, scores, scale, h, s, s)
	masked := b.add(scope, scaled, b.causalMask(), h, s, s)
	probs := b.op(fb.BuiltinOperatorSOFTMAX,
		&fb.BuiltinOptionsT{Type: fb.BuiltinOptionsSoftmaxOptions, Value: &fb.SoftmaxOptionsT{Beta: 1}},
		[]int32{masked}, b.activation(scope, h, s, s))
	mixed := b.op(fb.BuiltinOperatorBATCH_MATMUL, bmmOpts(false), []int32{probs, vh}, b.activation(scope, h, s, hd))
	perm := b.constInt32("perm", 1, 0, 2)
	back := b.op(fb.BuiltinOperatorTRANSPOSE,
		&fb.BuiltinOptionsT{Type: fb.BuiltinOptionsTransposeOptions, Value: &fb.TransposeOptionsT{}},
		[]int32{mixed, perm}, b.activation(scope, s, h, hd))
	flat := b.op(fb.BuiltinOperatorRESHAPE, nil, []int32{back, b.constInt32("shape flat", s, d)}, b.activation(scope, s, d))
	return b.linear(scope+"/"+linearPrefix+"output_projection", flat, proj("output_projection"))
}

// causalMask is [seq, seq]: 0 where key position ≤ query position, the
// lowest float32 elsewhere (finite, so no inf ever enters the graph).
func (b *builder) causalMask() int32 {
	n := b.cfg.Seq
	v := make([]float32, n*n)
	for q := 0; q < n; q++ {
		for k := q + 1; k < n; k++ {
			v[q*n+k] = -math.MaxFloat32
		}
	}
	return b.constFloat32("mask", []int32{int32(n), int32(n)}, v)
}

func (b *builder) feedForward(i int, x int32) int32 {
	c := b.cfg
	s, f := int32(c.Seq), int32(c.FFNWidth())
	scope := ffScope(i)
	key := func(attr string) string { return fmt.Sprintf("transformer_blocks[%d].ff.%s.weight", i, attr) }
	gate := b.linear(scope+"/"+linearPrefix+"w1", x, weight{key: key("w1"), kind: kindMatrix, rows: c.FFNWidth(), cols: c.Dim})
	var act int32
	if c.Activation == ActGELU {
		act = b.op(fb.BuiltinOperatorGELU,
			&fb.BuiltinOptionsT{Type: fb.BuiltinOptionsGeluOptions, Value: &fb.GeluOptionsT{}},
			[]int32{gate}, b.activation(scope, s, f))
	} else {
		sig := b.op(fb.BuiltinOperatorLOGISTIC, nil, []int32{gate}, b.activation(scope, s, f))
		act = b.mul(scope, gate, sig, s, f)
	}
	up := b.linear(scope+"/"+linearPrefix+"w3", x, weight{key: key("w3"), kind: kindMatrix, rows: c.FFNWidth(), cols: c.Dim})
	prod := b.mul(scope, act, up, s, f)
	return b.linear(scope+"/"+linearPrefix+"w2", prod, weight{key: key("w2"), kind: kindMatrix, rows: c.Dim, cols: c.FFNWidth()})
}

func (b *builder) build() {
	c := b.cfg
	s, d, v := int32(c.Seq), int32(c.Dim), int32(c.Vocab)

	tokens := b.tensor(inputTensorName, fb.TensorTypeINT32, []int32{s}, nil)
	table := weight{key: "tok_embedding.weight", kind: kindMatrix, rows: c.Vocab, cols: c.Dim}
	tableT := b.weight(table)
	x := b.op(fb.BuiltinOperatorEMBEDDING_LOOKUP, nil, []int32{tokens, tableT}, b.activation(scopeEmbedding, s, d))

	for i := 0; i < c.Layers; i++ {
		n := b.rmsNorm(normScope(i, "pre_atten_norm"), fmt.Sprintf("transformer_blocks[%d].pre_atten_norm.weight", i), x)
		x = b.add(blockScope(i), x, b.attention(i, n), s, d)
		n = b.rmsNorm(normScope(i, "post_atten_norm"), fmt.Sprintf("transformer_blocks[%d].post_atten_norm.weight", i), x)
		x = b.add(blockScope(i), x, b.feedForward(i, n), s, d)
	}
	x = b.rmsNorm(scopeFinalNorm, "final_norm.weight", x)

	// lm_head: its own tensor on the embedding table's buffer (tied weights).
	head := b.tensorOnBuffer(b.constName(), fb.TensorTypeFLOAT32, table.shape(), b.sg.Tensors[tableT].Buffer)
	logits := b.tensor(outputTensorName, fb.TensorTypeFLOAT32, []int32{s, v}, nil)
	b.op(fb.BuiltinOperatorFULLY_CONNECTED,
		&fb.BuiltinOptionsT{Type: fb.BuiltinOptionsFullyConnectedOptions, Value: &fb.FullyConnectedOptionsT{}},
		[]int32{x, head, -1}, logits)

	b.sg.Inputs = []int32{tokens}
	b.sg.Outputs = []int32{logits}
	b.m.Meta.SignatureDefs = []*fb.SignatureDefT{{
		Inputs:        []*fb.TensorMapT{{Name: InputName, TensorIndex: uint32(tokens)}},
		Outputs:       []*fb.TensorMapT{{Name: OutputName, TensorIndex: uint32(logits)}},
		SignatureKey:  SignatureKey,
		SubgraphIndex: 0,
	}}
}
