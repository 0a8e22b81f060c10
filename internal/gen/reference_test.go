package gen

import (
	"fmt"
	"math"
)

// referenceLogits is the decoder's forward pass written directly from its
// definition in float64, with weights drawn from the same generator but no
// use of the graph: agreement with the runtime proves the graph computes a
// causal, RMS-normed, gated-FFN decoder with tied lm_head.
func referenceLogits(cfg Config, tokens []int32) [][]float64 {
	seed := cfg.Seed
	S, D, F, H, hd := len(tokens), cfg.Dim, cfg.FFNWidth(), cfg.Heads, cfg.HeadDim()
	mat := func(key string, rows, cols int) [][]float64 {
		v := weight{key: key, kind: kindMatrix, rows: rows, cols: cols}.values(seed)
		m := make([][]float64, rows)
		for r := range m {
			m[r] = make([]float64, cols)
			for c := range m[r] {
				m[r][c] = float64(v[r*cols+c])
			}
		}
		return m
	}
	vec := func(key string) []float64 {
		v := weight{key: key, kind: kindNorm, cols: D}.values(seed)
		out := make([]float64, D)
		for i := range v {
			out[i] = float64(v[i])
		}
		return out
	}
	// linear: x [S, in] times w [out, in] transposed.
	linear := func(x, w [][]float64) [][]float64 {
		y := make([][]float64, len(x))
		for s := range x {
			y[s] = make([]float64, len(w))
			for o := range w {
				acc := 0.0
				for i, xv := range x[s] {
					acc += xv * w[o][i]
				}
				y[s][o] = acc
			}
		}
		return y
	}
	eps := float64(float32(rmsEps))
	rms := func(x [][]float64, w []float64) [][]float64 {
		y := make([][]float64, len(x))
		for s := range x {
			ms := 0.0
			for _, v := range x[s] {
				ms += v * v
			}
			r := 1 / math.Sqrt(ms/float64(len(x[s]))+eps)
			y[s] = make([]float64, len(x[s]))
			for i, v := range x[s] {
				y[s][i] = v * r * w[i]
			}
		}
		return y
	}
	table := mat("tok_embedding.weight", cfg.Vocab, D)
	x := make([][]float64, S)
	for s, t := range tokens {
		x[s] = append([]float64(nil), table[t]...)
	}
	scale := float64(float32(1 / math.Sqrt(float64(hd))))
	for l := 0; l < cfg.Layers; l++ {
		p := fmt.Sprintf("transformer_blocks[%d].", l)
		n := rms(x, vec(p+"pre_atten_norm.weight"))
		q := linear(n, mat(p+"atten_func.q_projection.weight", D, D))
		k := linear(n, mat(p+"atten_func.k_projection.weight", D, D))
		v := linear(n, mat(p+"atten_func.v_projection.weight", D, D))
		att := make([][]float64, S)
		for i := range att {
			att[i] = make([]float64, D)
		}
		for h := 0; h < H; h++ {
			for i := 0; i < S; i++ {
				sc := make([]float64, i+1)
				mx := math.Inf(-1)
				for j := 0; j <= i; j++ {
					dot := 0.0
					for d := 0; d < hd; d++ {
						dot += q[i][h*hd+d] * k[j][h*hd+d]
					}
					sc[j] = dot * scale
					mx = math.Max(mx, sc[j])
				}
				sum := 0.0
				for j := range sc {
					sc[j] = math.Exp(sc[j] - mx)
					sum += sc[j]
				}
				for j := range sc {
					for d := 0; d < hd; d++ {
						att[i][h*hd+d] += sc[j] / sum * v[j][h*hd+d]
					}
				}
			}
		}
		o := linear(att, mat(p+"atten_func.output_projection.weight", D, D))
		for s := range x {
			for i := range x[s] {
				x[s][i] += o[s][i]
			}
		}
		n = rms(x, vec(p+"post_atten_norm.weight"))
		g := linear(n, mat(p+"ff.w1.weight", F, D))
		u := linear(n, mat(p+"ff.w3.weight", F, D))
		for s := range g {
			for i, gv := range g[s] {
				var a float64
				if cfg.Activation == ActGELU {
					a = 0.5 * gv * (1 + math.Erf(gv/math.Sqrt2))
				} else {
					a = gv / (1 + math.Exp(-gv))
				}
				g[s][i] = a * u[s][i]
			}
		}
		f := linear(g, mat(p+"ff.w2.weight", D, F))
		for s := range x {
			for i := range x[s] {
				x[s][i] += f[s][i]
			}
		}
	}
	return linear(rms(x, vec("final_norm.weight")), table)
}
