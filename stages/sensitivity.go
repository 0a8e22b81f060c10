package stages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/cache"
	"github.com/qpipe/qpipe/internal/evaluate"
	"github.com/qpipe/qpipe/internal/interp"
	"github.com/qpipe/qpipe/internal/modelinput"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
	"github.com/qpipe/qpipe/pipeline"
)

// measurer runs forks of the loaded model, each with some weights
// quantized, through the interpreter and compares their logits with the
// float model's on the same samples.
type measurer struct {
	ms     *modelState
	plan   *pipeline.Plan
	layout tflite.Layout

	sig, output string
	vocab, seq  int
	inputs      []map[string]*interp.Tensor
	ref         [][]float32

	probes, cached int

	cachePath string
	cache     map[string]cacheEntry
	dirty     bool

	// stats are the calibration statistics when a candidate has
	// calibrated scales, gathered once for the pass; calKey identifies
	// them in the cache's keys.
	stats  weightStats
	calKey string
}

// cacheEntry is one measured (weight, scheme): the mean KL with that
// weight alone quantized, and the weight's rel L2 error.
type cacheEntry struct {
	KL    float64 `json:"kl"`
	RelL2 float64 `json:"rel_l2"`
}

// measurementVersion changes when what a probe measures changes, so that
// old cache files are not read. (2: the keys name the scale method.)
const measurementVersion = "budget-sensitivity-2"

func newMeasurer(ctx context.Context, ms *modelState, plan *pipeline.Plan, cfg *config.Budget, layout tflite.Layout, inputPath, cacheDir string) (*measurer, error) {
	mm := &measurer{ms: ms, plan: plan, layout: layout, cache: map[string]cacheEntry{}}
	in, err := interp.New(ms.m, interp.Options{})
	if err != nil {
		return nil, fmt.Errorf("the budget measures the model through the interpreter: %w", err)
	}
	mm.vocab = modelinput.VocabSize(ms.m.Meta)
	var sig *interp.Signature
	sigs := in.Signatures()
	sort.SliceStable(sigs, func(a, b int) bool { return sigs[a].Key < sigs[b].Key })
	for i := range sigs {
		for _, o := range sigs[i].Outputs {
			if mm.vocab > 1 && o.Type == fb.TensorTypeFLOAT32 && len(o.Shape) > 0 && o.Shape[len(o.Shape)-1] == mm.vocab {
				sig, mm.output = &sigs[i], o.Name
				break
			}
		}
		if sig != nil {
			break
		}
	}
	if sig == nil {
		return nil, fmt.Errorf("a budget measures the KL divergence of a logits output (a float output whose last dimension is the vocabulary of the token embedding): this model has none")
	}
	mm.sig = sig.Key
	l, err := evaluate.PlanInputs(*sig, modelinput.TokenInputs(ms.m.Meta, sig.Subgraph), cfg.Seq)
	if err != nil {
		return nil, err
	}
	mm.seq = l.Seq
	samples := cfg.Samples
	if samples == 0 {
		samples = evaluate.DefaultSamples // qpipe eval's: a budget measures on the inputs eval checks it with
	}
	for k := 0; k < samples; k++ {
		inputs, err := l.Generate(cfg.Seed, k)
		if err != nil {
			return nil, err
		}
		out, err := in.Run(ctx, mm.sig, inputs)
		if err != nil {
			return nil, fmt.Errorf("the float model: %w", err)
		}
		mm.inputs = append(mm.inputs, inputs)
		mm.ref = append(mm.ref, append([]float32(nil), out[mm.output].F32...))
	}
	if cacheDir != "" {
		sum, err := FileSHA256(inputPath)
		if err != nil {
			return nil, err
		}
		key := fmt.Sprintf("%s|%s|%s|%s|%d|%d|%d", measurementVersion, sum, mm.sig, mm.output, samples, mm.seq, cfg.Seed)
		mm.cachePath = cache.File(cacheDir, "budget", key, 1, "json")
		if data, err := os.ReadFile(mm.cachePath); err == nil {
			// A cache file that does not parse is measured again.
			if json.Unmarshal(data, &mm.cache) != nil {
				mm.cache = map[string]cacheEntry{}
			}
		}
	}
	return mm, nil
}

// calibrate gathers the calibration statistics once for the pass when a
// candidate has calibrated scales, under cal (nil:
// config.DefaultCalibration), the branch's: its quantize then reuses them
// from memory.
func (mm *measurer) calibrate(ctx context.Context, units []*budgetUnit, cal *config.Calibration, log zerolog.Logger) error {
	need := false
	for _, u := range units {
		for _, c := range u.schemes {
			need = need || c.Scales == config.ScalesCalibrated
		}
	}
	if !need {
		return nil
	}
	if cal == nil {
		cal = config.DefaultCalibration()
	}
	key, err := calibrationKey(mm.ms.path, cal)
	if err != nil {
		return err
	}
	if mm.stats, err = keyedStats(ctx, mm.ms.m, key, cal, log); err != nil {
		return err
	}
	h := sha256.Sum256([]byte(key))
	mm.calKey = hex.EncodeToString(h[:8])
	return nil
}

// cacheKey names the sensitivity of unit u with scheme c in the cache:
// the weight, the option and, for calibrated scales, the statistics.
func (mm *measurer) cacheKey(u *budgetUnit, c *config.Scheme) string {
	key := u.label + "|" + optionLabel(c)
	if c.Scales == config.ScalesCalibrated {
		key += "|" + mm.calKey
	}
	return key
}

// saveCache writes the measurements for the next run, whole or not at all.
func (mm *measurer) saveCache(s *pipeline.State) {
	if mm.cachePath == "" || !mm.dirty {
		return
	}
	err := func() error {
		data, err := json.MarshalIndent(mm.cache, "", " ")
		if err != nil {
			return err
		}
		return cache.Write(mm.cachePath, data)
	}()
	if err != nil {
		s.Log.Warn().Err(err).Msg("budget: the sensitivity cache was not written")
	}
}

// probe is a fork of the model with the weights of choice quantized.
type probe struct {
	ms   *modelState
	plan *pipeline.Plan
}

func (mm *measurer) quantize(ctx context.Context, choice map[tensorKey]*config.Scheme) (*probe, error) {
	f, err := mm.ms.Fork()
	if err != nil {
		return nil, err
	}
	fork := f.(*modelState)
	st := &pipeline.State{Log: zerolog.Nop(), Model: fork, Plan: mm.plan.Clone(), Metrics: true}
	q := &Quantize{Recipe: &config.Recipe{Name: "probe"}, Choice: choice, stats: mm.stats}
	if err := q.Run(ctx, st); err != nil {
		return nil, err
	}
	return &probe{ms: fork, plan: st.Plan}, nil
}

// size is the exact size the output would have with this choice.
func (mm *measurer) size(ctx context.Context, choice map[tensorKey]*config.Scheme) (int64, error) {
	p, err := mm.quantize(ctx, choice)
	if err != nil {
		return 0, err
	}
	return tflite.Size(p.ms.m, tflite.WriteOptions{Layout: mm.layout})
}

// kl measures the mean KL divergence of the logits with this choice.
func (mm *measurer) kl(ctx context.Context, choice map[tensorKey]*config.Scheme) (float64, error) {
	p, err := mm.quantize(ctx, choice)
	if err != nil {
		return 0, err
	}
	return mm.run(ctx, p)
}

// run materializes the probe's quantized buffers (which also measures
// their weight error) and runs it on the samples.
func (mm *measurer) run(ctx context.Context, p *probe) (float64, error) {
	if err := materialize(p.ms.m); err != nil {
		return 0, err
	}
	in, err := interp.New(p.ms.m, interp.Options{})
	if err != nil {
		return 0, err
	}
	acc := evaluate.NewAccumulator(mm.vocab)
	for k, inputs := range mm.inputs {
		out, err := in.Run(ctx, mm.sig, inputs)
		if err != nil {
			return 0, err
		}
		acc.Add(mm.ref[k], out[mm.output].F32)
	}
	mm.probes++
	return acc.Logits().MeanKL, nil
}

// materialize replaces every computed buffer content of m by its bytes,
// late ones (int4 scales) after the weights that fill them in, so that the
// interpreter reads complete tables and values.
func materialize(m *tflite.Model) error {
	var late []int
	for i, b := range m.Buffers {
		switch d := b.Data.(type) {
		case nil, tflite.Bytes:
			continue
		case tflite.Late:
			late = append(late, i)
			continue
		case interface{ Bytes() []byte }:
			if d.Bytes() != nil {
				continue
			}
		}
		data, err := tflite.ReadAll(b.Data)
		if err != nil {
			return err
		}
		m.Buffers[i].Data = tflite.Bytes(data)
	}
	for _, i := range late {
		data, err := tflite.ReadAll(m.Buffers[i].Data.(tflite.Late).Content)
		if err != nil {
			return err
		}
		m.Buffers[i].Data = tflite.Bytes(data)
	}
	m.LateTables = false
	return nil
}

// relL2 is the weight error of each unit's buffer in a materialized probe.
func relL2(p *probe, units []*budgetUnit) []float64 {
	byKey := map[tensorKey]float64{}
	for _, j := range p.ms.jobs {
		for _, g := range j.tensors {
			if g.dupOf < 0 && j.errs.N > 0 {
				byKey[tensorKey{g.sg, g.tensor}] = j.errs.Metrics().RelL2
			}
		}
	}
	out := make([]float64, len(units))
	for i, u := range units {
		out[i] = byKey[u.keys[0]]
	}
	return out
}

// sensitivityTable is, per unit and candidate, the bytes and the KL
// divergence the candidate gives.
type sensitivityTable struct {
	names       []string // the candidates, in first-seen order
	bytes       [][]int64
	kl          [][]float64
	relL2       [][]float64 // the weight error of each option
	estimatedAt [][]bool
	estimated   int
	floatSize   int64          // the float model's size in the output layout
	pairs       int            // (unit, candidate) pairs
	uniform     []uniformPoint // per name
}

// uniformPoint is a candidate given to every unit at once.
type uniformPoint struct {
	ok   bool // every unit offers it: a uniform preset
	size int64
	kl   float64
}

// table measures every unit's options. First each candidate is given to
// every unit that offers it (one quantization pass each): that yields the
// options' bytes (the quantize stage's own sizes, the tables' growth
// shared out so that the uniform mixes come out exact), the weights'
// errors and the uniform presets' size and KL. Then each (unit, candidate)
// is probed alone — or, past maxProbes pairs, only each unit's smallest
// candidate, the others estimated as KL·(their rel L2 / its rel L2)²
// (output error grows with the weight error's energy).
func (mm *measurer) table(ctx context.Context, units []*budgetUnit, maxProbes int, feasible func(*sensitivityTable) error) (*sensitivityTable, error) {
	tab := &sensitivityTable{names: schemeNames(units)}
	var err error
	if tab.floatSize, err = tflite.Size(mm.ms.m, tflite.WriteOptions{Layout: mm.layout}); err != nil {
		return nil, err
	}
	n := len(units)
	tab.bytes = make([][]int64, n)
	tab.kl = make([][]float64, n)
	tab.estimatedAt = make([][]bool, n)
	tab.relL2 = make([][]float64, n)
	errs := tab.relL2
	pairs := 0
	for i, u := range units {
		k := len(u.schemes)
		tab.bytes[i], tab.kl[i], tab.estimatedAt[i], errs[i] = make([]int64, k), make([]float64, k), make([]bool, k), make([]float64, k)
		pairs += k
	}
	for _, name := range tab.names {
		choice := choiceOf(units, func(_ int, u *budgetUnit) *config.Scheme { return schemeNamed(u, name) })
		p, err := mm.quantize(ctx, choice)
		if err != nil {
			return nil, err
		}
		size, err := tflite.Size(p.ms.m, tflite.WriteOptions{Layout: mm.layout})
		if err != nil {
			return nil, err
		}
		kl, err := mm.run(ctx, p)
		if err != nil {
			return nil, err
		}
		e := relL2(p, units)
		out := weightBytes(p.plan)
		predicted := tab.floatSize
		var members []int
		for i, u := range units {
			j := schemeIndex(u, name)
			if j < 0 {
				continue
			}
			members = append(members, i)
			for _, k := range u.keys {
				tab.bytes[i][j] += out[k]
			}
			errs[i][j] = e[i]
			predicted += tab.bytes[i][j] - u.floatBytes
		}
		// Share the tables' growth (int8 scales, int4 scale tensors,
		// DEQUANTIZE ops) out over the units, the remainder one byte each
		// to the first ones.
		if extra := size - predicted; len(members) > 0 {
			share, rest := extra/int64(len(members)), extra%int64(len(members))
			for k, i := range members {
				j := schemeIndex(units[i], name)
				tab.bytes[i][j] += share
				if int64(k) < rest {
					tab.bytes[i][j]++
				} else if int64(k) < -rest {
					tab.bytes[i][j]--
				}
			}
		}
		tab.uniform = append(tab.uniform, uniformPoint{ok: len(members) == n, size: size, kl: kl})
	}
	// A budget that nothing can meet fails before the long part.
	if feasible != nil {
		if err := feasible(tab); err != nil {
			return nil, err
		}
	}
	tab.pairs = pairs
	measureAll := pairs <= maxProbes
	for i, u := range units {
		probeAt := smallestOption(tab.bytes[i])
		for j, c := range u.schemes {
			if !measureAll && j != probeAt {
				continue
			}
			key := mm.cacheKey(u, c)
			if ce, ok := mm.cache[key]; ok {
				tab.kl[i][j] = ce.KL
				mm.cached++
				continue
			}
			kl, err := mm.kl(ctx, choiceOf(units, func(k int, _ *budgetUnit) *config.Scheme {
				if k == i {
					return c
				}
				return nil
			}))
			if err != nil {
				return nil, err
			}
			tab.kl[i][j] = kl
			mm.cache[key] = cacheEntry{KL: kl, RelL2: errs[i][j]}
			mm.dirty = true
		}
		if measureAll {
			continue
		}
		for j := range u.schemes {
			if j == probeAt {
				continue
			}
			tab.kl[i][j] = estimateKL(tab.kl[i][probeAt], errs[i][probeAt], errs[i][j])
			tab.estimatedAt[i][j] = true
			tab.estimated++
		}
	}
	return tab, nil
}

// estimateKL predicts a scheme's KL from the measured one of another
// scheme of the same weight and the two weight errors.
func estimateKL(measured, measuredErr, err float64) float64 {
	if measuredErr <= 0 {
		return measured
	}
	r := err / measuredErr
	return measured * r * r
}

func smallestOption(bytes []int64) int {
	best := 0
	for j, b := range bytes {
		if b < bytes[best] {
			best = j
		}
	}
	return best
}

// schemeIndex is the index of the unit's option of that label
// (optionLabel), or -1.
func schemeIndex(u *budgetUnit, name string) int {
	for j, c := range u.schemes {
		if optionLabel(c) == name {
			return j
		}
	}
	return -1
}

func schemeNamed(u *budgetUnit, name string) *config.Scheme {
	if j := schemeIndex(u, name); j >= 0 {
		return u.schemes[j]
	}
	return nil
}

// weightBytes is each planned weight's output bytes (a shared buffer is
// counted on one of its tensors).
func weightBytes(p *pipeline.Plan) map[tensorKey]int64 {
	out := map[tensorKey]int64{}
	for _, w := range p.Weights {
		out[tensorKey{w.Subgraph, w.Tensor}] = w.BytesOut
	}
	return out
}

// pooled predicts every option's KL from its weight error and one gain per
// unit: KL ≈ g·relL2², g the geometric mean of the unit's measured
// KL/relL2². One number per weight, fitted on all its measurements, is
// less noisy than each measurement alone, and orders a weight's options
// by their (exact) weight error.
func (tab *sensitivityTable) pooled() [][]float64 {
	out := make([][]float64, len(tab.kl))
	for i := range tab.kl {
		sum, n := 0.0, 0
		for j, kl := range tab.kl[i] {
			if e := tab.relL2[i][j]; kl > 0 && e > 0 && !tab.estimatedAt[i][j] {
				sum += math.Log(kl / (e * e))
				n++
			}
		}
		out[i] = make([]float64, len(tab.kl[i]))
		for j := range out[i] {
			if n == 0 {
				out[i][j] = tab.kl[i][j]
				continue
			}
			e := tab.relL2[i][j]
			out[i][j] = math.Exp(sum/float64(n)) * e * e
		}
	}
	return out
}

// around measures the options next to a mix: for every unit, its nearest
// smaller and nearest larger option (by bytes; see neighbours) and, with
// twins, the options of its size (other scales), measured as a change of
// the mix base (whose KL is baseKL) — the KL the mix gets with that one
// unit moved, less baseKL. Other options are left out (aroundOff). Errors
// are shifted per unit so that the smallest is 0 (the allocation needs
// non-negative errors; a constant per unit does not change which option is
// best). aroundProbes probes.
func (mm *measurer) around(ctx context.Context, units []*budgetUnit, tab *sensitivityTable, base []int, baseKL float64, twins bool) ([][]float64, error) {
	out := make([][]float64, len(units))
	for i, u := range units {
		out[i] = make([]float64, len(u.schemes))
		for j := range out[i] {
			out[i][j] = aroundOff
		}
		out[i][base[i]] = 0
		lowest := 0.0
		for _, j := range aroundOptions(tab, i, base[i], twins) {
			kl, err := mm.kl(ctx, choiceOf(units, func(k int, v *budgetUnit) *config.Scheme {
				if k == i {
					return v.schemes[j]
				}
				return v.schemes[base[k]]
			}))
			if err != nil {
				return nil, err
			}
			out[i][j] = kl - baseKL
			lowest = math.Min(lowest, out[i][j])
		}
		for j := range out[i] {
			if out[i][j] != aroundOff {
				out[i][j] -= lowest
			}
		}
	}
	return out, nil
}

// aroundOptions are the options around measures for unit i at option c.
func aroundOptions(tab *sensitivityTable, i, c int, twins bool) []int {
	down, up, same := neighbours(tab.bytes[i], tab.kl[i], c, func(int) bool { return true })
	var out []int
	for _, j := range []int{down, up} {
		if j >= 0 {
			out = append(out, j)
		}
	}
	if twins {
		out = append(out, same...)
	}
	return out
}

// aroundProbes is how many models around measures for the mix base.
func aroundProbes(units []*budgetUnit, tab *sensitivityTable, base []int, twins bool) int {
	n := 0
	for i := range units {
		n += len(aroundOptions(tab, i, base[i], twins))
	}
	return n
}

// aroundOff is the error of an option around leaves out: larger than any
// KL divergence a budget would accept, so that it is chosen only when
// nothing else fits (and then measured and dropped).
const aroundOff = 1e6
