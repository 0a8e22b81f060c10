package main

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkStep is one training step (forward, backward, AdamW) of the
// trained model's shape at batch 8.
func BenchmarkStep(b *testing.B) {
	cfg := trainedConfig
	md, err := newModel(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	batch := make([][]int32, 8)
	for i := range batch {
		batch[i] = make([]int32, cfg.Seq+1)
		for j := range batch[i] {
			batch[i][j] = int32(r.IntN(cfg.Vocab))
		}
	}
	h := hyper{LR: 1e-3, WD: 0.1, Clip: 1, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}
	var opt adamW
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		md.loss(batch)
		md.backward(batch)
		opt.update(md, h, 1e-3)
	}
	b.ReportMetric(float64(b.N*8*cfg.Seq)/b.Elapsed().Seconds(), "tokens/s")
}
