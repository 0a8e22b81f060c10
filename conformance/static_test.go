package conformance

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/interp"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// staticPresets are measured here, not by the weight-scheme suite: there
// is no dequantized reference of integer activations.
var staticPresets = []string{"static_int8", "static_int16x8"}

// staticResult is one static preset on one model.
type staticResult struct {
	model   *model
	preset  string
	family  Family
	bound   Bound
	refused string // the job's error, when it refused the model
	path    string // the static model
	ran     bool
	got     outputs // the runtime's outputs
	vsFloat Errors
	// problems are the comparison's problems and broken bounds.
	problems []string
}

var staticShared struct {
	once    sync.Once
	results []*staticResult
	err     error
}

// staticResults quantizes every test model with both static presets
// (calibrated on generated inputs, qpipe's default) and runs the outputs
// on the suite's inputs; made once per test binary.
func (s *suite) staticResults() ([]*staticResult, error) {
	staticShared.once.Do(func() {
		for _, m := range s.models {
			for _, preset := range staticPresets {
				r, err := s.staticCase(m, preset)
				if err != nil {
					staticShared.err = fmt.Errorf("%s/%s: %w", m.short(), preset, err)
					return
				}
				staticShared.results = append(staticShared.results, r)
			}
		}
	})
	return staticShared.results, staticShared.err
}

func (s *suite) staticCase(m *model, preset string) (*staticResult, error) {
	rec, err := config.Preset(preset)
	if err != nil {
		return nil, err
	}
	r := &staticResult{model: m, preset: preset}
	if r.family, err = FamilyOf(rec); err != nil {
		return nil, err
	}
	if r.bound, err = BoundFor(r.family, m.class); err != nil {
		return nil, err
	}
	out := filepath.Join(workDir, m.short()+"_"+rec.Suffix+".tflite")
	if _, err := QuantizeRecipe(context.Background(), m.path, out, rec, false); err != nil {
		r.refused = err.Error()
		return r, nil
	}
	if m.refused != "" {
		return r, nil
	}
	got, err := s.run(m, out)
	if err != nil {
		return nil, fmt.Errorf("the static model does not run on LiteRT.js: %w", err)
	}
	c := compare(m, got, m.float)
	r.path, r.got = out, got
	r.ran, r.vsFloat = true, c.Errors()
	r.problems = append(c.Problems, r.bound.Check(r.vsFloat, Errors{})...)
	return r, nil
}

// TestStaticOnRuntime: both static presets on every test model: the
// output loads and runs on LiteRT.js on the suite's inputs, within the
// family's bound of the float model; or the job is refused naming the
// tensor or operator (a model already quantized, an op the interpreter
// cannot calibrate). Models the runtime does not run as float are only
// quantized.
func TestStaticOnRuntime(t *testing.T) {
	s := measure(t)
	results, err := s.staticResults()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		t.Run(r.model.short()+"/"+r.preset, func(t *testing.T) {
			switch {
			case r.refused != "":
				if !strings.Contains(r.refused, "already quantized") && !strings.Contains(r.refused, "operator") {
					t.Fatalf("refused without naming the tensor or operator: %s", r.refused)
				}
				t.Logf("refused: %s", r.refused)
			case !r.ran:
				t.Logf("the runtime does not run the float model; quantized only")
			default:
				t.Logf("%s (%s): vs float rel L2 %.3g, rel max %.3g", r.preset, r.model.class, r.vsFloat.RelL2, r.vsFloat.RelMax)
				for _, p := range r.problems {
					t.Errorf("does not conform (family %s, class %s): %s", r.family, r.model.class, p)
				}
			}
		})
	}
}

// reportStatic is the report's section on the static presets.
func (s *suite) reportStatic(p printer) {
	results, err := s.staticResults()
	if err != nil {
		p("## Static presets\n\nnot measured: %v\n\n", err)
		return
	}
	p("## Static presets (integer activations)\n\n")
	p("static_int8 and static_int16x8 (docs/SEMANTICS.md §16), calibrated on generated inputs (qpipe's default), on the same inputs as above. ")
	p("There is no dequantized reference of integer activations: only the distance from the float model is bounded.\n\n")
	p("| model | class | preset | vs float rel L2 | rel max | max abs | bound rel L2 | bound rel max |\n")
	p("|---|---|---|---:|---:|---:|---:|---:|\n")
	var refused, notRun []string
	for _, r := range results {
		switch {
		case r.refused != "":
			if r.preset == staticPresets[0] {
				refused = append(refused, r.model.short())
			}
		case !r.ran:
			if r.preset == staticPresets[0] {
				notRun = append(notRun, r.model.short())
			}
		default:
			p("| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.model.short(), r.model.class, r.preset,
				num(r.vsFloat.RelL2), num(r.vsFloat.RelMax), num(r.vsFloat.MaxAbs), num(r.bound.VsFloat.RelL2), num(r.bound.VsFloat.RelMax))
		}
	}
	p("\nRefused, naming the tensor or operator (already quantized, or an op the interpreter cannot calibrate): %s. ", strings.Join(refused, ", "))
	p("Quantized but not run (the runtime refuses the float model): %s.\n\n", strings.Join(notRun, ", "))
}

// TestInterpreterOnStaticOutputs: the reference interpreter runs the
// static outputs LiteRT.js runs (or refuses an op it does not implement,
// naming it) and agrees with the runtime to within one step of each
// output's integer grid on at least 99.9 % of the output elements. int8
// runs with the XNNPACK arithmetic (LiteRT.js delegates int8 to XNNPACK),
// int16 with LiteRT's builtin one.
func TestInterpreterOnStaticOutputs(t *testing.T) {
	s := measure(t)
	results, err := s.staticResults()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if !r.ran {
			continue
		}
		t.Run(r.model.short()+"/"+r.preset, func(t *testing.T) {
			opt := interp.Options{}
			if r.family == FamilyStaticInt8 {
				opt.IntArithmetic = interp.IntXNNPACK
			}
			got, err := runInterpWith(r.model, r.path, opt)
			if err != nil {
				if !strings.Contains(err.Error(), "not supported") {
					t.Fatal(err)
				}
				t.Logf("the interpreter refuses it: %v", err)
				return
			}
			steps, err := outputSteps(r.path)
			if err != nil {
				t.Fatal(err)
			}
			var n, within, equal int
			var worst float64
			for _, sig := range r.model.sigs {
				for i := range r.got[sig.Key] {
					for k, want := range r.got[sig.Key][i] {
						a, b := got[sig.Key][i][k].Float32s(), want.Float32s()
						step := steps[want.Name]
						for j := range b {
							d := math.Abs(float64(a[j]) - float64(b[j]))
							n++
							if step > 0 {
								worst = max(worst, d/step)
							}
							if d <= step*1.0001 || d == 0 {
								within++
							}
							if d == 0 {
								equal++
							}
						}
					}
				}
			}
			frac := float64(within) / float64(max(n, 1))
			t.Logf("%d output elements, %.4f within one step of LiteRT.js, %.4f equal, worst %.3g steps", n, frac, float64(equal)/float64(max(n, 1)), worst)
			// Every op the runtime runs is emulated (int8 under XNNPACK's
			// arithmetic, int16 under the builtin kernels', float SOFTMAX
			// under XNNPACK's wasm kernel): measured, every output element of
			// every static output here is equal to LiteRT.js's.
			want := 0.999
			if frac < want {
				t.Errorf("%.4f of the output elements within one step of the runtime's, want >= %g", frac, want)
			}
		})
	}
}

// outputSteps maps each signature output name of a static model to the
// scale of the integer tensor its DEQUANTIZE reads (0 for a float output).
func outputSteps(path string) (map[string]float64, error) {
	m, err := tflite.Open(path)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	steps := map[string]float64{}
	for _, sd := range m.Meta.SignatureDefs {
		sg := m.Meta.Subgraphs[sd.SubgraphIndex]
		for _, tm := range sd.Outputs {
			for _, op := range sg.Operators {
				if len(op.Outputs) == 1 && op.Outputs[0] == int32(tm.TensorIndex) && m.OpCode(op) == fb.BuiltinOperatorDEQUANTIZE {
					if q := sg.Tensors[op.Inputs[0]].Quantization; q != nil && len(q.Scale) == 1 {
						steps[tm.Name] = float64(q.Scale[0])
					}
				}
			}
		}
	}
	return steps, nil
}
