package static

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strings"

	"github.com/qpipe/qpipe/internal/quant"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// Options say what Rewrite writes.
type Options struct {
	// Bits is the activation width: 8 (static_int8) or 16 (static_int16x8).
	Bits int
	// SymmetricInt8 makes int8 activations symmetric (zero point 0, range
	// ±127) instead of asymmetric; int16 activations are always symmetric.
	SymmetricInt8 bool
	// IntegerIO keeps the signature inputs and outputs that quantized ops
	// read or write integer; by default they stay float32 with QUANTIZE
	// and DEQUANTIZE ops at the boundary.
	IntegerIO bool
	// Int32Bias writes 16x8 CONV_2D and FULLY_CONNECTED biases as int32
	// with quantized_bias_type INT32 instead of int64.
	Int32Bias bool
	// FloatOps are op names (CONV_2D, …) kept float.
	FloatOps []string
	// FloatScope keeps float every op whose scope (output tensor names
	// joined with ';') it finds.
	FloatScope *regexp.Regexp
	// Ops, when set, are the only op names quantized; asking for one that
	// has no kernel at the width is an error.
	Ops []string
}

// FloatOp is an op the rewrite left float, and why.
type FloatOp struct {
	Subgraph int    `json:"subgraph"`
	Operator int    `json:"operator"`
	Op       string `json:"op"`
	Output   string `json:"output"`
	Reason   string `json:"reason"`
}

// Result summarises a rewrite.
type Result struct {
	// Quantized counts the ops that now run on integers, by op name.
	Quantized map[string]int `json:"quantized"`
	// Float lists the ops left float.
	Float []FloatOp `json:"float,omitempty"`
	// Weights are the float weights now read as int8 (CONV_2D,
	// DEPTHWISE_CONV_2D, TRANSPOSE_CONV, FULLY_CONNECTED filters and
	// EMBEDDING_LOOKUP tables) with the bytes they add: a buffer several
	// of them share counts for the first.
	Weights map[Key]int64 `json:"-"`
	// Tables counts the EMBEDDING_LOOKUP tables made int8 (their output
	// stays float).
	Tables int `json:"int8_tables,omitempty"`
	// Quantize and Dequantize count the inserted ops.
	Quantize   int `json:"quantize_ops"`
	Dequantize int `json:"dequantize_ops"`
}

// params are one tensor's per-tensor integer parameters.
type params struct {
	scale float32
	zp    int64
}

// opName is the builtin op's schema name.
func opName(code fb.BuiltinOperator) string { return fb.EnumNamesBuiltinOperator[code] }

// CheckFloat refuses a model that is not a float model: a tensor with
// quantization parameters or an integer op is named.
func CheckFloat(m *tflite.Model) error {
	for si, sg := range m.Meta.Subgraphs {
		for ti, t := range sg.Tensors {
			if q := t.Quantization; q != nil && (len(q.Scale) > 0 || q.Details != nil) {
				return fmt.Errorf("%s: subgraph %d tensor %d %q is already quantized (%s); static quantization needs the float model", m.Name, si, ti, t.Name, tflite.TypeName(t.Type))
			}
		}
	}
	return nil
}

// rewriter holds the state of one subgraph's rewrite.
type rewriter struct {
	m    *tflite.Model
	r    Ranges
	opt  Options
	res  *Result
	si   int
	sg   *fb.SubGraphT
	prod map[int32]int // tensor → producing op
	// qp are the tensors that hold integers, with their parameters.
	qp map[int32]params
	// copies are inserted QUANTIZE outputs by (tensor, parameters) and
	// DEQUANTIZE outputs by tensor.
	qcopy map[qkey]int32
	fcopy map[int32]int32
	ops   []*fb.OperatorT
	// readers counts op inputs reading each tensor (exclusive constants
	// are rewritten in place).
	readers  map[int32]int
	bufUsers map[uint32]int
	// shared are the int8 weights written so far by (float buffer, axis):
	// tensors sharing a float buffer (a tied embedding and logits layer)
	// share the quantized one.
	shared map[sharedKey]*sharedWeight
	sgIO   map[int32]bool
}

type sharedKey struct {
	buffer uint32
	axis   int
}

type sharedWeight struct {
	buffer uint32
	scales []float32
	zps    []int64
}

type qkey struct {
	t int32
	p params
}

// Rewrite turns the float model m into its static form in place, with
// the activation ranges r (Calibrate). Quantized constants become content
// computed while the file is written. Nothing of m is changed when it
// returns an error.
func Rewrite(m *tflite.Model, r Ranges, opt Options) (*Result, error) {
	if opt.Bits != 8 && opt.Bits != 16 {
		return nil, fmt.Errorf("static: activation width %d: want 8 or 16", opt.Bits)
	}
	if err := CheckFloat(m); err != nil {
		return nil, err
	}
	for _, name := range append(append([]string(nil), opt.FloatOps...), opt.Ops...) {
		if _, ok := fb.EnumValuesBuiltinOperator[name]; !ok {
			return nil, fmt.Errorf("static: unknown op %q", name)
		}
	}
	for _, name := range opt.Ops {
		code := fb.EnumValuesBuiltinOperator[name]
		t := firstOutput(m, code)
		ru, ok := rules[code]
		switch {
		case t == "":
		case !ok:
			return nil, fmt.Errorf("static: %s (output %q) has no integer form in qpipe's static rewrite (docs/SEMANTICS.md §16.3); leave it float", name, t)
		case opt.Bits == 16 && !ru.int16:
			return nil, fmt.Errorf("static_int16x8: %s (output %q) has no int16 kernel in LiteRT (docs/SEMANTICS.md §16.3); leave it float or use static_int8", name, t)
		}
	}
	res := &Result{Quantized: map[string]int{}, Weights: map[Key]int64{}}
	bufUsers := map[uint32]int{}
	for _, sg := range m.Meta.Subgraphs {
		for _, t := range sg.Tensors {
			bufUsers[t.Buffer]++
		}
	}
	shared := map[sharedKey]*sharedWeight{}
	for _, si := range signatureSubgraphs(m) {
		rw := &rewriter{m: m, r: r, opt: opt, res: res, si: si, sg: m.Meta.Subgraphs[si], bufUsers: bufUsers, shared: shared}
		if err := rw.run(); err != nil {
			return nil, err
		}
	}
	dropDeadBuffers(m)
	return res, nil
}

// dropDeadBuffers empties the buffers that only tensors no op, subgraph or
// signature uses any longer refer to (float weights every reader of which
// now reads a quantized copy), and points those tensors at buffer 0.
func dropDeadBuffers(m *tflite.Model) {
	live := map[uint32]bool{}
	dead := map[[2]int]bool{}
	for si, sg := range m.Meta.Subgraphs {
		used := map[int32]bool{}
		for _, op := range sg.Operators {
			for _, t := range append(append(append([]int32(nil), op.Inputs...), op.Outputs...), op.Intermediates...) {
				used[t] = true
			}
		}
		for _, t := range append(append([]int32(nil), sg.Inputs...), sg.Outputs...) {
			used[t] = true
		}
		for _, sd := range m.Meta.SignatureDefs {
			if int(sd.SubgraphIndex) == si {
				for _, tm := range append(append([]*fb.TensorMapT(nil), sd.Inputs...), sd.Outputs...) {
					used[int32(tm.TensorIndex)] = true
				}
			}
		}
		for ti, t := range sg.Tensors {
			if used[int32(ti)] || t.IsVariable {
				live[t.Buffer] = true
			} else if t.Buffer != 0 {
				dead[[2]int{si, ti}] = true
			}
		}
	}
	for k := range dead {
		t := m.Meta.Subgraphs[k[0]].Tensors[k[1]]
		if !live[t.Buffer] {
			m.Buffers[t.Buffer] = tflite.Buffer{}
			m.Meta.Buffers[t.Buffer] = &fb.BufferT{}
			t.Buffer = 0
		}
	}
}

// firstOutput names the first output of the first op with code, or "".
func firstOutput(m *tflite.Model, code fb.BuiltinOperator) string {
	for _, sg := range m.Meta.Subgraphs {
		for _, op := range sg.Operators {
			if m.OpCode(op) == code && len(op.Outputs) > 0 && op.Outputs[0] >= 0 {
				return sg.Tensors[op.Outputs[0]].Name
			}
		}
	}
	return ""
}

// signatureSubgraphs are the subgraphs the signatures run (subgraph 0
// for a model without signatures).
func signatureSubgraphs(m *tflite.Model) []int {
	seen := map[int]bool{}
	var out []int
	for _, sd := range m.Meta.SignatureDefs {
		if si := int(sd.SubgraphIndex); !seen[si] && si < len(m.Meta.Subgraphs) {
			seen[si] = true
			out = append(out, si)
		}
	}
	if len(out) == 0 && len(m.Meta.Subgraphs) > 0 {
		out = []int{0}
	}
	sort.Ints(out)
	return out
}

func (w *rewriter) isConst(t int32) bool {
	return w.m.HasData(w.sg.Tensors[t])
}

func (w *rewriter) scope(op *fb.OperatorT) string {
	var names []string
	for _, o := range op.Outputs {
		if o >= 0 {
			names = append(names, w.sg.Tensors[o].Name)
		}
	}
	return strings.Join(names, ";")
}

// floatReason is why op stays float, "" when it is quantized.
func (w *rewriter) floatReason(code fb.BuiltinOperator, op *fb.OperatorT) string {
	name := opName(code)
	ru, ok := rules[code]
	switch {
	case !ok:
		return "not in the static op list"
	case w.opt.Bits == 16 && !ru.int16:
		return "no int16 kernel in LiteRT"
	case contains(w.opt.FloatOps, name):
		return "kept float by the job (op type)"
	case w.opt.FloatScope != nil && w.opt.FloatScope.MatchString(w.scope(op)):
		return fmt.Sprintf("kept float by the job (output regex %q)", w.opt.FloatScope.String())
	case len(w.opt.Ops) > 0 && !contains(w.opt.Ops, name):
		return "not among the job's ops"
	}
	for k, t := range op.Inputs {
		if t < 0 {
			continue
		}
		tt := w.sg.Tensors[t]
		switch {
		case k == ru.weight:
			if !w.isConst(t) || tt.Type != fb.TensorTypeFLOAT32 || len(tt.Shape) <= ru.axis || tt.Shape[ru.axis] <= 0 {
				return fmt.Sprintf("weight %q is not a constant float32 tensor with a channel axis %d", tt.Name, ru.axis)
			}
		case k == ru.bias:
			if !w.isConst(t) || tt.Type != fb.TensorTypeFLOAT32 {
				return fmt.Sprintf("bias %q is not a constant float32 tensor", tt.Name)
			}
		case ru.isAct(k):
			if tt.Type != fb.TensorTypeFLOAT32 {
				return fmt.Sprintf("input %q is %s", tt.Name, tflite.TypeName(tt.Type))
			}
			if tt.IsVariable {
				return fmt.Sprintf("input %q is a variable tensor", tt.Name)
			}
			if !w.isConst(t) && w.r[Key{w.si, int(t)}] == nil && !w.integerProducer(t) {
				return fmt.Sprintf("input %q has no calibrated range", tt.Name)
			}
			if w.saturated(t) {
				return fmt.Sprintf("input %q holds values at ±3.4e38 (an attention mask), which integers cannot carry", tt.Name)
			}
		}
	}
	if ru.bias >= 0 && code == fb.BuiltinOperatorCONV_2D && (len(op.Inputs) <= ru.bias || op.Inputs[ru.bias] < 0) {
		return "CONV_2D without a bias (LiteRT's integer kernel needs one)"
	}
	for _, o := range op.Outputs {
		if o < 0 {
			continue
		}
		tt := w.sg.Tensors[o]
		if tt.Type != fb.TensorTypeFLOAT32 {
			return fmt.Sprintf("output %q is %s", tt.Name, tflite.TypeName(tt.Type))
		}
		if (ru.c == free || ru.c == sameOut) && w.r[Key{w.si, int(o)}] == nil {
			return fmt.Sprintf("output %q has no calibrated range", tt.Name)
		}
		if w.saturated(o) {
			return fmt.Sprintf("output %q holds values at ±3.4e38 (an attention mask), which integers cannot carry", tt.Name)
		}
	}
	if len(op.Outputs) == 0 {
		return "no output"
	}
	return ""
}

// saturated says whether t holds values at or beyond ±3e38: a constant
// that does, or a tensor whose calibration saw such values.
func (w *rewriter) saturated(t int32) bool {
	if w.isConst(t) {
		tt := w.sg.Tensors[t]
		if tt.Type != fb.TensorTypeFLOAT32 {
			return false
		}
		data, err := tflite.ReadAll(w.m.Buffers[tt.Buffer].Data)
		if err != nil {
			return false
		}
		_, _, clipped, _ := finiteRange(quant.Float32s(data))
		return clipped
	}
	rg := w.r[Key{w.si, int(t)}]
	return rg != nil && rg.Clipped
}

// integerProducer says whether t's producer was quantized already.
func (w *rewriter) integerProducer(t int32) bool {
	_, ok := w.qp[t]
	return ok
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (w *rewriter) run() error {
	sg := w.sg
	w.qp = map[int32]params{}
	w.qcopy = map[qkey]int32{}
	w.fcopy = map[int32]int32{}
	w.readers = map[int32]int{}
	w.sgIO = map[int32]bool{}
	for _, op := range sg.Operators {
		for _, t := range op.Inputs {
			if t >= 0 {
				w.readers[t]++
			}
		}
	}
	for _, t := range append(append([]int32(nil), sg.Inputs...), sg.Outputs...) {
		w.sgIO[t] = true
	}
	// Decide first, so that integer I/O knows which inputs quantized ops read.
	reasons := make([]string, len(sg.Operators))
	for i, op := range sg.Operators {
		reasons[i] = w.floatReason(w.m.OpCode(op), op)
		if reasons[i] == "" {
			// Its outputs will hold integers: later readers may rely on it.
			for _, o := range op.Outputs {
				w.qp[o] = params{}
			}
		}
	}
	w.qp = map[int32]params{}
	if w.opt.IntegerIO {
		for _, t := range sg.Inputs {
			tt := sg.Tensors[t]
			rg := w.r[Key{w.si, int(t)}]
			if tt.Type != fb.TensorTypeFLOAT32 || rg == nil || !w.readByQuantized(t, reasons) {
				continue
			}
			p := w.rangeParams(rg)
			w.retype(tt, p)
			w.qp[t] = p
		}
	}
	for i, op := range sg.Operators {
		code := w.m.OpCode(op)
		if reasons[i] != "" {
			if w.lookupTable(code, op) {
				reasons[i] = "float output; its table int8 per row (the hybrid lookup)"
				if err := w.quantizeTable(op); err != nil {
					return err
				}
			}
			w.res.Float = append(w.res.Float, FloatOp{Subgraph: w.si, Operator: i, Op: opName(code), Output: w.scope(op), Reason: reasons[i]})
			for k, t := range op.Inputs {
				if t >= 0 {
					if _, ok := w.qp[t]; ok {
						op.Inputs[k] = w.dequantized(t)
					}
				}
			}
			w.ops = append(w.ops, op)
			continue
		}
		if err := w.quantizeOp(code, op); err != nil {
			return err
		}
		w.res.Quantized[opName(code)]++
		w.ops = append(w.ops, op)
	}
	// Outputs: float by default, behind a DEQUANTIZE.
	if !w.opt.IntegerIO {
		for k, t := range sg.Outputs {
			if _, ok := w.qp[t]; ok {
				f := w.dequantized(t)
				sg.Outputs[k] = f
				for _, sd := range w.m.Meta.SignatureDefs {
					if int(sd.SubgraphIndex) != w.si {
						continue
					}
					for _, tm := range sd.Outputs {
						if tm.TensorIndex == uint32(t) {
							tm.TensorIndex = uint32(f)
						}
					}
				}
			}
		}
	}
	sg.Operators = w.ops
	return nil
}

// lookupTable says whether op is an EMBEDDING_LOOKUP of a constant
// float32 table the job does not keep float.
func (w *rewriter) lookupTable(code fb.BuiltinOperator, op *fb.OperatorT) bool {
	if code != fb.BuiltinOperatorEMBEDDING_LOOKUP || len(op.Inputs) < 2 || op.Inputs[1] < 0 ||
		contains(w.opt.FloatOps, opName(code)) || (len(w.opt.Ops) > 0 && !contains(w.opt.Ops, opName(code))) ||
		(w.opt.FloatScope != nil && w.opt.FloatScope.MatchString(w.scope(op))) {
		return false
	}
	t := w.sg.Tensors[op.Inputs[1]]
	return w.isConst(op.Inputs[1]) && t.Type == fb.TensorTypeFLOAT32 && len(t.Shape) == 2 && t.Shape[0] > 0
}

// quantizeTable gives an EMBEDDING_LOOKUP an int8 table with a scale per
// row, which LiteRT's lookup dequantizes (the dynamic_int8 form, version 4,
// FORMAT.md §5): the static recipes have no integer lookup, and a float32
// table would be the largest tensor of a static decoder.
func (w *rewriter) quantizeTable(op *fb.OperatorT) error {
	if _, err := w.weight(op, opRule{weight: 1, axis: 0, bias: -1}); err != nil {
		return err
	}
	oc := w.m.Meta.OperatorCodes[op.OpcodeIndex]
	oc.Version = max(oc.Version, 4)
	w.res.Tables++
	return nil
}

// readByQuantized says whether an op to be quantized reads t.
func (w *rewriter) readByQuantized(t int32, reasons []string) bool {
	for i, op := range w.sg.Operators {
		if reasons[i] != "" {
			continue
		}
		ru := rules[w.m.OpCode(op)]
		for k, in := range op.Inputs {
			if in == t && ru.isAct(k) {
				return true
			}
		}
	}
	return false
}

// rangeParams are the activation parameters of a calibrated range
// (uniform_quantize_tensor.py:492-586): symmetric max|x|/qmax with zero
// point 0, or asymmetric (max(mx,0)−min(mn,0))/255 with the zero point
// that makes 0 exact; computed in float64, stored as float32.
func (w *rewriter) rangeParams(rg *Range) params {
	return actParams(rg.Min, rg.Max, w.opt.Bits, w.opt.Bits == 16 || w.opt.SymmetricInt8)
}

func actParams(mn, mx float64, bits int, symmetric bool) params {
	if symmetric {
		qmax := float64(int64(1)<<(bits-1) - 1)
		bound := math.Max(math.Max(math.Abs(mn), math.Abs(mx)), 1e-9)
		return params{scale: float32(bound / qmax)}
	}
	bmin, bmax := math.Min(mn, 0), math.Max(mx, 0)
	scale := math.Max(bmax-bmin, 1e-9) / 255
	zp := math.RoundToEven(-128 - bmin/scale)
	return params{scale: float32(scale), zp: int64(max(-128, min(127, zp)))}
}

func (w *rewriter) actType() fb.TensorType {
	if w.opt.Bits == 16 {
		return fb.TensorTypeINT16
	}
	return fb.TensorTypeINT8
}

// retype makes t an integer activation with parameters p.
func (w *rewriter) retype(t *fb.TensorT, p params) {
	t.Type = w.actType()
	t.Quantization = &fb.QuantizationParametersT{Scale: []float32{p.scale}, ZeroPoint: []int64{p.zp}}
}

// newTensor appends a tensor like t (name with suffix) and returns its index.
func (w *rewriter) newTensor(t *fb.TensorT, suffix string, typ fb.TensorType, q *fb.QuantizationParametersT, buffer uint32) int32 {
	nt := &fb.TensorT{
		Name:           t.Name + suffix,
		Type:           typ,
		Shape:          append([]int32(nil), t.Shape...),
		ShapeSignature: append([]int32(nil), t.ShapeSignature...),
		Quantization:   q,
		Buffer:         buffer,
		HasRank:        t.HasRank,
	}
	w.sg.Tensors = append(w.sg.Tensors, nt)
	return int32(len(w.sg.Tensors) - 1)
}

// insert appends an op of code reading in and writing out.
func (w *rewriter) insert(code fb.BuiltinOperator, version int32, in, out int32) {
	idx := w.m.OperatorCodeIndex(code, version)
	w.ops = append(w.ops, &fb.OperatorT{OpcodeIndex: idx, Inputs: []int32{in}, Outputs: []int32{out}})
}

// dequantized is the float32 copy of integer tensor t (one DEQUANTIZE,
// inserted before its first float reader).
func (w *rewriter) dequantized(t int32) int32 {
	if f, ok := w.fcopy[t]; ok {
		return f
	}
	tt := w.sg.Tensors[t]
	f := w.newTensor(tt, "_dequant", fb.TensorTypeFLOAT32, nil, 0)
	v := int32(2)
	if tt.Type == fb.TensorTypeINT16 {
		v = 3
	}
	w.insert(fb.BuiltinOperatorDEQUANTIZE, v, t, f)
	w.fcopy[t] = f
	w.res.Dequantize++
	return f
}

// quantized is the integer copy of tensor t with parameters p: a QUANTIZE
// from float32, or a requantizing QUANTIZE from another integer form.
func (w *rewriter) quantized(t int32, p params) int32 {
	k := qkey{t, p}
	if q, ok := w.qcopy[k]; ok {
		return q
	}
	tt := w.sg.Tensors[t]
	// QUANTIZE: version 2 for an int16 output, else 1, requantizing or
	// not (op_version.cc).
	suffix := "_quant"
	if _, isInt := w.qp[t]; isInt {
		suffix = "_requant"
	}
	v := int32(1)
	if w.opt.Bits == 16 {
		v = 2
	}
	q := w.newTensor(tt, suffix, w.actType(), &fb.QuantizationParametersT{Scale: []float32{p.scale}, ZeroPoint: []int64{p.zp}}, 0)
	w.insert(fb.BuiltinOperatorQUANTIZE, v, t, q)
	w.qcopy[k] = q
	w.qp[q] = p
	w.res.Quantize++
	return q
}

// quantizeOp rewrites one op to its integer form.
func (w *rewriter) quantizeOp(code fb.BuiltinOperator, op *fb.OperatorT) error {
	ru := rules[code]
	sg := w.sg
	var want *params
	if ru.c == sameOut {
		p := w.rangeParams(w.r[Key{w.si, int(op.Outputs[0])}])
		want = &p
	}
	var in0 *params
	for k, t := range op.Inputs {
		if t < 0 || k == ru.weight || k == ru.bias || !ru.isAct(k) {
			continue
		}
		var p params
		switch cur, isInt := w.qp[t]; {
		case w.isConst(t):
			nt, cp, err := w.constAct(t, want)
			if err != nil {
				return err
			}
			op.Inputs[k], p = nt, cp
		case isInt:
			p = cur
			if want != nil && p != *want {
				op.Inputs[k], p = w.quantized(t, *want), *want
			}
		default:
			rg := w.r[Key{w.si, int(t)}]
			if rg == nil {
				return fmt.Errorf("static: subgraph %d: %s input %q has no calibrated range", w.si, opName(code), sg.Tensors[t].Name)
			}
			p = w.rangeParams(rg)
			if want != nil {
				p = *want
			}
			op.Inputs[k] = w.quantized(t, p)
		}
		if in0 == nil {
			pp := p
			in0 = &pp
		}
	}
	if in0 == nil {
		return fmt.Errorf("static: subgraph %d: %s %q has no activation input", w.si, opName(code), w.scope(op))
	}
	if ru.weight >= 0 {
		wScales, err := w.weight(op, ru)
		if err != nil {
			return err
		}
		if ru.bias >= 0 && len(op.Inputs) > ru.bias && op.Inputs[ru.bias] >= 0 {
			if err := w.bias(code, op, ru, in0.scale, wScales); err != nil {
				return err
			}
		}
	}
	for _, o := range op.Outputs {
		if o < 0 {
			continue
		}
		var p params
		switch ru.c {
		case fixed:
			p.scale, p.zp = fixedParams(code, w.opt.Bits)
		case sameIn:
			p = *in0
		case sameOut:
			p = *want
		default:
			p = w.rangeParams(w.r[Key{w.si, int(o)}])
		}
		w.retype(sg.Tensors[o], p)
		w.qp[o] = p
	}
	v := ru.version(code, op, w.opt.Bits)
	if code == fb.BuiltinOperatorMUL && w.opt.Bits == 8 && len(op.Inputs) == 2 {
		// Version 3 when s1·s2/s_out ≥ 1 (op_version.cc).
		s1, s2, so := w.scaleOf(op.Inputs[0]), w.scaleOf(op.Inputs[1]), w.scaleOf(op.Outputs[0])
		if so > 0 && float64(s1)*float64(s2)/float64(so) >= 1 {
			v = 3
		}
	}
	if oc := w.m.Meta.OperatorCodes[op.OpcodeIndex]; oc.Version < v {
		oc.Version = v
	}
	return nil
}

// scaleOf is the per-tensor scale of integer tensor t (0 if none).
func (w *rewriter) scaleOf(t int32) float32 {
	if t < 0 {
		return 0
	}
	if q := w.sg.Tensors[t].Quantization; q != nil && len(q.Scale) == 1 {
		return q.Scale[0]
	}
	return 0
}

// exclusive says whether constant t can be rewritten in place: one reader,
// not a subgraph input or output, its buffer used by no other tensor.
func (w *rewriter) exclusive(t int32) bool {
	return w.readers[t] == 1 && !w.sgIO[t] && w.bufUsers[w.sg.Tensors[t].Buffer] == 1
}

// constTarget returns where a quantized form of constant t goes: t itself
// and its buffer when exclusive, else a new tensor and buffer. The
// tensor's type and quantization are set by the caller.
func (w *rewriter) constTarget(t int32, suffix string, c tflite.Content) (int32, *fb.TensorT) {
	tt := w.sg.Tensors[t]
	if w.exclusive(t) {
		w.m.Buffers[tt.Buffer] = tflite.Buffer{Data: c}
		w.m.Meta.Buffers[tt.Buffer] = &fb.BufferT{}
		return t, tt
	}
	b := w.m.AddBuffer(c)
	nt := w.newTensor(tt, suffix, tt.Type, nil, b)
	w.bufUsers[b] = 1
	return nt, w.sg.Tensors[nt]
}

// floats reads constant t as float32 values.
func (w *rewriter) floats(t int32) ([]float32, error) {
	tt := w.sg.Tensors[t]
	data, err := tflite.ReadAll(w.m.Buffers[tt.Buffer].Data)
	if err != nil {
		return nil, fmt.Errorf("static: subgraph %d tensor %q: %w", w.si, tt.Name, err)
	}
	x := quant.Float32s(data)
	if err := quant.CheckFinite(x); err != nil {
		return nil, fmt.Errorf("static: subgraph %d tensor %q: %w", w.si, tt.Name, err)
	}
	return x, nil
}

// constAct quantizes a constant read as an activation (the other operand
// of ADD, MUL, a CONCATENATION input, a GATHER table) per tensor with the
// activation settings, or with want when the op ties it.
func (w *rewriter) constAct(t int32, want *params) (int32, params, error) {
	x, err := w.floats(t)
	if err != nil {
		return 0, params{}, err
	}
	sym := w.opt.Bits == 16 || w.opt.SymmetricInt8
	var p params
	if want != nil {
		p = *want
	} else {
		lo, hi, _, _ := finiteRange(x)
		if len(x) == 0 {
			lo, hi = 0, 0
		}
		p = actParams(lo, hi, w.opt.Bits, sym)
	}
	bits := w.opt.Bits
	src := w.m.Buffers[w.sg.Tensors[t].Buffer].Data
	n := int64(len(x)) * int64(bits/8)
	content := tflite.ContentFunc{N: n, Write: func(out io.Writer) error {
		data, err := tflite.ReadAll(src)
		if err != nil {
			return err
		}
		return writeActInts(out, quant.Float32s(data), p, bits, sym)
	}}
	nt, tt := w.constTarget(t, "_quant", content)
	w.retype(tt, p)
	w.qp[nt] = p
	return nt, p, nil
}

// writeActInts writes x quantized with p: rint(x/s + zp) (half to even,
// as the reference quantizer's numpy), clipped to the narrow range when
// symmetric; little-endian int8 or int16.
func writeActInts(out io.Writer, x []float32, p params, bits int, sym bool) error {
	qmax := int64(1)<<(bits-1) - 1
	qmin := -qmax - 1
	if sym {
		qmin = -qmax
	}
	buf := make([]byte, len(x)*bits/8)
	for i, v := range x {
		q := int64(math.RoundToEven(float64(v)/float64(p.scale) + float64(p.zp)))
		q = max(qmin, min(qmax, q))
		if bits == 8 {
			buf[i] = byte(int8(q))
		} else {
			binary.LittleEndian.PutUint16(buf[2*i:], uint16(int16(q)))
		}
	}
	_, err := out.Write(buf)
	return err
}

// weight quantizes op's weight int8 symmetric per channel along the
// rule's axis and returns the scales.
func (w *rewriter) weight(op *fb.OperatorT, ru opRule) ([]float32, error) {
	t := op.Inputs[ru.weight]
	tt := w.sg.Tensors[t]
	key := sharedKey{tt.Buffer, ru.axis}
	if sw := w.shared[key]; sw != nil {
		nt := w.newTensor(tt, "_quant", fb.TensorTypeINT8, &fb.QuantizationParametersT{Scale: sw.scales, ZeroPoint: sw.zps, QuantizedDimension: int32(ru.axis)}, sw.buffer)
		op.Inputs[ru.weight] = nt
		if _, seen := w.res.Weights[Key{w.si, int(t)}]; !seen {
			w.res.Weights[Key{w.si, int(t)}] = 0
		}
		return sw.scales, nil
	}
	x, err := w.floats(t)
	if err != nil {
		return nil, err
	}
	shape := make([]int, len(tt.Shape))
	for i, d := range tt.Shape {
		shape[i] = int(d)
	}
	ch := shape[ru.axis]
	scales, zps := make([]float32, ch), make([]int64, ch)
	if err := quant.ChannelParamsInt8(scales, zps, x, shape, ru.axis, true); err != nil {
		return nil, fmt.Errorf("static: subgraph %d weight %q: %w", w.si, tt.Name, err)
	}
	src := w.m.Buffers[tt.Buffer].Data
	content := tflite.ContentFunc{N: int64(len(x)), Write: func(out io.Writer) error {
		data, err := tflite.ReadAll(src)
		if err != nil {
			return err
		}
		f := quant.Float32s(data)
		q := make([]int8, len(f))
		quant.QuantizeInt8(q, f, shape, ru.axis, scales, zps, true)
		_, err = out.Write(quant.Int8Bytes(q))
		return err
	}}
	nt, nt2 := w.constTarget(t, "_quant", content)
	nt2.Type = fb.TensorTypeINT8
	nt2.Quantization = &fb.QuantizationParametersT{Scale: scales, ZeroPoint: zps, QuantizedDimension: int32(ru.axis)}
	op.Inputs[ru.weight] = nt
	w.shared[key] = &sharedWeight{buffer: nt2.Buffer, scales: scales, zps: zps}
	w.res.Weights[Key{w.si, int(t)}] += int64(len(x))
	return scales, nil
}

// bias quantizes op's bias at scale s_in·s_w[c], zero point 0: int32, or
// int64 under 16-bit activations (uniform_quantize_tensor.py:412-489).
func (w *rewriter) bias(code fb.BuiltinOperator, op *fb.OperatorT, ru opRule, sIn float32, sW []float32) error {
	t := op.Inputs[ru.bias]
	tt := w.sg.Tensors[t]
	x, err := w.floats(t)
	if err != nil {
		return err
	}
	if len(x) != len(sW) {
		return fmt.Errorf("static: subgraph %d: %s bias %q has %d values, its weight %d channels", w.si, opName(code), tt.Name, len(x), len(sW))
	}
	scales := make([]float32, len(sW))
	for c, s := range sW {
		scales[c] = float32(float64(sIn) * float64(s))
	}
	wide := w.opt.Bits == 16 && !(w.opt.Int32Bias && code != fb.BuiltinOperatorDEPTHWISE_CONV_2D)
	size := int64(4)
	typ := fb.TensorTypeINT32
	if wide {
		size, typ = 8, fb.TensorTypeINT64
	}
	src := w.m.Buffers[tt.Buffer].Data
	content := tflite.ContentFunc{N: int64(len(x)) * size, Write: func(out io.Writer) error {
		data, err := tflite.ReadAll(src)
		if err != nil {
			return err
		}
		f := quant.Float32s(data)
		buf := make([]byte, int64(len(f))*size)
		const lim = math.MaxInt32
		for c, v := range f {
			q := int64(math.RoundToEven(float64(v) / float64(scales[c])))
			q = max(-lim, min(lim, q))
			if wide {
				binary.LittleEndian.PutUint64(buf[8*c:], uint64(q))
			} else {
				binary.LittleEndian.PutUint32(buf[4*c:], uint32(int32(q)))
			}
		}
		_, err = out.Write(buf)
		return err
	}}
	nt, nt2 := w.constTarget(t, "_quant", content)
	nt2.Type = typ
	nt2.Quantization = &fb.QuantizationParametersT{Scale: scales, ZeroPoint: make([]int64, len(scales))}
	op.Inputs[ru.bias] = nt
	if w.opt.Bits == 16 && w.opt.Int32Bias && !wide {
		setBiasType(op, fb.TensorTypeINT32)
	}
	return nil
}

// setBiasType sets quantized_bias_type on a CONV_2D or FULLY_CONNECTED.
func setBiasType(op *fb.OperatorT, typ fb.TensorType) {
	if op.BuiltinOptions == nil {
		return
	}
	switch o := op.BuiltinOptions.Value.(type) {
	case *fb.FullyConnectedOptionsT:
		o.QuantizedBiasType = typ
	case *fb.Conv2DOptionsT:
		o.QuantizedBiasType = typ
	case *fb.TransposeConvOptionsT:
		o.QuantizedBiasType = typ
	}
}
