package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/qpipe/qpipe/internal/gen"
	"github.com/qpipe/qpipe/internal/interp"
)

// model holds the parameters of a gen decoder (gen.Weights order and keys)
// and their gradients, plus the activations one step keeps for the
// backward pass. Every computation is float32 with one fixed order per
// element: matrix products go through interp.MatMulF32 (the same bits for
// any thread count), attention runs one (sequence, head) pair per task,
// and sums across rows (norm weight gradients, the embedding scatter, the
// loss) run serially in row order; so the weights after any number of
// steps are the same for every GOMAXPROCS.
type model struct {
	cfg    gen.Config
	specs  []gen.WeightSpec
	params [][]float32
	grads  [][]float32
	// indices into params of each parameter kind
	emb, final int
	layers     []layerIdx
	threads    int

	// activations of the last forward pass (batch b, rows m = b·seq)
	b, m int
	acts []layerActs
	xL   []float32 // residual stream after the last block
	rf   []float32 // final norm's 1/rms per row
	nf   []float32 // final norm output
	prob []float32 // softmax of the logits [m, vocab]
	// scratch
	tmp, tmp2, tmpT []float32
}

type layerIdx struct{ n1, q, k, v, o, n2, w1, w3, w2 int }

type layerActs struct {
	x, n1, q, k, v, att, x2, n2, g, u, a, h []float32
	r1, r2                                  []float32
	p                                       []float32 // attention probabilities [b, heads, seq, seq]
}

func newModel(cfg gen.Config, seed uint64) (*model, error) {
	specs, err := gen.Weights(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Activation != gen.ActSiLU || cfg.NotDivisible {
		return nil, fmt.Errorf("train: only silu and a divisible ffn are implemented")
	}
	m := &model{cfg: cfg, specs: specs, threads: runtime.GOMAXPROCS(0)}
	idx := map[string]int{}
	for i, s := range specs {
		idx[s.Key] = i
		m.params = append(m.params, make([]float32, s.Numel()))
		m.grads = append(m.grads, make([]float32, s.Numel()))
	}
	get := func(k string) int {
		i, ok := idx[k]
		if !ok {
			panic("train: gen has no weight " + k)
		}
		return i
	}
	m.emb, m.final = get("tok_embedding.weight"), get("final_norm.weight")
	for l := 0; l < cfg.Layers; l++ {
		p := fmt.Sprintf("transformer_blocks[%d].", l)
		m.layers = append(m.layers, layerIdx{
			n1: get(p + "pre_atten_norm.weight"), n2: get(p + "post_atten_norm.weight"),
			q: get(p + "atten_func.q_projection.weight"), k: get(p + "atten_func.k_projection.weight"),
			v: get(p + "atten_func.v_projection.weight"), o: get(p + "atten_func.output_projection.weight"),
			w1: get(p + "ff.w1.weight"), w3: get(p + "ff.w3.weight"), w2: get(p + "ff.w2.weight"),
		})
	}
	m.init(seed)
	return m, nil
}

// init draws every matrix from N(0, 0.02²) (output and down projections
// scaled by 1/sqrt(2·layers), as GPT-2 does) from its own stream (seed and
// key), and sets norm weights to 1.
func (m *model) init(seed uint64) {
	for i, s := range m.specs {
		p := m.params[i]
		if s.Rows == 0 {
			for j := range p {
				p[j] = 1
			}
			continue
		}
		std := 0.02
		if isResidualOut(s.Key) {
			std /= math.Sqrt(float64(2 * m.cfg.Layers))
		}
		r := rand.New(rand.NewPCG(seed, fnv64(s.Key)))
		for j := range p {
			p[j] = float32(r.NormFloat64() * std)
		}
	}
}

func isResidualOut(key string) bool {
	return len(key) > 0 && (contains(key, "output_projection") || contains(key, "ff.w2"))
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// weights returns the parameters by key, for gen.DecoderFrom.
func (m *model) weights() map[string][]float32 {
	w := map[string][]float32{}
	for i, s := range m.specs {
		w[s.Key] = m.params[i]
	}
	return w
}

func (m *model) numParams() int {
	n := 0
	for _, p := range m.params {
		n += len(p)
	}
	return n
}

func grow(s *[]float32, n int) []float32 {
	if cap(*s) < n {
		*s = make([]float32, n)
	}
	*s = (*s)[:n]
	return *s
}

// alloc sizes the activations for b sequences.
func (m *model) alloc(b int) {
	if m.b == b {
		return
	}
	c := m.cfg
	m.b, m.m = b, b*c.Seq
	M, D, F := m.m, c.Dim, c.FFN
	m.acts = make([]layerActs, c.Layers)
	for l := range m.acts {
		a := &m.acts[l]
		for _, s := range []*[]float32{&a.x, &a.n1, &a.q, &a.k, &a.v, &a.att, &a.x2, &a.n2} {
			*s = make([]float32, M*D)
		}
		for _, s := range []*[]float32{&a.g, &a.u, &a.a, &a.h} {
			*s = make([]float32, M*F)
		}
		a.r1, a.r2 = make([]float32, M), make([]float32, M)
		a.p = make([]float32, b*c.Heads*c.Seq*c.Seq)
	}
	m.xL, m.nf, m.rf = make([]float32, M*D), make([]float32, M*D), make([]float32, M)
	m.prob = make([]float32, M*c.Vocab)
}

// matmul is out[M,N] = a[M,K]·w[N,K]ᵀ.
func (m *model) matmul(out, a []float32, M, K, N int, w []float32) {
	interp.MatMulF32(m.threads, out, a, M, K, N, w)
}

// transpose writes src [rows, cols] transposed into dst [cols, rows].
func transpose(dst, src []float32, rows, cols int) {
	const bs = 32
	for r0 := 0; r0 < rows; r0 += bs {
		for c0 := 0; c0 < cols; c0 += bs {
			for r := r0; r < min(r0+bs, rows); r++ {
				for c := c0; c < min(c0+bs, cols); c++ {
					dst[c*rows+r] = src[r*cols+c]
				}
			}
		}
	}
}

// matmulTN is out[N,K] = dyᵀ·x for dy [M,N], x [M,K] (a weight gradient).
func (m *model) matmulTN(out, dy, x []float32, M, N, K int) {
	dyT := grow(&m.tmp, N*M)
	xT := grow(&m.tmp2, K*M)
	transpose(dyT, dy, M, N)
	transpose(xT, x, M, K)
	m.matmul(out, dyT, N, M, K, xT)
}

// matmulNN is out[M,K] = dy[M,N]·w[N,K] (an input gradient).
func (m *model) matmulNN(out, dy []float32, M, N, K int, w []float32) {
	wT := grow(&m.tmpT, K*N)
	transpose(wT, w, N, K)
	m.matmul(out, dy, M, N, K, wT)
}

// forEach runs f(i) for i in [0, n) on the model's threads; the calls
// must write disjoint memory.
func (m *model) forEach(n int, f func(i int)) {
	t := min(m.threads, n)
	if t <= 1 {
		for i := 0; i < n; i++ {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	for w := 0; w < t; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += t {
				f(i)
			}
		}(w)
	}
	wg.Wait()
}

const rmsEps = 1e-6

// rmsNorm writes n = x·r·g with r = 1/sqrt(mean(x²)+eps) per row.
func (m *model) rmsNorm(n, r, x, g []float32) {
	D := m.cfg.Dim
	m.forEach(m.m/64+1, func(blk int) {
		for row := blk * 64; row < min(blk*64+64, m.m); row++ {
			xs := x[row*D : row*D+D]
			var ss float32
			for _, v := range xs {
				ss += float32(v * v)
			}
			ri := float32(1 / math.Sqrt(float64(ss/float32(D)+rmsEps)))
			r[row] = ri
			ns := n[row*D : row*D+D]
			for j, v := range xs {
				ns[j] = float32(v*ri) * g[j]
			}
		}
	})
}

// rmsNormBack adds the input gradient of rmsNorm to dx and the weight
// gradient to dg (serially, row order).
func (m *model) rmsNormBack(dx, dg, dn, x, r, g []float32) {
	D := m.cfg.Dim
	for row := 0; row < m.m; row++ {
		xs, ds, ri := x[row*D:row*D+D], dn[row*D:row*D+D], r[row]
		for j := range xs {
			dg[j] += float32(float32(ds[j]*xs[j]) * ri)
		}
	}
	m.forEach(m.m/64+1, func(blk int) {
		for row := blk * 64; row < min(blk*64+64, m.m); row++ {
			xs, ds, dxs, ri := x[row*D:row*D+D], dn[row*D:row*D+D], dx[row*D:row*D+D], r[row]
			var c float32
			for j := range xs {
				c += float32(float32(ds[j]*g[j]) * xs[j])
			}
			k := float32(float32(float32(ri*ri)*ri)*c) / float32(D)
			for j := range xs {
				dxs[j] += float32(float32(ds[j]*g[j])*ri) - float32(xs[j]*k)
			}
		}
	})
}

// loss runs the forward pass on b sequences of seq+1 tokens each (inputs
// tok[0:seq], targets tok[1:seq+1]) and returns the mean cross-entropy
// (nats per token). It keeps what backward needs.
func (m *model) loss(batch [][]int32) float64 {
	c := m.cfg
	m.alloc(len(batch))
	M, D, F, T, V := m.m, c.Dim, c.FFN, c.Seq, c.Vocab
	emb := m.params[m.emb]
	x := m.acts[0].x
	for b, seq := range batch {
		for t := 0; t < T; t++ {
			copy(x[(b*T+t)*D:(b*T+t+1)*D], emb[int(seq[t])*D:int(seq[t]+1)*D])
		}
	}
	for l, li := range m.layers {
		a := &m.acts[l]
		m.rmsNorm(a.n1, a.r1, a.x, m.params[li.n1])
		m.matmul(a.q, a.n1, M, D, D, m.params[li.q])
		m.matmul(a.k, a.n1, M, D, D, m.params[li.k])
		m.matmul(a.v, a.n1, M, D, D, m.params[li.v])
		m.attention(a)
		m.matmul(a.x2, a.att, M, D, D, m.params[li.o])
		for i := range a.x2 {
			a.x2[i] += a.x[i]
		}
		m.rmsNorm(a.n2, a.r2, a.x2, m.params[li.n2])
		m.matmul(a.g, a.n2, M, D, F, m.params[li.w1])
		m.matmul(a.u, a.n2, M, D, F, m.params[li.w3])
		for i, g := range a.g {
			s := float32(1 / (1 + math.Exp(-float64(g))))
			a.a[i] = g * s
			a.h[i] = a.a[i] * a.u[i]
		}
		next := m.xL
		if l+1 < len(m.layers) {
			next = m.acts[l+1].x
		}
		m.matmul(next, a.h, M, F, D, m.params[li.w2])
		for i := range next {
			next[i] += a.x2[i]
		}
	}
	m.rmsNorm(m.nf, m.rf, m.xL, m.params[m.final])
	m.matmul(m.prob, m.nf, M, D, V, emb)
	rowLoss := make([]float64, M)
	m.forEach(M, func(row int) {
		b, t := row/T, row%T
		target := int(batch[b][t+1])
		p := m.prob[row*V : row*V+V]
		mx := p[0]
		for _, v := range p {
			mx = max(mx, v)
		}
		lt := float64(p[target] - mx)
		var sum float64
		for j, v := range p {
			e := math.Exp(float64(v - mx))
			p[j] = float32(e)
			sum += e
		}
		rowLoss[row] = math.Log(sum) - lt
		inv := float32(1 / sum)
		for j := range p {
			p[j] *= inv
		}
	})
	var total float64
	for _, l := range rowLoss {
		total += l
	}
	return total / float64(M)
}

// attention computes att [m, dim] from q, k, v of layer a, one task per
// (sequence, head), keeping the probabilities in a.p.
func (m *model) attention(a *layerActs) {
	c := m.cfg
	T, D, H, hd := c.Seq, c.Dim, c.Heads, c.HeadDim()
	scale := float32(1 / math.Sqrt(float64(hd)))
	m.forEach(m.b*H, func(task int) {
		b, h := task/H, task%H
		q, k, vt := make([]float32, T*hd), make([]float32, T*hd), make([]float32, hd*T)
		for t := 0; t < T; t++ {
			row := (b*T+t)*D + h*hd
			copy(q[t*hd:], a.q[row:row+hd])
			copy(k[t*hd:], a.k[row:row+hd])
			for j := 0; j < hd; j++ {
				vt[j*T+t] = a.v[row+j]
			}
		}
		p := a.p[task*T*T : (task+1)*T*T]
		interp.MatMulF32(1, p, q, T, hd, T, k)
		for t := 0; t < T; t++ {
			ps := p[t*T : t*T+T]
			mx := float32(math.Inf(-1))
			for s := 0; s <= t; s++ {
				ps[s] *= scale
				mx = max(mx, ps[s])
			}
			var sum float32
			for s := 0; s <= t; s++ {
				e := float32(math.Exp(float64(ps[s] - mx)))
				ps[s] = e
				sum += e
			}
			for s := 0; s <= t; s++ {
				ps[s] /= sum
			}
			clear(ps[t+1:])
		}
		o := make([]float32, T*hd)
		interp.MatMulF32(1, o, p, T, T, hd, vt)
		for t := 0; t < T; t++ {
			row := (b*T+t)*D + h*hd
			copy(a.att[row:row+hd], o[t*hd:t*hd+hd])
		}
	})
}

// attentionBack turns datt [m, dim] into dq, dk, dv [m, dim].
func (m *model) attentionBack(a *layerActs, datt, dq, dk, dv []float32) {
	c := m.cfg
	T, D, H, hd := c.Seq, c.Dim, c.Heads, c.HeadDim()
	scale := float32(1 / math.Sqrt(float64(hd)))
	m.forEach(m.b*H, func(task int) {
		b, h := task/H, task%H
		q, k, v := make([]float32, T*hd), make([]float32, T*hd), make([]float32, T*hd)
		do, doT := make([]float32, T*hd), make([]float32, hd*T)
		for t := 0; t < T; t++ {
			row := (b*T+t)*D + h*hd
			copy(q[t*hd:], a.q[row:row+hd])
			copy(k[t*hd:], a.k[row:row+hd])
			copy(v[t*hd:], a.v[row:row+hd])
			copy(do[t*hd:], datt[row:row+hd])
		}
		transpose(doT, do, T, hd)
		p := a.p[task*T*T : (task+1)*T*T]
		dp := make([]float32, T*T)
		interp.MatMulF32(1, dp, do, T, hd, T, v) // dp = do·vᵀ
		pT := make([]float32, T*T)
		transpose(pT, p, T, T)
		dvh := make([]float32, T*hd)
		interp.MatMulF32(1, dvh, pT, T, T, hd, doT) // dv = pᵀ·do
		for t := 0; t < T; t++ {
			ps, dps := p[t*T:t*T+T], dp[t*T:t*T+T]
			var s float32
			for j := 0; j <= t; j++ {
				s += float32(ps[j] * dps[j])
			}
			for j := 0; j <= t; j++ {
				dps[j] = float32(ps[j]*(dps[j]-s)) * scale
			}
			clear(dps[t+1:])
		}
		kT, qT := make([]float32, hd*T), make([]float32, hd*T)
		transpose(kT, k, T, hd)
		transpose(qT, q, T, hd)
		dqh := make([]float32, T*hd)
		interp.MatMulF32(1, dqh, dp, T, T, hd, kT) // dq = ds·k
		transpose(pT, dp, T, T)
		dkh := make([]float32, T*hd)
		interp.MatMulF32(1, dkh, pT, T, T, hd, qT) // dk = dsᵀ·q
		for t := 0; t < T; t++ {
			row := (b*T+t)*D + h*hd
			copy(dq[row:row+hd], dqh[t*hd:])
			copy(dk[row:row+hd], dkh[t*hd:])
			copy(dv[row:row+hd], dvh[t*hd:])
		}
	})
}

// backward computes the gradients of the last loss into m.grads
// (overwriting them).
func (m *model) backward(batch [][]int32) {
	c := m.cfg
	M, D, F, T, V := m.m, c.Dim, c.FFN, c.Seq, c.Vocab
	for _, g := range m.grads {
		clear(g)
	}
	// dlogits = (softmax − onehot)/M, in place of prob
	dl := m.prob
	inv := float32(1 / float64(M))
	m.forEach(M, func(row int) {
		p := dl[row*V : row*V+V]
		p[int(batch[row/T][row%T+1])] -= 1
		for j := range p {
			p[j] *= inv
		}
	})
	emb := m.params[m.emb]
	dnf := make([]float32, M*D)
	m.matmulNN(dnf, dl, M, V, D, emb)
	m.matmulTN(m.grads[m.emb], dl, m.nf, M, V, D)
	dx := make([]float32, M*D)
	m.rmsNormBack(dx, m.grads[m.final], dnf, m.xL, m.rf, m.params[m.final])
	dn := make([]float32, M*D)
	dh := make([]float32, M*F)
	dgt := make([]float32, M*F)
	dup := make([]float32, M*F)
	dq, dk, dv, datt := make([]float32, M*D), make([]float32, M*D), make([]float32, M*D), make([]float32, M*D)
	tmp := make([]float32, M*D)
	for l := len(m.layers) - 1; l >= 0; l-- {
		li, a := m.layers[l], &m.acts[l]
		// feed-forward: x_out = x2 + w2(h); dx is d x_out and becomes d x2
		m.matmulTN(m.grads[li.w2], dx, a.h, M, D, F)
		m.matmulNN(dh, dx, M, D, F, m.params[li.w2])
		for i, g := range a.g {
			s := float32(1 / (1 + math.Exp(-float64(g))))
			dup[i] = dh[i] * a.a[i]
			da := dh[i] * a.u[i]
			dgt[i] = float32(da*s) * (1 + float32(g*(1-s)))
		}
		m.matmulTN(m.grads[li.w1], dgt, a.n2, M, F, D)
		m.matmulTN(m.grads[li.w3], dup, a.n2, M, F, D)
		m.matmulNN(dn, dgt, M, F, D, m.params[li.w1])
		m.matmulNN(tmp, dup, M, F, D, m.params[li.w3])
		for i := range dn {
			dn[i] += tmp[i]
		}
		m.rmsNormBack(dx, m.grads[li.n2], dn, a.x2, a.r2, m.params[li.n2])
		// attention: x2 = x + o(att); dx is d x2 and becomes d x
		m.matmulTN(m.grads[li.o], dx, a.att, M, D, D)
		m.matmulNN(datt, dx, M, D, D, m.params[li.o])
		m.attentionBack(a, datt, dq, dk, dv)
		m.matmulTN(m.grads[li.q], dq, a.n1, M, D, D)
		m.matmulTN(m.grads[li.k], dk, a.n1, M, D, D)
		m.matmulTN(m.grads[li.v], dv, a.n1, M, D, D)
		m.matmulNN(dn, dq, M, D, D, m.params[li.q])
		m.matmulNN(tmp, dk, M, D, D, m.params[li.k])
		for i := range dn {
			dn[i] += tmp[i]
		}
		m.matmulNN(tmp, dv, M, D, D, m.params[li.v])
		for i := range dn {
			dn[i] += tmp[i]
		}
		m.rmsNormBack(dx, m.grads[li.n1], dn, a.x, a.r1, m.params[li.n1])
	}
	// embedding lookup: scatter rows in order
	ge := m.grads[m.emb]
	for b, seq := range batch {
		for t := 0; t < T; t++ {
			row := ge[int(seq[t])*D : int(seq[t]+1)*D]
			for j, v := range dx[(b*T+t)*D : (b*T+t+1)*D] {
				row[j] += v
			}
		}
	}
}
