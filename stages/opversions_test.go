package stages

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// TestRequiredVersionTable pins the numbers of FORMAT.md §5 that the
// runtime relies on.
func TestRequiredVersionTable(t *testing.T) {
	const (
		fc  = fb.BuiltinOperatorFULLY_CONNECTED
		cv  = fb.BuiltinOperatorCONV_2D
		dw  = fb.BuiltinOperatorDEPTHWISE_CONV_2D
		tc  = fb.BuiltinOperatorTRANSPOSE_CONV
		bmm = fb.BuiltinOperatorBATCH_MATMUL
		el  = fb.BuiltinOperatorEMBEDDING_LOOKUP
		dq  = fb.BuiltinOperatorDEQUANTIZE
	)
	cases := []struct {
		code       fb.BuiltinOperator
		form       WeightForm
		bias, asym bool
		want       int32
	}{
		{fc, FormInt8PerChannel, false, false, 12},
		{fc, FormInt8PerTensor, false, false, 3},
		{fc, FormInt8PerTensor, false, true, 9},
		{fc, FormFloat, false, false, 1},
		{cv, FormInt8PerChannel, false, false, 5},
		{cv, FormInt8PerTensor, false, false, 2},
		{dw, FormInt8PerChannel, false, false, 6},
		{dw, FormInt8PerTensor, false, false, 4},
		{tc, FormInt8PerChannel, false, false, 2},
		{tc, FormInt8PerChannel, true, false, 3},
		{bmm, FormInt8PerChannel, false, false, 1},
		{bmm, FormInt8PerChannel, false, true, 4},
		{el, FormInt8PerChannel, false, false, 4},
		{el, FormInt4Blockwise, false, false, 4},
		{dq, FormDequantInt8PerTensor, false, false, 2},
		{dq, FormDequantFloat16, false, false, 3},
		{dq, FormDequantInt8PerChannel, false, false, 5},
		{dq, FormDequantInt4, false, false, 6},
	}
	for _, c := range cases {
		if got := RequiredVersion(c.code, c.form, c.bias, c.asym); got != c.want {
			t.Errorf("RequiredVersion(%s, form %d, bias %v, asym %v) = %d, want %d", c.code, c.form, c.bias, c.asym, got, c.want)
		}
	}
}

// registryMax is the highest version the runtime registers per op
// (FORMAT.md §5): a higher one fails to load.
var registryMax = map[fb.BuiltinOperator]int32{
	fb.BuiltinOperatorFULLY_CONNECTED:   14,
	fb.BuiltinOperatorCONV_2D:           8,
	fb.BuiltinOperatorDEPTHWISE_CONV_2D: 7,
	fb.BuiltinOperatorTRANSPOSE_CONV:    5,
	fb.BuiltinOperatorBATCH_MATMUL:      4,
	fb.BuiltinOperatorEMBEDDING_LOOKUP:  5,
	fb.BuiltinOperatorDEQUANTIZE:        9,
}

// formOf classifies, from the written file alone, how op input reads a
// constant tensor.
func formOf(m *tflite.Model, t *fb.TensorT, dequantize bool) WeightForm {
	if t.Buffer == 0 || m.Buffers[t.Buffer].Data == nil || m.Buffers[t.Buffer].Data.Len() == 0 {
		return FormFloat
	}
	q := t.Quantization
	switch t.Type {
	case fb.TensorTypeINT8:
		perChannel := q != nil && len(q.Scale) > 1
		switch {
		case dequantize && perChannel:
			return FormDequantInt8PerChannel
		case dequantize:
			return FormDequantInt8PerTensor
		case perChannel:
			return FormInt8PerChannel
		}
		return FormInt8PerTensor
	case fb.TensorTypeINT4:
		if dequantize {
			return FormDequantInt4
		}
		return FormInt4Blockwise
	case fb.TensorTypeFLOAT16:
		if dequantize {
			return FormDequantFloat16
		}
	}
	return FormFloat
}

// checkVersions: every op that reads a quantized constant has at least
// the version RequiredVersion gives for that form, no version exceeds the
// runtime's registry, and no version was lowered.
func checkVersions(t *testing.T, in, out *tflite.Model) {
	t.Helper()
	for si, sg := range out.Meta.Subgraphs {
		for oi, op := range sg.Operators {
			code := out.OpCode(op)
			v := opVersion(out, op)
			if max, ok := registryMax[code]; ok && v > max {
				t.Errorf("subgraph %d op %d (%s): version %d above the runtime's %d", si, oi, code, v, max)
			}
			for _, x := range op.Inputs {
				if x < 0 {
					continue
				}
				form := formOf(out, sg.Tensors[x], code == fb.BuiltinOperatorDEQUANTIZE)
				hasBias := code == fb.BuiltinOperatorTRANSPOSE_CONV && len(op.Inputs) > 3 && op.Inputs[3] >= 0
				var asym bool
				if op.BuiltinOptions != nil {
					switch o := op.BuiltinOptions.Value.(type) {
					case *fb.FullyConnectedOptionsT:
						asym = o.AsymmetricQuantizeInputs
					case *fb.BatchMatMulOptionsT:
						asym = o.AsymmetricQuantizeInputs
					}
				}
				if need := RequiredVersion(code, form, hasBias, asym); v < need {
					t.Errorf("subgraph %d op %d (%s) reads %q (form %d) at version %d, needs %d", si, oi, code, sg.Tensors[x].Name, form, v, need)
				}
			}
		}
	}
	before := map[fb.BuiltinOperator]int32{}
	for _, oc := range in.Meta.OperatorCodes {
		before[tflite.BuiltinCode(oc)] = max(before[tflite.BuiltinCode(oc)], oc.Version)
	}
	for _, oc := range out.Meta.OperatorCodes {
		if v, ok := before[tflite.BuiltinCode(oc)]; ok && oc.Version < v {
			t.Errorf("%s: version lowered from %d to %d", tflite.BuiltinCode(oc), v, oc.Version)
		}
	}
}

// codeVersions maps each op code of m to its OperatorCode versions.
func codeVersions(m *tflite.Model) map[fb.BuiltinOperator][]int32 {
	out := map[fb.BuiltinOperator][]int32{}
	for _, oc := range m.Meta.OperatorCodes {
		out[tflite.BuiltinCode(oc)] = append(out[tflite.BuiltinCode(oc)], oc.Version)
	}
	return out
}

// TestOpVersionsAfterQuantize: the versions the runtime needs for each
// written form, on the tiny decoder and the reference test models.
func TestOpVersionsAfterQuantize(t *testing.T) {
	const (
		fc  = fb.BuiltinOperatorFULLY_CONNECTED
		el  = fb.BuiltinOperatorEMBEDDING_LOOKUP
		dq  = fb.BuiltinOperatorDEQUANTIZE
		cv  = fb.BuiltinOperatorCONV_2D
		dw  = fb.BuiltinOperatorDEPTHWISE_CONV_2D
		tc  = fb.BuiltinOperatorTRANSPOSE_CONV
		bmm = fb.BuiltinOperatorBATCH_MATMUL
	)
	cases := []struct {
		model, recipe string
		// want: op code → exact version after quantization; 0 means the
		// input's version, unchanged.
		want map[fb.BuiltinOperator]int32
	}{
		{"tiny_decoder.tflite", "dynamic_int8", map[fb.BuiltinOperator]int32{fc: 12, el: 4}},
		{"tiny_decoder.tflite", "weight_only_int8", map[fb.BuiltinOperator]int32{fc: 0, el: 0, dq: 5}},
		{"tiny_decoder.tflite", "fp16", map[fb.BuiltinOperator]int32{fc: 0, el: 0, dq: 3}},
		{"tiny_decoder.tflite", "dynamic_int4_block32", map[fb.BuiltinOperator]int32{el: 4}},
		{"tiny_decoder.tflite", "{default: fp16, embedding: weight_only_int8}", map[fb.BuiltinOperator]int32{fc: 0, el: 0, dq: 5}},
		{"aeq_conv_fc_mnist.tflite", "dynamic_int8", map[fb.BuiltinOperator]int32{cv: 5, fc: 12}},
		{"aeq_conv_fc_mnist.tflite", "weight_only_int8", map[fb.BuiltinOperator]int32{cv: 0, fc: 0, dq: 5}},
		{"aeq_single_depthwise_conv2d_bias.tflite", "dynamic_int8", map[fb.BuiltinOperator]int32{dw: 6}},
		{"aeq_single_conv2d_transpose_bias.tflite", "dynamic_int8", map[fb.BuiltinOperator]int32{tc: 3}},
		{"aeq_bmm_constant_input.tflite", "dynamic_int8", map[fb.BuiltinOperator]int32{bmm: 0}},
		{"aeq_embedding_lookup.tflite", "dynamic_int8", map[fb.BuiltinOperator]int32{el: 4}},
	}
	for _, c := range cases {
		t.Run(c.model+"/"+c.recipe, func(t *testing.T) {
			in := absModel(t, c.model)
			dir, _, err := runJobFile(t, fmt.Sprintf(`version: 1
stages:
  - load: {path: %q}
  - quantize: {recipe: %s}
  - verify: {}
  - serialize: {path: out.tflite}
`, in, c.recipe))
			if err != nil {
				t.Fatal(err)
			}
			src := openModel(t, in)
			m := openModel(t, filepath.Join(dir, "out.tflite"))
			checkVersions(t, src, m)
			before, after := codeVersions(src), codeVersions(m)
			for code, want := range c.want {
				got := after[code]
				if len(got) != 1 {
					t.Errorf("%s: %d operator codes (versions %v), want one", code, len(got), got)
					continue
				}
				if want == 0 {
					if b := before[code]; len(b) != 1 || b[0] != got[0] {
						t.Errorf("%s: version %d, want the input's %v: the op reads float", code, got[0], b)
					}
				} else if got[0] != want {
					t.Errorf("%s: version %d, want %d", code, got[0], want)
				}
			}
		})
	}
}
