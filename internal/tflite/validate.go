package tflite

import (
	"fmt"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// validate checks every index and size that code downstream relies on, so
// that it can index the model without checking again:
//
//   - operator opcode_index < len(operator_codes);
//   - tensor indices of operator inputs (-1 = omitted optional input),
//     outputs and intermediates, and of subgraph inputs and outputs;
//   - Tensor.buffer < len(buffers);
//   - shapes: no negative dimension (shape_signature may hold -1), element
//     count at most 2^58;
//   - a constant tensor's buffer holds at least the bytes its shape and type
//     need (DataSize; a longer buffer is tolerated as by the runtime;
//     sparse tensors and types without a fixed size are not checked);
//   - operator codes (validateOperatorCode), quantization parameters
//     (validateQuantization), sparsity (validateSparsity), variant subtypes
//     and the subgraphs that operator options call (validate_semantic.go);
//   - signature defs: subgraph_index and tensor indices;
//   - metadata and metadata_buffer buffer indices;
//   - external buffers' group indices.
//
// Buffer offsets and sizes were checked against the file while decoding,
// and the flatbuffer's structure and enum values before it
// (verify_flatbuffer.go).
func (d *decoder) validate(m *Model) error {
	meta := m.Meta
	nb := len(m.Buffers)
	// What InterpreterBuilder refuses before looking at any tensor.
	if len(meta.Subgraphs) == 0 {
		return d.errorf("model table", -1, "the model has no subgraph")
	}
	if meta.Buffers == nil {
		return d.errorf("model table", -1, "the model has no buffers vector (the runtime refuses it; an empty one is fine)")
	}
	if nb > 0 && m.Buffers[0].Data != nil && m.Buffers[0].Data.Len() > 0 {
		return d.errorf("buffer 0", -1, "buffer 0 holds %d bytes: it must be the empty sentinel (the runtime never reads it, a tensor with buffer 0 has no data)", m.Buffers[0].Data.Len())
	}
	for i, oc := range meta.OperatorCodes {
		if err := d.validateOperatorCode(i, oc); err != nil {
			return err
		}
	}
	for si, sg := range meta.Subgraphs {
		if sg.Tensors == nil {
			return d.errorf(fmt.Sprintf("subgraph %d", si), -1, "no tensors vector (the runtime refuses it; an empty one is fine)")
		}
		nt := len(sg.Tensors)
		for ti, t := range sg.Tensors {
			if err := d.validateTensor(m, si, ti, t, nt); err != nil {
				return err
			}
		}
		for k, idx := range sg.Inputs {
			if idx < 0 || int(idx) >= nt {
				return d.errorf(fmt.Sprintf("subgraph %d", si), -1, "input %d is tensor %d, out of range (subgraph has %d tensors)", k, idx, nt)
			}
		}
		for k, idx := range sg.Outputs {
			if idx < 0 || int(idx) >= nt {
				return d.errorf(fmt.Sprintf("subgraph %d", si), -1, "output %d is tensor %d, out of range (subgraph has %d tensors)", k, idx, nt)
			}
		}
		for oi, op := range sg.Operators {
			if err := d.validateOperator(meta, si, oi, op, nt); err != nil {
				return err
			}
		}
	}
	if err := d.validateSubgraphCalls(meta); err != nil {
		return err
	}
	for i, sig := range meta.SignatureDefs {
		where := fmt.Sprintf("signature %d (%q)", i, sig.SignatureKey)
		if int(sig.SubgraphIndex) >= len(meta.Subgraphs) {
			return d.errorf(where, -1, "subgraph %d out of range (model has %d subgraphs)", sig.SubgraphIndex, len(meta.Subgraphs))
		}
		nt := len(meta.Subgraphs[sig.SubgraphIndex].Tensors)
		for _, list := range []struct {
			kind string
			maps []*fb.TensorMapT
		}{{"input", sig.Inputs}, {"output", sig.Outputs}} {
			for _, tm := range list.maps {
				if int(tm.TensorIndex) >= nt {
					return d.errorf(where, -1, "%s %q is tensor %d, out of range (subgraph %d has %d tensors)",
						list.kind, tm.Name, tm.TensorIndex, sig.SubgraphIndex, nt)
				}
			}
		}
	}
	for i, md := range meta.Metadata {
		if int(md.Buffer) >= nb {
			return d.errorf(fmt.Sprintf("metadata %d (%q)", i, md.Name), -1, "buffer %d out of range (model has %d buffers)", md.Buffer, nb)
		}
	}
	for i, eb := range meta.ExternalBuffers {
		if int(eb.Group) >= len(meta.ExternalBufferGroups) {
			return d.errorf(fmt.Sprintf("external buffer %d", i), -1, "group %d out of range (model has %d external buffer groups)", eb.Group, len(meta.ExternalBufferGroups))
		}
	}
	for i, b := range meta.MetadataBuffer {
		if b < 0 || int(b) >= nb {
			return d.errorf(fmt.Sprintf("metadata_buffer %d", i), -1, "buffer %d out of range (model has %d buffers)", b, nb)
		}
	}
	return nil
}

func (d *decoder) validateTensor(m *Model, si, ti int, t *fb.TensorT, nt int) error {
	where := tensorWhere(si, ti, t.Name)
	fail := func(format string, a ...any) error {
		return d.errorf(where, d.tensorPos(si, ti), format, a...)
	}
	if int(t.Buffer) >= len(m.Buffers) {
		return fail("buffer %d out of range (model has %d buffers)", t.Buffer, len(m.Buffers))
	}
	n, err := NumElements(t.Shape)
	if err != nil {
		return fail("%v", err)
	}
	for k, dim := range t.ShapeSignature {
		if dim < -1 {
			return fail("shape_signature %v: dimension %d is %d (only -1, dynamic, may be negative)", t.ShapeSignature, k, dim)
		}
	}
	data := m.Buffers[t.Buffer].Data
	if data != nil && data.Len() != 0 {
		if t.IsVariable {
			return fail("a constant (buffer %d holds data) that is also a variable: the runtime refuses it", t.Buffer)
		}
		if t.ExternalBuffer != 0 {
			return fail("a constant (buffer %d holds data) that also names external buffer %d: the runtime refuses it", t.Buffer, t.ExternalBuffer)
		}
	}
	if data != nil && data.Len() != 0 && t.Sparsity == nil {
		need, ok := DataSize(t.Type, n)
		if ok && data.Len() < need {
			return fail("buffer %d holds %d bytes, less than the %d a %s tensor of shape %v needs",
				t.Buffer, data.Len(), need, TypeName(t.Type), t.Shape)
		}
	}
	if err := d.validateQuantization(m, si, ti, t, fail); err != nil {
		return err
	}
	if err := validateSparsity(m, t, fail); err != nil {
		return err
	}
	if err := validateVariants(t, fail); err != nil {
		return err
	}
	return nil
}

func (d *decoder) validateOperator(meta *fb.ModelT, si, oi int, op *fb.OperatorT, nt int) error {
	where := fmt.Sprintf("subgraph %d operator %d", si, oi)
	if int(op.OpcodeIndex) >= len(meta.OperatorCodes) {
		return d.errorf(where, d.operatorPos(si, oi), "opcode_index %d out of range (model has %d operator codes)", op.OpcodeIndex, len(meta.OperatorCodes))
	}
	where = fmt.Sprintf("subgraph %d operator %d (%s)", si, oi, opName(meta.OperatorCodes[op.OpcodeIndex]))
	check := func(kind string, list []int32, optional bool) error {
		for k, idx := range list {
			if optional && idx == -1 {
				continue
			}
			if idx < 0 || int(idx) >= nt {
				return d.errorf(where, d.operatorPos(si, oi), "%s %d is tensor %d, out of range (subgraph has %d tensors)", kind, k, idx, nt)
			}
		}
		return nil
	}
	if err := check("input", op.Inputs, true); err != nil {
		return err
	}
	if err := check("output", op.Outputs, false); err != nil {
		return err
	}
	return check("intermediate", op.Intermediates, false)
}

// opName names an operator code: its builtin name, or the custom code.
func opName(oc *fb.OperatorCodeT) string {
	code := BuiltinCode(oc)
	if code == fb.BuiltinOperatorCUSTOM && oc.CustomCode != "" {
		return oc.CustomCode
	}
	if s, ok := fb.EnumNamesBuiltinOperator[code]; ok {
		return s
	}
	return fmt.Sprintf("BUILTIN_%d", int32(code))
}

// tensorPos is the byte offset of tensor ti's table in subgraph si, or -1.
func (d *decoder) tensorPos(si, ti int) int64 {
	pos := int64(-1)
	d.try(at(""), func() {
		var sg fb.SubGraph
		var t fb.Tensor
		if fb.GetRootAsModel(d.buf, 0).Subgraphs(&sg, si) && sg.Tensors(&t, ti) {
			pos = int64(t.Table().Pos)
		}
	})
	return pos
}

// operatorPos is the byte offset of operator oi's table in subgraph si, or -1.
func (d *decoder) operatorPos(si, oi int) int64 {
	pos := int64(-1)
	d.try(at(""), func() {
		var sg fb.SubGraph
		var op fb.Operator
		if fb.GetRootAsModel(d.buf, 0).Subgraphs(&sg, si) && sg.Operators(&op, oi) {
			pos = int64(op.Table().Pos)
		}
	})
	return pos
}
