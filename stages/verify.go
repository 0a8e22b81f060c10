package stages

import (
	"context"

	"fmt"
	"github.com/qpipe/qpipe/config"
	"math"
	"strings"

	"github.com/qpipe/qpipe/internal/quant"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
	"github.com/qpipe/qpipe/pipeline"
)

// Verify checks every tensor the quantize stage wrote, and the ops that
// read them, against what the runtime needs (FORMAT.md §5, §7;
// SEMANTICS.md §6): block sizes, divisibility, scale tensors, positive
// normal scales, data sizes, op versions. It lists every violation; any
// violation fails the job. (Schemes that do not fit a tensor were already
// caught, or replaced under on_mismatch: fallback, by quantize, before any
// weight was read.)
//
// With Accuracy it also resolves the accuracy gate against the float model
// (accuracyGate), which serialize then applies to the written model before
// it is renamed into place.
type Verify struct {
	Accuracy *config.AccuracyGate
}

func (*Verify) Name() string { return "verify" }

func (v *Verify) Run(ctx context.Context, s *pipeline.State) error {
	ms, err := model(s)
	if err != nil {
		return err
	}
	if s.DryRun {
		return v.planGate(ms, s)
	}
	var bad []string
	for _, j := range ms.jobs {
		for _, g := range j.tensors {
			// A late job's scales exist once serialize wrote it (and are
			// checked there); everything else is checked now.
			for _, p := range verifyTensor(ms.m, g.sg, g.tensor, !j.late) {
				bad = append(bad, fmt.Sprintf("%s: %s", tensorLabel(ms.m.Meta.Subgraphs[g.sg].Tensors[g.tensor], g.sg, g.tensor), p))
			}
		}
	}
	bad = append(bad, verifyVersions(ms.m, ms.jobs)...)
	if len(bad) > 0 {
		return fmt.Errorf("%d problem(s) in the quantized model:\n  %s", len(bad), strings.Join(bad, "\n  "))
	}
	if err := v.planGate(ms, s); err != nil {
		return err
	}
	return ctx.Err()
}

// planGate resolves the accuracy gate, if any, and puts what it will
// measure in the plan.
func (v *Verify) planGate(ms *modelState, s *pipeline.State) error {
	if v.Accuracy == nil {
		return nil
	}
	section := -1
	if s.Part != nil {
		section = s.Part.Section
	}
	g, err := planAccuracy(v.Accuracy, s.InputPath, section)
	if err != nil {
		return err
	}
	ms.gate = g
	if s.Plan != nil {
		a := g.plan
		s.Plan.Accuracy = &a
	}
	return nil
}

// verifyTensor returns what is wrong with one quantized tensor; values
// says whether its scales are computed yet and can be checked too.
func verifyTensor(m *tflite.Model, sgi, ti int, values bool) []string {
	sg := m.Meta.Subgraphs[sgi]
	t := sg.Tensors[ti]
	var bad []string
	n := numElements(t.Shape)
	if int(t.Buffer) >= len(m.Buffers) || m.Buffers[t.Buffer].Data == nil {
		return []string{fmt.Sprintf("quantized weight without data (buffer %d)", t.Buffer)}
	}
	size := m.Buffers[t.Buffer].Data.Len()
	if need, ok := tflite.DataSize(t.Type, n); ok && size != need {
		bad = append(bad, fmt.Sprintf("buffer %d holds %d bytes, %s %v needs %d", t.Buffer, size, t.Type, t.Shape, need))
	}
	q := t.Quantization
	perChannel := t.Type == fb.TensorTypeINT8 || t.Type == fb.TensorTypeINT4 && q != nil && len(q.Scale) > 0
	switch {
	case perChannel:
		// int8, or int4 with per-channel (or one) scales through a DEQUANTIZE.
		if q == nil || len(q.Scale) == 0 {
			return append(bad, "INT8 weight without scales")
		}
		qd := int(q.QuantizedDimension)
		if qd < 0 || qd >= len(t.Shape) {
			bad = append(bad, fmt.Sprintf("quantized_dimension %d outside rank %d", qd, len(t.Shape)))
		} else if len(q.Scale) != 1 && len(q.Scale) != int(t.Shape[qd]) {
			bad = append(bad, fmt.Sprintf("%d scales for %d channels on axis %d", len(q.Scale), t.Shape[qd], qd))
		}
		if len(q.ZeroPoint) != len(q.Scale) {
			bad = append(bad, fmt.Sprintf("%d zero points for %d scales", len(q.ZeroPoint), len(q.Scale)))
		}
		for c, sc := range q.Scale {
			if !values {
				break
			}
			if !(sc > 0) || math.IsInf(float64(sc), 0) {
				bad = append(bad, fmt.Sprintf("scale %d is %g: scales must be positive and finite", c, sc))
				break
			}
		}
	case t.Type == fb.TensorTypeINT4:
		bad = append(bad, verifyBlockwise(m, sg, t, values)...)
	}
	return bad
}

func verifyBlockwise(m *tflite.Model, sg *fb.SubGraphT, t *fb.TensorT, values bool) []string {
	q := t.Quantization
	if q == nil || q.Details == nil || q.Details.Type != fb.QuantizationDetailsBlockwiseQuantization {
		return []string{"INT4 weight without blockwise quantization details"}
	}
	bq := q.Details.Value.(*fb.BlockwiseQuantizationT)
	b := int(bq.BlockSize)
	var bad []string
	if b < 32 || b%32 != 0 {
		bad = append(bad, fmt.Sprintf("block size %d: must be a multiple of 32, at least 32", b))
	}
	if len(t.Shape) != 2 {
		return append(bad, fmt.Sprintf("blockwise weight of rank %d: must be 2-D", len(t.Shape)))
	}
	if b <= 0 || int(t.Shape[1])%b != 0 {
		return append(bad, fmt.Sprintf("last dimension %d not divisible by block size %d", t.Shape[1], b))
	}
	if q.QuantizedDimension != 0 {
		bad = append(bad, fmt.Sprintf("quantized_dimension %d: the runtime expects 0", q.QuantizedDimension))
	}
	if bq.ZeroPoints != -1 {
		bad = append(bad, fmt.Sprintf("zero_points tensor %d: symmetric int4 has none (-1)", bq.ZeroPoints))
	}
	if bq.Scales < 0 || int(bq.Scales) >= len(sg.Tensors) {
		return append(bad, fmt.Sprintf("scale tensor index %d out of range (%d tensors)", bq.Scales, len(sg.Tensors)))
	}
	st := sg.Tensors[bq.Scales]
	want := []int32{t.Shape[0], t.Shape[1] / int32(b)}
	if st.Type != fb.TensorTypeFLOAT16 || len(st.Shape) != 2 || st.Shape[0] != want[0] || st.Shape[1] != want[1] {
		return append(bad, fmt.Sprintf("scale tensor %q is %s %v, want FLOAT16 %v", st.Name, st.Type, st.Shape, want))
	}
	if !values {
		return bad
	}
	data, err := tflite.ReadAll(m.Buffers[st.Buffer].Data)
	if err != nil || int64(len(data)) != 2*numElements(st.Shape) {
		return append(bad, fmt.Sprintf("scale tensor %q: data missing or of the wrong size", st.Name))
	}
	h := make([]uint16, len(data)/2)
	quant.DecodeUint16LE(h, data)
	if i := firstAbnormal(h); i >= 0 {
		bad = append(bad, fmt.Sprintf("block scale %d is %#04x: not a positive normal float16 (the CPU runtime refuses the model)", i, h[i]))
	}
	return bad
}

// verifyVersions checks that every op reading a quantized weight, and
// every DEQUANTIZE, has a version at least RequiredVersion.
func verifyVersions(m *tflite.Model, jobs []*bufferJob) []string {
	written := map[tensorKey]bool{}
	for _, j := range jobs {
		for _, g := range j.tensors {
			written[tensorKey{g.sg, g.tensor}] = true
		}
	}
	var bad []string
	for si, sg := range m.Meta.Subgraphs {
		for oi, op := range sg.Operators {
			code := m.OpCode(op)
			for _, in := range op.Inputs {
				if in < 0 || !written[tensorKey{si, int(in)}] {
					continue
				}
				hasBias, asym := opFlags(code, op)
				need := RequiredVersion(code, weightForm(sg.Tensors[in], code == fb.BuiltinOperatorDEQUANTIZE), hasBias, asym)
				if v := m.Meta.OperatorCodes[op.OpcodeIndex].Version; v < need {
					bad = append(bad, fmt.Sprintf("subgraph %d op %d (%s): version %d, reading %q needs %d", si, oi, code, v, sg.Tensors[in].Name, need))
				}
			}
		}
	}
	return bad
}
