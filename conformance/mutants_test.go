package conformance

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// A mutant is a deliberate quantizer bug, injected by rewriting a correctly
// quantized file: the suite must reject every mutant it is applied to.
type mutant struct {
	name string
	// families are the presets the bug can occur in.
	families []Family
	// mutate rewrites out (read back from a file qpipe wrote for in) in
	// place and reports how many tensors it changed.
	mutate func(in, out *tflite.Model) (int, error)
}

var mutants = []mutant{
	{
		// Scales attached to the wrong channels: int8 per-channel scales
		// (with their zero points) in reverse channel order, and int4 block
		// scales [O, I/B] stored column-major instead of row-major.
		name:     "scale_axis",
		families: []Family{FamilyDynamicInt8, FamilyWeightOnlyInt8, FamilyInt4Block},
		mutate:   mutateScaleAxis,
	},
	{
		// Element 2k in the high nibble of byte k instead of the low one.
		name:     "nibble_order",
		families: []Family{FamilyInt4Block},
		mutate:   mutateNibbleOrder,
	},
	{
		// Every int8 weight's zero point off by 3 (symmetric schemes: 3
		// instead of 0).
		name:     "zero_point",
		families: []Family{FamilyDynamicInt8, FamilyWeightOnlyInt8},
		mutate:   mutateZeroPoint,
	},
}

// quantizedTensors calls f for every constant weight of out that qpipe
// quantized (its type is INT8 or INT4 and it was FLOAT32 in in, or it is
// new). Tensors can share a buffer: a mutator that rewrites data must
// rewrite each buffer once (see rewriteOnce).
func quantizedTensors(in, out *tflite.Model, f func(sg *fb.SubGraphT, t *fb.TensorT) error) error {
	for si, sg := range out.Meta.Subgraphs {
		before := in.Meta.Subgraphs[si].Tensors
		for ti, t := range sg.Tensors {
			if t.Type != fb.TensorTypeINT8 && t.Type != fb.TensorTypeINT4 || !quantizedWeight(out, t) {
				continue
			}
			if ti < len(before) && before[ti].Type != fb.TensorTypeFLOAT32 {
				continue
			}
			if err := f(sg, t); err != nil {
				return fmt.Errorf("tensor %q: %w", t.Name, err)
			}
		}
	}
	return nil
}

// rewriteOnce replaces the bytes of buffer b of m by f(old bytes), unless
// done says it was rewritten already.
func rewriteOnce(m *tflite.Model, b uint32, done map[uint32]bool, f func([]byte) ([]byte, error)) error {
	if done[b] {
		return nil
	}
	done[b] = true
	data, err := tflite.ReadAll(m.Buffers[b].Data)
	if err != nil {
		return err
	}
	if data, err = f(data); err != nil {
		return err
	}
	m.Buffers[b].Data = tflite.Bytes(data)
	return nil
}

func mutateScaleAxis(in, out *tflite.Model) (int, error) {
	n := 0
	done := map[uint32]bool{}
	err := quantizedTensors(in, out, func(sg *fb.SubGraphT, t *fb.TensorT) error {
		q := t.Quantization
		switch {
		case t.Type == fb.TensorTypeINT8 && q != nil && len(q.Scale) > 1:
			slices.Reverse(q.Scale)
			slices.Reverse(q.ZeroPoint)
			n++
		case t.Type == fb.TensorTypeINT4 && q != nil && q.Details != nil:
			bw, ok := q.Details.Value.(*fb.BlockwiseQuantizationT)
			if !ok || bw == nil || bw.Scales < 0 || int(bw.Scales) >= len(sg.Tensors) {
				return nil
			}
			st := sg.Tensors[bw.Scales]
			if len(st.Shape) != 2 || st.Shape[1] < 2 {
				return nil // one block per row: the layout cannot be wrong
			}
			rows, cols := int(st.Shape[0]), int(st.Shape[1])
			n++
			return rewriteOnce(out, st.Buffer, done, func(data []byte) ([]byte, error) {
				if len(data) != 2*rows*cols {
					return nil, fmt.Errorf("scale tensor %q holds %d bytes, want %d", st.Name, len(data), 2*rows*cols)
				}
				moved := make([]byte, len(data))
				for i := 0; i < rows*cols; i++ {
					// Value i of the column-major order lands at place i.
					r, c := i%rows, i/rows
					copy(moved[2*i:2*i+2], data[2*(r*cols+c):])
				}
				return moved, nil
			})
		}
		return nil
	})
	return n, err
}

func mutateNibbleOrder(in, out *tflite.Model) (int, error) {
	n := 0
	done := map[uint32]bool{}
	err := quantizedTensors(in, out, func(sg *fb.SubGraphT, t *fb.TensorT) error {
		if t.Type != fb.TensorTypeINT4 {
			return nil
		}
		n++
		return rewriteOnce(out, t.Buffer, done, func(data []byte) ([]byte, error) {
			swapped := make([]byte, len(data))
			for i, b := range data {
				swapped[i] = b<<4 | b>>4
			}
			return swapped, nil
		})
	})
	return n, err
}

func mutateZeroPoint(in, out *tflite.Model) (int, error) {
	n := 0
	err := quantizedTensors(in, out, func(sg *fb.SubGraphT, t *fb.TensorT) error {
		if t.Type != fb.TensorTypeINT8 || t.Quantization == nil {
			return nil
		}
		for i := range t.Quantization.ZeroPoint {
			t.Quantization.ZeroPoint[i] += 3
		}
		n++
		return nil
	})
	return n, err
}

// mutantResult is one mutant of one model × preset and how the suite
// judged it.
type mutantResult struct {
	res     *result
	path    string // "" when the mutant finds nothing to change
	runErr  string // the runtime refused to load or run it
	vsFloat Errors
	vsRef   Errors
	// bounds, problems and static are the suite's objections: broken
	// error bounds, outputs that cannot be compared, and the static
	// checks (op versions, hybrid zero points).
	bounds, problems, static []string
}

// rejected reports whether the suite rejects the mutant.
func (mr *mutantResult) rejected() bool {
	return mr.runErr != "" || len(mr.bounds)+len(mr.problems)+len(mr.static) > 0
}

// how says what rejected the mutant.
func (mr *mutantResult) how() string {
	switch {
	case len(mr.bounds) > 0:
		return "bounds: " + strings.Join(mr.bounds, "; ")
	case mr.runErr != "":
		return "runtime refused: " + mr.runErr
	case len(mr.problems) > 0:
		return "outputs: " + strings.Join(mr.problems, "; ")
	case len(mr.static) > 0:
		return "static check: " + mr.static[0]
	}
	return "accepted"
}

// mutantResults applies mu to every case whose family it concerns, where
// the preset quantized weights and the runtime runs the model, and judges
// each mutant. The results are computed once per test binary.
func (s *suite) mutantResults(t *testing.T, mu mutant) []*mutantResult {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if got, ok := s.mutants[mu.name]; ok {
		return got
	}
	var out []*mutantResult
	for _, r := range s.results {
		if !r.ran() || r.quantized == 0 || !slices.Contains(mu.families, r.family) {
			continue
		}
		mr := &mutantResult{res: r}
		out = append(out, mr)
		path, err := writeMutant(r, mu)
		if err != nil {
			t.Fatalf("%s: %s: %v", r.name(), mu.name, err)
		}
		if path == "" {
			continue
		}
		mr.path = path
		reads, err := readWeights(r.model.path, path)
		if err != nil {
			t.Fatalf("%s: reading back the %s mutant: %v", r.name(), mu.name, err)
		}
		mr.static = append(CheckOpVersions(reads), CheckHybridZeroPoints(reads)...)
		got, err := s.run(r.model, path)
		if err != nil {
			mr.runErr = err.Error()
			continue
		}
		mr.vsFloat, mr.vsRef, mr.problems = r.measure(got)
		mr.bounds = r.bound.Check(mr.vsFloat, mr.vsRef)
	}
	s.mutants[mu.name] = out
	return out
}

// writeMutant applies mu to the quantized model of r and writes it next to
// it. It returns "" when mu finds nothing to change.
func writeMutant(r *result, mu mutant) (string, error) {
	in, err := tflite.Open(r.model.path)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := tflite.Open(r.quant)
	if err != nil {
		return "", err
	}
	defer out.Close()
	n, err := mu.mutate(in, out)
	if err != nil || n == 0 {
		return "", err
	}
	path := strings.TrimSuffix(r.quant, ".tflite") + "_" + mu.name + ".tflite"
	return path, tflite.WriteFile(context.Background(), path, out, tflite.WriteOptions{})
}

func mutantNamed(t *testing.T, name string) mutant {
	t.Helper()
	for _, mu := range mutants {
		if mu.name == name {
			return mu
		}
	}
	t.Fatalf("no mutant %q", name)
	return mutant{}
}

// testMutant asserts that the suite rejects every mutant made from mu, and
// that every family mu concerns had at least one. byComparison says, per
// family, whether the error bounds alone must reject it (false where the
// runtime ignores or refuses the bug, so only the runtime's refusal or a
// static check can show it).
func testMutant(t *testing.T, name string, byComparison map[Family]bool) {
	s := measure(t)
	mu := mutantNamed(t, name)
	applied := map[Family]int{}
	for _, mr := range s.mutantResults(t, mu) {
		r := mr.res
		if mr.path == "" {
			t.Logf("%s: nothing to mutate", r.name())
			continue
		}
		applied[r.family]++
		switch {
		case !mr.rejected():
			t.Errorf("%s: the suite accepts the %s bug: vs float rel L2 %.3g, rel max %.3g; vs reference rel L2 %.3g, rel max %.3g (bound %+v)",
				r.name(), name, mr.vsFloat.RelL2, mr.vsFloat.RelMax, mr.vsRef.RelL2, mr.vsRef.RelMax, r.bound)
		case byComparison[r.family] && len(mr.bounds) == 0:
			t.Errorf("%s: the error bounds accept the %s bug (%s)", r.name(), name, mr.how())
		default:
			t.Logf("%s: caught by %s", r.name(), mr.how())
		}
	}
	for _, f := range mu.families {
		if applied[f] == 0 {
			t.Errorf("the %s bug was injected into no %s model", name, f)
		}
	}
}

// TestBugScaleAxis: scales attached to the wrong channels or blocks are
// caught by the error bounds on every model they change.
func TestBugScaleAxis(t *testing.T) {
	testMutant(t, "scale_axis", map[Family]bool{FamilyDynamicInt8: true, FamilyWeightOnlyInt8: true, FamilyInt4Block: true})
}

// TestBugNibbleOrder: int4 values packed high nibble first are caught by
// the error bounds.
func TestBugNibbleOrder(t *testing.T) {
	testMutant(t, "nibble_order", map[Family]bool{FamilyInt4Block: true})
}

// TestBugZeroPoint: a wrong int8 zero point is caught by the error bounds
// where the weights go through DEQUANTIZE. Hybrid kernels do not use it:
// XNNPACK refuses the model (FULLY_CONNECTED), the builtin BATCH_MATMUL,
// DEPTHWISE_CONV_2D and TRANSPOSE_CONV kernels compute as if it were 0, and
// the static hybrid zero-point check rejects it.
func TestBugZeroPoint(t *testing.T) {
	testMutant(t, "zero_point", map[Family]bool{FamilyWeightOnlyInt8: true})
}
