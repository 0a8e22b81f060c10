package stages

import (
	"sort"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// rewrite changes the tables: tensor types and quantization, scale tensors,
// DEQUANTIZE ops, op versions; and makes each job's buffer lazy content.
func rewrite(m *tflite.Model, groups []*tensorGroup, jobs []*bufferJob, metrics bool) {
	var dq []*dequantOp
	for _, j := range jobs {
		if j.late && !j.reference && j.req.sc.kind != kindInt4Block {
			m.LateTables = true // int8 scales are table values
		}
		m.Buffers[j.buffer] = tflite.Buffer{Data: j.content(metrics)}
		m.Meta.Buffers[j.buffer] = &fb.BufferT{}
		if j.reference {
			for _, g := range j.tensors {
				m.Meta.Subgraphs[g.sg].Tensors[g.tensor].Buffer = j.buffer
			}
			continue
		}
		var scaleBuf uint32
		if j.req.sc.kind == kindInt4Block {
			scaleBuf = m.AddBuffer(j.scaleContent())
		}
		for _, g := range j.tensors {
			sg := m.Meta.Subgraphs[g.sg]
			t := sg.Tensors[g.tensor]
			t.Buffer = j.buffer
			j.setTensor(t)
			if j.req.sc.kind == kindInt4Block {
				sg.Tensors = append(sg.Tensors, &fb.TensorT{
					Name:   t.Name + "_scales",
					Type:   fb.TensorTypeFLOAT16,
					Shape:  []int32{int32(j.shape[0]), int32(j.shape[1] / j.req.sc.block)},
					Buffer: scaleBuf,
				})
				t.Quantization.Details.Value.(*fb.BlockwiseQuantizationT).Scales = int32(len(sg.Tensors) - 1)
			}
			if j.req.sc.dequantize() {
				dq = append(dq, newDequant(m, g, t))
			} else {
				raiseVersions(m, g, t)
			}
		}
	}
	insertDequantize(m, dq)
}

// raiseVersions raises the OperatorCode of every op that now reads t as a
// hybrid weight to what FORMAT.md §5 requires.
func raiseVersions(m *tflite.Model, g *tensorGroup, t *fb.TensorT) {
	form := weightForm(t, false)
	for _, u := range g.uses {
		op := m.Meta.Subgraphs[u.sg].Operators[u.op]
		hasBias, asym := opFlags(u.code, op)
		need := RequiredVersion(u.code, form, hasBias, asym)
		if oc := m.Meta.OperatorCodes[op.OpcodeIndex]; oc.Version < need {
			oc.Version = need
		}
	}
}

// dequantOp is a DEQUANTIZE to insert before the first reader of a weight.
type dequantOp struct {
	sg     int
	before *fb.OperatorT
	op     *fb.OperatorT
	form   WeightForm
}

// newDequant adds the float tensor `<name>_dequant` and rewires the
// weight's readers to it (SEMANTICS.md §7).
func newDequant(m *tflite.Model, g *tensorGroup, t *fb.TensorT) *dequantOp {
	sg := m.Meta.Subgraphs[g.sg]
	sg.Tensors = append(sg.Tensors, &fb.TensorT{
		Name:  t.Name + "_dequant",
		Type:  fb.TensorTypeFLOAT32,
		Shape: append([]int32(nil), t.Shape...),
	})
	out := int32(len(sg.Tensors) - 1)
	first := g.uses[0].op
	for _, u := range g.uses {
		first = min(first, u.op)
		sg.Operators[u.op].Inputs[u.input] = out
	}
	return &dequantOp{
		sg:     g.sg,
		before: sg.Operators[first],
		op:     &fb.OperatorT{Inputs: []int32{int32(g.tensor)}, Outputs: []int32{out}},
		form:   weightForm(t, true),
	}
}

// insertDequantize puts the DEQUANTIZE ops into the operator lists, each
// right before the first op that reads its output, and gives them one
// OperatorCode whose version covers every form.
func insertDequantize(m *tflite.Model, ops []*dequantOp) {
	if len(ops) == 0 {
		return
	}
	need := int32(1)
	for _, d := range ops {
		need = max(need, RequiredVersion(fb.BuiltinOperatorDEQUANTIZE, d.form, false, false))
	}
	code := m.OperatorCodeIndex(fb.BuiltinOperatorDEQUANTIZE, need)
	bySG := map[int]map[*fb.OperatorT][]*fb.OperatorT{}
	for _, d := range ops {
		d.op.OpcodeIndex = code
		if bySG[d.sg] == nil {
			bySG[d.sg] = map[*fb.OperatorT][]*fb.OperatorT{}
		}
		bySG[d.sg][d.before] = append(bySG[d.sg][d.before], d.op)
	}
	sgs := make([]int, 0, len(bySG))
	for si := range bySG {
		sgs = append(sgs, si)
	}
	sort.Ints(sgs)
	for _, si := range sgs {
		sg := m.Meta.Subgraphs[si]
		out := make([]*fb.OperatorT, 0, len(sg.Operators)+len(ops))
		for _, op := range sg.Operators {
			out = append(out, bySG[si][op]...)
			out = append(out, op)
		}
		sg.Operators = out
	}
}
