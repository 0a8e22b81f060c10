package stages

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/semaphore"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/calib"
	"github.com/qpipe/qpipe/internal/interp"
	"github.com/qpipe/qpipe/internal/quant"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
	"github.com/qpipe/qpipe/pipeline"
)

// `scales: gptq` (config.ScalesGPTQ): error-compensating rounding of
// FULLY_CONNECTED weights and BATCH_MATMUL constant right operands under
// their input covariance (quant's GPTQ kernels, internal/calib's rows). This file finds each job's covariance
// and keeps its factor while the weights that share it are written.

// gptqSource is where a gptq job's covariance comes from.
type gptqSource struct {
	in   *calib.Inputs
	w    calib.Key // the weight tensor
	cols int       // the inputs each output channel reads: the factor's columns
	// bmm is set for a BATCH_MATMUL's right operand, whose every batch
	// has a covariance of its own; nil for a FULLY_CONNECTED weight.
	bmm   *bmmView
	cache *factorCache
	ctx   context.Context // the run's: forming a factor stops with it
	log   zerolog.Logger
	// weightError adds the identity, scaled to the mean input energy, to
	// the covariance: a reader that is not a FULLY_CONNECTED (a tied
	// embedding's lookup) uses the weights themselves, so their own error
	// counts as much as one input's.
	weightError bool
	readers     int // FULLY_CONNECTED inputs combined
}

// bmmView is how BATCH_MATMULs read a constant right operand: batches
// matrices of n output channels by k inputs, each [k, n] in the tensor, or
// [n, k] with adj_y (the FULLY_CONNECTED layout).
type bmmView struct {
	batches, k, n int
	adjY          bool
}

// matrices is how many covariances the weight has: one per batch of a
// BATCH_MATMUL operand.
func (g *gptqSource) matrices() int {
	if g.bmm == nil {
		return 1
	}
	return g.bmm.batches
}

// matrix names the rows of the weight's matrix b (0 for a FULLY_CONNECTED
// weight).
func (g *gptqSource) matrix(b int) calib.Matrix {
	return calib.Matrix{Weight: g.w, BMM: g.bmm != nil, Batch: b}
}

// gptqInputs gathers the calibration rows when some request asks for
// gptq, else nil.
func (q *Quantize) gptqInputs(ctx context.Context, s *pipeline.State, reqs []request) (*calib.Inputs, error) {
	need := false
	for _, r := range reqs {
		need = need || (r.sc != nil && r.sc.gptq())
	}
	if !need {
		return nil, nil
	}
	ms, err := model(s)
	if err != nil {
		return nil, err
	}
	cal := q.calibration()
	inputs, err := calibrationInputsSum(cal) // also checks the calibration files
	if err != nil {
		return nil, err
	}
	cm, sum := ms.m, ""
	if alt := os.Getenv("QPIPE_GPTQ_INPUTS_MODEL"); alt != "" {
		// A measurement switch (METHODS.md §5.6): the rows come from
		// running another model of the same graph, the dequantized
		// reference of a first gptq run, which approximates sequential
		// quantization (each weight's inputs from quantized earlier layers).
		if cm, sum, err = inputsModel(alt, ms.m); err != nil {
			return nil, fmt.Errorf("QPIPE_GPTQ_INPUTS_MODEL: %w", err)
		}
		defer cm.Close()
	}
	restore := tightGC()
	var in *calib.Inputs
	if q.ReleaseRows {
		// The run's own rows, given back as the weights that read them are
		// written (factorCache.written): no cache key, so the model is not
		// hashed for one (a 7B model: 27 GB read).
		if in, err = calib.RunInputs(ctx, cm, cal, s.Log); err == nil {
			in.LogKept(s.Log)
		}
	} else {
		if sum == "" {
			sum, err = modelSum(ms)
		}
		if err == nil {
			in, err = calib.GetInputs(ctx, cm, calib.CacheKey(sum, cal, inputs), cal, s.Log)
		}
	}
	restore()
	if err != nil {
		return nil, fmt.Errorf("scales: gptq: %w", err)
	}
	debug.FreeOSMemory() // the pass's garbage, before the factors are formed
	return in, nil
}

// inputsModel opens the model of QPIPE_GPTQ_INPUTS_MODEL and returns its
// sha256; its graph must be that of want (the same subgraphs and tensors,
// so that the rows' keys name the same weights).
func inputsModel(path string, want *tflite.Model) (*tflite.Model, string, error) {
	sum, err := FileSHA256(path)
	if err != nil {
		return nil, "", err
	}
	m, err := tflite.Open(path)
	if err != nil {
		return nil, "", err
	}
	same := len(m.Meta.Subgraphs) == len(want.Meta.Subgraphs)
	for i := 0; same && i < len(m.Meta.Subgraphs); i++ {
		same = len(m.Meta.Subgraphs[i].Tensors) == len(want.Meta.Subgraphs[i].Tensors)
	}
	if !same {
		m.Close()
		return nil, "", fmt.Errorf("%s: not the graph of the model quantized (its subgraphs or tensors differ)", path)
	}
	return m, sum, nil
}

// tightGC lowers the collector's target from the default 100 % of the live
// heap to 10 % until restore is called (nested calls count): gptq keeps
// its calibration rows and factors live, gigabytes of float arrays that
// hold no pointers and cost the collector almost nothing to mark, and at
// 100 % the heap could grow by as much again in garbage (a 7B model's
// chunks and covariances: 3.7 GB of anonymous memory against 2.3 GB
// live).
func tightGC() (restore func()) {
	gcTarget.Lock()
	defer gcTarget.Unlock()
	if gcTarget.n++; gcTarget.n == 1 {
		gcTarget.prev = debug.SetGCPercent(10)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			gcTarget.Lock()
			defer gcTarget.Unlock()
			if gcTarget.n--; gcTarget.n == 0 {
				debug.SetGCPercent(gcTarget.prev)
			}
		})
	}
}

var gcTarget struct {
	sync.Mutex
	n    int
	prev int
}

// gptqSourceFor finds job j's covariance in in (nil: none reached it; the
// job then rounds to nearest). A weight some FULLY_CONNECTED reads gets its
// FULLY_CONNECTED inputs' covariance; one that BATCH_MATMULs read as their
// right operand, all with the same adj_y, gets one covariance per batch
// from their left operands. Other readers of the weight (a tied
// embedding's lookup, reading the same buffer) add the weight error.
func gptqSourceFor(ctx context.Context, log zerolog.Logger, m *tflite.Model, in *calib.Inputs, cache *factorCache, j *bufferJob) *gptqSource {
	if in == nil || !j.req.sc.gptq() {
		return nil
	}
	var fc, bmm []*weightUse
	readers := 0
	for _, g := range j.tensors {
		readers += len(g.uses)
		for _, u := range g.uses {
			switch {
			case u.code == fb.BuiltinOperatorFULLY_CONNECTED:
				fc = append(fc, u)
			case u.code == fb.BuiltinOperatorBATCH_MATMUL && u.input == 1:
				bmm = append(bmm, u)
			}
		}
	}
	var src *gptqSource
	switch v := bmmViewOf(m, bmm, j.shape); {
	case len(fc) > 0 && len(j.shape) == 2:
		for _, g := range j.tensors {
			o := g.original()
			k := calib.Key{Subgraph: o.sg, Tensor: o.tensor}
			if w := (calib.Matrix{Weight: k}); src == nil && in.Has(w) {
				src = &gptqSource{in: in, w: k, cols: j.shape[1], readers: in.Readers(w)}
			}
		}
		if src != nil {
			src.weightError = readers > len(fc)
		}
	case len(fc) == 0 && v != nil:
		for _, g := range j.tensors {
			o := g.original()
			b := &gptqSource{in: in, w: calib.Key{Subgraph: o.sg, Tensor: o.tensor}, cols: v.k, bmm: v}
			for i := range v.batches {
				if src == nil && in.Has(b.matrix(i)) {
					b.readers = in.Readers(b.matrix(i))
					src = b
				}
			}
		}
		if src != nil {
			src.weightError = readers > len(bmm)
		}
	}
	if src != nil {
		src.cache, src.ctx, src.log = cache, ctx, log
	}
	return src
}

// bmmViewOf is the view of a weight of shape that uses, BATCH_MATMULs
// reading it as their right operand, read with one adj_y; nil when there
// are none or their adj_y differ.
func bmmViewOf(m *tflite.Model, uses []*weightUse, shape []int) *bmmView {
	r := len(shape)
	if r < 2 || len(uses) == 0 {
		return nil
	}
	var v *bmmView
	for _, u := range uses {
		adjY := false
		if op := m.Meta.Subgraphs[u.sg].Operators[u.op]; op.BuiltinOptions != nil {
			if o, ok := op.BuiltinOptions.Value.(*fb.BatchMatMulOptionsT); ok {
				adjY = o.AdjY
			}
		}
		if v != nil && v.adjY != adjY {
			return nil
		}
		v = &bmmView{batches: 1, k: shape[r-2], n: shape[r-1], adjY: adjY}
		if adjY {
			v.k, v.n = v.n, v.k
		}
		for _, d := range shape[:r-2] {
			v.batches *= d
		}
	}
	return v
}

// gptqNotes says in the plan how the gptq jobs got their covariance.
func gptqNotes(p *pipeline.Plan, jobs []*bufferJob) {
	if p == nil {
		return
	}
	none := 0
	for _, j := range jobs {
		if !j.req.sc.gptq() {
			continue
		}
		switch g := j.gptq; {
		case g == nil:
			none++
		case g.weightError:
			op := "FULLY_CONNECTED"
			if g.bmm != nil {
				op = "BATCH_MATMUL"
			}
			p.Notes = append(p.Notes, fmt.Sprintf("%s: gptq: read by %d %s input(s) and by other ops (a tied embedding): the covariances of the %s inputs are summed and the weight error is added to them with the weight of one input", j.label, g.readers, op, op))
		case g.bmm != nil && g.bmm.batches > 1:
			p.Notes = append(p.Notes, fmt.Sprintf("%s: gptq: read by BATCH_MATMUL as %d matrices of %d inputs: one covariance per matrix, from the left operands that multiply it", j.label, g.bmm.batches, g.bmm.k))
		case g.readers > 1:
			p.Notes = append(p.Notes, fmt.Sprintf("%s: gptq: read by %d inputs: their covariances are summed", j.label, g.readers))
		}
	}
	if none > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("gptq: %d weight(s) that no calibrated FULLY_CONNECTED or BATCH_MATMUL input reached are rounded to nearest with gptq's scales", none))
	}
}

// factorCache holds the compensation factors of one quantize run. A job
// holds its factor while it writes (every chunk of a weight uses the same
// one); weights that share a covariance (q/k/v, gate/up) share the entry,
// and a released factor is kept, within factorBudget bytes of idle
// factors, for the next weight that may share it (those are written one
// after another, and all but the last usually find it held).
//
// The memory of the factors jobs hold counts against factorMemory: the
// writer runs several jobs at once, and a 7B model's slow feed-forward down
// projection let the other worker reach the next layer's, so that two
// 508 MB factors were held together (3.2 GB of anonymous memory at the
// peak). A job whose factor does not fit waits for other jobs to end. A job
// takes its factor once, before its first chunk, and never waits while it
// holds one, so the waits end. Idle factors (at most factorBudget) do not
// count; one that is used again counts again.
//
// The cache also counts, per factor and per activation, the run's jobs not
// yet written (expect, written): a factor no job will use again is dropped
// instead of kept idle, and an activation's calibration rows are given
// back (calib.Inputs.Release) once every weight that reads it is written,
// so that a 7B model's later layers do not carry the earlier layers' rows.
type factorCache struct {
	mu    sync.Mutex
	byKey map[string]*factorEntry
	idle  []string // released, oldest first
	mem   *semaphore.Weighted
	in    *calib.Inputs
	left  map[string]int       // factor key → the jobs that will use it, not yet written
	acts  map[calib.Source]int // activation rows → the jobs that read them, not yet written
}

const factorBudget = 256 << 20

// factorMemory is a variable for TestGPTQFactorMemoryWaits.
var factorMemory int64 = 768 << 20

// newFactorCache returns the cache of a run whose gptq jobs, if any, read
// in. While such a cache is reachable the collector's target stays at 10 %
// (tightGC): holding it only while some job held a factor let it go back
// to 100 % between two jobs, and a 7B run's anonymous memory jumped by
// 190 MB in that moment.
func newFactorCache(in *calib.Inputs) *factorCache {
	c := &factorCache{byKey: map[string]*factorEntry{}, mem: semaphore.NewWeighted(factorMemory), in: in, left: map[string]int{}, acts: map[calib.Source]int{}}
	if in != nil {
		runtime.AddCleanup(c, func(restore func()) { restore() }, tightGC())
	}
	return c
}

// expect counts the gptq jobs of the run that will be written: the
// factors and activations each will use.
func (c *factorCache) expect(jobs []*bufferJob) {
	for _, j := range jobs {
		if j.gptq == nil {
			continue
		}
		for b := range j.gptq.matrices() {
			c.left[j.factorKey(b)]++
			for _, a := range c.in.Activations(j.gptq.matrix(b)) {
				c.acts[a]++
			}
		}
	}
}

// written ends job j's part in the run, after its factor's release: a
// factor no job still to be written shares is dropped, and an activation
// whose every reader is written gives its rows back (Release keeps the
// rows of shared Inputs).
func (c *factorCache) written(j *bufferJob) {
	g := j.gptq
	var done []calib.Source
	c.mu.Lock()
	for b := range g.matrices() {
		key := j.factorKey(b)
		if c.left[key]--; c.left[key] <= 0 {
			if e := c.byKey[key]; e != nil && e.users == 0 {
				delete(c.byKey, key)
				c.idle = slices.DeleteFunc(c.idle, func(k string) bool { return k == key })
			}
		}
		for _, a := range g.in.Activations(g.matrix(b)) {
			if c.acts[a]--; c.acts[a] == 0 {
				done = append(done, a)
			}
		}
	}
	c.mu.Unlock()
	for _, a := range done {
		if n := g.in.Release(a); n > 0 {
			g.log.Debug().Int("tensor", a.Act.Tensor).Int64("MiB", n>>20).Msg("gptq: released the calibration rows of an activation whose weights are written")
		}
	}
}

// take counts n more bytes of factor memory for e, waiting for other jobs
// to end while they do not fit.
func (c *factorCache) take(ctx context.Context, e *factorEntry, n int64) error {
	n = min(n, factorMemory)
	if err := c.mem.Acquire(ctx, n); err != nil {
		return err
	}
	c.mu.Lock()
	e.held += n
	c.mu.Unlock()
	return nil
}

// release ends one job's use of entry e of key: the last user gives its
// memory back to the count and keeps it idle, dropping the oldest idle
// factors beyond factorBudget. It returns the bytes of the factors dropped.
func (c *factorCache) release(key string, e *factorEntry) (dropped int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.users--; e.users > 0 {
		return 0
	}
	if e.held > 0 {
		c.mem.Release(e.held)
		e.held = 0
	}
	if !e.formed {
		delete(c.byKey, key)
		return 0
	}
	c.idle = append(c.idle, key)
	var total int64
	for i := len(c.idle) - 1; i >= 0; i-- {
		total += c.byKey[c.idle[i]].f.Bytes()
		if total > factorBudget {
			for _, k := range c.idle[:i+1] {
				dropped += c.byKey[k].f.Bytes()
				delete(c.byKey, k)
			}
			c.idle = slices.Delete(c.idle, 0, i+1)
			break
		}
	}
	return dropped
}

// factorEntry is one covariance's factor, computed once.
type factorEntry struct {
	once   sync.Once
	f      *quant.GPTQFactor
	stats  *quant.ChannelStats // the same rows' per-column statistics
	rows   [][]float32         // the rows the factor was formed from
	hold   [][]float32         // the held-out rows (heldOutRows)
	err    error
	users  int
	held   int64 // bytes counted in factorCache.mem while jobs hold it
	formed bool  // under factorCache.mu
}

// holdFactor forms (or finds) the compensation factor of the job's matrix
// b (0 but for a batched BATCH_MATMUL operand) and keeps it in j.fe until
// release is called: a job's chunks all use it. Jobs without a covariance,
// or that hold a factor already, hold nothing more.
func (j *bufferJob) holdFactor(b int) (release func(), err error) {
	g := j.gptq
	if g == nil || j.fe != nil {
		return func() {}, nil
	}
	c := g.cache
	cols := g.cols
	key := j.factorKey(b)
	c.mu.Lock()
	e := c.byKey[key]
	if e == nil {
		e = &factorEntry{}
		c.byKey[key] = e
	}
	reuse := e.users == 0 && e.formed // idle: its memory counts again
	c.idle = slices.DeleteFunc(c.idle, func(k string) bool { return k == key })
	e.users++
	c.mu.Unlock()
	release = func() {
		j.fe = nil
		if c.release(key, e) >= 64<<20 {
			// Hand a large factor's memory back to the system now: left to
			// the collector and its scavenger, the next factor's pages came
			// on top of it (a 7B run's peak, 500 MB above its plateau).
			debug.FreeOSMemory()
		}
	}
	if reuse {
		if err := c.take(g.ctx, e, e.f.Bytes()); err != nil {
			release()
			return nil, err
		}
	}
	e.once.Do(func() { e.err = e.form(g, g.matrix(b), cols) })
	if e.err != nil {
		release()
		return nil, fmt.Errorf("gptq: %w", e.err)
	}
	j.fe = e
	return release, nil
}

// factorKey names the factor of gptq job j's matrix b: weights with the
// same key share it.
func (j *bufferJob) factorKey(b int) string {
	g := j.gptq
	return fmt.Sprintf("%s %v %d", g.in.HessianKey(g.matrix(b)), g.weightError, g.cols)
}

// form computes the factor of g's covariance. A covariance that does not
// factor in floating point is formed again with ten times the damping, up
// to three times.
func (e *factorEntry) form(g *gptqSource, w calib.Matrix, cols int) error {
	c := g.cache
	if err := c.take(g.ctx, e, quant.GPTQFactorBytes(cols)); err != nil {
		return err
	}
	start := time.Now()
	if err := g.in.Check(w); err != nil {
		return err
	}
	all := g.in.Rows(w, cols)
	rows, hold := heldOutRows(all)
	tokens := 0
	for _, x := range rows {
		tokens += len(x) / cols
	}
	damp := gptqDamp(tokens, cols)
	if len(rows) == 0 {
		return fmt.Errorf("no calibration input of %d columns", cols)
	}
	var shrink float64
	for try := 0; ; try++ {
		h := quant.CovarianceOf(cols, rows)
		if try == 0 && os.Getenv("QPIPE_GPTQ_DAMP") == "" {
			// The shrinkage is the calibration data's own, measured
			// before the weight's error term is added.
			damp = max(damp, quant.ShrinkageDamp(h, rows))
			if os.Getenv("QPIPE_GPTQ_SHRINK") == "diagonal" {
				// A measurement switch (METHODS.md §5.7).
				shrink = quant.ShrinkageOffDiagonal(h, rows)
			}
		}
		if shrink > 0 {
			h.ScaleDiagonal(1 + shrink)
		}
		if g.weightError {
			h.AddDiagonal(h.Trace() / float64(cols))
		}
		f, err := quant.NewGPTQFactor(g.ctx, h, damp)
		if errors.Is(err, quant.ErrNotPositiveDefinite) && try < 3 {
			damp *= 10
			continue
		}
		if err != nil {
			return err
		}
		e.f, e.stats, e.rows, e.hold = f, g.in.Stats(w, cols), rows, hold
		c.mu.Lock()
		e.formed = true
		c.mu.Unlock()
		g.log.Info().Int("columns", cols).Int("tokens", tokens).Int("held_out_samples", len(hold)).Float64("damp", damp).Float64("shrink", shrink).Int("dead", f.Dead).
			Float64("seconds", time.Since(start).Seconds()).Msg("gptq: formed a covariance's factor")
		break
	}
	return nil
}

// heldOutRows splits a weight's calibration rows, a sample's at a time,
// into those its factor is formed from and every fourth sample, held out
// to check that compensation lowers the output error on inputs it did not
// fit (heldOutBetter). It is a measurement switch, off unless
// QPIPE_GPTQ_HOLDOUT=on: on the 1 GB random decoder it rejects most of the
// compensation (mean KL 1.087 → 0.965, calibrated 0.930), but on
// tiny_decoder and the trained decoder at block 128 the quarter of the
// tokens it takes from the fit costs more than it saves (METHODS.md §5.3).
func heldOutRows(all [][]float32) (fit, hold [][]float32) {
	if len(all) < 4 || os.Getenv("QPIPE_GPTQ_HOLDOUT") != "on" {
		return all, nil
	}
	for i, x := range all {
		if i%4 == 3 {
			hold = append(hold, x)
		} else {
			fit = append(fit, x)
		}
	}
	return fit, hold
}

// gptqDamp is the relative damping of a covariance of tokens rows of cols
// columns: the paper's 1 % with at least as many tokens as columns, else
// 2.5 % × cols/tokens. With fewer tokens than columns H is singular, and
// the sweep can push error into the directions no calibration input
// showed at almost no cost, which held-out inputs then pay: on
// tiny_decoder calibrated on 64 tokens (256-512 columns), block 32, logits
// KL 0.416 at 1 %, 0.397 at 3 %, 0.337 at 10 %, 0.361 at 30 %, 0.366 at
// 100 % against calibrated's 0.380; on the 1 GB decoder (512 tokens,
// 2048-5632 columns) 1 % made gptq worse than min-max (METHODS.md §5).
// The factor takes the larger of this and the calibration data's own
// Ledoit–Wolf shrinkage (quant.ShrinkageDamp), which raises it where the
// sample covariance is mostly noise (METHODS.md §5.1). QPIPE_GPTQ_DAMP
// overrides both for measurements.
func gptqDamp(tokens, cols int) float64 {
	if v, err := strconv.ParseFloat(os.Getenv("QPIPE_GPTQ_DAMP"), 64); err == nil && v > 0 {
		return v
	}
	if tokens >= cols || tokens == 0 {
		return quant.DefaultDamp
	}
	return 2.5 * quant.DefaultDamp * float64(cols) / float64(tokens)
}

// gptqVariants are the int4 gptq scale variants tried (see quantizeGPTQ4);
// QPIPE_GPTQ_SCALES (comma-separated) overrides them for measurements.
func gptqVariants() []string {
	if v := os.Getenv("QPIPE_GPTQ_SCALES"); v != "" {
		return strings.Split(v, ",")
	}
	return []string{"calibrated"}
}

// quantizeGPTQ4 quantizes whole rows of an int4 gptq job: the calibrated
// scale search's nearest rounding and the error-compensated rounding are
// both computed, and each row keeps the one of lower output error on the
// inputs the factor was formed from (the sweep measures its own;
// RowObjectives the other's): compensation is greedy and, with int4's
// clipping, not always better. Then the chunk keeps that mix only if its
// output error on the held-out calibration rows is lower than nearest
// rounding's (heldOutBetter).
func (j *bufferJob) quantizeGPTQ4(dst []byte, scales []uint16, x []float32, cols int) (int, error) {
	release, err := j.holdFactor(0)
	if err != nil {
		return 0, err
	}
	defer release()
	e := j.fe
	block := j.req.sc.block
	// The baseline: calibrated scales, nearest rounding (data-free search
	// without statistics).
	var stats *quant.ChannelStats
	if e != nil {
		stats = e.stats
	}
	clamped, err := quant.SearchBlocksInt4(dst, scales, x, cols, block, j.clampTiny, stats, nil)
	if err != nil || e == nil {
		return clamped, err
	}
	rows := len(x) / cols
	best := make([]float64, rows)
	a := make([]float32, len(x))
	quant.DequantizeInt4(a, dst, cols, block, scales)
	e.f.RowObjectives(best, x, a, e.rows)
	near, nearScales := slices.Clone(dst), slices.Clone(scales)
	per := cols / block
	alt := make([]byte, len(dst))
	altScales := make([]uint16, len(scales))
	obj := make([]float64, rows)
	for _, v := range gptqVariants() {
		sweep := false
		switch v {
		case "minmax":
			_, err = quant.BlockParamsInt4(altScales, x, cols, block, j.clampTiny)
		case "calibrated":
			copy(altScales, scales)
		case "sweep":
			sweep = true
		default:
			_, err = quant.SignedParamsInt4(altScales, x, cols, block, j.clampTiny)
		}
		if err != nil {
			return 0, err
		}
		if _, err := quant.GPTQBlocksInt4(alt, altScales, x, cols, block, j.clampTiny, e.f, sweep, obj); err != nil {
			return 0, err
		}
		for r := range rows {
			if obj[r] < best[r] {
				best[r] = obj[r]
				copy(dst[r*cols/2:(r+1)*cols/2], alt[r*cols/2:(r+1)*cols/2])
				copy(scales[r*per:(r+1)*per], altScales[r*per:(r+1)*per])
			}
		}
	}
	j.gptqChunks++
	if !e.heldOutBetter(x, a, cols, func(got []float32) { quant.DequantizeInt4(got, dst, cols, block, scales) }) {
		copy(dst, near)
		copy(scales, nearScales)
	} else {
		j.gptqKept++
	}
	return quant.TinyScales(scales), nil
}

// heldOutBetter reports whether the compensated rounding of the rows x
// (reconstructed by dequantize) has a lower output error on the held-out
// calibration rows than nearest rounding's reconstruction near (true when
// nothing was held out). Compensation fits the inputs it saw: where they
// hold little beyond noise (a random-weight decoder's 512 tokens against
// up to 5,632 columns) it can raise the error on inputs it did not see,
// and the rows it was formed from cannot tell.
func (e *factorEntry) heldOutBetter(x, near []float32, cols int, dequantize func(got []float32)) bool {
	if len(e.hold) == 0 {
		return true
	}
	rows := len(x) / cols
	en, ec := make([]float64, rows), make([]float64, rows)
	quant.HeldOutErrors(en, x, near, cols, e.hold)
	got := make([]float32, len(x))
	dequantize(got)
	quant.HeldOutErrors(ec, x, got, cols, e.hold)
	var sn, sc float64
	for r := range rows {
		sn += en[r]
		sc += ec[r]
	}
	return sc < sn
}

// gptqInt8 re-rounds whole rows of an int8 gptq job (q8: their nearest
// rounding against scales sc and zero points zp) with error compensation,
// each row keeping the rounding of lower output error, and the chunk the
// mix only where it is better on the held-out rows (heldOutBetter).
func (j *bufferJob) gptqInt8(q8 []int8, sc []float32, zp []int64, x []float32, cols int) error {
	release, err := j.holdFactor(0)
	if err != nil {
		return err
	}
	defer release()
	e := j.fe
	if e == nil || e.f.N != cols {
		return nil
	}
	rows := len(x) / cols
	alt := make([]int8, len(q8))
	ea, eb := make([]float64, rows), make([]float64, rows)
	quant.GPTQRowsInt8(alt, sc, zp, x, cols, j.req.sc.symmetric, e.f, eb)
	a := make([]float32, len(x))
	quant.DequantizeInt8(a, q8, []int{rows, cols}, 0, sc, zp)
	e.f.RowObjectives(ea, x, a, e.rows)
	for r := range rows {
		if eb[r] >= ea[r] {
			copy(alt[r*cols:(r+1)*cols], q8[r*cols:(r+1)*cols])
		}
	}
	j.gptqChunks++
	if e.heldOutBetter(x, a, cols, func(got []float32) { quant.DequantizeInt8(got, alt, []int{rows, cols}, 0, sc, zp) }) {
		copy(q8, alt)
		j.gptqKept++
	}
	return nil
}

// gptqWholeInt8 re-rounds the int8 codes q8 of a weight quantized as one
// unit (nearest rounding of x against the job's scales, one per output
// channel or one for the tensor) with error compensation, as gptqInt8 does
// a FULLY_CONNECTED weight's rows a chunk at a time: a BATCH_MATMUL right
// operand one batch's matrix at a time under its own factor, each output
// channel a row of k inputs (a column of the [k, n] matrix without adj_y);
// a FULLY_CONNECTED weight with one scale for the tensor as its rows.
func (j *bufferJob) gptqWholeInt8(q8 []int8, x []float32) error {
	v := j.gptq.bmm
	if v == nil { // a FULLY_CONNECTED weight [n, k]
		v = &bmmView{batches: 1, k: j.gptq.cols, n: len(x) / j.gptq.cols, adjY: true}
	}
	sc, zp := make([]float32, v.n), make([]int64, v.n)
	for c := range v.n {
		i := min(c, len(j.scales)-1)
		sc[c], zp[c] = j.scales[i], j.zeroPoints[i]
	}
	size := v.n * v.k
	var tw []float32 // a [k, n] batch's matrix as rows of k
	var tq []int8
	if !v.adjY {
		tw, tq = make([]float32, size), make([]int8, size)
	}
	for b := range v.batches {
		// With adj_y the batch's rows are the output channels already.
		w, q := x[b*size:(b+1)*size], q8[b*size:(b+1)*size]
		qb := q
		if !v.adjY {
			quant.Transpose(tw, w, v.k, v.n)
			quant.Transpose(tq, q, v.k, v.n)
			w, q = tw, tq
		}
		release, err := j.holdFactor(b)
		if err != nil {
			return err
		}
		err = j.gptqInt8(q, sc, zp, w, v.k)
		release()
		if err != nil {
			return err
		}
		if !v.adjY {
			quant.Transpose(qb, q, v.n, v.k)
		}
	}
	return nil
}

// calibration is the stage's calibration settings, or the defaults.
func (q *Quantize) calibration() *config.Calibration {
	if q.Calibration != nil {
		return q.Calibration
	}
	return config.DefaultCalibration()
}

// gptqMemory estimates, without running the calibration pass, the memory
// the gptq jobs of a quantize run hold beyond the weights' own
// (pipeline.Plan.CalibrationBytes): the calibration rows of every
// activation they read, at most cal's samples of each (calib.PlanPass), and
// the factors, of which jobs hold at most factorMemory (two at once in
// practice) and keep factorBudget idle. The 7B model: 1.48 GB of rows and
// 1.07 GB of factors, against 2.52 GB measured at the peak with the
// weights' part (METHODS.md §4).
func gptqMemory(m *tflite.Model, cal *config.Calibration, jobs []*bufferJob) (rowBytes, factorBytes int64, err error) {
	type act struct{ sg, tensor, w int }
	seen := map[act]bool{}
	var rows []act
	maxCols := 0
	for _, j := range jobs {
		if !j.req.sc.gptq() {
			continue
		}
		cols := 0
		for _, g := range j.tensors {
			for _, u := range g.uses {
				op := m.Meta.Subgraphs[u.sg].Operators[u.op]
				if u.input != 1 || len(op.Inputs) < 2 || op.Inputs[0] < 0 {
					continue
				}
				w := m.Meta.Subgraphs[u.sg].Tensors[op.Inputs[1]]
				switch {
				case u.code == fb.BuiltinOperatorFULLY_CONNECTED && len(w.Shape) == 2:
					cols = max(cols, int(w.Shape[1]))
				case u.code == fb.BuiltinOperatorBATCH_MATMUL:
					v := bmmViewOf(m, []*weightUse{u}, j.shape)
					if v == nil {
						continue
					}
					cols = max(cols, v.k)
				default:
					continue
				}
				// A BATCH_MATMUL's rows are kept per batch of its weight.
				a := act{u.sg, int(op.Inputs[0]), -1}
				if u.code == fb.BuiltinOperatorBATCH_MATMUL {
					a.w = int(op.Inputs[1])
				}
				if !seen[a] {
					seen[a] = true
					rows = append(rows, a)
				}
			}
		}
		maxCols = max(maxCols, cols)
	}
	if len(rows) == 0 {
		return 0, 0, nil
	}
	size, err := calib.PlanPass(m, cal)
	if err != nil {
		return 0, 0, err
	}
	most := calib.PassSize{}
	for _, p := range size {
		most = calib.PassSize{Samples: max(most.Samples, p.Samples), Seq: max(most.Seq, p.Seq)}
	}
	var total int64
	for _, a := range rows {
		p, ok := size[a.sg]
		if !ok {
			p = most // a subgraph another op runs
		}
		t := m.Meta.Subgraphs[a.sg].Tensors[a.tensor]
		n := int64(1)
		lhs := make([]int, len(t.Shape))
		for d, v := range t.Shape {
			if d < len(t.ShapeSignature) && t.ShapeSignature[d] < 0 {
				v = int32(max(1, p.Seq)) // the dynamic sequence dimension
			}
			lhs[d] = int(v)
			n *= int64(max(1, v))
		}
		if a.w >= 0 && len(lhs) >= 2 {
			// Every output batch keeps the left rows it multiplies.
			ws := m.Meta.Subgraphs[a.sg].Tensors[a.w].Shape
			wb := make([]int, max(0, len(ws)-2))
			for d := range wb {
				wb[d] = int(ws[d])
			}
			if batch, _, _, ok := interp.BatchPairs(lhs[:len(lhs)-2], wb); ok {
				out, in := int64(1), int64(1)
				for _, d := range batch {
					out *= int64(d)
				}
				for _, d := range lhs[:len(lhs)-2] {
					in *= int64(max(1, d))
				}
				n = n / in * out
			}
		}
		total += 4 * n * int64(p.Samples)
	}
	f := quant.GPTQFactorBytes(maxCols)
	return total, min(factorMemory, 2*f) + min(factorBudget, f), nil
}
