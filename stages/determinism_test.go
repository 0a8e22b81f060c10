package stages

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/config"
)

// TestDeterministicEveryPreset: every preset, on the tiny decoder and on
// aeq_conv_fc_mnist, writes the same bytes with GOMAXPROCS=1 and =2, and
// the same bytes again when all presets run as branches of one job (one
// load, forked per recipe, with the per-tensor error measured as qpipe run
// does). on_mismatch: fallback lets every preset
// produce a file on mnist, whose FC input of 1568 only block 32 divides.
func TestDeterministicEveryPreset(t *testing.T) {
	var presets []string
	for _, p := range config.Presets() {
		presets = append(presets, p.Name)
	}
	if len(presets) < 8 {
		t.Fatalf("only %d presets: %v", len(presets), presets)
	}
	for _, model := range []string{"tiny_decoder.tflite", "aeq_conv_fc_mnist.tflite"} {
		t.Run(model, func(t *testing.T) {
			in := absModel(t, model)
			job := func(recipes string) string {
				return fmt.Sprintf(`version: 1
name: det
stages:
  - load: {path: %q}
  - quantize: {recipes: [%s]}
  - verify: {on_mismatch: fallback}
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`, in, recipes)
			}
			// All presets at once, as branches of one job, measuring errors.
			prev := runtime.GOMAXPROCS(2)
			dir, branches, err := runJobFileWith(t, job(strings.Join(presets, ", ")), true)
			runtime.GOMAXPROCS(prev)
			if err != nil {
				t.Fatal(err)
			}
			if len(branches) != len(presets) {
				t.Fatalf("%d branches, want %d", len(branches), len(presets))
			}
			release := map[string][]byte{}
			for _, b := range branches {
				data, err := os.ReadFile(b.Output.Path)
				if err != nil {
					t.Fatal(err)
				}
				release[b.Recipe] = data
			}
			if _, err := os.Stat(filepath.Join(dir, "out")); err != nil {
				t.Fatal(err)
			}
			for _, preset := range presets {
				var runs [][]byte
				for _, procs := range []int{1, 2} {
					prev := runtime.GOMAXPROCS(procs)
					_, branches, err := runJobFileWith(t, job(preset), false)
					runtime.GOMAXPROCS(prev)
					if err != nil {
						t.Fatalf("%s, GOMAXPROCS=%d: %v", preset, procs, err)
					}
					data, err := os.ReadFile(branches[0].Output.Path)
					if err != nil {
						t.Fatal(err)
					}
					runs = append(runs, data)
				}
				if !bytes.Equal(runs[0], runs[1]) {
					t.Errorf("%s: GOMAXPROCS=1 and =2 write different bytes (first difference at %d)", preset, firstDiff(runs[0], runs[1]))
				}
				if !bytes.Equal(runs[1], release[preset]) {
					t.Errorf("%s: alone and as one branch of a multi-recipe job: different bytes (first difference at %d)", preset, firstDiff(runs[1], release[preset]))
				}
			}
		})
	}
}
