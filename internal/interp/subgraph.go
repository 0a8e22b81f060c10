package interp

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/qpipe/qpipe/internal/quant"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// subgraph is one subgraph prepared for running.
type subgraph struct {
	in    *Interpreter
	index int
	sg    *fb.SubGraphT
	ops   []*opPlan
	// producer[t] is the operator that writes tensor t, -1 for none.
	producer []int
	// consumers[t] lists (operator, input slot) pairs reading tensor t.
	consumers [][][2]int
	// isOutput marks subgraph and signature outputs: kept to the end.
	isOutput []bool
	// lastUse[t] is the last operator reading tensor t (-1: none); a
	// computed value is dropped after it, so a run holds only the live
	// activations.
	lastUse []int
	// consts caches materialised constants; weights caches weight views.
	consts  map[int]*Tensor
	weights map[int]*weight
}

// opPlan is one operator with its kernel.
type opPlan struct {
	index  int
	code   fb.BuiltinOperator
	name   string
	op     *fb.OperatorT
	k      *kernel
	call   int  // decomposition subgraph of a composite, -1 otherwise
	folded bool // a DEQUANTIZE of a constant read only as a weight: never materialised
	// q holds what an integer kernel derives from the tensors'
	// quantization parameters at New (multipliers, tables).
	q any
}

// kernel implements one builtin operator.
type kernel struct {
	// check validates options, arity and static types before any run.
	check func(c *opCtx) error
	// run computes the outputs.
	run func(c *opCtx) error
	// runBatch, when set, computes the outputs of the same operator for
	// several samples at once (RunBatch), exactly as run would for each.
	runBatch func(cs []*opCtx) error
}

func newSubgraph(in *Interpreter, index int, sg *fb.SubGraphT) *subgraph {
	s := &subgraph{in: in, index: index, sg: sg, consts: map[int]*Tensor{}, weights: map[int]*weight{}}
	n := len(sg.Tensors)
	s.producer = make([]int, n)
	for i := range s.producer {
		s.producer[i] = -1
	}
	s.consumers = make([][][2]int, n)
	s.isOutput = make([]bool, n)
	s.lastUse = make([]int, n)
	for i := range s.lastUse {
		s.lastUse[i] = -1
	}
	for _, o := range sg.Outputs {
		s.isOutput[o] = true
	}
	for oi, op := range sg.Operators {
		code := in.m.OpCode(op)
		name := opName(in.m, op)
		s.ops = append(s.ops, &opPlan{index: oi, code: code, name: name, op: op, call: -1})
		for _, o := range op.Outputs {
			s.producer[o] = oi
		}
		for k, t := range op.Inputs {
			if t >= 0 {
				s.consumers[t] = append(s.consumers[t], [2]int{oi, k})
				s.lastUse[t] = oi
			}
		}
	}
	return s
}

func opName(m *tflite.Model, op *fb.OperatorT) string {
	oc := m.Meta.OperatorCodes[op.OpcodeIndex]
	code := tflite.BuiltinCode(oc)
	if code == fb.BuiltinOperatorCUSTOM && oc.CustomCode != "" {
		return oc.CustomCode
	}
	if s, ok := fb.EnumNamesBuiltinOperator[code]; ok {
		return s
	}
	return fmt.Sprintf("BUILTIN_%d", int32(code))
}

// weightSlot reports whether input slot k of an op with this code is read
// through a weight view (never materialised as a float tensor).
func weightSlot(code fb.BuiltinOperator, k int) bool {
	switch code {
	case fb.BuiltinOperatorFULLY_CONNECTED, fb.BuiltinOperatorEMBEDDING_LOOKUP, fb.BuiltinOperatorBATCH_MATMUL:
		return k == 1
	}
	return false
}

// prepare finds operator oi's kernel and checks it.
func (s *subgraph) prepare(oi int) error {
	p := s.ops[oi]
	k, ok := kernels[p.code]
	if ik, iok := intKernels[p.code]; iok && s.integerOp(p) {
		k, ok = ik, true
	}
	if !ok {
		return &UnsupportedError{Op: p.name, Subgraph: s.index, Operator: oi, Reason: "operator not implemented"}
	}
	p.k = k
	if p.code == fb.BuiltinOperatorSTABLEHLO_COMPOSITE {
		o, ok := builtinOptions2(p.op).(*fb.StableHLOCompositeOptionsT)
		if p.op.BuiltinOptions2 == nil || !ok || o == nil {
			return &UnsupportedError{Op: p.name, Subgraph: s.index, Operator: oi, Reason: "composite without StableHLOCompositeOptions"}
		}
		p.call = int(o.DecompositionSubgraphIndex)
		if p.call < 0 {
			return &UnsupportedError{Op: p.name, Subgraph: s.index, Operator: oi, Reason: fmt.Sprintf("decomposition subgraph %d", p.call)}
		}
	}
	if p.code == fb.BuiltinOperatorDEQUANTIZE && len(p.op.Inputs) == 1 && len(p.op.Outputs) == 1 {
		p.folded = s.foldable(p)
	}
	c := &opCtx{sg: s, p: p}
	if len(p.op.Outputs) == 0 {
		return c.unsupported("operator has no outputs")
	}
	return k.check(c)
}

// foldable reports whether DEQUANTIZE p reads a constant and every reader
// of its output takes it as a weight, so its consumers read the quantized
// constant block by block instead.
func (s *subgraph) foldable(p *opPlan) bool {
	in, out := int(p.op.Inputs[0]), int(p.op.Outputs[0])
	if in < 0 || !s.isConst(in) || s.isOutput[out] || len(s.consumers[out]) == 0 {
		return false
	}
	for _, c := range s.consumers[out] {
		if !weightSlot(s.ops[c[0]].code, c[1]) {
			return false
		}
	}
	return true
}

// isConst reports whether tensor t holds constant data.
func (s *subgraph) isConst(t int) bool {
	b := s.in.m.Buffers[s.sg.Tensors[t].Buffer].Data
	return b != nil && b.Len() > 0 && s.producer[t] < 0
}

// constBytes returns the bytes of constant tensor t without copying when
// the model is memory-mapped.
func (s *subgraph) constBytes(t int) ([]byte, error) {
	b, err := tflite.ReadAll(s.in.m.Buffers[s.sg.Tensors[t].Buffer].Data)
	if err != nil {
		return nil, fmt.Errorf("interp: %s: reading tensor %d (%q) of subgraph %d: %w", s.in.m.Name, t, s.sg.Tensors[t].Name, s.index, err)
	}
	return b, nil
}

// constant materialises constant tensor t (FLOAT32, INT32, INT64, BOOL)
// and caches it. A float32 constant of a memory-mapped model is a view of
// the mapping.
func (s *subgraph) constant(t int) (*Tensor, error) {
	if v, ok := s.consts[t]; ok {
		return v, nil
	}
	meta := s.sg.Tensors[t]
	shape := make([]int, len(meta.Shape))
	for i, d := range meta.Shape {
		shape[i] = int(d)
	}
	n := numElements(shape)
	b, err := s.constBytes(t)
	if err != nil {
		return nil, err
	}
	size, ok := tflite.DataSize(meta.Type, int64(n))
	if !ok || int64(len(b)) < size || n < 0 {
		return nil, fmt.Errorf("interp: %s: constant tensor %d (%q) of subgraph %d: %s %v cannot be read as a value", s.in.m.Name, t, meta.Name, s.index, tflite.TypeName(meta.Type), shape)
	}
	b = b[:size]
	v := &Tensor{Type: meta.Type, Shape: shape}
	switch meta.Type {
	case fb.TensorTypeFLOAT32:
		v.F32 = quant.Float32s(b)
	case fb.TensorTypeINT32:
		v.I32 = make([]int32, n)
		for i := range v.I32 {
			v.I32[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case fb.TensorTypeINT64:
		v.I64 = make([]int64, n)
		for i := range v.I64 {
			v.I64[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
		}
	case fb.TensorTypeBOOL:
		v.Bool = make([]bool, n)
		for i := range v.Bool {
			v.Bool[i] = b[i] != 0
		}
	case fb.TensorTypeINT8:
		v.I8 = make([]int8, n)
		for i := range v.I8 {
			v.I8[i] = int8(b[i])
		}
	case fb.TensorTypeINT16:
		v.I16 = make([]int16, n)
		for i := range v.I16 {
			v.I16[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
		}
	default:
		return nil, fmt.Errorf("interp: %s: constant tensor %d (%q) of subgraph %d is %s: only DEQUANTIZE and the hybrid kernels read quantized constants", s.in.m.Name, t, meta.Name, s.index, tflite.TypeName(meta.Type))
	}
	s.consts[t] = v
	return v, nil
}

// frame holds the values of one execution of a subgraph.
type frame struct {
	sg   *subgraph
	vals []*Tensor
}

func (s *subgraph) newFrame() *frame { return &frame{sg: s, vals: make([]*Tensor, len(s.sg.Tensors))} }

// value returns tensor t's value: computed, given, or constant.
func (f *frame) value(t int) (*Tensor, error) {
	if v := f.vals[t]; v != nil {
		return v, nil
	}
	if f.sg.isConst(t) {
		return f.sg.constant(t)
	}
	return nil, nil
}

// run executes the subgraph's operators in order.
func (s *subgraph) run(ctx context.Context, f *frame, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("interp: %s: subgraphs nest deeper than %d", s.in.m.Name, maxDepth)
	}
	for _, p := range s.ops {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.step(&opCtx{ctx: ctx, sg: s, f: f, p: p, depth: depth}); err != nil {
			return err
		}
	}
	return nil
}

// release drops the values that no later operator reads.
func (s *subgraph) release(f *frame, p *opPlan) {
	for _, t := range p.op.Inputs {
		if t >= 0 && s.lastUse[t] == p.index && !s.isOutput[t] {
			f.vals[t] = nil
		}
	}
	for _, t := range p.op.Outputs {
		if s.lastUse[t] < p.index && !s.isOutput[t] {
			f.vals[t] = nil
		}
	}
}

// checkOutput compares a computed value with the tensor's declared type and
// static shape (dynamic dimensions and rank-less tensors pass).
func checkOutput(meta *fb.TensorT, v *Tensor) error {
	if err := v.check(); err != nil {
		return err
	}
	if v.Type != meta.Type {
		return fmt.Errorf("computed %s, the model declares %s", tflite.TypeName(v.Type), tflite.TypeName(meta.Type))
	}
	if len(meta.Shape) == 0 && len(meta.ShapeSignature) == 0 {
		return nil // unknown shape
	}
	if len(meta.Shape) != len(v.Shape) {
		return fmt.Errorf("computed shape %v, the model declares %v", v.Shape, meta.Shape)
	}
	for i, d := range meta.Shape {
		dyn := len(meta.ShapeSignature) == len(meta.Shape) && meta.ShapeSignature[i] < 0
		if !dyn && int(d) != v.Shape[i] {
			return fmt.Errorf("computed shape %v, the model declares %v", v.Shape, meta.Shape)
		}
	}
	return nil
}

func (s *subgraph) observe(c *opCtx) {
	obs := s.in.opt.Observe
	if obs == nil {
		return
	}
	ev := inputEvent(c)
	for _, t := range c.p.op.Outputs {
		var v *Tensor
		if !c.p.folded {
			v = c.f.vals[t]
		}
		ev.Outputs = append(ev.Outputs, v)
	}
	obs(ev)
}

// opCtx is one operator being checked (f == nil) or run.
type opCtx struct {
	ctx   context.Context
	sg    *subgraph
	f     *frame
	p     *opPlan
	depth int
}

func (c *opCtx) unsupported(format string, a ...any) error {
	return &UnsupportedError{Op: c.p.name, Subgraph: c.sg.index, Operator: c.p.index, Reason: fmt.Sprintf(format, a...)}
}

func (c *opCtx) errf(format string, a ...any) error {
	return &OpError{Op: c.p.name, Subgraph: c.sg.index, Operator: c.p.index, Msg: fmt.Sprintf(format, a...)}
}

// tensorIdx is the tensor index of input k, -1 when absent.
func (c *opCtx) tensorIdx(k int) int {
	if k >= len(c.p.op.Inputs) {
		return -1
	}
	return int(c.p.op.Inputs[k])
}

// meta is input k's tensor table (nil when absent).
func (c *opCtx) meta(k int) *fb.TensorT {
	t := c.tensorIdx(k)
	if t < 0 {
		return nil
	}
	return c.sg.sg.Tensors[t]
}

func (c *opCtx) outMeta(k int) *fb.TensorT { return c.sg.sg.Tensors[c.p.op.Outputs[k]] }

// inType is input k's declared type, where a folded DEQUANTIZE reads as
// FLOAT32.
func (c *opCtx) inType(k int) fb.TensorType {
	m := c.meta(k)
	if m == nil {
		return -1
	}
	return m.Type
}

// in returns required input k.
func (c *opCtx) in(k int) (*Tensor, error) {
	t := c.tensorIdx(k)
	if t < 0 {
		return nil, c.errf("input %d is missing", k)
	}
	v, err := c.f.value(t)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, c.errf("input %d (tensor %d %q) has no value: it is neither computed before this operator nor constant", k, t, c.sg.sg.Tensors[t].Name)
	}
	return v, nil
}

// opt returns optional input k, nil when absent.
func (c *opCtx) opt(k int) (*Tensor, error) {
	if c.tensorIdx(k) < 0 {
		return nil, nil
	}
	return c.in(k)
}

// elementLimit bounds the element count of any value an operator
// computes (2^31, the runtime's int32 indexing): a hostile model that asks
// for more is an error, not an allocation failure.
var elementLimit = 1 << 31

// checkSize refuses an output shape over elementLimit.
func (c *opCtx) checkSize(shape []int) error {
	if n := numElements(shape); n < 0 || n > elementLimit {
		return c.errf("output shape %v has more than %d elements", shape, elementLimit)
	}
	return nil
}

// first returns the first non-nil error: the static checks of a kernel,
// in order.
func first(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// set stores output k.
func (c *opCtx) set(k int, v *Tensor) { c.f.vals[c.p.op.Outputs[k]] = v }

// inputs checks the op has between lo and hi inputs and exactly outs
// outputs (hi < 0: no upper bound).
func (c *opCtx) arity(lo, hi, outs int) error {
	n := len(c.p.op.Inputs)
	if n < lo || (hi >= 0 && n > hi) {
		return c.unsupported("%d inputs (expects %d..%d)", n, lo, hi)
	}
	for k := 0; k < lo; k++ {
		if c.tensorIdx(k) < 0 {
			return c.unsupported("required input %d is absent", k)
		}
	}
	if outs >= 0 && len(c.p.op.Outputs) != outs {
		return c.unsupported("%d outputs (expects %d)", len(c.p.op.Outputs), outs)
	}
	return nil
}

// types checks that inputs (first len(ts)) and output 0 have allowed types.
func (c *opCtx) typeIn(k int, allowed ...fb.TensorType) error {
	m := c.meta(k)
	if m == nil {
		return nil
	}
	for _, a := range allowed {
		if m.Type == a {
			return nil
		}
	}
	return c.unsupported("input %d (%q) has type %s", k, m.Name, tflite.TypeName(m.Type))
}

func (c *opCtx) typeOut(k int, allowed ...fb.TensorType) error {
	m := c.outMeta(k)
	for _, a := range allowed {
		if m.Type == a {
			return nil
		}
	}
	return c.unsupported("output %d (%q) has type %s", k, m.Name, tflite.TypeName(m.Type))
}

// f32 returns required float32 input k.
func (c *opCtx) f32(k int) (*Tensor, error) {
	v, err := c.in(k)
	if err != nil {
		return nil, err
	}
	if v.Type != fb.TensorTypeFLOAT32 {
		return nil, c.errf("input %d is %s, want FLOAT32", k, tflite.TypeName(v.Type))
	}
	return v, nil
}

// intsIn returns integer input k as ints.
func (c *opCtx) intsIn(k int) ([]int, error) {
	v, err := c.in(k)
	if err != nil {
		return nil, err
	}
	r, ok := v.ints()
	if !ok {
		return nil, c.errf("input %d is %s, want an integer tensor", k, tflite.TypeName(v.Type))
	}
	return r, nil
}

// activation applies a fused activation function in place.
func activation(a fb.ActivationFunctionType, v []float32) {
	switch a {
	case fb.ActivationFunctionTypeRELU:
		for i, x := range v {
			if x < 0 {
				v[i] = 0
			}
		}
	case fb.ActivationFunctionTypeRELU_N1_TO_1:
		for i, x := range v {
			v[i] = min(max(x, -1), 1)
		}
	case fb.ActivationFunctionTypeRELU6:
		for i, x := range v {
			v[i] = min(max(x, 0), 6)
		}
	case fb.ActivationFunctionTypeTANH:
		for i, x := range v {
			v[i] = float32(math.Tanh(float64(x)))
		}
	}
}

func (c *opCtx) checkActivation(a fb.ActivationFunctionType) error {
	switch a {
	case fb.ActivationFunctionTypeNONE, fb.ActivationFunctionTypeRELU, fb.ActivationFunctionTypeRELU_N1_TO_1,
		fb.ActivationFunctionTypeRELU6, fb.ActivationFunctionTypeTANH:
		return nil
	}
	return c.unsupported("fused activation %s", fb.EnumNamesActivationFunctionType[a])
}

// builtinOptions is the op's builtin options table, nil when absent.
func builtinOptions(op *fb.OperatorT) any {
	if op.BuiltinOptions == nil {
		return nil
	}
	return op.BuiltinOptions.Value
}

func builtinOptions2(op *fb.OperatorT) any {
	if op.BuiltinOptions2 == nil {
		return nil
	}
	return op.BuiltinOptions2.Value
}
