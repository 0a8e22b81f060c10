package main

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qpipe/qpipe/internal/gen"
)

var tinyCfg = gen.Config{Name: "gradcheck", Vocab: 16, Dim: 8, Layers: 2, Heads: 2, FFN: 12, Seq: 6, Seed: 1, Activation: gen.ActSiLU}

func tinyBatch(cfg gen.Config, n int, seed uint64) [][]int32 {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([][]int32, n)
	for i := range b {
		b[i] = make([]int32, cfg.Seq+1)
		for j := range b[i] {
			b[i][j] = int32(r.IntN(cfg.Vocab))
		}
	}
	return b
}

// tinyModel is a model with weights large enough that every nonlinearity
// (softmax, silu, the norms) is far from linear.
func tinyModel(t *testing.T, threads int) *model {
	t.Helper()
	m, err := newModel(tinyCfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	m.threads = threads
	r := rand.New(rand.NewPCG(5, 5))
	for i, s := range m.specs {
		for j := range m.params[i] {
			if s.Rows == 0 {
				m.params[i][j] = float32(1 + 0.3*r.NormFloat64())
			} else {
				m.params[i][j] = float32(0.5 * r.NormFloat64())
			}
		}
	}
	return m
}

// TestGradients compares the analytic gradient of every parameter tensor
// (each kind: embedding/lm_head, q, k, v, output projection, w1, w3, w2,
// both block norms and the final norm, in both blocks) with central finite
// differences of the loss along a random direction, and element by element
// for a few elements of each tensor.
func TestGradients(t *testing.T) {
	m := tinyModel(t, 2)
	batch := tinyBatch(tinyCfg, 3, 1)
	m.loss(batch)
	m.backward(batch)
	grads := make([][]float32, len(m.grads))
	for i, g := range m.grads {
		grads[i] = append([]float32(nil), g...)
	}
	const eps = 2e-3
	r := rand.New(rand.NewPCG(9, 9))
	fd := func(p []float32, dir []float32) float64 {
		orig := append([]float32(nil), p...)
		for j := range p {
			p[j] = orig[j] + float32(eps*float64(dir[j]))
		}
		lp := m.loss(batch)
		for j := range p {
			p[j] = orig[j] - float32(eps*float64(dir[j]))
		}
		lm := m.loss(batch)
		copy(p, orig)
		return (lp - lm) / (2 * eps)
	}
	for i, s := range m.specs {
		p := m.params[i]
		dir := make([]float32, len(p))
		var norm float64
		for j := range dir {
			dir[j] = float32(r.NormFloat64())
			norm += float64(dir[j]) * float64(dir[j])
		}
		var an float64
		for j := range dir {
			dir[j] = float32(float64(dir[j]) / math.Sqrt(norm))
			an += float64(dir[j]) * float64(grads[i][j])
		}
		num := fd(p, dir)
		if d := math.Abs(num - an); d > 1e-2*math.Abs(an)+2e-4 {
			t.Errorf("%s: directional derivative %.6g analytic, %.6g finite differences", s.Key, an, num)
		}
		for e := 0; e < 3; e++ {
			j := r.IntN(len(p))
			unit := make([]float32, len(p))
			unit[j] = 1
			num := fd(p, unit)
			an := float64(grads[i][j])
			if d := math.Abs(num - an); d > 2e-2*math.Abs(an)+5e-4 {
				t.Errorf("%s[%d]: gradient %.6g analytic, %.6g finite differences", s.Key, j, an, num)
			}
		}
	}
}

// TestTrainingDeterministic trains a few steps with 1 and with 3 workers
// and wants identical weights.
func TestTrainingDeterministic(t *testing.T) {
	run := func(threads int) [][]float32 {
		m := tinyModel(t, threads)
		h := hyper{Steps: 4, Batch: 3, Warmup: 2, LR: 1e-2, MinLR: 1e-3, WD: 0.1, Clip: 1, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, Seed: 1, LogEvery: 2, EvalEvery: 2, EvalWindows: 2}
		ids := make([]int32, 200)
		for i := range ids {
			ids[i] = int32((i * 7) % tinyCfg.Vocab)
		}
		if _, err := fit(m, h, ids, ids[:50], nil); err != nil {
			t.Fatal(err)
		}
		return m.params
	}
	a, b := run(1), run(3)
	for i := range a {
		for j := range a[i] {
			if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
				t.Fatalf("weight %d[%d]: %v with 1 worker, %v with 3", i, j, a[i][j], b[i][j])
			}
		}
	}
}
