package conformance

import (
	"math"
	"testing"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/litert"
)

func f32(v ...float32) litert.Tensor { return litert.NewFloat32("y", []int{len(v)}, v) }

func TestComparison(t *testing.T) {
	inf := math.Inf(1)
	nan := float32(math.NaN())
	tests := []struct {
		name      string
		got, want [][]litert.Tensor // per run, the outputs
		errors    Errors
		problems  int
	}{
		{"identical", [][]litert.Tensor{{f32(1, -2, 3)}}, [][]litert.Tensor{{f32(1, -2, 3)}}, Errors{}, 0},
		// ‖(0, 0, 4) − (0, 0, 3)‖ / ‖(0, 0, 3)‖ = 1/3; max abs 1; rel max 1/3.
		{"one element off", [][]litert.Tensor{{f32(0, 0, 4)}}, [][]litert.Tensor{{f32(0, 0, 3)}}, Errors{RelL2: 1.0 / 3, MaxAbs: 1, RelMax: 1.0 / 3}, 0},
		// Sums run over both runs: √(1 + 0) / √(9 + 16) = 1/5; rel max = 1/4.
		{"sums over runs", [][]litert.Tensor{{f32(4)}, {f32(4)}}, [][]litert.Tensor{{f32(3)}, {f32(4)}}, Errors{RelL2: 0.2, MaxAbs: 1, RelMax: 0.25}, 0},
		// The worst output decides: output 1 is off by 10 %.
		{"worst output", [][]litert.Tensor{{f32(1, 1), f32(11)}}, [][]litert.Tensor{{f32(1, 1), f32(10)}}, Errors{RelL2: 0.1, MaxAbs: 1, RelMax: 0.1}, 0},
		{"zero reference matched", [][]litert.Tensor{{f32(0, 0)}}, [][]litert.Tensor{{f32(0, 0)}}, Errors{}, 0},
		{"zero reference missed", [][]litert.Tensor{{f32(0, 1e-9)}}, [][]litert.Tensor{{f32(0, 0)}}, Errors{RelL2: inf, MaxAbs: 1e-9, RelMax: inf}, 0},
		{"NaN where finite", [][]litert.Tensor{{f32(1, nan)}}, [][]litert.Tensor{{f32(1, 2)}}, Errors{RelL2: inf, MaxAbs: inf, RelMax: inf}, 0},
		{"NaN where NaN", [][]litert.Tensor{{f32(1, nan)}}, [][]litert.Tensor{{f32(1, nan)}}, Errors{}, 0},
		{"shape differs", [][]litert.Tensor{{f32(1, 2)}}, [][]litert.Tensor{{f32(1, 2, 3)}}, Errors{RelL2: inf, MaxAbs: inf, RelMax: inf}, 1},
		{"output count differs", [][]litert.Tensor{{f32(1), f32(1)}}, [][]litert.Tensor{{f32(1)}}, Errors{RelL2: inf, MaxAbs: inf, RelMax: inf}, 1},
		{"int32 equal", [][]litert.Tensor{{litert.NewInt32("i", []int{2}, []int32{1, 2})}}, [][]litert.Tensor{{litert.NewInt32("i", []int{2}, []int32{1, 2})}}, Errors{}, 0},
		{"int32 differs", [][]litert.Tensor{{litert.NewInt32("i", []int{2}, []int32{1, 3})}}, [][]litert.Tensor{{litert.NewInt32("i", []int{2}, []int32{1, 2})}}, Errors{RelL2: inf, MaxAbs: inf, RelMax: inf}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Comparison
			for i := range tc.want {
				c.Add("sig", tc.got[i], tc.want[i])
			}
			got := c.Errors()
			if !near(got.RelL2, tc.errors.RelL2) || !near(got.MaxAbs, tc.errors.MaxAbs) || !near(got.RelMax, tc.errors.RelMax) {
				t.Errorf("Errors() = %+v, want %+v", got, tc.errors)
			}
			if len(c.Problems) != tc.problems {
				t.Errorf("problems %q, want %d", c.Problems, tc.problems)
			}
		})
	}
}

func near(a, b float64) bool {
	if math.IsInf(b, 1) {
		return math.IsInf(a, 1)
	}
	return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b))
}

func TestBoundCheck(t *testing.T) {
	b := Bound{VsFloat: Limit{RelL2: 0.1, RelMax: 0.2}, VsReference: Limit{RelL2: 1e-6, RelMax: 1e-6}}
	if bad := b.Check(Errors{RelL2: 0.1, RelMax: 0.2}, Errors{RelL2: 1e-6, RelMax: 1e-6}); len(bad) != 0 {
		t.Errorf("errors equal to the bound rejected: %v", bad)
	}
	if bad := b.Check(Errors{RelL2: 0.05}, Errors{RelL2: 2e-6, RelMax: math.NaN()}); len(bad) != 2 {
		t.Errorf("want the reference rel L2 and the NaN rel max rejected, got %v", bad)
	}
	if bad := b.Check(Errors{RelL2: math.Inf(1), RelMax: math.Inf(1)}, Errors{}); len(bad) != 2 {
		t.Errorf("want both float limits broken, got %v", bad)
	}
}

// TestEveryPresetHasBounds: a preset added to recipes.yaml needs a family
// and bounds for both classes before the suite can judge it.
func TestEveryPresetHasBounds(t *testing.T) {
	for _, p := range presetsForTest(t) {
		f, err := FamilyOf(p)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, c := range []Class{ClassShallow, ClassDeep} {
			if _, err := BoundFor(f, c); err != nil {
				t.Errorf("preset %s: %v", p.Name, err)
			}
		}
	}
}

func presetsForTest(t *testing.T) []*config.Recipe {
	t.Helper()
	var out []*config.Recipe
	for _, p := range config.Presets() {
		r, err := config.Preset(p.Name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}
