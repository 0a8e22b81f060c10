package calib

import (
	"slices"
	"testing"

	"github.com/qpipe/qpipe/internal/interp"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// TestInputsBMMRows: a BATCH_MATMUL whose right operand is a constant
// float weight keeps, for each of its batches, the left operand's rows of
// length K that multiply it, broadcasting the batch dimensions as the op
// does and transposing with adj_x; an activation×activation BATCH_MATMUL,
// and a right operand of another type, keep nothing.
func TestInputsBMMRows(t *testing.T) {
	const M, K, N = 2, 3, 5
	lhsBatch, rhsBatch := []int{3, 1}, []int{2} // broadcast to [3, 2]
	for _, c := range []struct {
		name         string
		adjX, const_ bool
		wType        fb.TensorType
		want         bool
	}{
		{"plain", false, true, fb.TensorTypeFLOAT32, true},
		{"adj_x", true, true, fb.TensorTypeFLOAT32, true},
		{"activation right operand", false, false, fb.TensorTypeFLOAT32, false},
		{"int8 right operand", false, true, fb.TensorTypeINT8, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ashape := append(slices.Clone(lhsBatch), M, K)
			if c.adjX {
				ashape = append(slices.Clone(lhsBatch), K, M)
			}
			a := interp.NewTensor(fb.TensorTypeFLOAT32, ashape)
			for i := range a.F32 {
				a.F32[i] = float32(i)
			}
			wshape := []int32{int32(rhsBatch[0]), K, N}
			m := &tflite.Model{
				Meta: &fb.ModelT{
					Subgraphs: []*fb.SubGraphT{{
						Tensors: []*fb.TensorT{
							{Name: "a", Type: fb.TensorTypeFLOAT32, Buffer: 1},
							{Name: "w", Type: c.wType, Shape: wshape, Buffer: 2},
						},
						Operators: []*fb.OperatorT{{Inputs: []int32{0, 1}, Outputs: []int32{}, BuiltinOptions: &fb.BuiltinOptionsT{
							Type: fb.BuiltinOptionsBatchMatMulOptions, Value: &fb.BatchMatMulOptionsT{AdjX: c.adjX}}}},
					}},
					Buffers: []*fb.BufferT{{}, {}, {}},
				},
				Buffers: []tflite.Buffer{{}, {}, {}},
			}
			if c.const_ {
				m.Buffers[2].Data = tflite.Bytes(make([]byte, 4*rhsBatch[0]*K*N))
			}
			ev := interp.OpEvent{Code: fb.BuiltinOperatorBATCH_MATMUL, InputTensors: []int{0, 1}, Inputs: []*interp.Tensor{a, nil}}
			in := &Inputs{acts: map[Source]*actRows{}, readers: map[Matrix][]Source{}, kept: map[keptRows]bool{}}
			for sample := range 2 {
				in.observe(m, sample, ev)
			}
			w := func(r int) Matrix { return Matrix{Weight: Key{0, 1}, BMM: true, Batch: r} }
			if !c.want {
				if in.Has(w(0)) || in.Has(w(1)) || in.Bytes() != 0 {
					t.Fatalf("kept %d bytes of rows", in.Bytes())
				}
				return
			}
			// Row i of left batch l, as the op reads it.
			row := func(l, i int) []float32 {
				out := make([]float32, K)
				for k := range K {
					if c.adjX {
						out[k] = a.F32[l*M*K+k*M+i]
					} else {
						out[k] = a.F32[l*M*K+i*K+k]
					}
				}
				return out
			}
			for r := range 2 {
				// Every left batch multiplies every right batch here; two
				// samples, each with all three left batches' rows.
				var want []float32
				for range 2 {
					for l := range 3 {
						for i := range M {
							want = append(want, row(l, i)...)
						}
					}
				}
				got := slices.Concat(in.Rows(w(r), K)...)
				if !slices.Equal(got, want) {
					t.Errorf("batch %d: rows %v, want %v", r, got, want)
				}
				if in.Has(Matrix{Weight: Key{0, 1}, Batch: r}) {
					t.Errorf("batch %d: rows kept as a FULLY_CONNECTED's too", r)
				}
			}
			if in.HessianKey(w(0)) == in.HessianKey(w(1)) {
				t.Errorf("the two batches share a covariance key %q", in.HessianKey(w(0)))
			}
		})
	}
}
