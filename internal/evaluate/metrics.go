package evaluate

import (
	"math"
	"runtime"
	"slices"
	"sync"
)

// TopK is the k of the top-k agreement (TopKAgree).
const TopK = 5

// Distance is how far a candidate's values of one output are from the
// reference's, over every sample. All sums run in float64 in sample and
// element order, so the same values give the same numbers.
type Distance struct {
	// RelL2 is ‖cand − ref‖₂ / ‖ref‖₂ over every element of every sample
	// (0 when equal, +Inf when the reference is all zero and the candidate
	// is not).
	RelL2 float64
	// MaxAbs is the largest |cand − ref|.
	MaxAbs float64
	// Cosine is ⟨ref, cand⟩ / (‖ref‖₂·‖cand‖₂) of the whole output (1 when
	// both are zero, 0 when only one is).
	Cosine float64
	// Mismatched counts elements where exactly one side is NaN or
	// infinite, or both are but differ. Any makes RelL2 and MaxAbs +Inf
	// and Cosine NaN.
	Mismatched int
}

// Logits is the comparison of a logits output: per position (every index
// of the dimensions before the last), P = softmax(reference row) and Q =
// softmax(candidate row) over the vocabulary.
type Logits struct {
	// Positions counted: samples × positions per sample.
	Positions int
	// KL(P‖Q) = Σ P·(log P − log Q) in nats, the divergence of the
	// candidate's distribution from the reference's (the direction of
	// llama.cpp's perplexity --kl-divergence): its mean, its 99th
	// percentile (nearest rank: the ⌈0.99·n⌉-th smallest) and its maximum
	// over the positions. A row with a NaN or infinite logit on either side
	// counts as +Inf.
	MeanKL, P99KL, MaxKL float64
	// Top1 is the fraction of positions where both rows have the same
	// largest logit (the lowest index among equals).
	Top1 float64
	// TopK is the fraction of positions where the reference's top token is
	// among the candidate's TopK largest logits.
	TopK float64
}

// Accumulator gathers one output's Distance (and its Logits, when vocab
// > 0) sample by sample.
type Accumulator struct {
	vocab int

	diff2, ref2, cand2, dot, maxAbs float64
	mismatched                      int

	kl         []float64
	top1, topK int
}

// NewAccumulator starts a comparison; vocab > 0 also compares the values
// as rows of vocab logits (the element count of each sample must then be a
// multiple of vocab).
func NewAccumulator(vocab int) *Accumulator { return &Accumulator{vocab: max(vocab, 0)} }

// Add compares one sample's values; ref and cand have the same length.
func (a *Accumulator) Add(ref, cand []float32) {
	if len(ref) != len(cand) {
		panic("evaluate: Accumulator.Add with lengths that differ")
	}
	// The sums run in locals (registers), in the order of the fields they
	// end in: a field updated through the pointer costs a store and a
	// reload per element.
	diff2, ref2, cand2, dot, maxAbs := a.diff2, a.ref2, a.cand2, a.dot, a.maxAbs
	for i, r := range ref {
		rf, cf := float64(r), float64(cand[i])
		if !finite(rf) || !finite(cf) {
			if !(rf == cf || math.IsNaN(rf) && math.IsNaN(cf)) {
				a.mismatched++
			}
			continue
		}
		d := cf - rf
		// Explicit conversions keep each product rounded on its own (no
		// fused multiply-add), the same on every CPU.
		diff2 += float64(d * d)
		ref2 += float64(rf * rf)
		cand2 += float64(cf * cf)
		dot += float64(rf * cf)
		maxAbs = max(maxAbs, math.Abs(d))
	}
	a.diff2, a.ref2, a.cand2, a.dot, a.maxAbs = diff2, ref2, cand2, dot, maxAbs
	if a.vocab == 0 {
		return
	}
	// Each position's KL and top-k are independent: the positions are
	// shared out over the cores, and the KLs kept in position order.
	n := len(ref) / a.vocab
	kl := make([]float64, n)
	top1 := make([]bool, n)
	topK := make([]bool, n)
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				p, q := ref[i*a.vocab:(i+1)*a.vocab], cand[i*a.vocab:(i+1)*a.vocab]
				kl[i] = KL(p, q)
				rt := Argmax(p)
				top1[i] = Argmax(q) == rt
				topK[i] = InTopK(q, rt, TopK)
			}
		}(w)
	}
	wg.Wait()
	a.kl = append(a.kl, kl...)
	for i := range n {
		if top1[i] {
			a.top1++
		}
		if topK[i] {
			a.topK++
		}
	}
}

// Distance returns what was gathered.
func (a *Accumulator) Distance() Distance {
	if a.mismatched > 0 {
		return Distance{RelL2: math.Inf(1), MaxAbs: math.Inf(1), Cosine: math.NaN(), Mismatched: a.mismatched}
	}
	d := Distance{MaxAbs: a.maxAbs}
	switch {
	case a.diff2 == 0:
		d.RelL2 = 0
	case a.ref2 == 0:
		d.RelL2 = math.Inf(1)
	default:
		d.RelL2 = math.Sqrt(a.diff2) / math.Sqrt(a.ref2)
	}
	switch {
	case a.ref2 == 0 && a.cand2 == 0:
		d.Cosine = 1
	case a.ref2 == 0 || a.cand2 == 0:
		d.Cosine = 0
	default:
		d.Cosine = a.dot / (math.Sqrt(a.ref2) * math.Sqrt(a.cand2))
	}
	return d
}

// Logits returns the logits comparison, nil when the accumulator was not
// given a vocabulary or saw no position.
func (a *Accumulator) Logits() *Logits {
	n := len(a.kl)
	if a.vocab == 0 || n == 0 {
		return nil
	}
	l := &Logits{Positions: n, Top1: float64(a.top1) / float64(n), TopK: float64(a.topK) / float64(n)}
	sum := 0.0
	for _, k := range a.kl {
		sum += k
	}
	l.MeanKL = sum / float64(n)
	sorted := slices.Clone(a.kl)
	slices.Sort(sorted)
	l.P99KL = sorted[Rank(n, 0.99)]
	l.MaxKL = sorted[n-1]
	return l
}

// Rank is the 0-based index of the nearest-rank q-quantile of n sorted
// values: ⌈q·n⌉ − 1, clamped to [0, n−1].
func Rank(n int, q float64) int {
	r := int(math.Ceil(q*float64(n))) - 1
	return min(max(r, 0), n-1)
}

// KL returns KL(softmax(p) ‖ softmax(q)) in nats, computed in float64
// from log-softmax (log-sum-exp with the maximum taken out), so it neither
// overflows nor loses the small terms. It is never negative (rounding that
// would make it so gives 0), and +Inf when a value on either side is NaN
// or infinite.
func KL(p, q []float32) float64 {
	lp, ok1 := logSumExp(p)
	lq, ok2 := logSumExp(q)
	if !ok1 || !ok2 {
		return math.Inf(1)
	}
	kl := 0.0
	for i, x := range p {
		a := float64(x) - lp // log P_i
		b := float64(q[i]) - lq
		kl += float64(math.Exp(a) * (a - b))
	}
	return max(kl, 0)
}

// logSumExp returns log Σ exp(x_i), and false when x has a NaN or infinite
// value or is empty.
func logSumExp(x []float32) (float64, bool) {
	if len(x) == 0 {
		return 0, false
	}
	m := math.Inf(-1)
	for _, v := range x {
		f := float64(v)
		if !finite(f) {
			return 0, false
		}
		m = max(m, f)
	}
	s := 0.0
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	return m + math.Log(s), true
}

// Argmax is the index of the largest value, the lowest among equals; NaN
// is never the largest. It is -1 for an empty or all-NaN slice.
func Argmax(x []float32) int {
	best := -1
	for i, v := range x {
		if v != v {
			continue
		}
		if best < 0 || v > x[best] {
			best = i
		}
	}
	return best
}

// InTopK reports whether index i is among the k largest values of x
// (ranked by value, lower index first among equals; NaN ranks last).
func InTopK(x []float32, i, k int) bool {
	if i < 0 || i >= len(x) || x[i] != x[i] {
		return false
	}
	above := 0 // values ranked before x[i]
	for j, v := range x {
		if v > x[i] || (v == x[i] && j < i) {
			above++
			if above >= k {
				return false
			}
		}
	}
	return true
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// Stats summarises one output of a model run on its own (qpipe eval MODEL).
type Stats struct {
	// Count is the number of elements over every sample.
	Count int
	// Min, Max, Mean and Std (population) are over the finite elements.
	Min, Max, Mean, Std float64
	// NaN and Inf count the elements that are not finite.
	NaN, Inf int
}

// StatsAccumulator gathers Stats sample by sample (Welford's update in
// float64, in element order).
type StatsAccumulator struct {
	s      Stats
	finite int
	m2     float64
}

// Add adds one sample's values.
func (a *StatsAccumulator) Add(x []float32) {
	for _, v := range x {
		a.s.Count++
		f := float64(v)
		switch {
		case math.IsNaN(f):
			a.s.NaN++
			continue
		case math.IsInf(f, 0):
			a.s.Inf++
			continue
		}
		if a.finite == 0 {
			a.s.Min, a.s.Max = f, f
		}
		a.s.Min, a.s.Max = min(a.s.Min, f), max(a.s.Max, f)
		a.finite++
		d := f - a.s.Mean
		a.s.Mean += d / float64(a.finite)
		a.m2 += float64(d * (f - a.s.Mean))
	}
}

// Stats returns what was gathered.
func (a *StatsAccumulator) Stats() Stats {
	s := a.s
	if a.finite > 0 {
		s.Std = math.Sqrt(max(a.m2, 0) / float64(a.finite))
	}
	return s
}

// NextToken is the comparison of two models' predictions of the text's
// next token, as llama.cpp's perplexity --kl-divergence reports it, over
// the scored positions: in each window (a sequence of the token input),
// the positions from the middle on (index ⌊L/2⌋ to L−2 of L), each
// predicting the token that follows it, so that every scored prediction
// has at least half a window of context.
type NextToken struct {
	// Scored counts the predictions.
	Scored int
	// PPLRef and PPLCand are exp(mean negative log-likelihood of the next
	// token) of each model; LnPPLRatio is ln(PPLCand/PPLRef), the mean
	// difference of their log-likelihoods.
	PPLRef, PPLCand, LnPPLRatio float64
	// KL(P‖Q) per scored position (P the reference's next-token
	// distribution): mean, median (the mean of the two middle values of
	// an even count), 99th percentile (nearest rank) and maximum, in nats.
	MeanKL, MedianKL, P99KL, MaxKL float64
	// Top1 is the fraction of positions where both models' most likely
	// tokens are the same.
	Top1 float64
	// RMSDp is the root mean square of Δp = Q(next) − P(next), the change
	// of the probability given to the token that does follow.
	RMSDp float64
}

// NextTokenAccumulator gathers NextToken window by window.
type NextTokenAccumulator struct {
	vocab                int
	nllRef, nllCand, dp2 float64
	kl                   []float64
	top1                 int
}

// NewNextTokenAccumulator starts a next-token comparison over logits
// rows of vocab values.
func NewNextTokenAccumulator(vocab int) *NextTokenAccumulator {
	return &NextTokenAccumulator{vocab: vocab}
}

// ScoredFrom is the first scored position of a window of seq tokens.
func ScoredFrom(seq int) int { return seq / 2 }

// Add compares one sample: ref and cand hold one row of logits per token
// of tokens (windows of seq tokens each, the logits of position i
// predicting token i+1 of the same window). It reports false, adding
// nothing, when the counts do not fit that layout.
func (a *NextTokenAccumulator) Add(ref, cand []float32, tokens []int64, seq int) bool {
	v := a.vocab
	if v <= 0 || seq <= 0 || len(ref) != len(cand) || len(tokens)%seq != 0 || len(ref) != len(tokens)*v {
		return false
	}
	for w := 0; w < len(tokens); w += seq {
		for i := w + ScoredFrom(seq); i < w+seq-1; i++ {
			next := tokens[i+1]
			if next < 0 || next >= int64(v) {
				return false
			}
			p, q := ref[i*v:(i+1)*v], cand[i*v:(i+1)*v]
			lp, ok1 := logSumExp(p)
			lq, ok2 := logSumExp(q)
			if !ok1 || !ok2 {
				a.nllRef, a.nllCand = math.Inf(1), math.Inf(1)
				a.kl = append(a.kl, math.Inf(1))
				continue
			}
			nr := lp - float64(p[next])
			nc := lq - float64(q[next])
			a.nllRef += nr
			a.nllCand += nc
			d := math.Exp(-nc) - math.Exp(-nr)
			a.dp2 += float64(d * d)
			a.kl = append(a.kl, KL(p, q))
			if Argmax(p) == Argmax(q) {
				a.top1++
			}
		}
	}
	return true
}

// Result returns what was gathered, nil when no position was scored.
func (a *NextTokenAccumulator) Result() *NextToken {
	n := len(a.kl)
	if n == 0 {
		return nil
	}
	fn := float64(n)
	r := &NextToken{Scored: n, PPLRef: math.Exp(a.nllRef / fn), PPLCand: math.Exp(a.nllCand / fn),
		LnPPLRatio: (a.nllCand - a.nllRef) / fn, Top1: float64(a.top1) / fn, RMSDp: math.Sqrt(a.dp2 / fn)}
	sum := 0.0
	for _, k := range a.kl {
		sum += k
	}
	r.MeanKL = sum / fn
	sorted := slices.Clone(a.kl)
	slices.Sort(sorted)
	r.MedianKL = sorted[n/2]
	if n%2 == 0 {
		r.MedianKL = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	r.P99KL = sorted[Rank(n, 0.99)]
	r.MaxKL = sorted[n-1]
	return r
}
