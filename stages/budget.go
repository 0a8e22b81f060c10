package stages

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/budget"
	"github.com/qpipe/qpipe/internal/bytesize"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/pipeline"
)

// Budget chooses each weight's scheme from measurements (quantize:
// {budget: …}): the least output error within a size, or the smallest
// output within an error. It runs once, before the branch's quantize, and
// leaves its choice in Choice.
//
// The error is the mean KL divergence of a logits output, or the relative
// L2 error of the model's float outputs (metric rel_l2: models without a
// recognised logits output), measured through the interpreter against the
// float model on generated samples (the choice samples). Each weight's
// sensitivity to each candidate is found one of two ways (sensitivity.go):
//
//   - measured, for small models (within MaxProbes and measuredWork): the
//     error with that weight alone quantized, a model run per (weight,
//     candidate); then the mixes planned on them are measured and refined
//     around the best (budget_search.go);
//   - proxy, for the rest: the weight's layer-local expected output error
//     E‖ΔW·x‖² under the calibration statistics of its input (computed
//     while the candidate is quantized, no model run), scaled to the metric
//     by one gain per role group — the metric measured with the group at
//     its smallest options over its summed proxy: a model run per group.
//
// Sensitivities add up to predict a mix's error; the allocation
// (internal/budget) trades bytes for error where it costs least; a size
// budget is checked against the exact size of the output's layout. Then
// the chosen mix is accepted on held-out samples (another seed): it is
// written only if it beats every uniform preset it competes with there,
// else the best of those presets is (heldOut); the report says which and
// why, with both numbers.
type Budget struct {
	Config *config.Budget
	// Layout is the serialize stage's, which the output's size depends on.
	Layout tflite.Layout
	// Choice receives the chosen scheme of every weight; the branch's
	// quantize stage reads it.
	Choice map[tensorKey]*config.Scheme
	// CacheDir holds measured sensitivities across runs ("" = no cache).
	CacheDir string
	// MaxProbes bounds the models measured per weight and candidate; past
	// it (or past measuredWork) the sensitivities come from the proxy
	// path (0 = defaultMaxProbes).
	MaxProbes int
	// Scales is the int4 scale method of the candidates that set none, as
	// the branch's quantize stage applies it (the job's quantize.scales or
	// --scales; "" = min-max), and Calibration the statistics pass of
	// calibrated scales (nil: config.DefaultCalibration): the candidates
	// are measured as they will be written.
	Scales      string
	Calibration *config.Calibration
}

func (*Budget) Name() string { return "budget" }

// defaultMaxProbes: above this many (weight, candidate) pairs the pass
// takes the proxy path.
const defaultMaxProbes = 400

// refineRounds bounds the plans made around the best mix so far.
const refineRounds = 2

// budgetUnit is a set of weights that gets one scheme: the tensors that
// share a buffer (a tied embedding and lm_head), with the candidate
// schemes every reader accepts and every shape fits.
type budgetUnit struct {
	label      string
	keys       []tensorKey
	role       config.Role
	layer      int
	floatBytes int64
	schemes    []*config.Scheme
}

// budgetScheme is the scheme a candidate stands for: an int4 blockwise
// scheme with its scale method made explicit (its own, else scales — the
// job's —, else min-max), so that what the branch's quantize writes is
// what was measured; other schemes as they are.
func budgetScheme(c *config.Scheme, scales string) (*config.Scheme, *scheme, error) {
	sc, err := fromConfig(c, scales)
	if err != nil {
		return nil, nil, err
	}
	if sc.kind == kindInt4Block && c.Scales != sc.scales {
		e := *c
		e.Scales = sc.scales
		c = &e
		sc.cfg = c
	}
	return c, sc, nil
}

// optionLabel names a budget option: the scheme's name, followed by its
// scale method when that is not min-max ("dynamic_int4_block32+search"),
// as qpipe plan writes a searched weight's scheme. Two candidates are the
// same option iff their labels are equal.
func optionLabel(c *config.Scheme) string {
	return config.SchemeLabel(c.Name, c.Scales)
}

// budgetUnits groups the weights by buffer and keeps, for each group, the
// candidates that resolve would accept for every reader; scales is the
// scale method of the int4 candidates that set none.
func budgetUnits(m *tflite.Model, uses []*weightUse, cfg *config.Budget, scales string) ([]*budgetUnit, error) {
	byBuffer := map[uint32]*budgetUnit{}
	var units []*budgetUnit
	readers := map[*budgetUnit][]*weightUse{}
	for _, u := range uses {
		t := m.Meta.Subgraphs[u.sg].Tensors[u.tensor]
		bu := byBuffer[t.Buffer]
		if bu == nil {
			bu = &budgetUnit{label: t.Name, role: u.role, layer: u.layer, floatBytes: m.Buffers[t.Buffer].Data.Len()}
			byBuffer[t.Buffer] = bu
			units = append(units, bu)
		}
		if !containsKey(bu.keys, u.key()) {
			bu.keys = append(bu.keys, u.key())
		}
		readers[bu] = append(readers[bu], u)
	}
	var out []*budgetUnit
	for _, bu := range units {
		// The candidates of every role among the readers (a tied lm_head
		// reads the embedding's buffer) that all of them accept.
		// A scheme offered with two scale methods is two options.
		var names []string
		offered := map[string]*config.Scheme{}
		resolved := map[string]*scheme{}
		count := map[string]int{}
		roles := map[config.Role]bool{}
		for _, u := range readers[bu] {
			if roles[u.role] {
				continue
			}
			roles[u.role] = true
			listed := map[string]bool{}
			for _, c := range cfg.CandidatesFor(u.role) {
				c, sc, err := budgetScheme(c, scales)
				if err != nil {
					return nil, err
				}
				name := optionLabel(c)
				if listed[name] {
					continue
				}
				listed[name] = true
				if _, ok := offered[name]; !ok {
					offered[name], resolved[name] = c, sc
					names = append(names, name)
				}
				count[name]++
			}
		}
		for _, name := range names {
			if count[name] != len(roles) {
				continue
			}
			c, sc := offered[name], resolved[name]
			ok := true
			for _, u := range readers[bu] {
				t := m.Meta.Subgraphs[u.sg].Tensors[u.tensor]
				if !sc.validFor(u.code, u.input) || fits(sc, t.Shape) != "" || runtimeRefuses(sc, u.code) != "" {
					ok = false
					break
				}
			}
			if ok {
				bu.schemes = append(bu.schemes, c)
			}
		}
		if len(bu.schemes) > 0 {
			out = append(out, bu)
		}
	}
	return out, nil
}

func containsKey(ks []tensorKey, k tensorKey) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// choiceOf gives every unit's weights the scheme pick returns (nil: left
// out, so float).
func choiceOf(units []*budgetUnit, pick func(i int, u *budgetUnit) *config.Scheme) map[tensorKey]*config.Scheme {
	ch := map[tensorKey]*config.Scheme{}
	for i, u := range units {
		if s := pick(i, u); s != nil {
			for _, k := range u.keys {
				ch[k] = s
			}
		}
	}
	return ch
}

func (b *Budget) Run(ctx context.Context, s *pipeline.State) error {
	if s.Part != nil {
		// It would run once per section, each with the whole bundle's goal.
		return fmt.Errorf("budgets do not run on LiteRT-LM bundles yet: give the sections recipes (quantize.sections), or budget one section's .tflite")
	}
	start := time.Now()
	ms, err := model(s)
	if err != nil {
		return err
	}
	if s.Plan == nil {
		return fmt.Errorf("no annotations: a budget needs the annotate stage")
	}
	if err := b.Config.CheckMetric(); err != nil {
		return fmt.Errorf("quantize.budget: %w", err)
	}
	units, err := budgetUnits(ms.m, ms.uses, b.Config, b.Scales)
	if err != nil {
		return err
	}
	if len(units) == 0 {
		return fmt.Errorf("the budget has no weight to choose for: no candidate scheme fits any weight's ops and shape")
	}
	mm, err := newMeasurer(ctx, ms, s.Plan, b.Config, b.Layout, s.InputPath, b.CacheDir, s.Log)
	if err != nil {
		return err
	}
	defer mm.saveCache(s)
	defer func() { mm.prog.Done() }() // the last step's line
	if b.Config.MaxKL > 0 && mm.metric != config.BudgetMetricKL {
		return fmt.Errorf("quantize.budget.max_kl: the budget measures rel_l2 on %s (no logits output): bound it with max_rel_l2", strings.Join(mm.outputs, ", "))
	}
	if err := mm.calibrate(ctx, units, b.Calibration, s.Log); err != nil {
		return err
	}
	measured, perWeight := b.paths(units, mm)
	if !measured {
		mm.perWeight = perWeight
		mm.gatherProxyStats(ctx)
	}
	tab, err := mm.table(ctx, units, measured, func(tab *sensitivityTable) error { return b.feasible(units, tab) })
	if err != nil {
		return err
	}
	var cands []mixCandidate
	var best mixCandidate
	if measured {
		if cands, best, err = b.search(ctx, mm, units, tab); err != nil {
			return err
		}
	} else {
		// The proxy path plans once on the calibrated proxies; the
		// held-out comparison below measures the mix against the
		// presets.
		c, err := b.allocate(ctx, mm, units, tab, tab.kl, false)
		if err != nil {
			return err
		}
		if c == nil {
			return b.infeasible(units, tab)
		}
		c.method = "planned on output-error proxies"
		cands, best = []mixCandidate{*c}, *c
	}
	// Accept on held-out samples: the mix is written only if it beats
	// every uniform preset it competes with there.
	best, held, err := b.heldOut(ctx, mm, units, tab, best)
	if err != nil {
		return err
	}
	rep := &pipeline.BudgetReport{
		SizeBytes: b.Config.Size, MaxKL: b.Config.MaxKL, MaxRelL2: b.Config.MaxRelL2, Metric: mm.metric,
		Path: "proxy", Seed: mm.choose.seed, MeasuredOn: "choice", Method: best.method,
		PredictedBytes: best.out.size, PredictedKL: mm.show(best.predicted(tab)), MeasuredKL: mm.show(best.out.kl),
		Signature: mm.sig, Output: strings.Join(mm.outputs, ","), Samples: len(mm.choose.inputs), Seq: mm.seq,
		Probes: mm.probes, Cached: mm.cached, Estimated: tab.estimated, HeldOut: held,
	}
	if measured {
		rep.Path = "measured"
	} else {
		if perWeight {
			rep.Path = "proxy per weight"
		}
		rep.MeasuredOn, rep.MeasuredKL = "held-out", held.Mix.KL
		if held.Written != "mix" {
			for _, p := range held.Presets {
				if p.Recipe == held.Written {
					rep.MeasuredKL = p.KL
				}
			}
		}
	}
	for _, c := range cands {
		rep.Mixes = append(rep.Mixes, pipeline.PresetPoint{Recipe: c.method, Bytes: c.out.size, KL: mm.show(c.out.kl)})
	}
	for j, p := range tab.uniform {
		if p.ok {
			rep.Presets = append(rep.Presets, pipeline.PresetPoint{Recipe: tab.names[j], Bytes: p.size, KL: mm.show(p.kl)})
		}
	}
	for k, v := range choiceOf(units, func(i int, u *budgetUnit) *config.Scheme { return u.schemes[best.choice[i]] }) {
		b.Choice[k] = v
	}
	explain(s.Plan, units, tab, best, mm.show, mm.word())
	rep.Seconds = time.Since(start).Seconds()
	s.Plan.Budget = rep
	s.Log.Info().Str("method", best.method).Str("written", held.Written).Int64("bytes", best.out.size).Float64("held_out", held.Mix.KL).
		Int("probes", mm.probes).Int("cached", mm.cached).Str("took", time.Since(start).Round(time.Millisecond).String()).Msg("budget: mix chosen")
	return ctx.Err()
}

// measuredWork bounds the measured path: (unit, candidate) pairs × weight
// elements × tokens per sample × samples, the work of measuring every
// weight alone (tiny_decoder with 8 samples: about 2e11; the 1 GB
// generated decoder: 4e13).
const measuredWork = 1e12

// paths says whether the sensitivities are measured weight by weight (a
// model run per (weight, candidate) pair, within MaxProbes and
// measuredWork) or predicted from the proxies and, then, whether their
// gains are one per weight (a model run per weight, within the same
// bounds) or one per role group (a model run per group).
func (b *Budget) paths(units []*budgetUnit, mm *measurer) (measured, perWeight bool) {
	pairs, elems := 0, int64(0)
	for _, u := range units {
		pairs += len(u.schemes)
		elems += u.floatBytes / 4
	}
	run := float64(elems) * float64(max(mm.seq, 1)) * float64(len(mm.choose.inputs))
	measured = pairs <= b.maxProbes() && float64(pairs)*run <= measuredWork
	perWeight = len(units) <= b.maxProbes() && float64(len(units))*run <= measuredWork
	return measured, perWeight
}

// search is the measured path's choice among mixes: the allocation under
// each error model, the uniform presets within the budget, then moves
// around the best, each measured on the choice samples.
func (b *Budget) search(ctx context.Context, mm *measurer, units []*budgetUnit, tab *sensitivityTable) ([]mixCandidate, mixCandidate, error) {
	mm.step("planning and refining mixes", 0, "mixes")
	// Candidate mixes: the allocation under each error model, and the
	// uniform presets that meet the budget; each is measured, the best
	// kept (so a budget is never worse than a uniform preset on its own
	// samples).
	var cands []mixCandidate
	for _, em := range []struct {
		name string
		kl   [][]float64
	}{{"measured sensitivities", tab.kl}, {"sensitivities pooled with weight error", tab.pooled()}} {
		c, err := b.allocate(ctx, mm, units, tab, em.kl, true)
		if err != nil {
			return nil, mixCandidate{}, err
		}
		if c != nil {
			c.method = em.name
			cands = append(cands, *c)
		}
	}
	for j, p := range tab.uniform {
		if !p.ok || (b.Config.Size > 0 && p.size > b.Config.Size) || (b.maxErr() > 0 && p.kl > b.maxErr()) {
			continue
		}
		cands = append(cands, b.uniformMix(units, tab, j))
	}
	if len(cands) == 0 {
		return nil, mixCandidate{}, b.infeasible(units, tab)
	}
	best := cands[0]
	for _, c := range cands[1:] {
		if b.better(c, best) {
			best = c
		}
	}
	// Then search around the best mix, with each weight's neighbouring
	// options measured as a change of that mix, so that the interactions
	// between the weights are in the numbers: plan again on them, and
	// climb from the best mix by moves that each measurement confirms.
	// Costs up to two probes per weight, and one per other scale method
	// of its option, then one per move tried: only within the probe bound
	// (the other scale methods first left out).
	for round := 0; round < refineRounds && aroundProbes(units, tab, best.choice, false) <= b.maxProbes(); round++ {
		twins := aroundProbes(units, tab, best.choice, true) <= b.maxProbes()
		around, err := mm.around(ctx, units, tab, best.choice, best.out.kl, twins)
		if err != nil {
			return nil, mixCandidate{}, err
		}
		start := best
		c, err := b.allocate(ctx, mm, units, tab, around, true)
		if err != nil {
			return nil, mixCandidate{}, err
		}
		if c != nil {
			c.method, c.onMix = "planned around "+origin(start.method), true
			cands = append(cands, *c)
			if b.better(*c, best) {
				best = *c
			}
		}
		c, err = b.climb(ctx, mm, units, tab, around, start)
		if err != nil {
			return nil, mixCandidate{}, err
		}
		if c != nil {
			cands = append(cands, *c)
			if b.better(*c, best) {
				best = *c
			}
		}
		if best.method == start.method {
			break
		}
	}
	if b.Config.Size > 0 {
		f, err := b.fill(ctx, mm, units, tab, cands, best)
		if err != nil {
			return nil, mixCandidate{}, err
		}
		if f != nil {
			cands = append(cands, *f)
			best = *f
		}
	}
	return cands, best, nil
}

// uniformMix is uniform preset j as a mix.
func (b *Budget) uniformMix(units []*budgetUnit, tab *sensitivityTable, j int) mixCandidate {
	choice := make([]int, len(units))
	for i, u := range units {
		choice[i] = schemeIndex(u, tab.names[j])
	}
	return mixCandidate{method: "uniform " + tab.names[j], choice: choice, kl: tab.kl, out: outcome{tab.uniform[j].size, tab.uniform[j].kl}}
}

// maxErr is an error budget in the units the budget adds up (KL, or
// squared rel L2); 0 under a size.
func (b *Budget) maxErr() float64 {
	if b.Config.MaxRelL2 > 0 {
		return b.Config.MaxRelL2 * b.Config.MaxRelL2
	}
	return b.Config.MaxKL
}

// heldOut measures the chosen mix and the uniform presets it competes
// with — under a size those of equal or smaller size, under an error
// bound all — on held-out samples, and returns what is written: the mix
// if it beats every one of them there (under a size: a lower error; under
// an error bound: within the bound and smaller than every preset within
// it), else the best of them.
func (b *Budget) heldOut(ctx context.Context, mm *measurer, units []*budgetUnit, tab *sensitivityTable, best mixCandidate) (mixCandidate, *pipeline.BudgetHeldOut, error) {
	var rivals []int
	for j, p := range tab.uniform {
		if !p.ok || (b.Config.Size > 0 && p.size > b.Config.Size) {
			continue
		}
		if slices.Equal(b.uniformMix(units, tab, j).choice, best.choice) {
			continue // the mix is this preset
		}
		rivals = append(rivals, j)
	}
	elems := int64(0)
	for _, u := range units {
		elems += u.floatBytes / 4
	}
	set, err := mm.heldOutSet(ctx, elems)
	if err != nil {
		return best, nil, err
	}
	mm.step("held-out comparison", (1+len(rivals))*len(set.inputs), "model runs")
	choose := func(choice []int) map[tensorKey]*config.Scheme {
		return choiceOf(units, func(i int, u *budgetUnit) *config.Scheme { return u.schemes[choice[i]] })
	}
	mixErr, err := mm.errOn(ctx, choose(best.choice), set)
	if err != nil {
		return best, nil, err
	}
	mm.log.Info().Str("mix", best.method).Int64("bytes", best.out.size).Float64(mm.metric, mm.show(mixErr)).Msg("budget: held-out mix")
	h := &pipeline.BudgetHeldOut{Seed: set.seed, Samples: len(set.inputs), Written: "mix",
		Mix: pipeline.PresetPoint{Recipe: best.method, Bytes: best.out.size, KL: mm.show(mixErr)}, ChoiceKL: mm.show(best.out.kl)}
	if !tab.measured && !strings.HasPrefix(best.method, "uniform") {
		h.ChoiceKL = mm.show(best.predicted(tab))
	}
	var points []heldOutPoint
	for _, j := range rivals {
		e, err := mm.errOn(ctx, choose(b.uniformMix(units, tab, j).choice), set)
		if err != nil {
			return best, nil, err
		}
		p := tab.uniform[j]
		points = append(points, heldOutPoint{tab.names[j], p.size, e})
		mm.log.Info().Str("preset", tab.names[j]).Int64("bytes", p.size).Float64(mm.metric, mm.show(e)).Msg("budget: held-out preset")
		h.Presets = append(h.Presets, pipeline.PresetPoint{Recipe: tab.names[j], Bytes: p.size, KL: mm.show(e)})
	}
	name := "the mix"
	if strings.HasPrefix(best.method, "uniform") {
		name = best.method
	}
	w, why := b.accept(heldOutPoint{name, best.out.size, mixErr}, points, mm.show, mm.metricName())
	h.Why = why
	if w >= 0 {
		j := rivals[w]
		h.Written = tab.names[j]
		best = b.uniformMix(units, tab, j)
		best.method = "uniform " + tab.names[j] + " (won on the held-out samples)"
	}
	mm.log.Info().Str("written", h.Written).Float64("mix_held_out", h.Mix.KL).Msg("budget: " + h.Why)
	return best, h, nil
}

// heldOutPoint is a mix or preset on the held-out samples.
type heldOutPoint struct {
	name string
	size int64
	err  float64
}

// accept is the held-out rule: the index of the rival written instead of
// the mix (-1: the mix is written) and why. Under a size the best rival is
// the one of lowest error (then the smallest), and the mix must have a
// lower error still. Under an error bound the best rival is the smallest
// within the bound (then the lowest error), and the mix must be within it
// and smaller (or as small with a lower error); with no rival within the
// bound the mix is written.
func (b *Budget) accept(mix heldOutPoint, rivals []heldOutPoint, show func(float64) float64, metric string) (int, string) {
	limit := b.maxErr()
	w := -1
	for k, r := range rivals {
		if b.Config.Size > 0 {
			if w < 0 || r.err < rivals[w].err || (r.err == rivals[w].err && r.size < rivals[w].size) {
				w = k
			}
		} else if r.err <= limit && (w < 0 || r.size < rivals[w].size || (r.size == rivals[w].size && r.err < rivals[w].err)) {
			w = k
		}
	}
	switch {
	case len(rivals) == 0:
		return -1, fmt.Sprintf("no uniform preset competes with %s (none of equal or smaller size among the candidates); %s measured %s %.4g on the held-out samples", mix.name, mix.name, metric, show(mix.err))
	case w < 0:
		return -1, fmt.Sprintf("no uniform preset keeps the %s within the bound on the held-out samples; %s measured %.4g there", metric, mix.name, show(mix.err))
	}
	r := rivals[w]
	if b.Config.Size > 0 && mix.err < r.err {
		return -1, fmt.Sprintf("%s beats every uniform preset of equal or smaller size on the held-out samples: %s %.4g against %.4g for the best of them, %s (%s)", mix.name, metric, show(mix.err), show(r.err), r.name, bytesize.Format(r.size))
	}
	if b.Config.Size == 0 && mix.err <= limit && (mix.size < r.size || mix.size == r.size && mix.err < r.err) {
		return -1, fmt.Sprintf("%s (%s, %s %.4g) is within the bound and smaller than every uniform preset within it on the held-out samples; the smallest is %s (%s, %s %.4g)", mix.name, bytesize.Format(mix.size), metric, show(mix.err), r.name, bytesize.Format(r.size), metric, show(r.err))
	}
	how := fmt.Sprintf("%s %.4g against %.4g", metric, show(mix.err), show(r.err))
	if b.Config.Size == 0 {
		how = fmt.Sprintf("%s, %s %.4g, against %s, %s %.4g", bytesize.Format(mix.size), metric, show(mix.err), bytesize.Format(r.size), metric, show(r.err))
	}
	return w, fmt.Sprintf("%s did not beat uniform %s on the held-out samples (%s): the preset is written", mix.name, r.name, how)
}

func (b *Budget) maxProbes() int {
	if b.MaxProbes > 0 {
		return b.MaxProbes
	}
	return defaultMaxProbes
}

// outcome is what a mix measured to.
type outcome struct {
	size int64
	kl   float64
}

// mixCandidate is one mix the budget considers: how it was found, each
// unit's option, the error model it was planned with, what it measured.
type mixCandidate struct {
	method string
	choice []int
	kl     [][]float64
	out    outcome
	// onMix: kl was measured as changes of a mix (around), not per
	// weight alone.
	onMix bool
}

// predicted is the sum of the mix's sensitivities (each weight alone).
func (c mixCandidate) predicted(tab *sensitivityTable) float64 {
	sum := 0.0
	for i, j := range c.choice {
		sum += tab.kl[i][j]
	}
	return sum
}

// origin is the first way a mix in a chain of refinements was found.
func origin(method string) string {
	for _, p := range []string{"planned around ", "climbed from ", "filled from "} {
		if strings.HasPrefix(method, p) {
			return origin(strings.TrimPrefix(method, p))
		}
	}
	return method
}

// better says whether a beats b: under a size, the lower measured KL
// (then the smaller size); under an error, the smaller size (then the
// lower KL).
func (bu *Budget) better(a, b mixCandidate) bool {
	if bu.Config.Size > 0 {
		if a.out.kl != b.out.kl {
			return a.out.kl < b.out.kl
		}
		return a.out.size < b.out.size
	}
	if a.out.size != b.out.size {
		return a.out.size < b.out.size
	}
	return a.out.kl < b.out.kl
}

// feasible fails when no mix can meet the budget: the smallest option of
// every weight is still too large, or the most accurate uniform preset's
// measured KL is still too high.
func (b *Budget) feasible(units []*budgetUnit, tab *sensitivityTable) error {
	if b.Config.Size > 0 {
		smallest := tab.floatSize
		for i, u := range units {
			smallest += tab.bytes[i][smallestOption(tab.bytes[i])] - u.floatBytes
		}
		if smallest > b.Config.Size {
			return b.infeasible(units, tab)
		}
		return nil
	}
	// The most accurate mix is known when every weight's most accurate
	// option is the same scheme: then it is that uniform preset.
	name := ""
	for i, u := range units {
		j := 0
		for k := range u.schemes {
			if tab.relL2[i][k] < tab.relL2[i][j] {
				j = k
			}
		}
		if name != "" && optionLabel(u.schemes[j]) != name {
			return nil
		}
		name = optionLabel(u.schemes[j])
	}
	for j, p := range tab.uniform {
		if tab.measured && tab.names[j] == name && p.ok && p.kl > b.maxErr() {
			return b.infeasible(units, tab)
		}
	}
	return nil
}

// infeasible explains why nothing meets the budget.
func (b *Budget) infeasible(units []*budgetUnit, tab *sensitivityTable) error {
	smallest, best := int64(math.MaxInt64), math.Inf(1)
	for _, p := range tab.uniform {
		smallest = min(smallest, p.size)
		best = math.Min(best, p.kl)
	}
	if b.Config.Size > 0 {
		return fmt.Errorf("no mix of the candidates fits in %d bytes (%s): the smallest uniform one is %d bytes; raise the size or allow smaller schemes", b.Config.Size, bytesize.Format(b.Config.Size), smallest)
	}
	if b.Config.MaxRelL2 > 0 {
		return fmt.Errorf("no mix of the candidates keeps the rel L2 error within %g: the most accurate measured %g; raise max_rel_l2 or allow larger schemes (fp16)", b.Config.MaxRelL2, math.Sqrt(best))
	}
	return fmt.Errorf("no mix of the candidates keeps the KL divergence within %g: the most accurate measured %g; raise max_kl or allow larger schemes (fp16)", b.Config.MaxKL, best)
}

// allocate plans a mix under one error model and checks it: a size budget
// against the exact size of the output, an error budget against the mix's
// measured KL; a miss tightens the target by the miss and plans again. It
// returns nil when the model finds no mix within the budget. Under a size
// without measure, the mix's error is its prediction (no model run).
func (b *Budget) allocate(ctx context.Context, mm *measurer, units []*budgetUnit, tab *sensitivityTable, kl [][]float64, measure bool) (*mixCandidate, error) {
	const rounds = 8
	opts := make([]budget.Unit, len(units))
	for i, u := range units {
		opts[i] = budget.Unit{Name: u.label}
		for j, c := range u.schemes {
			opts[i].Options = append(opts[i].Options, budget.Option{Label: optionLabel(c), Bytes: tab.bytes[i][j], Err: math.Max(0, kl[i][j])})
		}
	}
	p, err := budget.NewPlanner(opts)
	if err != nil {
		return nil, err
	}
	// The weights' bytes leave out the graph and the constants no
	// candidate touches: fixed, taken from the float model's layout.
	fixed := tab.floatSize
	for _, u := range units {
		fixed -= u.floatBytes
	}
	cfg := b.Config
	choose := func(mix budget.Mix) map[tensorKey]*config.Scheme {
		return choiceOf(units, func(i int, u *budgetUnit) *config.Scheme { return u.schemes[mix.Choice[i]] })
	}
	if cfg.Size > 0 {
		limit := cfg.Size - fixed
		for r := 0; r < rounds; r++ {
			mix, ok := p.BySize(limit)
			if !ok {
				return nil, nil
			}
			size, err := mm.size(ctx, choose(mix))
			if err != nil {
				return nil, err
			}
			if size <= cfg.Size {
				c := &mixCandidate{choice: mix.Choice, kl: kl, out: outcome{size, 0}}
				if !measure {
					c.out.kl = c.predicted(tab)
					return c, nil
				}
				c.out.kl, err = mm.kl(ctx, choose(mix))
				return c, err
			}
			limit -= size - cfg.Size
		}
		return nil, nil
	}
	maxErr := b.maxErr()
	target := maxErr
	for r := 0; r < rounds; r++ {
		mix, ok := p.ByError(target)
		if !ok {
			return nil, nil
		}
		measured, err := mm.kl(ctx, choose(mix))
		if err != nil {
			return nil, err
		}
		if measured <= maxErr {
			size, err := mm.size(ctx, choose(mix))
			return &mixCandidate{choice: mix.Choice, kl: kl, out: outcome{size, measured}}, err
		}
		// The model under-predicted this mix: aim lower by the miss.
		target *= 0.97 * maxErr / measured
	}
	return nil, nil
}

// explain writes into the plan, for every weight of every unit, its
// options and why it got its scheme: the error one step down its hull
// would add per byte saved, and what one step up would remove per byte
// added, against the price the budget settled at.
func explain(plan *pipeline.Plan, units []*budgetUnit, tab *sensitivityTable, best mixCandidate, show func(float64) float64, word string) {
	byKey := map[tensorKey]int{}
	for i, u := range units {
		for _, k := range u.keys {
			byKey[k] = i
		}
	}
	for _, w := range plan.Weights {
		i, ok := byKey[tensorKey{w.Subgraph, w.Tensor}]
		if !ok {
			continue
		}
		u := units[i]
		wb := &pipeline.WeightBudget{}
		for j, c := range u.schemes {
			o := pipeline.BudgetOption{Scheme: c.Name, Bytes: tab.bytes[i][j], KL: show(tab.kl[i][j]),
				Predicted: show(best.kl[i][j]), RelL2: tab.relL2[i][j], Estimated: tab.estimatedAt[i][j], Chosen: j == best.choice[i]}
			if optionLabel(c) != c.Name {
				o.Scales = c.Scales
			}
			wb.Options = append(wb.Options, o)
		}
		wb.Why = why(u, i, tab, best, show, word)
		w.Budget = wb
	}
}

// why says in one line what the weight's neighbours on the size axis
// (and the options of its size: other scales) would cost or give.
func why(u *budgetUnit, i int, tab *sensitivityTable, best mixCandidate, show func(float64) float64, word string) string {
	c := best.choice[i]
	kl := best.kl[i]
	alone := "with it alone quantized so"
	if tab.estimatedAt[i][c] {
		alone = "predicted from its output error"
	}
	cur := fmt.Sprintf("%s (%s; %s %.3g %s)", optionLabel(u.schemes[c]), bytesize.Format(tab.bytes[i][c]), word, tab.kl[i][c], alone)
	if strings.HasPrefix(best.method, "uniform") {
		return cur + "; " + best.method + " measured better than the planned mixes"
	}
	// The nearest smaller and larger options the method weighed.
	down, up, same := neighbours(tab.bytes[i], kl, c, func(j int) bool { return kl[j] < aroundOff })
	basis := "predicted"
	if best.onMix {
		basis = "measured on the mix"
	}
	for _, j := range same {
		cur += fmt.Sprintf("; %s (same size) would change it by %+.3g %s", optionLabel(u.schemes[j]), kl[j]-kl[c], word)
	}
	if down >= 0 {
		cur += fmt.Sprintf("; %s would save %s for %+.3g %s", optionLabel(u.schemes[down]), bytesize.Format(tab.bytes[i][c]-tab.bytes[i][down]), kl[down]-kl[c], word)
	}
	if up >= 0 {
		cur += fmt.Sprintf("; %s would cost %s for %+.3g %s", optionLabel(u.schemes[up]), bytesize.Format(tab.bytes[i][up]-tab.bytes[i][c]), kl[up]-kl[c], word)
	}
	if down >= 0 || up >= 0 || len(same) > 0 {
		cur += " (" + basis + ")"
	}
	return cur
}

// neighbours are, among a unit's options that ok accepts, the nearest
// smaller and the nearest larger than option c (-1: none; of two of one
// size, the one of lower kl, then the first), and those of c's size (the
// same scheme with other scales).
func neighbours(bytes []int64, kl []float64, c int, ok func(j int) bool) (down, up int, same []int) {
	down, up = -1, -1
	closer := func(j, k int, nearer bool) bool {
		return k < 0 || nearer || (bytes[j] == bytes[k] && kl[j] < kl[k])
	}
	for j := range bytes {
		switch x := bytes[j]; {
		case j == c || !ok(j):
		case x == bytes[c]:
			same = append(same, j)
		case x < bytes[c] && closer(j, down, down >= 0 && x > bytes[down]):
			down = j
		case x > bytes[c] && closer(j, up, up >= 0 && x < bytes[up]):
			up = j
		}
	}
	return down, up, same
}

// schemeNames lists the distinct options of the units (optionLabel) in
// first-seen order.
func schemeNames(units []*budgetUnit) []string {
	seen := map[string]bool{}
	var out []string
	for _, u := range units {
		for _, c := range u.schemes {
			if name := optionLabel(c); !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	return out
}
