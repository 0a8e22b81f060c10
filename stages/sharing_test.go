package stages

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// TestSharedBufferAcrossSubgraphs: aeq_weight_sharing_fcs has one weight
// buffer read by a tensor in each of its two subgraphs. Quantized, the two
// tensors still share one buffer holding the int8 data once.
func TestSharedBufferAcrossSubgraphs(t *testing.T) {
	in := filepath.Join(models, "aeq_weight_sharing_fcs.tflite")
	src := openModel(t, in)
	for _, preset := range []string{"dynamic_int8", "weight_only_int8"} {
		t.Run(preset, func(t *testing.T) {
			out, _, err := quantizeFile(t, in, preset, false)
			if err != nil {
				t.Fatal(err)
			}
			m := openModel(t, out)
			if len(m.Meta.Buffers) != len(src.Meta.Buffers) {
				t.Errorf("%d buffers, the input has %d: the shared weight was duplicated", len(m.Meta.Buffers), len(src.Meta.Buffers))
			}
			var bufs []uint32
			var quant []*fb.QuantizationParametersT
			for sg := range m.Meta.Subgraphs {
				fcs := opsOf(m, sg, fb.BuiltinOperatorFULLY_CONNECTED)
				if len(fcs) != 1 {
					t.Fatalf("subgraph %d: %d FULLY_CONNECTED", sg, len(fcs))
				}
				w, dq := weightOf(m, sg, fcs[0], 1)
				if dq != (preset == "weight_only_int8") {
					t.Errorf("subgraph %d: read through DEQUANTIZE = %v", sg, dq)
				}
				wt := m.Meta.Subgraphs[sg].Tensors[w]
				if wt.Type != fb.TensorTypeINT8 {
					t.Errorf("subgraph %d: weight %q is %s", sg, wt.Name, wt.Type)
				}
				bufs = append(bufs, wt.Buffer)
				quant = append(quant, wt.Quantization)
				if n := m.Buffers[wt.Buffer].Data.Len(); n != 32*16 {
					t.Errorf("subgraph %d: weight buffer holds %d bytes, want %d int8 values", sg, n, 32*16)
				}
			}
			if bufs[0] != bufs[1] {
				t.Errorf("the two subgraphs' weights use buffers %d and %d: no longer shared", bufs[0], bufs[1])
			}
			if fmt.Sprint(quant[0].Scale) != fmt.Sprint(quant[1].Scale) {
				t.Errorf("the shared weight has two sets of scales")
			}
		})
	}
}

// TestDequantizeOncePerWeight: in
// aeq_constant_tensor_and_buffer_only_sharing_weight_fcs each subgraph has
// one constant read by two FCs, and the two subgraphs' constants share a
// buffer. Weight-only int8 inserts exactly one DEQUANTIZE per weight per
// subgraph, before its first reader, and rewires both readers to it.
func TestDequantizeOncePerWeight(t *testing.T) {
	in := filepath.Join(models, "aeq_constant_tensor_and_buffer_only_sharing_weight_fcs.tflite")
	out, _, err := quantizeFile(t, in, "weight_only_int8", false)
	if err != nil {
		t.Fatal(err)
	}
	m := openModel(t, out)
	dqCodes := 0
	for _, oc := range m.Meta.OperatorCodes {
		if tflite.BuiltinCode(oc) == fb.BuiltinOperatorDEQUANTIZE {
			dqCodes++
		}
	}
	if dqCodes != 1 {
		t.Errorf("%d DEQUANTIZE operator codes, want 1", dqCodes)
	}
	var bufs []uint32
	for sg, s := range m.Meta.Subgraphs {
		if got := strings.Join(opNames(m, sg), " "); got != "DEQUANTIZE FULLY_CONNECTED FULLY_CONNECTED" {
			t.Errorf("subgraph %d ops: %s", sg, got)
			continue
		}
		dq := s.Operators[0]
		w := s.Tensors[dq.Inputs[0]]
		d := s.Tensors[dq.Outputs[0]]
		if w.Type != fb.TensorTypeINT8 || d.Type != fb.TensorTypeFLOAT32 || d.Name != w.Name+"_dequant" || d.Buffer != 0 {
			t.Errorf("subgraph %d: DEQUANTIZE %q (%s) → %q (%s, buffer %d)", sg, w.Name, w.Type, d.Name, d.Type, d.Buffer)
		}
		for i, op := range s.Operators[1:] {
			if op.Inputs[1] != dq.Outputs[0] {
				t.Errorf("subgraph %d: FC %d reads tensor %d, not the DEQUANTIZE output %d", sg, i, op.Inputs[1], dq.Outputs[0])
			}
		}
		// No op reads the int8 weight but the DEQUANTIZE.
		for oi, op := range s.Operators[1:] {
			for _, x := range op.Inputs {
				if x == dq.Inputs[0] {
					t.Errorf("subgraph %d op %d reads the int8 weight directly", sg, oi+1)
				}
			}
		}
		bufs = append(bufs, w.Buffer)
	}
	if len(bufs) == 2 && bufs[0] != bufs[1] {
		t.Errorf("the subgraphs' weights use buffers %d and %d: the shared buffer was split", bufs[0], bufs[1])
	}
}

// tiedHead returns the stored tensors behind the embedding table and the
// logits FC of a generated decoder.
func tiedHead(t *testing.T, m *tflite.Model) (table, head *fb.TensorT) {
	t.Helper()
	els := opsOf(m, 0, fb.BuiltinOperatorEMBEDDING_LOOKUP)
	if len(els) != 1 {
		t.Fatalf("%d EMBEDDING_LOOKUP ops", len(els))
	}
	ti, _ := weightOf(m, 0, els[0], 1)
	sg := m.Meta.Subgraphs[0]
	for _, op := range opsOf(m, 0, fb.BuiltinOperatorFULLY_CONNECTED) {
		if sg.Tensors[op.Outputs[0]].Name == "StatefulPartitionedCall:0" {
			hi, _ := weightOf(m, 0, op, 1)
			return sg.Tensors[ti], sg.Tensors[hi]
		}
	}
	t.Fatal("no logits FULLY_CONNECTED")
	return nil, nil
}

// TestTiedLMHeadStaysShared: the tiny decoder's lm_head reads the
// embedding table's buffer; after quantization both still read one
// quantized buffer (and, for int4, one scale buffer), whatever the
// default scheme, because the tied head follows the embedding recipe.
func TestTiedLMHeadStaysShared(t *testing.T) {
	in := absModel(t, "tiny_decoder.tflite")
	src := openModel(t, in)
	table, _ := tiedHead(t, src)
	tableBytes := bufferBytes(t, src, table.Buffer)
	cases := []struct {
		name   string
		recipe string
		typ    fb.TensorType
	}{
		{"dynamic_int8", "recipe: dynamic_int8", fb.TensorTypeINT8},
		{"dynamic_int4_block32", "recipe: dynamic_int4_block32", fb.TensorTypeINT4},
		{"weight_only_int8", "recipe: weight_only_int8", fb.TensorTypeINT8},
		{"fp16", "recipe: fp16", fb.TensorTypeFLOAT16},
		{"embedding int8, default int4", "recipe: {default: dynamic_int4_block32, embedding: dynamic_int8}", fb.TensorTypeINT8},
		{"embedding int4, default int8", "recipe: {default: dynamic_int8, embedding: dynamic_int4_block64}", fb.TensorTypeINT4},
		{"embedding int8, default none", "recipe: {default: none, embedding: dynamic_int8}", fb.TensorTypeINT8},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, branches, err := runJobFile(t, fmt.Sprintf(`version: 1
name: tied
stages:
  - load: {path: %q}
  - quantize: {%s}
  - verify: {}
  - serialize: {path: out.tflite}
`, in, c.recipe))
			if err != nil {
				t.Fatal(err)
			}
			m := openModel(t, filepath.Join(dir, "out.tflite"))
			tab, head := tiedHead(t, m)
			if tab.Type != c.typ || head.Type != c.typ {
				t.Errorf("table %s, head %s, want %s", tab.Type, head.Type, c.typ)
			}
			if tab.Buffer != head.Buffer {
				t.Errorf("table in buffer %d, lm_head in buffer %d: no longer shared", tab.Buffer, head.Buffer)
			}
			if c.typ == fb.TensorTypeINT4 {
				sg := m.Meta.Subgraphs[0]
				ts := sg.Tensors[tab.Quantization.Details.Value.(*fb.BlockwiseQuantizationT).Scales]
				hs := sg.Tensors[head.Quantization.Details.Value.(*fb.BlockwiseQuantizationT).Scales]
				if ts.Buffer != hs.Buffer {
					t.Errorf("scale tensors %q and %q in buffers %d and %d: not shared", ts.Name, hs.Name, ts.Buffer, hs.Buffer)
				}
			}
			// The float table is gone: no buffer still holds its bytes.
			for i := range m.Buffers {
				if b := bufferBytes(t, m, uint32(i)); len(b) == len(tableBytes) && bytes.Equal(b, tableBytes) {
					t.Errorf("buffer %d still holds the float table", i)
				}
			}
			for _, n := range branches[0].Plan.Notes {
				if strings.Contains(n, "duplicated") {
					t.Errorf("plan note: %s", n)
				}
			}
		})
	}
}

// writeFCAndBMM writes a model whose one weight W [32, 64] is read by a
// FULLY_CONNECTED (x [2, 64] → h [2, 32]) and by a BATCH_MATMUL as its
// constant right-hand side (h [2, 32] × W → y [2, 64]).
func writeFCAndBMM(t *testing.T, path string) []byte {
	t.Helper()
	w := make([]byte, 4*32*64)
	for i := range 32 * 64 {
		v := float32(math.Sin(float64(i)*0.37)) * float32(1+i%5)
		binary.LittleEndian.PutUint32(w[4*i:], math.Float32bits(v))
	}
	tensor := func(name string, shape []int32, buf uint32) *fb.TensorT {
		return &fb.TensorT{Name: name, Shape: shape, Type: fb.TensorTypeFLOAT32, Buffer: buf}
	}
	m := &tflite.Model{
		Meta: &fb.ModelT{
			Version: 3,
			OperatorCodes: []*fb.OperatorCodeT{
				{DeprecatedBuiltinCode: int8(fb.BuiltinOperatorFULLY_CONNECTED), BuiltinCode: fb.BuiltinOperatorFULLY_CONNECTED, Version: 1},
				{DeprecatedBuiltinCode: int8(fb.BuiltinOperatorBATCH_MATMUL), BuiltinCode: fb.BuiltinOperatorBATCH_MATMUL, Version: 1},
			},
			Subgraphs: []*fb.SubGraphT{{
				Name: "main",
				Tensors: []*fb.TensorT{
					tensor("x", []int32{2, 64}, 0),
					tensor("shared_w", []int32{32, 64}, 1),
					tensor("h", []int32{2, 32}, 0),
					tensor("y", []int32{2, 64}, 0),
				},
				Inputs:  []int32{0},
				Outputs: []int32{3},
				Operators: []*fb.OperatorT{
					{OpcodeIndex: 0, Inputs: []int32{0, 1, -1}, Outputs: []int32{2},
						BuiltinOptions: &fb.BuiltinOptionsT{Type: fb.BuiltinOptionsFullyConnectedOptions, Value: &fb.FullyConnectedOptionsT{}}},
					{OpcodeIndex: 1, Inputs: []int32{2, 1}, Outputs: []int32{3},
						BuiltinOptions: &fb.BuiltinOptionsT{Type: fb.BuiltinOptionsBatchMatMulOptions, Value: &fb.BatchMatMulOptionsT{}}},
				},
			}},
			Buffers: []*fb.BufferT{{}, {}},
		},
		Buffers: []tflite.Buffer{{}, {Data: tflite.Bytes(w)}},
		Name:    "fc_and_bmm",
	}
	if err := tflite.WriteFile(context.Background(), path, m, tflite.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return w
}

// TestDisagreeingReadersDuplicate: one weight read by an FC and a
// BATCH_MATMUL whose schemes differ gets one tensor (and buffer) per
// request; readers never see another reader's form (SEMANTICS.md §8).
func TestDisagreeingReadersDuplicate(t *testing.T) {
	in := filepath.Join(t.TempDir(), "fc_bmm.tflite")
	floatW := writeFCAndBMM(t, in)
	type want struct {
		typ    fb.TensorType
		scales int // per-channel scales (int8)
		axis   int32
		block  int32
	}
	float := want{typ: fb.TensorTypeFLOAT32}
	cases := []struct {
		name     string
		annotate string
		recipe   string
		fc, bmm  want
	}{
		// int4 blockwise is not valid for BATCH_MATMUL: it keeps float.
		{"int4 for both", "", "recipe: dynamic_int4_block32", want{typ: fb.TensorTypeINT4, block: 32}, float},
		// Both int8, but along different channel axes.
		{"int8 for both", "", "recipe: dynamic_int8", want{typ: fb.TensorTypeINT8, scales: 32, axis: 0}, want{typ: fb.TensorTypeINT8, scales: 64, axis: 1}},
		// The FC gets the attention role's int4, the BATCH_MATMUL falls back
		// to the default int8.
		{"int4 by role, int8 by default", "{role: attention, match: '^h;', ops: [FULLY_CONNECTED]}",
			"recipe: {default: dynamic_int8, attention: dynamic_int4_block64}",
			want{typ: fb.TensorTypeINT4, block: 64}, want{typ: fb.TensorTypeINT8, scales: 64, axis: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			annotate := ""
			if c.annotate != "" {
				annotate = "\n  - annotate: {rules: [" + c.annotate + "]}"
			}
			dir, branches, err := runJobFile(t, fmt.Sprintf(`version: 1
name: dup
stages:
  - load: {path: %q}%s
  - quantize: {%s}
  - verify: {}
  - serialize: {path: out.tflite}
`, in, annotate, c.recipe))
			if err != nil {
				t.Fatal(err)
			}
			m := openModel(t, filepath.Join(dir, "out.tflite"))
			sg := m.Meta.Subgraphs[0]
			fcW := sg.Tensors[opsOf(m, 0, fb.BuiltinOperatorFULLY_CONNECTED)[0].Inputs[1]]
			bmmW := sg.Tensors[opsOf(m, 0, fb.BuiltinOperatorBATCH_MATMUL)[0].Inputs[1]]
			if fcW == bmmW || fcW.Buffer == bmmW.Buffer {
				t.Fatalf("FC and BATCH_MATMUL still read one tensor (%q, buffer %d / %q, buffer %d)", fcW.Name, fcW.Buffer, bmmW.Name, bmmW.Buffer)
			}
			for _, x := range []struct {
				who string
				t   *fb.TensorT
				w   want
			}{{"FC", fcW, c.fc}, {"BATCH_MATMUL", bmmW, c.bmm}} {
				if x.t.Type != x.w.typ {
					t.Errorf("%s reads %q as %s, want %s", x.who, x.t.Name, x.t.Type, x.w.typ)
					continue
				}
				q := x.t.Quantization
				switch x.w.typ {
				case fb.TensorTypeFLOAT32:
					if !bytes.Equal(bufferBytes(t, m, x.t.Buffer), floatW) {
						t.Errorf("%s's float weight %q changed", x.who, x.t.Name)
					}
				case fb.TensorTypeINT8:
					if len(q.Scale) != x.w.scales || q.QuantizedDimension != x.w.axis {
						t.Errorf("%s's %q: %d scales on axis %d, want %d on axis %d", x.who, x.t.Name, len(q.Scale), q.QuantizedDimension, x.w.scales, x.w.axis)
					}
				case fb.TensorTypeINT4:
					if b := q.Details.Value.(*fb.BlockwiseQuantizationT).BlockSize; b != x.w.block {
						t.Errorf("%s's %q: block %d, want %d", x.who, x.t.Name, b, x.w.block)
					}
				}
			}
			if c.bmm.typ != fb.TensorTypeFLOAT32 {
				// Nobody reads the float weight any more: it must be gone.
				for i := range m.Buffers {
					if bytes.Equal(bufferBytes(t, m, uint32(i)), floatW) {
						t.Errorf("buffer %d still holds the float weight", i)
					}
				}
			}
			var noted bool
			for _, n := range branches[0].Plan.Notes {
				noted = noted || strings.Contains(n, "shared_w") && strings.Contains(n, "duplicated")
			}
			if !noted {
				t.Errorf("the plan does not report the duplicate: %q", branches[0].Plan.Notes)
			}
		})
	}
}
