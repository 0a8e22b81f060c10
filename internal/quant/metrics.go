package quant

import "math"

// CheckFinite returns a *ValueError of Kind NotFinite if src holds NaN or
// ±Inf, counting all of them and pointing at the first.
func CheckFinite(src []float32) error {
	var bad atomicCount
	parallelFor(len(src), 1, func(lo, hi int) {
		if n := countNotFinite(src[lo:hi]); n > 0 {
			bad.add(n)
		}
	})
	n := bad.load()
	if n == 0 {
		return nil
	}
	for i, x := range src {
		if math.Float32bits(x)&f32AbsMask >= f32Inf {
			return &ValueError{Kind: NotFinite, Count: n, First: i, Value: x}
		}
	}
	panic("unreachable")
}

func countNotFinite(src []float32) (n int) {
	for _, x := range src {
		if math.Float32bits(x)&f32AbsMask >= f32Inf {
			n++
		}
	}
	return n
}

// Metrics measures how far a reconstruction is from its reference.
type Metrics struct {
	// SQNR is the signal-to-quantization-noise ratio in dB:
	// 10·log10(Σref² / Σ(ref−got)²); +Inf when the two are equal.
	SQNR float64
	// MaxAbs is max |ref−got|.
	MaxAbs float64
	// RelL2 is ‖ref−got‖₂ / ‖ref‖₂ (0 when equal, +Inf when ref is all zero and got is not).
	RelL2 float64
}

// compareChunk is the fixed granularity of the partial sums of Compare, so
// that its float64 rounding does not depend on how the work was split.
const compareChunk = 1 << 12

// ErrorSums accumulates what Metrics is computed from, over a tensor seen
// in pieces (a quantized weight streamed a chunk at a time). The sums run
// in float64 in the order the pieces are added, so the same pieces in the
// same order give the same Metrics.
type ErrorSums struct {
	Signal, Noise, MaxAbs float64 // Σref², Σ(ref−got)², max |ref−got|
	N                     int     // elements added
}

// Add adds one piece: ref and its reconstruction got.
func (e *ErrorSums) Add(ref, got []float32) {
	if len(ref) != len(got) {
		panicf("ErrorSums.Add: len(ref) = %d, len(got) = %d", len(ref), len(got))
	}
	g := got[:len(ref)]
	// The sums run in locals (registers), in the same order as e's fields
	// would: a field updated through the pointer costs a store and a
	// reload per element.
	signal, noise, maxAbs := e.Signal, e.Noise, e.MaxAbs
	for i, x := range ref {
		d := float64(x) - float64(g[i])
		// Explicit conversions keep the products rounded on their own
		// (no fused multiply-add), the same on every CPU.
		signal += float64(float64(x) * float64(x))
		noise += float64(d * d)
		if math.Abs(d) > maxAbs { // NaN shows up in Noise instead
			maxAbs = math.Abs(d)
		}
	}
	e.Signal, e.Noise, e.MaxAbs = signal, noise, maxAbs
	e.N += len(ref)
}

// merge adds the sums of another range that follows e's.
func (e *ErrorSums) merge(o ErrorSums) {
	e.Signal += o.Signal
	e.Noise += o.Noise
	e.MaxAbs = max(e.MaxAbs, o.MaxAbs)
	e.N += o.N
}

// Metrics turns the sums into SQNR, max abs and relative L2.
func (e ErrorSums) Metrics() Metrics {
	if math.IsNaN(e.Signal) || math.IsNaN(e.Noise) {
		return Metrics{SQNR: math.NaN(), MaxAbs: math.NaN(), RelL2: math.NaN()}
	}
	m := Metrics{MaxAbs: e.MaxAbs}
	switch {
	case e.Noise == 0:
		m.SQNR, m.RelL2 = math.Inf(1), 0
	case e.Signal == 0:
		m.SQNR, m.RelL2 = math.Inf(-1), math.Inf(1)
	default:
		m.SQNR = 10 * math.Log10(e.Signal/e.Noise)
		m.RelL2 = math.Sqrt(e.Noise / e.Signal)
	}
	return m
}

// Compare computes the Metrics of got against ref. Sums run in float64 over
// fixed chunks added in order, so the result does not depend on SetWorkers.
// A NaN anywhere in got or ref makes every metric NaN.
func Compare(ref, got []float32) Metrics {
	if len(ref) != len(got) {
		panicf("Compare: len(ref) = %d, len(got) = %d", len(ref), len(got))
	}
	chunks := (len(ref) + compareChunk - 1) / compareChunk
	parts := make([]ErrorSums, chunks)
	parallelFor(len(ref), compareChunk, func(lo, hi int) {
		for c := lo / compareChunk; c*compareChunk < hi; c++ {
			a, b := c*compareChunk, min(hi, (c+1)*compareChunk)
			parts[c].Add(ref[a:b], got[a:b])
		}
	})
	var total ErrorSums
	for _, p := range parts {
		total.merge(p)
	}
	return total.Metrics()
}

// OutputErrors accumulates the expected squared error of a weight's
// product with its input, E‖ΔW·x‖², over a weight [rows, cols] streamed
// in row-major order in pieces of any length (the quantization error of
// the weight against its reconstruction), and the same of the weight
// itself, E‖W·x‖². The input x has per-channel mean μ and variance σ²
// (Stats, cols entries each) and its channels are taken as uncorrelated —
// the diagonal approximation: E(Δw_r·x)² = (Δw_r·μ)² + Σ_j Δw_rj² σ_j²
// exactly when the covariance of x is diagonal, and without the cross
// terms Σ_{j≠k} Δw_rj Δw_rk Cov(x_j, x_k) otherwise. The sums run in
// float64 in the order the pieces come, so the same pieces give the same
// sums.
type OutputErrors struct {
	Stats         *ChannelStats
	Noise, Signal float64 // Σ_r E(Δw_r·x)², Σ_r E(w_r·x)²
	pos           int     // column of the next element
	dot, sdot     float64 // Δw_r·μ and w_r·μ of the current row so far
}

// Add adds one piece: ref and its reconstruction got.
func (o *OutputErrors) Add(ref, got []float32) {
	if len(ref) != len(got) {
		panicf("OutputErrors.Add: len(ref) = %d, len(got) = %d", len(ref), len(got))
	}
	mu, v := o.Stats.Mean, o.Stats.Var
	cols := len(mu)
	got = got[:len(ref)]
	// Row by row, the sums in locals (registers) in the order of the
	// fields they end in.
	noise, signal := o.Noise, o.Signal
	for len(ref) > 0 {
		n := min(len(ref), cols-o.pos)
		r, g := ref[:n], got[:n]
		mr, vr := mu[o.pos:o.pos+n], v[o.pos:o.pos+n]
		dot, sdot := o.dot, o.sdot
		for i, x := range r {
			w := float64(x)
			d := w - float64(g[i])
			m, s := float64(mr[i]), float64(vr[i])
			// Explicit conversions keep every product rounded on its own
			// (no fused multiply-add): the same sums on every CPU.
			dot += float64(d * m)
			sdot += float64(w * m)
			noise += float64(float64(d*d) * s)
			signal += float64(float64(w*w) * s)
		}
		o.dot, o.sdot = dot, sdot
		if o.pos += n; o.pos == cols {
			noise += float64(o.dot * o.dot)
			signal += float64(o.sdot * o.sdot)
			o.pos, o.dot, o.sdot = 0, 0, 0
		}
		ref, got = ref[n:], got[n:]
	}
	o.Noise, o.Signal = noise, signal
}
