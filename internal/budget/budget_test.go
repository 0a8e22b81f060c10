package budget

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// schemeUnit is a weight of n float32 elements with the usual schemes and
// errors that fall by a factor per extra bit.
func schemeUnit(name string, n int64, sens float64) Unit {
	return Unit{Name: name, Options: []Option{
		{"fp16", 2 * n, sens * 1e-6},
		{"dynamic_int8", n, sens * 1e-3},
		{"dynamic_int4_block32", n/2 + n/32*2, sens * 0.030},
		{"dynamic_int4_block64", n/2 + n/64*2, sens * 0.034},
		{"dynamic_int4_block128", n/2 + n/128*2, sens * 0.040},
		{"dynamic_int4_block256", n/2 + n/256*2, sens * 0.047},
	}}
}

func TestHull(t *testing.T) {
	opts := []Option{
		{"a", 100, 0},
		{"b", 90, 5}, // above the segment a–c: left out
		{"c", 50, 6},
		{"d", 60, 7}, // dominated by c (larger and worse)
		{"e", 50, 9}, // same size as c, worse
		{"f", 10, 30},
	}
	if got, want := hull(opts), []int{0, 2, 5}; !slices.Equal(got, want) {
		t.Errorf("hull = %v, want %v", got, want)
	}
}

// bruteForce is the least error of every mix within limit bytes.
func bruteForce(units []Unit, limit int64) float64 {
	best := math.Inf(1)
	var rec func(i int, bytes int64, err float64)
	rec = func(i int, bytes int64, err float64) {
		if bytes > limit || err >= best {
			return
		}
		if i == len(units) {
			best = err
			return
		}
		for _, o := range units[i].Options {
			rec(i+1, bytes+o.Bytes, err+o.Err)
		}
	}
	rec(0, 0, 0)
	return best
}

func randomUnits(r *rand.Rand, n int) []Unit {
	var us []Unit
	for i := 0; i < n; i++ {
		us = append(us, schemeUnit("w", int64(32*256*(1+r.IntN(8))), math.Exp(3*r.NormFloat64())))
		// Random extra options too, so that hulls differ from the schemes'.
		us[i].Options = append(us[i].Options, Option{"x", int64(r.IntN(40000)), r.Float64() * 0.2})
	}
	return us
}

// TestPathPointsOptimal: each point of the path is the least error any
// mix reaches within its size (checked exhaustively).
func TestPathPointsOptimal(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 30; trial++ {
		units := randomUnits(r, 2+r.IntN(4))
		p, err := NewPlanner(units)
		if err != nil {
			t.Fatal(err)
		}
		for _, pt := range p.Points() {
			if want := bruteForce(units, pt.Bytes); pt.Err > want*(1+1e-12)+1e-15 {
				t.Fatalf("trial %d: the path's point at %d bytes has error %g, the best is %g", trial, pt.Bytes, pt.Err, want)
			}
		}
	}
}

// TestBySizeAndByError: within the limit, never worse than the path point
// below it, and no single move improves it; gap to the optimum measured.
func TestBySizeAndByError(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	worst := 0.0
	for trial := 0; trial < 10; trial++ {
		units := randomUnits(r, 2+r.IntN(4))
		p, _ := NewPlanner(units)
		lo, hi := p.Smallest().Bytes, p.Largest().Bytes
		for k := 0; k < 3; k++ {
			limit := lo + r.Int64N(hi-lo+1)
			mx, ok := p.BySize(limit)
			if !ok || mx.Bytes > limit {
				t.Fatalf("BySize(%d) = %d bytes, ok %v", limit, mx.Bytes, ok)
			}
			for _, pt := range p.Points() {
				if pt.Bytes <= limit && mx.Err > pt.Err {
					t.Fatalf("BySize(%d): error %g, but the path has %g at %d bytes", limit, mx.Err, pt.Err, pt.Bytes)
				}
			}
			best := bruteForce(units, limit)
			if best > 0 {
				worst = math.Max(worst, mx.Err/best-1)
			}
			// The programme's guarantee: as good as the best mix within
			// the limit less one rounding cell per unit.
			g := (limit + maxCells - 1) / maxCells
			if bound := bruteForce(units, limit-int64(len(units))*g); mx.Err > bound*(1+1e-12) {
				t.Fatalf("BySize(%d): error %g, worse than the best within %d bytes (%g)", limit, mx.Err, limit-int64(len(units))*g, bound)
			}
			// ByError at the error just found gives no larger a mix.
			me, ok := p.ByError(mx.Err)
			if !ok || me.Err > mx.Err || me.Bytes > mx.Bytes {
				t.Fatalf("ByError(%g) = %d bytes, error %g; BySize found %d bytes", mx.Err, me.Bytes, me.Err, mx.Bytes)
			}
		}
	}
	t.Logf("BySize: worst error above the exhaustive optimum: %.1f %%", 100*worst)
}

func TestInfeasible(t *testing.T) {
	p, _ := NewPlanner([]Unit{schemeUnit("a", 4096, 1), schemeUnit("b", 8192, 2)})
	if _, ok := p.BySize(p.Smallest().Bytes - 1); ok {
		t.Error("a size below the smallest mix was met")
	}
	if _, ok := p.ByError(p.Largest().Err / 2); ok {
		t.Error("an error below the largest mix's was met")
	}
	if mx, ok := p.BySize(p.Largest().Bytes + 100); !ok || mx.Err != p.Largest().Err {
		t.Error("a roomy budget did not give the most accurate mix")
	}
	if mx, ok := p.ByError(1e9); !ok || mx.Bytes != p.Smallest().Bytes {
		t.Error("a loose error bound did not give the smallest mix")
	}
}

func TestBadUnits(t *testing.T) {
	for _, us := range [][]Unit{
		{{Name: "empty"}},
		{{Name: "neg", Options: []Option{{"a", -1, 0}}}},
		{{Name: "nan", Options: []Option{{"a", 1, math.NaN()}}}},
	} {
		if _, err := NewPlanner(us); err == nil {
			t.Errorf("%s: no error", us[0].Name)
		}
	}
}

// TestDeterministic: ties (identical units) break by unit order.
func TestDeterministic(t *testing.T) {
	units := []Unit{schemeUnit("a", 4096, 1), schemeUnit("b", 4096, 1), schemeUnit("c", 4096, 1)}
	p, _ := NewPlanner(units)
	mx, _ := p.BySize((p.Largest().Bytes + p.Smallest().Bytes) / 2)
	for i := 0; i < 10; i++ {
		q, _ := NewPlanner(units)
		m2, _ := q.BySize((p.Largest().Bytes + p.Smallest().Bytes) / 2)
		if !slices.Equal(mx.Choice, m2.Choice) {
			t.Fatal("two plans of the same units differ")
		}
	}
}
