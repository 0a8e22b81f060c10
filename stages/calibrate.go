package stages

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/cache"
	"github.com/qpipe/qpipe/internal/evaluate"
	"github.com/qpipe/qpipe/internal/interp"
	"github.com/qpipe/qpipe/internal/modelinput"
	"github.com/qpipe/qpipe/internal/quant"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
	"github.com/qpipe/qpipe/pipeline"
)

// Calibration for `scales: calibrated`: the float model runs on
// Calibration.Samples inputs (generated as qpipe eval generates them, or
// the first lines of an inputs file in qpipe eval's format) through the
// reference interpreter, and for
// every FULLY_CONNECTED weight the per-column mean and variance of its input
// activation (input 0, rows flattened) are gathered; the int4 scale search
// then minimises each output row's expected error under them
// (quant.SearchBlocksInt4). A weight read by several FULLY_CONNECTEDs pools
// their inputs.
//
// The statistics are cached on disk, keyed by the model's sha256 and the
// calibration settings, in $XDG_CACHE_HOME/qpipe (else ~/.cache/qpipe;
// QPIPE_CACHE_DIR overrides both), and in memory for the process: the
// branches of a multi-recipe job and later runs of the same job reuse them.

// calibrationSeed is the first seed of the random calibration inputs: far
// from the small seeds tests and `qpipe eval` use, so that what a
// calibrated model is measured on is not what it was calibrated on.
const calibrationSeed = 1 << 20

// statsFormat versions the cache files.
const statsFormat = 1

// weightStats are the statistics of one model, by weight tensor.
type weightStats map[tensorKey]*quant.ChannelStats

// statsFile is the cached form.
type statsFile struct {
	Format  int
	Key     string
	Weights []statsEntry
}

type statsEntry struct {
	Subgraph, Tensor int
	Mean, Var        []float32
}

var (
	statsMu   sync.Mutex
	statsMem  = map[string]*statsOnce{}
	errNoStat = errors.New("no statistics")
)

type statsOnce struct {
	once  sync.Once
	stats weightStats
	err   error
}

// calibrationStats returns the activation statistics of the model at path
// (loaded as m, still float), from the caches or by running it.
func calibrationStats(ctx context.Context, m *tflite.Model, path string, cal *config.Calibration, log zerolog.Logger) (weightStats, error) {
	if cal == nil {
		cal = config.DefaultCalibration()
	}
	key, err := calibrationKey(path, cal)
	if err != nil {
		return nil, err
	}
	return keyedStats(ctx, m, key, cal, log)
}

// keyedStats is calibrationStats for a cal that is set and the key
// calibrationKey gives for it.
func keyedStats(ctx context.Context, m *tflite.Model, key string, cal *config.Calibration, log zerolog.Logger) (weightStats, error) {
	statsMu.Lock()
	e := statsMem[key]
	if e == nil {
		e = &statsOnce{}
		statsMem[key] = e
	}
	statsMu.Unlock()
	first := false
	e.once.Do(func() {
		first = true
		file := cacheFile(key)
		if e.stats, e.err = readStats(file, key); e.err == nil {
			log.Info().Str("cache", file).Msg("calibration statistics from the cache")
			return
		}
		e.stats, e.err = runCalibration(ctx, m, cal)
		if e.err != nil {
			return
		}
		log.Info().Int("samples", cal.Samples).Int("weights", len(e.stats)).Str("cache", file).Msg("calibration: ran the float model")
		if file != "" {
			if err := writeStats(file, key, e.stats); err != nil {
				log.Warn().Err(err).Msg("calibration statistics not cached")
			}
		}
	})
	if !first && e.err == nil {
		log.Info().Msg("calibration statistics reused (gathered earlier in this process)")
	}
	if e.err != nil {
		statsMu.Lock()
		delete(statsMem, key) // a cancelled or failed pass is not remembered
		statsMu.Unlock()
	}
	return e.stats, e.err
}

// calibrationKey identifies the statistics of the model at path under
// cal: what they are cached by.
func calibrationKey(path string, cal *config.Calibration) (string, error) {
	sum, err := FileSHA256(path)
	if err != nil {
		return "", err
	}
	key := fmt.Sprintf("model=%s samples=%d seq=%d", sum, cal.Samples, cal.Seq)
	if cal.Inputs != "" {
		in, err := FileSHA256(cal.Inputs)
		if err != nil {
			return "", fmt.Errorf("%s: quantize.calibration.inputs: %w", cal.P, err)
		}
		key += " inputs=" + in
	}
	return key, nil
}

func cacheFile(key string) string {
	return cache.File(cache.Dir(), "calibration", key, statsFormat, "gob")
}

// readStats reads a cache file; any problem (missing, stale, corrupt) is an
// error, and the caller recomputes.
func readStats(file, key string) (weightStats, error) {
	if file == "" {
		return nil, errNoStat
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var f statsFile
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&f); err != nil {
		return nil, err
	}
	if f.Format != statsFormat || f.Key != key {
		return nil, errNoStat
	}
	out := weightStats{}
	for _, w := range f.Weights {
		if len(w.Mean) != len(w.Var) || !finiteStats(w.Mean, w.Var) {
			return nil, errNoStat
		}
		out[tensorKey{w.Subgraph, w.Tensor}] = &quant.ChannelStats{Mean: w.Mean, Var: w.Var}
	}
	return out, nil
}

// finiteStats reports whether every mean is finite and every variance
// finite and not negative (what the search assumes).
func finiteStats(mean, v []float32) bool {
	for j := range mean {
		m, s := float64(mean[j]), float64(v[j])
		if math.IsNaN(m) || math.IsInf(m, 0) || !(s >= 0) || math.IsInf(s, 0) {
			return false
		}
	}
	return true
}

// writeStats writes the cache file atomically (a reader never sees half).
func writeStats(file, key string, st weightStats) error {
	f := statsFile{Format: statsFormat, Key: key}
	for k, s := range st {
		f.Weights = append(f.Weights, statsEntry{Subgraph: k.sg, Tensor: k.tensor, Mean: s.Mean, Var: s.Var})
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&f); err != nil {
		return err
	}
	return cache.Write(file, buf.Bytes())
}

// statSums accumulates one weight's input columns.
type statSums struct {
	sum, sq []float64
	n       int
}

// runCalibration runs the model on the calibration inputs and gathers the
// statistics of every FULLY_CONNECTED weight's input.
func runCalibration(ctx context.Context, m *tflite.Model, cal *config.Calibration) (weightStats, error) {
	var samples []*evaluate.Sample
	if cal.Inputs != "" {
		f, err := os.Open(cal.Inputs)
		if err != nil {
			return nil, fmt.Errorf("%s: quantize.calibration.inputs: %w", cal.P, err)
		}
		samples, err = evaluate.ParseSamples(f, cal.Inputs)
		f.Close()
		if err != nil {
			return nil, err
		}
		if len(samples) == 0 {
			return nil, fmt.Errorf("%s: quantize.calibration.inputs: %s has no sample", cal.P, cal.Inputs)
		}
		samples = samples[:min(len(samples), cal.Samples)]
	}
	sums := map[tensorKey]*statSums{}
	in, err := interp.New(m, interp.Options{Observe: func(ev interp.OpEvent) { observeFC(m, ev, sums) }})
	if err != nil {
		return nil, fmt.Errorf("calibration: %w (calibrated scales need a model the reference interpreter runs; use scales: search)", err)
	}
	for _, sig := range in.Signatures() {
		l, err := evaluate.PlanInputs(sig, modelinput.TokenInputs(m.Meta, sig.Subgraph), calibrationSeq(sig, m, cal.Seq))
		if err != nil {
			return nil, fmt.Errorf("calibration: %w", err)
		}
		n := cal.Samples
		if samples != nil {
			n = len(samples)
		}
		for k := range n {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			var inputs map[string]*interp.Tensor
			if samples != nil {
				// The file's lengths rule its token inputs (seq 0).
				inputs, err = l.Bind(samples[k], cal.Inputs, calibrationSeed, k, 0)
			} else {
				inputs, err = l.Generate(calibrationSeed, k)
			}
			if err != nil {
				return nil, fmt.Errorf("calibration: %w", err)
			}
			if _, err := in.Run(ctx, sig.Key, inputs); err != nil {
				return nil, fmt.Errorf("calibration, signature %q, sample %d: %w", sig.Key, k, err)
			}
		}
	}
	out := weightStats{}
	for k, s := range sums {
		st := &quant.ChannelStats{Mean: make([]float32, len(s.sum)), Var: make([]float32, len(s.sum))}
		for j := range s.sum {
			mean := s.sum[j] / float64(s.n)
			st.Mean[j] = float32(mean)
			st.Var[j] = float32(max(0, s.sq[j]/float64(s.n)-float64(mean*mean)))
		}
		out[k] = st
	}
	return out, nil
}

// calibrationSeq is the sequence length to run sig at: seq where one of
// its token inputs has a dynamic sequence (last) dimension, else 0, the
// model's own (a fixed length wins over the setting).
func calibrationSeq(sig interp.Signature, m *tflite.Model, seq int) int {
	tokens := modelinput.TokenInputs(m.Meta, sig.Subgraph)
	for _, io := range sig.Inputs {
		if tokens[io.Tensor] > 0 && len(io.Shape) > 0 && io.Shape[len(io.Shape)-1] < 0 {
			return seq
		}
	}
	return 0
}

// observeFC adds a FULLY_CONNECTED's input rows to its weight's sums.
func observeFC(m *tflite.Model, ev interp.OpEvent, sums map[tensorKey]*statSums) {
	if ev.Code != fb.BuiltinOperatorFULLY_CONNECTED || len(ev.InputTensors) < 2 || len(ev.Inputs) < 1 || ev.Inputs[0] == nil || ev.InputTensors[1] < 0 {
		return
	}
	w := m.Meta.Subgraphs[ev.Subgraph].Tensors[ev.InputTensors[1]]
	if len(w.Shape) != 2 || w.Shape[1] <= 0 || ev.Inputs[0].Type != fb.TensorTypeFLOAT32 {
		return
	}
	cols := int(w.Shape[1])
	x := ev.Inputs[0].F32
	if len(x)%cols != 0 {
		return
	}
	k := tensorKey{ev.Subgraph, ev.InputTensors[1]}
	s := sums[k]
	if s == nil {
		s = &statSums{sum: make([]float64, cols), sq: make([]float64, cols)}
		sums[k] = s
	}
	if len(s.sum) != cols {
		return
	}
	for r := 0; r < len(x); r += cols {
		for j, v := range x[r : r+cols] {
			s.sum[j] += float64(v)
			s.sq[j] += float64(float64(v) * float64(v))
		}
		s.n++
	}
}

// calibrate returns the activation statistics when some request asks for
// calibrated scales, else nil. It runs before the tables change, on the
// float model.
func (q *Quantize) calibrate(ctx context.Context, s *pipeline.State, reqs []request) (weightStats, error) {
	need := false
	for _, r := range reqs {
		need = need || (r.sc != nil && r.sc.scales == config.ScalesCalibrated)
	}
	if !need {
		return nil, nil
	}
	if q.stats != nil {
		return q.stats, nil
	}
	ms, err := model(s)
	if err != nil {
		return nil, err
	}
	return calibrationStats(ctx, ms.m, ms.path, q.Calibration, s.Log)
}

// of returns the statistics for a calibrated job's weight (nil for other
// jobs and for weights no FULLY_CONNECTED read during calibration).
func (st weightStats) of(j *bufferJob) *quant.ChannelStats {
	if st == nil || j.req.sc.scales != config.ScalesCalibrated || len(j.shape) != 2 {
		return nil
	}
	for _, g := range j.tensors {
		if c := st[g.original()]; c != nil && len(c.Mean) == j.shape[1] {
			return c
		}
	}
	return nil
}
