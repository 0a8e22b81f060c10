package litert

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

const models = "../../testdata/models"

// readModel unpacks a .tflite with the project's bindings.
func readModel(t testing.TB, path string) *fb.ModelT {
	t.Helper()
	buf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m *fb.ModelT
	if err := fb.Decode(1<<24, func() error {
		m = fb.GetRootAsModel(buf, 0).UnPack()
		return nil
	}); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// constFloats returns the float32 values of tensor i of subgraph sg.
func constFloats(t testing.TB, m *fb.ModelT, sg, i int) []float32 {
	t.Helper()
	tensor := m.Subgraphs[sg].Tensors[i]
	data := m.Buffers[tensor.Buffer].Data
	if tensor.Type != fb.TensorTypeFLOAT32 || len(data) == 0 || len(data)%4 != 0 {
		t.Fatalf("tensor %d (%s) is not a float32 constant", i, tensor.Name)
	}
	v := make([]float32, len(data)/4)
	for k := range v {
		v[k] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*k:]))
	}
	return v
}

// helloWorld computes tflm_hello_world_float by hand from its weights: a
// chain of FULLY_CONNECTED ops (weights [out, in], bias, fused RELU or none)
// evaluated in float64.
func helloWorld(t testing.TB, m *fb.ModelT, x float32) float64 {
	t.Helper()
	sg := m.Subgraphs[0]
	act := []float64{float64(x)}
	for n, op := range sg.Operators {
		if code := m.OperatorCodes[op.OpcodeIndex]; max(int32(code.BuiltinCode), int32(code.DeprecatedBuiltinCode)) != int32(fb.BuiltinOperatorFULLY_CONNECTED) {
			t.Fatalf("operator %d is not FULLY_CONNECTED", n)
		}
		w := constFloats(t, m, 0, int(op.Inputs[1]))
		b := constFloats(t, m, 0, int(op.Inputs[2]))
		shape := sg.Tensors[op.Inputs[1]].Shape
		outN, inN := int(shape[0]), int(shape[1])
		if inN != len(act) || len(b) != outN {
			t.Fatalf("operator %d: weight %v, bias %d, input %d", n, shape, len(b), len(act))
		}
		next := make([]float64, outN)
		for o := range next {
			s := float64(b[o])
			for i, a := range act {
				s += float64(w[o*inN+i]) * a
			}
			if op.BuiltinOptions.Value.(*fb.FullyConnectedOptionsT).FusedActivationFunction == fb.ActivationFunctionTypeRELU {
				s = max(s, 0)
			}
			next[o] = s
		}
		act = next
	}
	if len(act) != 1 {
		t.Fatalf("model ends with %d values, want 1", len(act))
	}
	return act[0]
}

func TestHelloWorldMatchesHandComputation(t *testing.T) {
	r := Require(t)
	path := filepath.Join(models, "tflm_hello_world_float.tflite")
	m := readModel(t, path)
	for _, x := range []float32{0, 0.25, 1, math.Pi / 2, 2.5, math.Pi, 4, 3 * math.Pi / 2, 6} {
		want := helloWorld(t, m, x)
		// The model was trained to approximate sin on [0, 2π]: this guards the
		// hand computation itself.
		if math.Abs(want-math.Sin(float64(x))) > 0.2 {
			t.Fatalf("hand computation at x=%g gives %g, far from sin(x)=%g", x, want, math.Sin(float64(x)))
		}
		out, err := r.Run(path, []Tensor{NewFloat32("dense_input", []int{1, 1}, []float32{x})})
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 1 || out[0].DType != "float32" || !slices.Equal(out[0].Shape, []int{1, 1}) {
			t.Fatalf("x=%g: outputs %+v, want one float32 [1 1]", x, out)
		}
		got := float64(out[0].Float32s()[0])
		if math.Abs(got-want) > 1e-5*(1+math.Abs(want)) {
			t.Errorf("x=%g: runtime %.8g, hand computation %.8g", x, got, want)
		}
	}
}

func TestInfo(t *testing.T) {
	r := Require(t)
	info, err := r.Info(filepath.Join(models, "tflm_hello_world_float.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	want := ModelInfo{
		Signatures: []Signature{{
			Key:     "serving_default",
			Inputs:  []TensorInfo{{Name: "dense_input", DType: "float32", Shape: []int{1, 1}}},
			Outputs: []TensorInfo{{Name: "dense_2", DType: "float32", Shape: []int{1, 1}}},
		}},
		Inputs:  []TensorInfo{{Name: "dense_input", DType: "float32", Shape: []int{1, 1}}},
		Outputs: []TensorInfo{{Name: "dense_2", DType: "float32", Shape: []int{1, 1}}},
	}
	if !equalInfo(*info, want) {
		t.Errorf("info:\n got %+v\nwant %+v", *info, want)
	}
}

func equalInfo(a, b ModelInfo) bool {
	eq := func(x, y []TensorInfo) bool {
		return slices.EqualFunc(x, y, func(p, q TensorInfo) bool {
			return p.Name == q.Name && p.Index == q.Index && p.DType == q.DType && slices.Equal(p.Shape, q.Shape)
		})
	}
	return slices.EqualFunc(a.Signatures, b.Signatures, func(p, q Signature) bool {
		return p.Key == q.Key && eq(p.Inputs, q.Inputs) && eq(p.Outputs, q.Outputs)
	}) && eq(a.Inputs, b.Inputs) && eq(a.Outputs, b.Outputs)
}

// aeq_two_signatures: subgraph "add" computes x + c and "multiply" x * c,
// with one scalar constant c shared by both.
func TestTwoSignatures(t *testing.T) {
	r := Require(t)
	path := filepath.Join(models, "aeq_two_signatures.tflite")
	info, err := r.Info(path)
	if err != nil {
		t.Fatal(err)
	}
	x := []TensorInfo{{Name: "x", DType: "float32", Shape: []int{1}}}
	want := ModelInfo{
		Signatures: []Signature{
			{Key: "add", Inputs: x, Outputs: []TensorInfo{{Name: "add_result", DType: "float32", Shape: []int{1}}}},
			{Key: "multiply", Inputs: x, Outputs: []TensorInfo{{Name: "multiply_result", DType: "float32", Shape: []int{1}}}},
		},
		Inputs:  x,
		Outputs: []TensorInfo{{Name: "add_result", DType: "float32", Shape: []int{1}}},
	}
	if !equalInfo(*info, want) {
		t.Fatalf("info:\n got %+v\nwant %+v", *info, want)
	}

	c := constFloats(t, readModel(t, path), 0, 1)[0]
	in := []Tensor{NewFloat32("x", []int{1}, []float32{3})}
	for _, tc := range []struct {
		key  string
		want float32
	}{{"", 3 + c}, {"add", 3 + c}, {"multiply", 3 * c}} {
		out, err := r.RunSignature(path, tc.key, in)
		if err != nil {
			t.Fatalf("signature %q: %v", tc.key, err)
		}
		if got := out[0].Float32s(); len(got) != 1 || got[0] != tc.want {
			t.Errorf("signature %q: got %v, want [%g]", tc.key, got, tc.want)
		}
	}
	if _, err := r.RunSignature(path, "divide", in); err == nil || !strings.Contains(err.Error(), `no signature "divide"`) {
		t.Errorf("unknown signature: err = %v", err)
	}
}

// Every failure comes back as an error naming the model and the cause, and
// the runner goes on serving.
func TestFailuresAreErrorsAndTheRunnerSurvives(t *testing.T) {
	r := Require(t)
	dir := t.TempDir()
	hello := filepath.Join(models, "tflm_hello_world_float.tflite")
	good, err := os.ReadFile(hello)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	one := []Tensor{NewFloat32("dense_input", []int{1, 1}, []float32{1})}
	wrongID := slices.Clone(good)
	copy(wrongID[4:8], "XXXX")

	for _, tc := range []struct {
		name   string
		model  string
		inputs []Tensor
		want   []string // substrings of the error
	}{
		{"missing file", filepath.Join(dir, "absent.tflite"), one, []string{"absent.tflite", "no such file"}},
		{"not a flatbuffer", write("garbage.tflite", []byte("this is not a model")), one, []string{"garbage.tflite"}},
		{"truncated", write("truncated.tflite", good[:len(good)/2]), one, []string{"truncated.tflite"}},
		{"wrong identifier", write("wrong_id.tflite", wrongID), one, []string{"wrong_id.tflite"}},
		{"signature counts", filepath.Join(models, "aeq_embedding_lookup.tflite"), nil, []string{"aeq_embedding_lookup.tflite", "Signature has incorrect number of input/outputs"}},
		{"bad quantization", filepath.Join(models, "tflm_person_detect.tflite"), nil, []string{"tflm_person_detect.tflite", "quantized_dimension must be in range"}},
		{"logged-only failure", filepath.Join(models, "litert_tfl_with_metadata.tflite"), nil, []string{"litert_tfl_with_metadata.tflite", "ERROR:"}},
		{"too few inputs", hello, nil, []string{"0 inputs given", "takes 1"}},
		{"input size", hello, []Tensor{NewFloat32("dense_input", []int{2}, []float32{1, 2})}, []string{"has 8 bytes, the model wants 4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Run(tc.model, tc.inputs)
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			// The runner still serves.
			if _, err := r.Run(hello, one); err != nil {
				t.Fatalf("after the failure: %v", err)
			}
		})
	}
}

// A runner whose process died starts a new one on the next call.
func TestRestartAfterDeath(t *testing.T) {
	r := Require(t)
	hello := filepath.Join(models, "tflm_hello_world_float.tflite")
	one := []Tensor{NewFloat32("dense_input", []int{1, 1}, []float32{1})}
	want, err := r.Run(hello, one)
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	p := r.proc
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	r.mu.Unlock()
	got, err := r.Run(hello, one)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got[0].Data, want[0].Data) {
		t.Errorf("after restart %v, before %v", got[0].Float32s(), want[0].Float32s())
	}
}

// Calls from many goroutines are served one at a time and all succeed.
func TestConcurrentCalls(t *testing.T) {
	r := Require(t)
	hello := filepath.Join(models, "tflm_hello_world_float.tflite")
	var wg sync.WaitGroup
	results := make([][]byte, 8)
	errs := make([]error, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := r.Run(hello, []Tensor{NewFloat32("dense_input", []int{1, 1}, []float32{float32(i)})})
			if err == nil {
				results[i] = out[0].Data
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		out, err := r.Run(hello, []Tensor{NewFloat32("dense_input", []int{1, 1}, []float32{float32(i)})})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(out[0].Data, results[i]) {
			t.Errorf("x=%d: concurrent %v, sequential %v", i, results[i], out[0].Data)
		}
	}
}

func TestRandomInputs(t *testing.T) {
	info := &ModelInfo{Inputs: []TensorInfo{
		{Name: "x", DType: "float32", Shape: []int{-1, 4096}},
		{Name: "ids", DType: "int32", Shape: []int{1, 4096}},
		{Name: "bytes", DType: "uint8", Shape: []int{4096}},
	}}
	a := RandomInputs(info, 7, 1000)
	if b := RandomInputs(info, 7, 1000); !slices.EqualFunc(a, b, func(p, q Tensor) bool { return slices.Equal(p.Data, q.Data) }) {
		t.Fatal("same seed, different tensors")
	}
	if b := RandomInputs(info, 8, 1000); slices.Equal(a[0].Data, b[0].Data) {
		t.Fatal("seeds 7 and 8 give the same tensor")
	}
	if slices.Equal(a[0].Data[:4096], a[1].Data[:4096]) {
		t.Fatal("inputs 0 and 1 share their stream")
	}
	if !slices.Equal(a[0].Shape, []int{1, 4096}) {
		t.Errorf("dynamic dimension: shape %v, want [1 4096]", a[0].Shape)
	}
	x := a[0].Float32s()
	lo, hi := slices.Min(x), slices.Max(x)
	if lo < -1 || hi >= 1 || lo > -0.99 || hi < 0.99 {
		t.Errorf("float32 range [%g, %g], want within and spanning [-1, 1)", lo, hi)
	}
	ids := a[1].Int32s()
	if slices.Min(ids) != 0 || slices.Max(ids) != 999 {
		t.Errorf("ids range [%d, %d], want [0, 999]", slices.Min(ids), slices.Max(ids))
	}
	if small := RandomInputs(info, 7, 0)[1].Int32s(); slices.Min(small) != 0 || slices.Max(small) != 3 {
		t.Errorf("vocab 0: ids range [%d, %d], want [0, 3]", slices.Min(small), slices.Max(small))
	}
	if len(a[2].Data) != 4096 || slices.Max(a[2].Data) != 255 {
		t.Errorf("uint8: %d bytes, max %d", len(a[2].Data), slices.Max(a[2].Data))
	}
	// Golden prefix: the stream is part of the contract with runner.mjs and
	// with any stored result; it must not change by accident.
	if got, want := a[0].Float32s()[:3], []float32{0.48362565, 0.6472404, -0.8195436}; !slices.Equal(got, want) {
		t.Errorf("float32 stream starts %v, want %v", got, want)
	}
	if got, want := ids[:4], []int32{49, 486, 356, 553}; !slices.Equal(got, want) {
		t.Errorf("int32 stream starts %v, want %v", got, want)
	}
}

// The runner's {"seed"} inputs are the same values as RandomInputs: a run
// through either gives the same bits.
func TestRunnerSeedsMatchRandomInputs(t *testing.T) {
	r := Require(t)
	path, err := filepath.Abs(filepath.Join(models, "aeq_bmm.tflite")) // two float inputs
	if err != nil {
		t.Fatal(err)
	}
	info, err := r.Info(path)
	if err != nil {
		t.Fatal(err)
	}
	const seed = -1234567890123
	viaFiles, err := r.Run(path, RandomInputs(info, seed, 0))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	req := request{Op: "run", Model: path, OutDir: dir}
	for range info.Inputs {
		s := int64(seed)
		req.Inputs = append(req.Inputs, inputSpec{Seed: &s})
	}
	var answer runAnswer
	r.mu.Lock()
	err = r.call(req, &answer)
	r.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(answer.Outputs[0].File)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, viaFiles[0].Data) {
		t.Error("runner-seeded run differs from a run on RandomInputs")
	}
}

// A machine without Node.js or without the npm packages gets ErrUnavailable
// (Require then skips, or fails on CI) with a message that says what to do.
func TestUnavailable(t *testing.T) {
	t.Run("no node", func(t *testing.T) {
		t.Setenv("QPIPE_NODE", "")
		t.Setenv("PATH", t.TempDir())
		_, err := Start(context.Background())
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "node (Node.js 20 or newer) not found") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("no node_modules", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "runner.mjs"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Setenv("QPIPE_LITERT_DIR", dir)
		_, err := Start(context.Background())
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "run `npm ci` in internal/litert/runner") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("CI", func(t *testing.T) {
		for v, want := range map[string]bool{"true": true, "1": true, "": false, "false": false, "yes": false} {
			t.Setenv("CI", v)
			if onCI() != want {
				t.Errorf("CI=%q: onCI() = %v", v, !want)
			}
		}
	})
}
