package interp

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// IO is one signature input or output.
type IO struct {
	Name   string // the signature's name for it
	Tensor int    // tensor index in the signature's subgraph
	Type   fb.TensorType
	Shape  []int // static shape from the model (-1 for dynamic dims)
}

// Signature is one entry point of the model.
type Signature struct {
	// Key is the signature key ("serving_default" ...). A model without
	// signatures has one synthetic signature "" over subgraph 0's inputs
	// and outputs, named by their tensor names ("tensor<index>" for an
	// empty or repeated name).
	Key             string
	Subgraph        int
	Inputs, Outputs []IO
}

// Options configure an Interpreter.
type Options struct {
	// Threads is the number of workers (0 = GOMAXPROCS). Results are
	// bit-identical for every value: work is split by output elements,
	// never inside a reduction.
	Threads int
	// Observe, when set, is called after each operator executes, in
	// execution order, from one goroutine. The event's tensors must not be
	// retained or modified.
	Observe func(ev OpEvent)
	// IntArithmetic selects how the int8 CONV_2D, DEPTHWISE_CONV_2D and
	// FULLY_CONNECTED kernels rescale their sums (doc.go, "Integer
	// models"). int16 kernels always run LiteRT's builtin arithmetic.
	IntArithmetic IntArithmetic
}

// IntArithmetic is a rescaling scheme of the int8 matrix kernels.
type IntArithmetic int

const (
	// IntReference is LiteRT's builtin kernels: QuantizeMultiplier and
	// the double-rounding MultiplyByQuantizedMultiplier.
	IntReference IntArithmetic = iota
	// IntXNNPACK is the XNNPACK delegate's (LiteRT's default CPU path for
	// these ops): the sum converted to float32, multiplied by the float32
	// scale s_in·s_w/s_out, rounded half to even.
	IntXNNPACK
)

// OpEvent describes one executed operator.
type OpEvent struct {
	Subgraph, Operator int
	Code               fb.BuiltinOperator
	InputTensors       []int // tensor indices (-1 absent)
	// Inputs are the op's input values, nil for absent optional inputs,
	// for INT8/INT16 constants and for constant weights (read in place,
	// quantized or not, never materialised as float: use InputTensors to
	// find them).
	Inputs  []*Tensor
	Outputs []*Tensor
}

// Interpreter runs the signatures of one model. It is safe to Run from one
// goroutine at a time; it uses Options.Threads workers internally.
type Interpreter struct {
	m       *tflite.Model
	opt     Options
	threads int
	sigs    []Signature
	sgs     []*subgraph
}

// New prepares m for running. It checks every operator that a signature
// can reach (including composite decompositions) up front: an op or option
// the interpreter does not implement is an *UnsupportedError naming the op,
// the subgraph and the operator index. m must stay open while the
// Interpreter is used: constant weights are read from it in place.
func New(m *tflite.Model, opt Options) (*Interpreter, error) {
	if m == nil || m.Meta == nil {
		return nil, fmt.Errorf("interp: no model")
	}
	in := &Interpreter{m: m, opt: opt, threads: opt.Threads}
	if in.threads <= 0 {
		in.threads = runtime.GOMAXPROCS(0)
	}
	for i, sg := range m.Meta.Subgraphs {
		if sg == nil {
			return nil, fmt.Errorf("interp: %s: subgraph %d is empty", m.Name, i)
		}
		in.sgs = append(in.sgs, newSubgraph(in, i, sg))
	}
	if err := in.buildSignatures(); err != nil {
		return nil, err
	}
	for _, s := range in.sigs {
		for _, io := range s.Outputs {
			in.sgs[s.Subgraph].isOutput[io.Tensor] = true
		}
	}
	checked := map[int]bool{}
	for _, s := range in.sigs {
		if err := in.checkSubgraph(s.Subgraph, checked, 0); err != nil {
			return nil, err
		}
	}
	return in, nil
}

func (in *Interpreter) buildSignatures() error {
	meta := in.m.Meta
	ioList := func(sg *fb.SubGraphT, maps []*fb.TensorMapT) []IO {
		var out []IO
		for _, tm := range maps {
			t := sg.Tensors[tm.TensorIndex]
			out = append(out, IO{Name: tm.Name, Tensor: int(tm.TensorIndex), Type: t.Type, Shape: staticShape(t)})
		}
		return out
	}
	for _, sd := range meta.SignatureDefs {
		sg := meta.Subgraphs[sd.SubgraphIndex]
		in.sigs = append(in.sigs, Signature{Key: sd.SignatureKey, Subgraph: int(sd.SubgraphIndex),
			Inputs: ioList(sg, sd.Inputs), Outputs: ioList(sg, sd.Outputs)})
	}
	if len(in.sigs) == 0 {
		if len(meta.Subgraphs) == 0 {
			return fmt.Errorf("interp: %s: the model has no subgraph", in.m.Name)
		}
		sg := meta.Subgraphs[0]
		// Names are the tensors' names; an empty or repeated one becomes
		// "tensor<index>".
		used := map[string]bool{}
		name := func(i int32) string {
			n := sg.Tensors[i].Name
			if n == "" || used[n] {
				n = fmt.Sprintf("tensor%d", i)
			}
			used[n] = true
			return n
		}
		var ins, outs []*fb.TensorMapT
		for _, i := range sg.Inputs {
			ins = append(ins, &fb.TensorMapT{Name: name(i), TensorIndex: uint32(i)})
		}
		used = map[string]bool{}
		for _, i := range sg.Outputs {
			outs = append(outs, &fb.TensorMapT{Name: name(i), TensorIndex: uint32(i)})
		}
		in.sigs = []Signature{{Key: "", Subgraph: 0, Inputs: ioList(sg, ins), Outputs: ioList(sg, outs)}}
	}
	for _, s := range in.sigs {
		seen := map[string]bool{}
		for _, io := range s.Inputs {
			if seen[io.Name] {
				return fmt.Errorf("interp: %s: signature %q names two inputs %q", in.m.Name, s.Key, io.Name)
			}
			seen[io.Name] = true
		}
	}
	return nil
}

// staticShape is the tensor's shape with -1 where shape_signature says the
// dimension is dynamic.
func staticShape(t *fb.TensorT) []int {
	s := make([]int, len(t.Shape))
	for i, d := range t.Shape {
		s[i] = int(d)
		if len(t.ShapeSignature) == len(t.Shape) && t.ShapeSignature[i] < 0 {
			s[i] = -1
		}
	}
	return s
}

// maxDepth bounds composite nesting (a cycle of decompositions is refused).
const maxDepth = 16

func (in *Interpreter) checkSubgraph(si int, checked map[int]bool, depth int) error {
	if checked[si] {
		return nil
	}
	if depth > maxDepth {
		return fmt.Errorf("interp: %s: subgraphs nest deeper than %d (a cycle of decompositions?) at subgraph %d", in.m.Name, maxDepth, si)
	}
	checked[si] = true
	sg := in.sgs[si]
	for oi := range sg.ops {
		if err := sg.prepare(oi); err != nil {
			return err
		}
		p := sg.ops[oi]
		if p.call >= 0 { // in range: the composite kernel's check
			if err := in.checkSubgraph(p.call, checked, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// Signatures lists the model's entry points.
func (in *Interpreter) Signatures() []Signature { return in.sigs }

// Run runs the signature with the given key on inputs keyed by IO.Name and
// returns the outputs keyed by IO.Name. Every input must be given, with the
// signature's type and a shape that matches its static shape (any size
// where the model says -1).
func (in *Interpreter) Run(ctx context.Context, signature string, inputs map[string]*Tensor) (map[string]*Tensor, error) {
	var sig *Signature
	for i := range in.sigs {
		if in.sigs[i].Key == signature {
			sig = &in.sigs[i]
		}
	}
	if sig == nil {
		var keys []string
		for _, s := range in.sigs {
			keys = append(keys, fmt.Sprintf("%q", s.Key))
		}
		return nil, fmt.Errorf("interp: %s: no signature %q (the model has %s)", in.m.Name, signature, strings.Join(keys, ", "))
	}
	args := make([]*Tensor, len(sig.Inputs))
	for i, io := range sig.Inputs {
		t, ok := inputs[io.Name]
		if !ok || t == nil {
			return nil, fmt.Errorf("interp: %s: signature %q: input %q (%s %v) is missing", in.m.Name, sig.Key, io.Name, tflite.TypeName(io.Type), io.Shape)
		}
		if err := checkInput(io, t); err != nil {
			return nil, fmt.Errorf("interp: %s: signature %q: input %q: %w", in.m.Name, sig.Key, io.Name, err)
		}
		args[i] = t
	}
	if len(inputs) > len(sig.Inputs) {
		var extra []string
		for name := range inputs {
			found := false
			for _, io := range sig.Inputs {
				found = found || io.Name == name
			}
			if !found {
				extra = append(extra, fmt.Sprintf("%q", name))
			}
		}
		sort.Strings(extra)
		return nil, fmt.Errorf("interp: %s: signature %q has no input %s", in.m.Name, sig.Key, strings.Join(extra, ", "))
	}
	sg := in.sgs[sig.Subgraph]
	frame := sg.newFrame()
	for i, io := range sig.Inputs {
		frame.vals[io.Tensor] = args[i]
	}
	if err := sg.run(ctx, frame, 0); err != nil {
		return nil, err
	}
	return in.outputs(sig, frame)
}

func checkInput(io IO, t *Tensor) error {
	if t.Type != io.Type {
		return fmt.Errorf("type %s, the model wants %s", tflite.TypeName(t.Type), tflite.TypeName(io.Type))
	}
	if err := t.check(); err != nil {
		return err
	}
	if len(t.Shape) != len(io.Shape) {
		return fmt.Errorf("shape %v, the model wants %v", t.Shape, io.Shape)
	}
	for i, d := range io.Shape {
		if d >= 0 && t.Shape[i] != d {
			return fmt.Errorf("shape %v, the model wants %v", t.Shape, io.Shape)
		}
	}
	return nil
}

// UnsupportedError is an operator or option the interpreter does not
// implement.
type UnsupportedError struct {
	Op                 string // builtin name or custom code
	Subgraph, Operator int
	Reason             string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("interp: subgraph %d operator %d (%s): not supported: %s", e.Subgraph, e.Operator, e.Op, e.Reason)
}

// OpError is an operator that cannot run on the values it was given
// (inconsistent shapes, out-of-range indices).
type OpError struct {
	Op                 string
	Subgraph, Operator int
	Msg                string
}

func (e *OpError) Error() string {
	return fmt.Sprintf("interp: subgraph %d operator %d (%s): %s", e.Subgraph, e.Operator, e.Op, e.Msg)
}
