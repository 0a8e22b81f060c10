package stages

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
	"github.com/qpipe/qpipe/pipeline"
)

const models = "../testdata/models"

// quantizeFile runs load → annotate → quantize(preset) → verify → serialize
// and returns the output path.
func quantizeFile(t testing.TB, in, preset string, fallback bool) (string, *pipeline.State, error) {
	t.Helper()
	r, err := config.Preset(preset)
	if err != nil {
		t.Fatal(err)
	}
	return quantizeRecipe(t, in, r, fallback)
}

// quantizeRecipe is quantizeFile with a recipe of any kind.
func quantizeRecipe(t testing.TB, in string, r *config.Recipe, fallback bool) (string, *pipeline.State, error) {
	t.Helper()
	return runRecipe(t, in, r, fallback, false)
}

// runRecipe runs the one-recipe job; dryRun plans it without writing.
func runRecipe(t testing.TB, in string, r *config.Recipe, fallback, dryRun bool) (string, *pipeline.State, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(in), ".tflite")+"_"+r.Suffix+".tflite")
	on := config.OnMismatchFail
	if fallback {
		on = config.OnMismatchFallback
	}
	job := &config.Job{Path: in, Name: "t", Stages: []config.Stage{
		&config.LoadStage{Path: in},
		&config.AnnotateStage{},
		&config.QuantizeStage{Recipes: []*config.Recipe{r}},
		&config.VerifyStage{OnMismatch: on},
		&config.SerializeStage{Path: out},
	}}
	pj, err := Build(job, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := &pipeline.State{Log: zerolog.Nop(), Metrics: !dryRun, DryRun: dryRun}
	branches, err := pipeline.Run(context.Background(), pj, s)
	t.Cleanup(func() { Close(s) })
	if err != nil {
		return "", s, err
	}
	return out, branches[0], nil
}

func allPresets() []string {
	var names []string
	for _, p := range config.Presets() {
		names = append(names, p.Name)
	}
	return names
}

func testModels(t testing.TB) []string {
	ms, err := filepath.Glob(filepath.Join(models, "*.tflite"))
	if err != nil || len(ms) == 0 {
		t.Fatalf("no test models in %s", models)
	}
	return ms
}

// TestEveryPresetOnEveryModel: each preset on each model either writes a
// model that reads back and verifies, or fails naming the tensor and the
// constraint; no output is left behind on failure.
func TestEveryPresetOnEveryModel(t *testing.T) {
	for _, in := range testModels(t) {
		for _, preset := range allPresets() {
			t.Run(filepath.Base(in)+"/"+preset, func(t *testing.T) {
				out, _, err := quantizeFile(t, in, preset, false)
				static := strings.HasPrefix(preset, "static_")
				if err != nil {
					msg := err.Error()
					if static {
						// A quantized input, or an op the interpreter cannot
						// calibrate, named.
						if !strings.Contains(msg, "already quantized") && !strings.Contains(msg, "operator") {
							t.Fatalf("failure does not name the tensor or operator: %v", err)
						}
						return
					}
					if !strings.Contains(msg, "tensor") || !strings.Contains(msg, "block size") {
						t.Fatalf("failure does not name the tensor and the constraint: %v", err)
					}
					return
				}
				m, err := tflite.Open(out)
				if err != nil {
					t.Fatalf("output does not read back: %v", err)
				}
				defer m.Close()
				for si, sg := range m.Meta.Subgraphs {
					for ti := range sg.Tensors {
						tt := sg.Tensors[ti]
						constant := tt.Buffer != 0 && m.Buffers[tt.Buffer].Data != nil && m.Buffers[tt.Buffer].Data.Len() > 0
						// Static outputs are checked by static.Check (quantize).
						if constant && (tt.Type == fb.TensorTypeINT4 || tt.Type == fb.TensorTypeINT8) && !preQuantized(in) && !static {
							if p := verifyTensor(m, si, ti, true); len(p) > 0 {
								t.Errorf("tensor %q: %v", tt.Name, p)
							}
						}
					}
				}
			})
		}
	}
}

func preQuantized(path string) bool {
	b := filepath.Base(path)
	return strings.Contains(b, "quantized") || strings.Contains(b, "person_detect")
}
