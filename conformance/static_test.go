package conformance

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/config"
)

// TestStaticOnRuntime: both static presets on every test model (calibrated
// on generated inputs, qpipe's default): the output loads and runs on
// LiteRT.js on the suite's inputs, within the family's bound of the float
// model; or the job is refused naming the tensor or operator (a model
// already quantized, an op the interpreter cannot calibrate). Models the
// runtime does not run as float are only quantized.
func TestStaticOnRuntime(t *testing.T) {
	s := measure(t)
	for _, m := range s.models {
		for _, preset := range []string{"static_int8", "static_int16x8"} {
			t.Run(m.short()+"/"+preset, func(t *testing.T) {
				rec, err := config.Preset(preset)
				if err != nil {
					t.Fatal(err)
				}
				family, err := FamilyOf(rec)
				if err != nil {
					t.Fatal(err)
				}
				bound, err := BoundFor(family, m.class)
				if err != nil {
					t.Fatal(err)
				}
				out := filepath.Join(t.TempDir(), m.short()+"_"+rec.Suffix+".tflite")
				if _, err := QuantizeRecipe(context.Background(), m.path, out, rec, false); err != nil {
					if msg := err.Error(); !strings.Contains(msg, "already quantized") && !strings.Contains(msg, "operator") {
						t.Fatalf("refused without naming the tensor or operator: %v", err)
					}
					t.Logf("refused: %v", err)
					return
				}
				if m.refused != "" {
					t.Logf("the runtime does not run the float model; quantized only")
					return
				}
				got, err := s.run(m, out)
				if err != nil {
					t.Fatalf("the static model does not run on LiteRT.js: %v", err)
				}
				c := compare(m, got, m.float)
				e := c.Errors()
				t.Logf("%s (%s): vs float rel L2 %.3g, rel max %.3g", preset, m.class, e.RelL2, e.RelMax)
				for _, p := range c.Problems {
					t.Error(p)
				}
				if bad := bound.Check(e, Errors{}); len(bad) > 0 {
					t.Errorf("does not conform (family %s, class %s): %s", family, m.class, strings.Join(bad, "; "))
				}
			})
		}
	}
}
