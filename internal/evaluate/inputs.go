package evaluate

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/qpipe/qpipe/internal/interp"
	"github.com/qpipe/qpipe/internal/modelinput"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// DefaultSeq is the length a token input with a dynamic (-1) sequence
// dimension runs at when no length is asked for.
const DefaultSeq = 64

// TokensKey names the token input in an inputs file whatever the model
// calls it, when the signature has exactly one token input and no input of
// that name.
const TokensKey = "tokens"

// Input is one signature input as the evaluation fills it.
type Input struct {
	interp.IO
	// Vocab > 0 marks a token input: an integer input that indexes an
	// embedding table of Vocab rows; generated ids are uniform in
	// [0, Vocab).
	Vocab int
	// Shape is the shape it runs at: the model's, with a token input's
	// dynamic last (sequence) dimension at the asked length and every
	// other dynamic dimension at 1.
	Shape []int
	index int // position in the signature, which selects its stream
}

// Layout is how a signature's inputs are filled for one run of Compare
// or Smoke.
type Layout struct {
	Signature string
	Inputs    []Input
	// Seq is the sequence length of the token inputs (0: the signature
	// has no token input with a sequence dimension).
	Seq int
}

// PlanInputs resolves the inputs of sig. tokens maps the tensor indices of
// its token inputs to their vocabularies (modelinput.TokenInputs). seq is
// the asked sequence length, 0 for the model's own (DefaultSeq where it
// is dynamic). The sequence dimension is the last dimension of a token
// input; a fixed one must equal seq, or it is an error that says the
// model's length.
func PlanInputs(sig interp.Signature, tokens map[int]int, seq int) (*Layout, error) {
	l := &Layout{Signature: sig.Key}
	for i, io := range sig.Inputs {
		in := Input{IO: io, Vocab: tokens[io.Tensor], Shape: make([]int, len(io.Shape)), index: i}
		if in.Vocab > 0 && !isInteger(io.Type) {
			in.Vocab = 0
		}
		for d, n := range io.Shape {
			in.Shape[d] = max(n, 1)
		}
		if in.Vocab > 0 && len(io.Shape) > 0 {
			last := len(io.Shape) - 1
			switch n := io.Shape[last]; {
			case n < 0:
				in.Shape[last] = seq
				if seq == 0 {
					in.Shape[last] = DefaultSeq
				}
			case seq != 0 && n != seq:
				return nil, fmt.Errorf("signature %q: the model's sequence length is %d (token input %q has shape %v), not %d: ask for %d or leave the length out",
					sig.Key, n, io.Name, io.Shape, seq, n)
			}
			if l.Seq != 0 && l.Seq != in.Shape[last] {
				return nil, fmt.Errorf("signature %q: token inputs of different lengths (%d and %d at input %q)", sig.Key, l.Seq, in.Shape[last], io.Name)
			}
			l.Seq = in.Shape[last]
		}
		l.Inputs = append(l.Inputs, in)
	}
	if seq != 0 && l.Seq == 0 {
		return nil, fmt.Errorf("signature %q has no token input (an integer input with a sequence dimension that indexes an embedding table): a sequence length does not apply to it", sig.Key)
	}
	return l, nil
}

// SampleSeed is the seed of sample k of a run seeded with seed: seed +
// k·0x9E3779B97F4A7C15 (wrapping), so sample 0 is seed's own stream.
func SampleSeed(seed int64, k int) int64 {
	return int64(uint64(seed) + uint64(k)*0x9E3779B97F4A7C15)
}

// Generate returns sample k of the layout's inputs for seed: token ids
// uniform in [0, Vocab), other integers uniform in [0, 4), floats uniform
// in [-1, 1) (quantized for an INT8 or INT16 input), booleans fair coins, each input from its own
// modelinput.Stream (seeded SampleSeed(seed, k), indexed by its position
// in the signature).
func (l *Layout) Generate(seed int64, k int) (map[string]*interp.Tensor, error) {
	out := make(map[string]*interp.Tensor, len(l.Inputs))
	for _, in := range l.Inputs {
		t, err := in.generate(SampleSeed(seed, k))
		if err != nil {
			return nil, err
		}
		out[in.Name] = t
	}
	return out, nil
}

func (in *Input) generate(seed int64) (*interp.Tensor, error) {
	n := numElements(in.Shape)
	s := modelinput.NewStream(seed, in.index)
	t := &interp.Tensor{Type: in.Type, Shape: slices.Clone(in.Shape)}
	switch in.Type {
	case fb.TensorTypeFLOAT32:
		t.F32 = make([]float32, n)
		for i := range t.F32 {
			t.F32[i] = s.Float()
		}
	case fb.TensorTypeINT32:
		t.I32 = make([]int32, n)
		for i := range t.I32 {
			t.I32[i] = int32(s.Below(uint32(in.Vocab)))
		}
	case fb.TensorTypeINT64:
		t.I64 = make([]int64, n)
		for i := range t.I64 {
			t.I64[i] = int64(s.Below(uint32(in.Vocab)))
		}
	case fb.TensorTypeBOOL:
		t.Bool = make([]bool, n)
		for i := range t.Bool {
			t.Bool[i] = s.Next()>>31 == 1
		}
	case fb.TensorTypeINT8, fb.TensorTypeINT16:
		if err := quantOK(in.IO); err != nil {
			return nil, fmt.Errorf("input %v", err)
		}
		f := make([]float32, n)
		for i := range f {
			f[i] = s.Float()
		}
		return quantizeTo(in.Type, t.Shape, f, in.Scale, in.ZeroPoint), nil
	default:
		return nil, fmt.Errorf("input %q is %s: only FLOAT32, INT32, INT64, BOOL and quantized INT8 and INT16 inputs can be generated or read", in.Name, in.Type)
	}
	return t, nil
}

// Bind turns sample k, a line of an inputs file, into the layout's
// inputs: the inputs it names get its values (checked against their type,
// shape and vocabulary), the others are generated as Generate does. A
// token input's dynamic sequence dimension takes the written length;
// seq > 0 (an asked length) must then equal it.
func (l *Layout) Bind(s *Sample, file string, seed int64, k, seq int) (map[string]*interp.Tensor, error) {
	errf := func(col int, format string, a ...any) error {
		return &SampleError{File: file, Line: s.Line, Col: col, Msg: fmt.Sprintf(format, a...)}
	}
	byName := map[string]*Input{}
	var tokenInputs []*Input
	for i := range l.Inputs {
		byName[l.Inputs[i].Name] = &l.Inputs[i]
		if l.Inputs[i].Vocab > 0 {
			tokenInputs = append(tokenInputs, &l.Inputs[i])
		}
	}
	if _, named := byName[TokensKey]; !named && len(tokenInputs) == 1 {
		byName[TokensKey] = tokenInputs[0]
	}
	out := map[string]*interp.Tensor{}
	for _, key := range s.keys {
		v := s.Values[key]
		in, ok := byName[key]
		if !ok {
			return nil, errf(v.col, "signature %q has no input %q; its inputs are %s", l.Signature, key, inputNames(l.Inputs))
		}
		if _, dup := out[in.Name]; dup {
			return nil, errf(v.col, "input %q is given twice (as %q and by its name)", in.Name, TokensKey)
		}
		t, err := in.bind(v, seq)
		if err != nil {
			return nil, errf(v.col, "input %q: %v", key, err)
		}
		out[in.Name] = t
	}
	sampleSeed := SampleSeed(seed, k)
	for i := range l.Inputs {
		in := &l.Inputs[i]
		if _, given := out[in.Name]; given {
			continue
		}
		t, err := in.generate(sampleSeed)
		if err != nil {
			return nil, errf(0, "%v", err)
		}
		out[in.Name] = t
	}
	return out, nil
}

func inputNames(ins []Input) string {
	names := make([]string, len(ins))
	for i, in := range ins {
		names[i] = fmt.Sprintf("%q", in.Name)
	}
	return strings.Join(names, ", ")
}

// bind converts a written value to the input's tensor.
func (in *Input) bind(v *Value, seq int) (*interp.Tensor, error) {
	shape, err := in.shapeFor(v, seq)
	if err != nil {
		return nil, err
	}
	t := &interp.Tensor{Type: in.Type, Shape: shape}
	n := len(v.Nums)
	switch in.Type {
	case fb.TensorTypeFLOAT32, fb.TensorTypeINT8, fb.TensorTypeINT16:
		// A quantized integer input reads real values, as a float one.
		if err := quantOK(in.IO); err != nil {
			return nil, err
		}
		f := make([]float32, n)
		for i, num := range v.Nums {
			x, err := num.Float64()
			if err != nil || math.IsInf(x, 0) || math.Abs(x) > math.MaxFloat32 {
				return nil, fmt.Errorf("element %d (%s) is not a finite float32", i, num)
			}
			f[i] = float32(x)
		}
		if in.Type != fb.TensorTypeFLOAT32 {
			return quantizeTo(in.Type, shape, f, in.Scale, in.ZeroPoint), nil
		}
		t.F32 = f
	case fb.TensorTypeINT32, fb.TensorTypeINT64, fb.TensorTypeBOOL:
		lo, hi := int64(math.MinInt32), int64(math.MaxInt32)
		what := "an int32"
		switch {
		case in.Vocab > 0:
			lo, hi, what = 0, int64(in.Vocab)-1, fmt.Sprintf("a token id in [0, %d) (the embedding table's rows)", in.Vocab)
		case in.Type == fb.TensorTypeINT64:
			lo, hi, what = math.MinInt64, math.MaxInt64, "an int64"
		case in.Type == fb.TensorTypeBOOL:
			lo, hi, what = 0, 1, "0 or 1 (a boolean input)"
		}
		vals := make([]int64, n)
		for i, num := range v.Nums {
			x, err := num.Int64()
			if err != nil || x < lo || x > hi {
				return nil, fmt.Errorf("element %d (%s) is not %s", i, num, what)
			}
			vals[i] = x
		}
		switch in.Type {
		case fb.TensorTypeINT32:
			t.I32 = make([]int32, n)
			for i, x := range vals {
				t.I32[i] = int32(x)
			}
		case fb.TensorTypeINT64:
			t.I64 = vals
		default:
			t.Bool = make([]bool, n)
			for i, x := range vals {
				t.Bool[i] = x == 1
			}
		}
	default:
		return nil, fmt.Errorf("it is %s: only FLOAT32, INT32, INT64, BOOL and quantized INT8 and INT16 inputs can be read", in.Type)
	}
	return t, nil
}

// shapeFor returns the shape a written value runs at. Nested lists of
// the input's rank give their own shape, which must agree with the
// model's fixed dimensions; a flat list fills the model's shape, with one
// dynamic dimension (a token input's sequence, or the only one) taking
// what the count leaves.
func (in *Input) shapeFor(v *Value, seq int) ([]int, error) {
	model := in.IO.Shape
	n := len(v.Nums)
	var shape []int
	switch {
	case len(v.Shape) == len(model):
		shape = slices.Clone(v.Shape)
		if shape == nil {
			shape = []int{}
		}
		for d, m := range model {
			if m >= 0 && shape[d] != m {
				return nil, fmt.Errorf("shape %v, the model's is %v (dimension %d must be %d)", v.Shape, model, d, m)
			}
		}
	case len(v.Shape) <= 1:
		shape = slices.Clone(in.Shape)
		free := -1
		for d, m := range model {
			if m < 0 && (free < 0 || in.Vocab > 0 && d == len(model)-1) {
				free = d
			}
		}
		rest := 1
		for d, s := range shape {
			if d != free {
				rest *= s
			}
		}
		if free >= 0 {
			if rest == 0 || n%rest != 0 || n == 0 {
				return nil, fmt.Errorf("%d values do not fill the model's shape %v", n, model)
			}
			shape[free] = n / rest
		} else if n != rest {
			return nil, fmt.Errorf("%d values, the model's shape %v takes %d", n, model, rest)
		}
	default:
		return nil, fmt.Errorf("lists of shape %v, the model's shape %v has rank %d: write a flat list or lists of its rank", v.Shape, model, len(model))
	}
	if numElements(shape) == 0 {
		return nil, fmt.Errorf("no values")
	}
	if in.Vocab > 0 && len(shape) > 0 && seq > 0 && shape[len(shape)-1] != seq {
		return nil, fmt.Errorf("%d tokens per sequence, but a length of %d was asked for", shape[len(shape)-1], seq)
	}
	return shape, nil
}

func numElements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func isInteger(t fb.TensorType) bool {
	return t == fb.TensorTypeINT32 || t == fb.TensorTypeINT64
}
