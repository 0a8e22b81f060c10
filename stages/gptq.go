package stages

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/calib"
	"github.com/qpipe/qpipe/internal/quant"
	"github.com/qpipe/qpipe/internal/tflite/fb"
	"github.com/qpipe/qpipe/pipeline"
)

// `scales: gptq` (config.ScalesGPTQ): error-compensating rounding of
// FULLY_CONNECTED weights under their input covariance (quant's GPTQ
// kernels, internal/calib's rows). This file finds each job's covariance
// and keeps its factor while the weights that share it are written.

// gptqSource is where a gptq job's covariance comes from.
type gptqSource struct {
	in *calib.Inputs
	w  calib.Key
	// weightError adds the identity, scaled to the mean input energy, to
	// the covariance: a reader that is not a FULLY_CONNECTED (a tied
	// embedding's lookup) uses the weights themselves, so their own error
	// counts as much as one input's.
	weightError bool
	readers     int // FULLY_CONNECTED inputs combined
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
	cal := q.Calibration
	if cal == nil {
		cal = config.DefaultCalibration()
	}
	key, err := calibrationKey(ms, cal)
	if err != nil {
		return nil, err
	}
	in, err := calib.GetInputs(ctx, ms.m, key, cal, s.Log)
	if err != nil {
		return nil, fmt.Errorf("scales: gptq: %w", err)
	}
	return in, nil
}

// gptqSourceFor finds job j's covariance in in (nil: none reached it; the
// job then rounds to nearest).
func gptqSourceFor(in *calib.Inputs, j *bufferJob) *gptqSource {
	if in == nil || !j.req.sc.gptq() || len(j.shape) != 2 {
		return nil
	}
	var src *gptqSource
	other := false
	for _, g := range j.tensors {
		o := g.original()
		if k := (calib.Key{Subgraph: o.sg, Tensor: o.tensor}); src == nil && in.Has(k) {
			src = &gptqSource{in: in, w: k, readers: in.Readers(k)}
		}
		for _, u := range g.uses {
			other = other || u.code != fb.BuiltinOperatorFULLY_CONNECTED
		}
	}
	if src != nil {
		src.weightError = other
	}
	return src
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
			p.Notes = append(p.Notes, fmt.Sprintf("%s: gptq: read by %d FULLY_CONNECTED input(s) and by other ops (a tied embedding): the covariances of the FULLY_CONNECTED inputs are summed and the weight error is added to them with the weight of one input", j.label, g.readers))
		case g.readers > 1:
			p.Notes = append(p.Notes, fmt.Sprintf("%s: gptq: read by %d FULLY_CONNECTED inputs: their covariances are summed", j.label, g.readers))
		}
	}
	if none > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("gptq: %d weight(s) that no calibrated FULLY_CONNECTED input reached are rounded to nearest with gptq's scales", none))
	}
}

// factorEntry is one covariance's factor, computed once.
type factorEntry struct {
	once  sync.Once
	f     *quant.GPTQFactor
	stats *quant.ChannelStats // the same rows' per-column statistics
	rows  [][]float32         // the rows
	err   error
	size  int64
}

// factors keeps the most recent factors (a weight is written a chunk at a
// time, and q/k/v or gate/up share one) within factorBudget bytes.
var factors struct {
	sync.Mutex
	order []string
	byKey map[string]*factorEntry
}

const factorBudget = 768 << 20

// factor returns the job's compensation factor (nil when the job has no
// covariance).
func (j *bufferJob) factor() (*factorEntry, error) {
	g := j.gptq
	if g == nil {
		return nil, nil
	}
	cols := j.shape[1]
	key := fmt.Sprintf("%p %s %v %d", g.in, g.in.HessianKey(g.w), g.weightError, cols)
	factors.Lock()
	if factors.byKey == nil {
		factors.byKey = map[string]*factorEntry{}
	}
	e := factors.byKey[key]
	if e == nil {
		e = &factorEntry{size: 8 * int64(cols) * int64(cols)}
		factors.byKey[key] = e
		factors.order = append(factors.order, key)
		var total int64
		for i := len(factors.order) - 1; i >= 0; i-- {
			k := factors.order[i]
			total += factors.byKey[k].size
			if total > factorBudget && k != key {
				for _, old := range factors.order[:i+1] {
					delete(factors.byKey, old)
				}
				factors.order = append([]string(nil), factors.order[i+1:]...)
				break
			}
		}
	}
	factors.Unlock()
	e.once.Do(func() {
		h := g.in.Hessian(g.w, cols)
		if h == nil {
			e.err = fmt.Errorf("gptq: no calibration input of %d columns", cols)
			return
		}
		rows := g.in.Rows(g.w, cols)
		// The shrinkage is the calibration data's own, measured before
		// the weight's error term is added.
		shrink := quant.ShrinkageDamp(h, cols, rows)
		if g.weightError {
			var tr float64
			for i := range cols {
				tr += h[i*cols+i]
			}
			for i := range cols {
				h[i*cols+i] += tr / float64(cols)
			}
		}
		tokens := 0
		for _, x := range rows {
			tokens += len(x) / cols
		}
		damp := gptqDamp(tokens, cols)
		if os.Getenv("QPIPE_GPTQ_DAMP") == "" {
			damp = max(damp, shrink)
		}
		e.f, e.err = quant.NewGPTQFactor(h, cols, damp)
		e.stats = g.in.Stats(g.w, cols)
		e.rows = g.in.Rows(g.w, cols)
	})
	if e.err != nil {
		return nil, fmt.Errorf("gptq: %w", e.err)
	}
	return e, nil
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
// calibration inputs (the sweep measures its own; RowObjectives the
// other's): compensation is greedy and, with int4's clipping, not always
// better.
func (j *bufferJob) quantizeGPTQ4(dst []byte, scales []uint16, x []float32, cols int) (int, error) {
	e, err := j.factor()
	if err != nil {
		return 0, err
	}
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
	return quant.TinyScales(scales), nil
}

// gptqInt8 re-rounds whole rows of an int8 gptq job (q8: their nearest
// rounding against scales sc and zero points zp) with error compensation,
// each row keeping the rounding of lower output error.
func (j *bufferJob) gptqInt8(q8 []int8, sc []float32, zp []int64, x []float32, cols int) error {
	e, err := j.factor()
	if err != nil || e == nil || e.f.N != cols {
		return err
	}
	rows := len(x) / cols
	alt := make([]int8, len(q8))
	ea, eb := make([]float64, rows), make([]float64, rows)
	quant.GPTQRowsInt8(alt, sc, zp, x, cols, j.req.sc.symmetric, e.f, eb)
	a := make([]float32, len(x))
	quant.DequantizeInt8(a, q8, []int{rows, cols}, 0, sc, zp)
	e.f.RowObjectives(ea, x, a, e.rows)
	for r := range rows {
		if eb[r] < ea[r] {
			copy(q8[r*cols:(r+1)*cols], alt[r*cols:(r+1)*cols])
		}
	}
	return nil
}
