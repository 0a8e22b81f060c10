package conformance

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/qpipe/qpipe/config"
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
	ran     bool
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
