package stages

import (
	"fmt"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
	"github.com/qpipe/qpipe/pipeline"
)

// modelState is the pipeline.State.Model of a qpipe job.
type modelState struct {
	m    *tflite.Model
	path string
	// section is the model's section index in the bundle at path, or -1
	// for a bare model.
	section int
	// uses lists every op input that reads a weight a scheme could
	// quantize, in (subgraph, op, input) order.
	uses []*weightUse
	// jobs are the buffers the quantize stage rewrote (nil before it).
	jobs []*bufferJob
	// gate is verify's accuracy gate, applied by serialize (nil without).
	gate *accuracyGate
	// static says a static recipe rewrote the model (internal/static).
	static bool
}

// weightUse is one op input reading a candidate weight tensor.
type weightUse struct {
	sg, op, input int
	tensor        int
	code          fb.BuiltinOperator
	scope         string
	role          config.Role
	layer         int // -1: no layer index
	tiedLMHead    bool
}

func (w *weightUse) key() tensorKey { return tensorKey{w.sg, w.tensor} }

// tensorKey names a tensor of the model: subgraph and tensor index.
type tensorKey struct{ sg, tensor int }

// Fork implements pipeline.Forker.
func (s *modelState) Fork() (any, error) {
	m, err := s.m.Clone()
	if err != nil {
		return nil, err
	}
	c := &modelState{m: m, path: s.path, section: s.section, uses: make([]*weightUse, len(s.uses))}
	for i, u := range s.uses {
		uc := *u
		c.uses[i] = &uc
	}
	return c, nil
}

func model(s *pipeline.State) (*modelState, error) {
	ms, ok := s.Model.(*modelState)
	if !ok || ms == nil {
		return nil, fmt.Errorf("no model loaded: the job must start with a load stage")
	}
	return ms, nil
}

// weightInputs returns, for an op, the input positions that can hold a
// weight a scheme quantizes (SEMANTICS.md §5).
func weightInputs(code fb.BuiltinOperator, nInputs int) []int {
	switch code {
	case fb.BuiltinOperatorFULLY_CONNECTED, fb.BuiltinOperatorEMBEDDING_LOOKUP,
		fb.BuiltinOperatorCONV_2D, fb.BuiltinOperatorDEPTHWISE_CONV_2D,
		fb.BuiltinOperatorTRANSPOSE_CONV:
		if nInputs > 1 {
			return []int{1}
		}
	case fb.BuiltinOperatorBATCH_MATMUL:
		var ins []int
		for i := 0; i < nInputs && i < 2; i++ {
			ins = append(ins, i)
		}
		return ins
	}
	return nil
}

// isFloatWeight says whether tensor t of subgraph sg is a constant float32
// tensor that no one has quantized yet.
func isFloatWeight(m *tflite.Model, t *fb.TensorT) (bool, string) {
	if !m.HasData(t) {
		return false, ""
	}
	if t.Type != fb.TensorTypeFLOAT32 {
		return false, fmt.Sprintf("already %s: left as it is", t.Type)
	}
	if q := t.Quantization; q != nil && (len(q.Scale) > 0 || (q.Details != nil && q.Details.Type != fb.QuantizationDetailsNONE)) {
		return false, "already quantized: left as it is"
	}
	if t.ExternalBuffer != 0 {
		return false, "data in an external file: left as it is"
	}
	if t.Sparsity != nil {
		return false, "sparse tensor: left as it is"
	}
	return true, ""
}

func numElements(shape []int32) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= int64(d)
	}
	return n
}

func tensorLabel(t *fb.TensorT, sg, idx int) string {
	return fmt.Sprintf("subgraph %d tensor %d (%q)", sg, idx, t.Name)
}
