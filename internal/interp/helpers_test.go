package interp

import (
	"context"
	"encoding/binary"
	"math"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// builder makes small in-memory models for the op tests.
type builder struct {
	meta *fb.ModelT
	bufs []tflite.Buffer
	sg   *fb.SubGraphT
}

func newBuilder() *builder {
	b := &builder{meta: &fb.ModelT{Version: 3}, bufs: []tflite.Buffer{{}}}
	b.meta.Buffers = []*fb.BufferT{{}}
	b.sg = &fb.SubGraphT{Name: "main"}
	b.meta.Subgraphs = []*fb.SubGraphT{b.sg}
	return b
}

func shape32(s []int) []int32 {
	r := make([]int32, len(s))
	for i, d := range s {
		r[i] = int32(d)
	}
	return r
}

// tensor adds a tensor; data non-nil makes it constant.
func (b *builder) tensor(name string, typ fb.TensorType, shape []int, data []byte) int32 {
	buf := uint32(0)
	if data != nil {
		b.meta.Buffers = append(b.meta.Buffers, &fb.BufferT{})
		b.bufs = append(b.bufs, tflite.Buffer{Data: tflite.Bytes(data)})
		buf = uint32(len(b.bufs) - 1)
	}
	var sh []int32
	if shape != nil {
		sh = shape32(shape)
	}
	b.sg.Tensors = append(b.sg.Tensors, &fb.TensorT{Name: name, Type: typ, Shape: sh, Buffer: buf})
	return int32(len(b.sg.Tensors) - 1)
}

func (b *builder) op(code fb.BuiltinOperator, opts any, ins, outs []int32) *fb.OperatorT {
	idx := -1
	for i, oc := range b.meta.OperatorCodes {
		if oc.BuiltinCode == code {
			idx = i
		}
	}
	if idx < 0 {
		b.meta.OperatorCodes = append(b.meta.OperatorCodes, &fb.OperatorCodeT{BuiltinCode: code, Version: 1})
		idx = len(b.meta.OperatorCodes) - 1
	}
	op := &fb.OperatorT{OpcodeIndex: uint32(idx), Inputs: ins, Outputs: outs}
	if opts != nil {
		op.BuiltinOptions = &fb.BuiltinOptionsT{Type: optionsType(opts), Value: opts}
	}
	b.sg.Operators = append(b.sg.Operators, op)
	return op
}

func optionsType(o any) fb.BuiltinOptions {
	switch o.(type) {
	case *fb.AddOptionsT:
		return fb.BuiltinOptionsAddOptions
	case *fb.MulOptionsT:
		return fb.BuiltinOptionsMulOptions
	case *fb.SubOptionsT:
		return fb.BuiltinOptionsSubOptions
	case *fb.DivOptionsT:
		return fb.BuiltinOptionsDivOptions
	case *fb.FullyConnectedOptionsT:
		return fb.BuiltinOptionsFullyConnectedOptions
	case *fb.BatchMatMulOptionsT:
		return fb.BuiltinOptionsBatchMatMulOptions
	case *fb.StridedSliceOptionsT:
		return fb.BuiltinOptionsStridedSliceOptions
	case *fb.ReducerOptionsT:
		return fb.BuiltinOptionsReducerOptions
	case *fb.SoftmaxOptionsT:
		return fb.BuiltinOptionsSoftmaxOptions
	case *fb.ConcatenationOptionsT:
		return fb.BuiltinOptionsConcatenationOptions
	case *fb.GatherOptionsT:
		return fb.BuiltinOptionsGatherOptions
	case *fb.SplitOptionsT:
		return fb.BuiltinOptionsSplitOptions
	case *fb.PackOptionsT:
		return fb.BuiltinOptionsPackOptions
	case *fb.UnpackOptionsT:
		return fb.BuiltinOptionsUnpackOptions
	case *fb.GeluOptionsT:
		return fb.BuiltinOptionsGeluOptions
	case *fb.Conv2DOptionsT:
		return fb.BuiltinOptionsConv2DOptions
	case *fb.DepthwiseConv2DOptionsT:
		return fb.BuiltinOptionsDepthwiseConv2DOptions
	case *fb.TransposeConvOptionsT:
		return fb.BuiltinOptionsTransposeConvOptions
	case *fb.Pool2DOptionsT:
		return fb.BuiltinOptionsPool2DOptions
	case *fb.CastOptionsT:
		return fb.BuiltinOptionsCastOptions
	case *fb.ReshapeOptionsT:
		return fb.BuiltinOptionsReshapeOptions
	}
	panic("unknown options type")
}

func (b *builder) model(ins, outs []int32) *tflite.Model {
	b.sg.Inputs, b.sg.Outputs = ins, outs
	return &tflite.Model{Meta: b.meta, Buffers: b.bufs, Name: "test.tflite"}
}

func f32Bytes(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func i32Bytes(v ...int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

// arg is an op input: a runtime value (signature input) or a constant.
type arg struct {
	v      *Tensor
	const_ bool
	absent bool
}

func in(v *Tensor) arg                    { return arg{v: v} }
func cst(v *Tensor) arg                   { return arg{v: v, const_: true} }
func none() arg                           { return arg{absent: true} }
func f(shape []int, v ...float32) *Tensor { return F32Tensor(shape, v) }
func i(shape []int, v ...int32) *Tensor   { return I32Tensor(shape, v) }
func bl(shape []int, v ...bool) *Tensor {
	return &Tensor{Type: fb.TensorTypeBOOL, Shape: shape, Bool: v}
}
func sh(d ...int) []int { return d }

func tensorBytes(t *Tensor) []byte {
	switch t.Type {
	case fb.TensorTypeFLOAT32:
		return f32Bytes(t.F32...)
	case fb.TensorTypeINT32:
		return i32Bytes(t.I32...)
	case fb.TensorTypeINT64:
		b := make([]byte, 8*len(t.I64))
		for i, x := range t.I64 {
			binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
		}
		return b
	case fb.TensorTypeBOOL:
		b := make([]byte, len(t.Bool))
		for i, x := range t.Bool {
			if x {
				b[i] = 1
			}
		}
		return b
	}
	panic("type")
}

// runOp builds a one-operator model and runs it; outTypes gives the
// outputs' types (their shapes are left unknown).
func runOp(t *testing.T, code fb.BuiltinOperator, opts any, args []arg, outTypes ...fb.TensorType) ([]*Tensor, error) {
	t.Helper()
	b := newBuilder()
	var ins, sigIns []int32
	feed := map[string]*Tensor{}
	for k, a := range args {
		switch {
		case a.absent:
			ins = append(ins, -1)
		case a.const_:
			ins = append(ins, b.tensor("c", a.v.Type, a.v.Shape, tensorBytes(a.v)))
		default:
			name := string(rune('a' + k))
			idx := b.tensor(name, a.v.Type, a.v.Shape, nil)
			ins = append(ins, idx)
			sigIns = append(sigIns, idx)
			feed[name] = a.v
		}
	}
	var outs []int32
	for k, typ := range outTypes {
		outs = append(outs, b.tensor("out"+string(rune('0'+k)), typ, nil, nil))
	}
	b.op(code, opts, ins, outs)
	m := b.model(sigIns, outs)
	ip, err := New(m, Options{})
	if err != nil {
		return nil, err
	}
	res, err := ip.Run(context.Background(), "", feed)
	if err != nil {
		return nil, err
	}
	var r []*Tensor
	for k := range outTypes {
		r = append(r, res["out"+string(rune('0'+k))])
	}
	return r, nil
}

func near(a, b float32, tol float64) bool {
	return math.Abs(float64(a)-float64(b)) <= tol*(1+math.Abs(float64(b)))
}

// expect compares a value with the wanted one (floats to 1e-6 relative).
func expect(t *testing.T, name string, got, want *Tensor) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: no output", name)
	}
	if got.Type != want.Type || !sameShape(got.Shape, want.Shape) {
		t.Fatalf("%s: got %v %v, want %v %v", name, got.Type, got.Shape, want.Type, want.Shape)
	}
	switch want.Type {
	case fb.TensorTypeFLOAT32:
		for k := range want.F32 {
			if !near(got.F32[k], want.F32[k], 1e-6) {
				t.Fatalf("%s: got %v, want %v", name, got.F32, want.F32)
			}
		}
	case fb.TensorTypeINT32:
		for k := range want.I32 {
			if got.I32[k] != want.I32[k] {
				t.Fatalf("%s: got %v, want %v", name, got.I32, want.I32)
			}
		}
	case fb.TensorTypeBOOL:
		for k := range want.Bool {
			if got.Bool[k] != want.Bool[k] {
				t.Fatalf("%s: got %v, want %v", name, got.Bool, want.Bool)
			}
		}
	}
}
