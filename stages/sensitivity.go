package stages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/cache"
	"github.com/qpipe/qpipe/internal/calib"
	"github.com/qpipe/qpipe/internal/evaluate"
	"github.com/qpipe/qpipe/internal/interp"
	"github.com/qpipe/qpipe/internal/modelinput"
	"github.com/qpipe/qpipe/internal/progress"
	"github.com/qpipe/qpipe/internal/quant"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
	"github.com/qpipe/qpipe/pipeline"
)

// defaultBudgetSamples is how many samples the sensitivity pass runs when
// the job does not say (qpipe eval's default); the held-out set has at
// least heldOutMinSamples where a model run is cheap (heldOutCheapWork).
const defaultBudgetSamples = evaluate.DefaultSamples

const (
	heldOutMinSamples = 16
	heldOutCheapWork  = 1e10 // weight elements × tokens of one held-out sample set
)

// The seeds of the samples a budget chooses on (unless the job sets one)
// and the offset of the held-out samples' seed from it: far from the
// seeds qpipe eval and accuracy gates take (small numbers), so that a
// budget is judged on inputs it did not choose on.
const (
	defaultBudgetSeed = 0x42554447 // "BUDG"
	heldOutSeedOffset = 0x5851F42D4C957F2D
)

// measurer runs forks of the loaded model, each with some weights
// quantized, through the interpreter and compares their outputs with the
// float model's on the same samples.
type measurer struct {
	ms     *modelState
	plan   *pipeline.Plan
	layout tflite.Layout
	log    zerolog.Logger

	sig     string
	outputs []string // compared: the logits (kl) or float outputs (rel_l2)
	metric  string   // config.BudgetMetricKL or BudgetMetricRelL2
	vocab   int
	seq     int
	layout0 *evaluate.Layout
	float   *interp.Interpreter

	choose, held *sampleSet
	// windows are the text's samples when the budget has a text (nil:
	// generated samples); cfg is the budget.
	windows []*evaluate.Sample
	cfg     *config.Budget

	probes, cached int
	prog           *progress.Reporter

	cachePath string
	cache     map[string]cacheEntry
	dirty     bool

	// stats are the calibration statistics when a candidate has
	// calibrated scales, gathered once for the pass; calKey identifies
	// them in the cache's keys. proxyStats are those the proxy path
	// weighs weight errors with (stats when gathered).
	stats      weightStats
	calKey     string
	proxyStats weightStats
	// perWeight scales each weight's proxies by a gain of its own (a
	// model run per weight) instead of one per role group.
	perWeight bool
}

// sampleSet is a set of generated inputs and the float model's outputs on
// them.
type sampleSet struct {
	seed   int64
	first  int // with a text: the index of its first window
	inputs []map[string]*interp.Tensor
	ref    [][][]float32 // per sample, per compared output
}

// cacheEntry is one measured (weight, scheme): the mean KL with that
// weight alone quantized, and the weight's rel L2 error.
type cacheEntry struct {
	KL    float64 `json:"kl"`
	RelL2 float64 `json:"rel_l2"`
}

// measurementVersion changes when what a probe measures changes, so that
// old cache files are not read. (2: the keys name the scale method; 3:
// the metric and outputs are in the key.)
const measurementVersion = "budget-sensitivity-3"

// budgetOutputs chooses the signature, outputs and metric a budget
// compares: the job's output and metric when set (errors name the key and
// list the outputs), else the logits output with kl, else every float
// output of the first signature with rel_l2.
func budgetOutputs(meta *fb.ModelT, sigs []interp.Signature, cfg *config.Budget) (sig *interp.Signature, outputs []string, metric string, vocab int, err error) {
	sort.SliceStable(sigs, func(a, b int) bool { return sigs[a].Key < sigs[b].Key })
	// The logits are what qpipe eval and the gates call logits
	// (evaluate.LogitsOutputs), with their vocabulary.
	vocabs := map[[2]string]int{}
	for _, l := range evaluate.LogitsOutputs(meta, sigs) {
		vocabs[[2]string{l.Signature, l.Output}] = l.Vocab
	}
	logitsVocab := func(s *interp.Signature, o interp.IO) int { return vocabs[[2]string{s.Key, o.Name}] }
	var all []string
	for i := range sigs {
		for _, o := range sigs[i].Outputs {
			name := o.Name
			if sigs[i].Key != "" {
				name = sigs[i].Key + "/" + o.Name
			}
			all = append(all, fmt.Sprintf("%s (%v %v)", name, o.Type, o.Shape))
		}
	}
	list := strings.Join(all, ", ")
	if cfg.Output != "" {
		for i := range sigs {
			for _, o := range sigs[i].Outputs {
				if o.Name != cfg.Output && sigs[i].Key+"/"+o.Name != cfg.Output {
					continue
				}
				if o.Type != fb.TensorTypeFLOAT32 {
					return nil, nil, "", 0, fmt.Errorf("quantize.budget.output: %s is %v; a budget compares a float output; the model's outputs: %s", cfg.Output, o.Type, list)
				}
				metric = cfg.Metric
				if metric == "" {
					metric = config.BudgetMetricRelL2
					if logitsVocab(&sigs[i], o) > 0 {
						metric = config.BudgetMetricKL
					}
				}
				if metric == config.BudgetMetricKL && logitsVocab(&sigs[i], o) == 0 {
					return nil, nil, "", 0, fmt.Errorf("quantize.budget.metric: kl needs a logits output (a float output whose last dimension is the vocabulary of a token input); %s %v is not: use metric: rel_l2", cfg.Output, o.Shape)
				}
				return &sigs[i], []string{o.Name}, metric, logitsVocab(&sigs[i], o), nil
			}
		}
		return nil, nil, "", 0, fmt.Errorf("quantize.budget.output: the model has no output %q; its outputs: %s", cfg.Output, list)
	}
	if cfg.Metric != config.BudgetMetricRelL2 {
		for i := range sigs {
			for _, o := range sigs[i].Outputs {
				if v := logitsVocab(&sigs[i], o); v > 0 {
					return &sigs[i], []string{o.Name}, config.BudgetMetricKL, v, nil
				}
			}
		}
		if cfg.Metric == config.BudgetMetricKL {
			return nil, nil, "", 0, fmt.Errorf("quantize.budget.metric: kl measures the KL divergence of a logits output (a float output whose last dimension is the vocabulary of the token embedding): this model has none; use metric: rel_l2 (and output: NAME to pick one); its outputs: %s", list)
		}
	}
	for i := range sigs {
		var outs []string
		for _, o := range sigs[i].Outputs {
			if o.Type == fb.TensorTypeFLOAT32 {
				outs = append(outs, o.Name)
			}
		}
		if len(outs) > 0 {
			return &sigs[i], outs, config.BudgetMetricRelL2, 0, nil
		}
	}
	return nil, nil, "", 0, fmt.Errorf("a budget compares the model's float outputs: this model has none; its outputs: %s", list)
}

func newMeasurer(ctx context.Context, ms *modelState, plan *pipeline.Plan, cfg *config.Budget, layout tflite.Layout, inputPath, cacheDir string, log zerolog.Logger) (*measurer, error) {
	mm := &measurer{ms: ms, plan: plan, layout: layout, log: log, cache: map[string]cacheEntry{}}
	in, err := interp.New(ms.m, interp.Options{})
	if err != nil {
		return nil, fmt.Errorf("the budget measures the model through the interpreter: %w", err)
	}
	mm.float = in
	sig, outputs, metric, vocab, err := budgetOutputs(ms.m.Meta, in.Signatures(), cfg)
	if err != nil {
		return nil, err
	}
	mm.sig, mm.outputs, mm.metric, mm.vocab = sig.Key, outputs, metric, vocab
	l, err := evaluate.PlanInputs(*sig, modelinput.TokenInputs(ms.m.Meta, sig.Subgraph), cfg.Seq)
	if err != nil {
		return nil, err
	}
	mm.layout0, mm.seq = l, l.Seq
	if cfg.Text != "" {
		ids, err := evaluate.LayoutText(l, cfg.Text, cfg.Tokenizer)
		if err != nil {
			return nil, fmt.Errorf("quantize.budget.text: %w", err)
		}
		mm.windows = evaluate.WindowSamples(ids, l.Seq, evaluate.NoBOS)
	}
	mm.cfg = cfg
	samples := cfg.Samples
	if samples == 0 {
		samples = defaultBudgetSamples
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = defaultBudgetSeed
	}
	mm.step("float model on the choice samples", samples, "samples")
	if mm.choose, err = mm.samples(ctx, seed, 0, samples); err != nil {
		return nil, err
	}
	if cacheDir != "" {
		sum, err := FileSHA256(inputPath)
		if err != nil {
			return nil, err
		}
		key := fmt.Sprintf("%s|%s|%s|%s|%s|%d|%d|%d", measurementVersion, sum, mm.sig, strings.Join(mm.outputs, ","), mm.metric, samples, mm.seq, seed)
		if cfg.Text != "" {
			text, err := FileSHA256(cfg.Text)
			if err != nil {
				return nil, err
			}
			tok, err := FileSHA256(cfg.Tokenizer)
			if err != nil {
				return nil, err
			}
			key += "|text=" + text + "|tokenizer=" + tok
		}
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

// samples generates n samples of seed (with a text: binds its windows
// from first on) and runs the float model on them.
func (mm *measurer) samples(ctx context.Context, seed int64, first, n int) (*sampleSet, error) {
	set := &sampleSet{seed: seed, first: first}
	if mm.windows != nil && first+n > len(mm.windows) {
		return nil, fmt.Errorf("quantize.budget.text: %s gives %d window(s) of %d tokens; the budget needs %d (choice and held-out samples): a longer text or fewer samples",
			mm.cfg.Text, len(mm.windows), mm.seq, first+n)
	}
	for k := 0; k < n; k++ {
		var inputs map[string]*interp.Tensor
		var err error
		if mm.windows != nil {
			inputs, err = mm.layout0.Bind(mm.windows[first+k], mm.cfg.Text, seed, first+k, 0)
		} else {
			inputs, err = mm.layout0.Generate(seed, k)
		}
		if err != nil {
			return nil, err
		}
		out, err := mm.float.Run(ctx, mm.sig, inputs)
		if err != nil {
			return nil, fmt.Errorf("the float model: %w", err)
		}
		ref := make([][]float32, len(mm.outputs))
		for o, name := range mm.outputs {
			ref[o] = append([]float32(nil), out[name].F32...)
		}
		set.inputs = append(set.inputs, inputs)
		set.ref = append(set.ref, ref)
		mm.prog.Add(1)
	}
	return set, nil
}

// heldOutSet is the held-out samples (made on first use): as many as the
// choice samples — at least heldOutMinSamples where the model is cheap to
// run —, of a seed far from theirs.
func (mm *measurer) heldOutSet(ctx context.Context, elems int64) (*sampleSet, error) {
	if mm.held != nil {
		return mm.held, nil
	}
	n := len(mm.choose.inputs)
	if n < heldOutMinSamples && float64(elems)*float64(max(mm.seq, 1))*heldOutMinSamples <= heldOutCheapWork {
		n = heldOutMinSamples
	}
	var err error
	mm.step("float model on the held-out samples", n, "samples")
	first := 0
	if mm.windows != nil {
		// The held-out windows follow the choice windows in the text.
		first = len(mm.choose.inputs)
		n = min(n, max(len(mm.windows)-first, len(mm.choose.inputs)))
	}
	mm.held, err = mm.samples(ctx, int64(uint64(mm.choose.seed)+heldOutSeedOffset), first, n)
	return mm.held, err
}

// word names the metric in explanations: KL, or squared rel L2 (the
// unit the budget adds up).
func (mm *measurer) word() string {
	if mm.metric == config.BudgetMetricRelL2 {
		return "rel L2²"
	}
	return "KL"
}

// metricName names the metric in sentences.
func (mm *measurer) metricName() string {
	if mm.metric == config.BudgetMetricRelL2 {
		return "rel L2"
	}
	return "KL"
}

// show turns an error as the budget adds it up (KL, or squared rel L2)
// into the metric's value.
func (mm *measurer) show(v float64) float64 {
	if mm.metric == config.BudgetMetricRelL2 {
		return math.Sqrt(math.Max(v, 0))
	}
	return v
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
	key, err := calibrationKey(mm.ms, cal)
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
	q := &Quantize{Recipe: &config.Recipe{Name: "probe"}, Choice: choice, stats: mm.stats, outStats: mm.proxyStats}
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

// kl measures the error of the output with this choice on the choice
// samples: the mean KL divergence of the logits, or the squared rel L2
// (which adds up over independent errors as KL does).
func (mm *measurer) kl(ctx context.Context, choice map[tensorKey]*config.Scheme) (float64, error) {
	return mm.errOn(ctx, choice, mm.choose)
}

// errOn is kl on the samples of set.
func (mm *measurer) errOn(ctx context.Context, choice map[tensorKey]*config.Scheme, set *sampleSet) (float64, error) {
	p, err := mm.quantize(ctx, choice)
	if err != nil {
		return 0, err
	}
	return mm.runOn(ctx, p, set)
}

// run materializes the probe's quantized buffers (which also measures
// their weight error) and runs it on the choice samples.
func (mm *measurer) run(ctx context.Context, p *probe) (float64, error) {
	return mm.runOn(ctx, p, mm.choose)
}

func (mm *measurer) runOn(ctx context.Context, p *probe, set *sampleSet) (float64, error) {
	if err := materialize(p.ms.m); err != nil {
		return 0, err
	}
	in, err := interp.New(p.ms.m, interp.Options{})
	if err != nil {
		return 0, err
	}
	vocab := 0
	if mm.metric == config.BudgetMetricKL {
		vocab = mm.vocab
	}
	acc := evaluate.NewAccumulator(vocab)
	for k, inputs := range set.inputs {
		out, err := in.Run(ctx, mm.sig, inputs)
		if err != nil {
			return 0, err
		}
		for o, name := range mm.outputs {
			acc.Add(set.ref[k][o], out[name].F32)
		}
		mm.prog.Add(1)
	}
	mm.probes++
	if vocab > 0 {
		return acc.Logits().MeanKL, nil
	}
	r := acc.Distance().RelL2
	return r * r, nil
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

// sensitivityTable is, per unit and candidate, the bytes and the error
// (KL divergence, or squared rel L2: see measurer.kl) the candidate gives.
type sensitivityTable struct {
	names       []string // the candidates, in first-seen order
	bytes       [][]int64
	kl          [][]float64
	relL2       [][]float64 // the weight error of each option
	proxy       [][]float64 // the weight's expected output error (proxy path)
	estimatedAt [][]bool
	estimated   int
	floatSize   int64          // the float model's size in the output layout
	pairs       int            // (unit, candidate) pairs
	uniform     []uniformPoint // per name
	measured    bool           // the measured path (else the proxy path)
	groups      []proxyGroup   // the proxy path's role groups
}

// uniformPoint is a candidate given to every unit at once.
type uniformPoint struct {
	ok   bool // every unit offers it: a uniform preset
	size int64
	kl   float64 // measured on the measured path, predicted on the proxy path
}

// proxyGroup is a set of units whose expected output errors are scaled to
// the metric by one gain: the weights of one role, those weighed with
// input statistics apart from those without — or one weight, where a
// model run per weight is affordable (measurer.perWeight).
type proxyGroup struct {
	name     string
	units    []int
	measured float64 // the metric with the group at its smallest options
	proxy    float64 // the sum of their expected output errors
	gain     float64
}

// table finds every unit's options' bytes and errors. First each
// candidate is given to every unit that offers it (one quantization pass
// each): that yields the options' bytes (the quantize stage's own sizes,
// the tables' growth shared out so that the uniform mixes come out
// exact), the weights' errors and, on the measured path, the uniform
// presets' error. Then, on the measured path, each (unit, candidate) is
// probed alone: a model run per pair. On the proxy path each option's
// error is its weight's expected output error E‖ΔW·x‖² under the
// calibration statistics (quant.OutputErrors; Σ ΔW² for weights no
// FULLY_CONNECTED reads), times its role group's gain: the metric
// measured with the group's weights at their smallest options over the
// group's summed proxy — one model run per group.
func (mm *measurer) table(ctx context.Context, units []*budgetUnit, measured bool, feasible func(*sensitivityTable) error) (*sensitivityTable, error) {
	tab := &sensitivityTable{names: schemeNames(units), measured: measured}
	var err error
	if tab.floatSize, err = tflite.Size(mm.ms.m, tflite.WriteOptions{Layout: mm.layout}); err != nil {
		return nil, err
	}
	n := len(units)
	tab.bytes = make([][]int64, n)
	tab.kl = make([][]float64, n)
	tab.estimatedAt = make([][]bool, n)
	tab.relL2 = make([][]float64, n)
	tab.proxy = make([][]float64, n)
	errs := tab.relL2
	pairs := 0
	for i, u := range units {
		k := len(u.schemes)
		tab.bytes[i], tab.kl[i], tab.estimatedAt[i], errs[i], tab.proxy[i] = make([]int64, k), make([]float64, k), make([]bool, k), make([]float64, k), make([]float64, k)
		pairs += k
	}
	perName := 1
	if measured {
		perName = len(mm.choose.inputs)
	}
	mm.step("quantizing each candidate", len(tab.names)*perName, "quantizations")
	withStats := make([]bool, n)
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
		kl := 0.0
		if measured {
			if kl, err = mm.run(ctx, p); err != nil {
				return nil, err
			}
		} else {
			if err := drain(ctx, p.ms.m); err != nil {
				return nil, err
			}
			mm.prog.Add(1)
		}
		e := relL2(p, units)
		oe, st := outputErrors(p, units)
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
			errs[i][j], tab.proxy[i][j], withStats[i] = e[i], oe[i], st[i]
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
	tab.pairs = pairs
	if !measured {
		if err := mm.gains(ctx, units, tab, withStats); err != nil {
			return nil, err
		}
	}
	// A budget that nothing can meet fails before the long part.
	if feasible != nil {
		if err := feasible(tab); err != nil {
			return nil, err
		}
	}
	if !measured {
		return tab, nil
	}
	mm.step("measuring each weight alone", pairs*len(mm.choose.inputs), "model runs")
	for i, u := range units {
		for j, c := range u.schemes {
			key := mm.cacheKey(u, c)
			if ce, ok := mm.cache[key]; ok {
				tab.kl[i][j] = ce.KL
				mm.cached++
				mm.prog.Add(int64(len(mm.choose.inputs)))
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
	}
	return tab, nil
}

// gains scales the proxies to the metric (see table): one model run per
// role group, then every option's error is its proxy times its group's
// gain, and every uniform preset's the sum of its options'.
func (mm *measurer) gains(ctx context.Context, units []*budgetUnit, tab *sensitivityTable, withStats []bool) error {
	byName := map[string]int{}
	for i, u := range units {
		name := string(u.role)
		if !withStats[i] {
			name += " (weight error)"
		}
		if mm.perWeight {
			name = u.label
		}
		g, ok := byName[name]
		if !ok {
			g = len(tab.groups)
			byName[name] = g
			tab.groups = append(tab.groups, proxyGroup{name: name})
		}
		tab.groups[g].units = append(tab.groups[g].units, i)
	}
	step := "one model run per role group"
	if mm.perWeight {
		step = "one model run per weight"
	}
	mm.step(step, len(tab.groups)*len(mm.choose.inputs), "model runs")
	for g := range tab.groups {
		grp := &tab.groups[g]
		at := map[int]int{}
		for _, i := range grp.units {
			at[i] = smallestOption(tab.bytes[i])
			grp.proxy += tab.proxy[i][at[i]]
		}
		kl, err := mm.kl(ctx, choiceOf(units, func(i int, u *budgetUnit) *config.Scheme {
			if j, ok := at[i]; ok {
				return u.schemes[j]
			}
			return nil
		}))
		if err != nil {
			return err
		}
		grp.measured = kl
		if grp.proxy > 0 {
			grp.gain = kl / grp.proxy
		}
		for _, i := range grp.units {
			for j := range tab.kl[i] {
				tab.kl[i][j] = grp.gain * tab.proxy[i][j]
				tab.estimatedAt[i][j] = true
				tab.estimated++
			}
		}
		mm.log.Info().Str("group", grp.name).Int("weights", len(grp.units)).Float64("measured", mm.show(kl)).
			Float64("proxy", grp.proxy).Float64("gain", grp.gain).Msg("budget: role group scaled to the metric")
	}
	for j, name := range tab.names {
		sum := 0.0
		for i, u := range units {
			if k := schemeIndex(u, name); k >= 0 {
				sum += tab.kl[i][k]
			}
		}
		tab.uniform[j].kl = sum
	}
	return nil
}

// outputErrors is, per unit, its weight's expected output error in a
// drained or materialized probe (quant.OutputErrors) when it was weighed
// with input statistics (st), else its squared weight error.
func outputErrors(p *probe, units []*budgetUnit) (oe []float64, st []bool) {
	type e struct {
		v  float64
		st bool
	}
	byKey := map[tensorKey]e{}
	for _, j := range p.ms.jobs {
		for _, g := range j.tensors {
			if g.dupOf >= 0 || j.errs.N == 0 {
				continue
			}
			// Absolute, not relative to E‖W·x‖²: on tiny_decoder the
			// relative error ranked the pairs worse (Spearman 0.74
			// against 0.77 with the measurements).
			if j.outErrs.Stats != nil {
				byKey[tensorKey{g.sg, g.tensor}] = e{j.outErrs.Noise, true}
			} else {
				byKey[tensorKey{g.sg, g.tensor}] = e{j.errs.Noise, false}
			}
		}
	}
	oe, st = make([]float64, len(units)), make([]bool, len(units))
	for i, u := range units {
		oe[i], st[i] = byKey[u.keys[0]].v, byKey[u.keys[0]].st
	}
	return oe, st
}

// drain computes every computed buffer content of m without keeping it —
// the quantization errors are then in its jobs —, the buffers in
// parallel (each job's sums run in its own order: the same for any
// thread count). Late contents (int4 scale tables) are left out.
func drain(ctx context.Context, m *tflite.Model) error {
	var todo []tflite.Content
	for _, b := range m.Buffers {
		switch d := b.Data.(type) {
		case nil, tflite.Bytes, tflite.Late:
			continue
		case interface{ Bytes() []byte }:
			if d.Bytes() != nil {
				continue
			}
		}
		todo = append(todo, b.Data)
	}
	var (
		mu    sync.Mutex
		first error
		next  int
		wg    sync.WaitGroup
	)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				k := next
				next++
				stop := first != nil || k >= len(todo)
				mu.Unlock()
				if stop || ctx.Err() != nil {
					return
				}
				if _, err := todo[k].WriteTo(io.Discard); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// step starts reporting the budget's next long step (total units; 0 when
// the count is not known ahead), ending the previous one.
func (mm *measurer) step(name string, total int, unit string) {
	mm.prog.Done()
	mm.prog = progress.Start(mm.log, "budget: "+name, int64(total), unit)
}

// inputStats are the statistics of a 2-D weight's input, as a
// FULLY_CONNECTED reads it ([out, in], Mean and Var of length in), nil
// when st has none for it.
func inputStats(st weightStats, j *bufferJob) *quant.ChannelStats {
	if st == nil || len(j.shape) != 2 {
		return nil
	}
	for _, g := range j.tensors {
		o := g.original()
		if c := st[calib.Key{Subgraph: o.sg, Tensor: o.tensor}]; c != nil && len(c.Mean) == j.shape[1] && len(c.Var) == j.shape[1] {
			return c
		}
	}
	return nil
}

// gatherProxyStats finds the statistics the proxy path weighs weight
// errors with: the calibrated candidates' when gathered, else a
// calibration pass on as many samples as the budget chooses on. Without
// them (a model the pass cannot run) the proxy is the weight error.
func (mm *measurer) gatherProxyStats(ctx context.Context) {
	if mm.stats != nil {
		mm.proxyStats = mm.stats
		return
	}
	cal := &config.Calibration{Samples: len(mm.choose.inputs), Seq: max(mm.seq, 1), Text: mm.cfg.Text, Tokenizer: mm.cfg.Tokenizer}
	mm.log.Info().Int("samples", cal.Samples).Msg("budget: gathering the calibration statistics of the weights' inputs (one float run over the samples)")
	st, err := calibrationStats(ctx, mm.ms, cal, mm.log)
	if err != nil {
		mm.log.Warn().Err(err).Msg("budget: no calibration statistics; the proxy is each weight's squared error")
		return
	}
	mm.proxyStats = st
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
