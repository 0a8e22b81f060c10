// Package calib gathers the activation statistics of `scales: calibrated`:
// the float model runs on the calibration inputs (generated as qpipe eval
// generates them, from evaluate.CalibrationSeed on, or the first lines of
// an inputs file in qpipe eval's format) through the reference
// interpreter, and for every FULLY_CONNECTED weight the per-column mean
// and variance of its input activation (input 0, rows flattened) are
// gathered; the int4 scale search then minimises each output row's
// expected error under them (quant.SearchBlocksInt4). A weight read by
// several FULLY_CONNECTEDs pools their inputs.
//
// The statistics are cached on disk (internal/cache, kind "calibration"),
// keyed by the model's sha256, the calibration settings and the
// definition of the statistics (Definition), and in memory for the
// process: the branches of a multi-recipe job, the budget's measurements
// and later runs of the same job reuse them.
package calib

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
	"github.com/qpipe/qpipe/internal/progress"
	"github.com/qpipe/qpipe/internal/quant"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// Definition names what the statistics are; it is part of every cache
// key, so that a change to what is gathered (or how) is a new key and
// never reads statistics of the old definition.
const Definition = "fc-input-mean-var/1"

// statsFormat versions the cache files' layout.
const statsFormat = 1

// Key identifies a weight: its subgraph and tensor index.
type Key struct{ Subgraph, Tensor int }

// Stats are the statistics of one model, by weight tensor.
type Stats map[Key]*quant.ChannelStats

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
	stats Stats
	err   error
}

// CacheKey is the key of the statistics of the model whose sha256 is
// modelSum under cal (inputsSum: the sha256 of cal.Inputs, or those of
// cal.Text and cal.Tokenizer, when set).
func CacheKey(modelSum string, cal *config.Calibration, inputsSum string) string {
	samples := "auto"
	if cal.Samples > 0 {
		samples = fmt.Sprint(cal.Samples)
	}
	key := fmt.Sprintf("def=%s model=%s samples=%s seq=%d", Definition, modelSum, samples, cal.Seq)
	if cal.Inputs != "" || cal.Text != "" {
		key += " inputs=" + inputsSum
	}
	return key
}

// Get returns the statistics of m under cal, whose key is key (CacheKey),
// from the caches or by running m (Run).
func Get(ctx context.Context, m *tflite.Model, key string, cal *config.Calibration, log zerolog.Logger) (Stats, error) {
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
		e.stats, e.err = Run(ctx, m, cal, log)
		if e.err != nil {
			return
		}
		log.Info().Int("weights", len(e.stats)).Str("cache", file).Msg("calibration: ran the float model")
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

// forget empties the in-memory cache (tests: a fresh process).
func forget() {
	statsMu.Lock()
	statsMem = map[string]*statsOnce{}
	statsMu.Unlock()
}

func cacheFile(key string) string {
	return cache.File(cache.Dir(), "calibration", key, statsFormat, "gob")
}

// readStats reads a cache file; any problem (missing, stale, corrupt) is an
// error, and the caller recomputes.
func readStats(file, key string) (Stats, error) {
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
	out := Stats{}
	for _, w := range f.Weights {
		if len(w.Mean) != len(w.Var) || !finiteStats(w.Mean, w.Var) {
			return nil, errNoStat
		}
		out[Key{w.Subgraph, w.Tensor}] = &quant.ChannelStats{Mean: w.Mean, Var: w.Var}
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
func writeStats(file, key string, st Stats) error {
	f := statsFile{Format: statsFormat, Key: key}
	for k, s := range st {
		f.Weights = append(f.Weights, statsEntry{Subgraph: k.Subgraph, Tensor: k.Tensor, Mean: s.Mean, Var: s.Var})
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

// batchSize bounds how many samples one pass holds the activations of.
const batchSize = 32

// The number of samples when the settings leave it to the model
// (config.Calibration.Samples 0): enough for autoTokens token positions
// per FULLY_CONNECTED input, within [autoMin, autoMax]; autoMax for a
// model without token inputs. Measured (TestMeasureSettings) on the
// generated 1 GB decoder and the tiny decoder: 512 positions keep most of
// the calibrated scales' gain over min-max, and cost 1/8 of the former
// 64 samples × 64 tokens on the 1 GB decoder.
const (
	autoTokens = 512
	autoMin    = 8
	autoMax    = 64
)

// SamplesFor is the number of samples a calibration with samples
// (0: automatic) runs on layout l.
func SamplesFor(samples int, l *evaluate.Layout) int {
	if samples > 0 {
		return samples
	}
	tokens := 0
	for _, in := range l.Inputs {
		if in.Vocab > 0 {
			n := 1
			for _, d := range in.Shape {
				n *= d
			}
			tokens = max(tokens, n)
		}
	}
	if tokens == 0 {
		return autoMax
	}
	return min(autoMax, max(autoMin, (autoTokens+tokens-1)/tokens))
}

// Run runs m on the calibration inputs of cal and gathers the statistics
// of every FULLY_CONNECTED weight's input, reporting its progress (one
// count per operator run for a batch) on log.
//
// The samples run in batches (interp.RunBatch), operator by operator, so
// each weight is read once per batch, not once per sample, and what is
// held is one batch's live activations. The pass stops before the last
// FULLY_CONNECTED of the signature's subgraph runs, once its input is
// seen (the logits layer of a decoder, a quarter of its work, computes
// nothing the statistics need). A weight's sums add its inputs operator
// by operator, samples in order.
func Run(ctx context.Context, m *tflite.Model, cal *config.Calibration, log zerolog.Logger) (Stats, error) {
	sums := map[Key]*statSums{}
	top := -1 // the subgraph whose FULLY_CONNECTEDs the before hook sees
	err := RunPass(ctx, m, cal, log, Pass{
		Step: "calibration",
		Observe: func(ev interp.OpEvent) {
			if ev.Subgraph != top {
				observeFC(m, ev, sums)
			}
		},
		Stop: func(sig interp.Signature) int {
			top = sig.Subgraph
			return lastNeeded(m, sig.Subgraph, false)
		},
		Before: func(_ int, ev interp.OpEvent) {
			if ev.Code == fb.BuiltinOperatorFULLY_CONNECTED {
				observeFC(m, ev, sums)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	out := Stats{}
	for k, s := range sums {
		out[k] = s.stats()
	}
	return out, nil
}

// Pass is what one calibration pass (RunPass) does besides running the
// model: hooks called as the samples run. Every hook is optional.
type Pass struct {
	// Step names the pass in progress reports ("calibration").
	Step string
	// Observe is interp.Options.Observe: every operator of every subgraph
	// after it ran, each sample's event in turn.
	Observe func(ev interp.OpEvent)
	// Stop returns the operator of the signature's subgraph before which
	// the pass stops (-1: it runs to the end). It is called once per
	// signature, before its samples run.
	Stop func(sig interp.Signature) int
	// Before sees each operator of the signature's subgraph before it runs
	// (inputs only), each sample's event in turn; sample is the sample's
	// index among the signature's samples.
	Before func(sample int, ev interp.OpEvent)
	// Inputs sees each sample's inputs before it runs (sample is its index
	// among the signature's samples).
	Inputs func(sig interp.Signature, sample int, inputs map[string]*interp.Tensor)
}

// RunPass runs every signature of m on the calibration inputs of cal
// (generated, or the lines of cal.Inputs) in batches through the reference
// interpreter (interp.RunBatch), calling p's hooks, and reports progress
// (one count per operator run for a batch) on log. A file that does not
// fit a signature is an error naming the file, line and input.
func RunPass(ctx context.Context, m *tflite.Model, cal *config.Calibration, log zerolog.Logger, p Pass) error {
	var samples []*evaluate.Sample
	if cal.Inputs != "" {
		f, err := os.Open(cal.Inputs)
		if err != nil {
			return fmt.Errorf("%s: quantize.calibration.inputs: %w", cal.P, err)
		}
		samples, err = evaluate.ParseSamples(f, cal.Inputs)
		f.Close()
		if err != nil {
			return err
		}
		if len(samples) == 0 {
			return fmt.Errorf("%s: quantize.calibration.inputs: %s has no sample", cal.P, cal.Inputs)
		}
		limit := cal.Samples
		if limit <= 0 {
			limit = autoMax
		}
		samples = samples[:min(len(samples), limit)]
	}
	in, err := interp.New(m, interp.Options{Observe: p.Observe})
	if err != nil {
		return fmt.Errorf("calibration: %w (calibration, calibrated and gptq scales need a model the reference interpreter runs; use scales: search)", err)
	}
	sigs := in.Signatures()
	layouts := make([]*evaluate.Layout, len(sigs))
	counts := make([]int, len(sigs))
	total := 0 // operators × batches
	sigSamples := make([][]*evaluate.Sample, len(sigs))
	var textIDs []int
	for i, sig := range sigs {
		l, err := planSignature(m, sig, cal)
		if err != nil {
			return err
		}
		layouts[i], counts[i] = l, SamplesFor(cal.Samples, l)
		sigSamples[i] = samples
		if cal.Text != "" {
			if textIDs == nil {
				if textIDs, err = evaluate.LayoutText(l, cal.Text, cal.Tokenizer, cal.Bundle); err != nil {
					return fmt.Errorf("%s: quantize.calibration.text: %w", cal.P, err)
				}
			}
			sigSamples[i] = evaluate.WindowSamples(textIDs, l.Seq, evaluate.NoBOS)
			if len(sigSamples[i]) == 0 {
				return fmt.Errorf("%s: quantize.calibration.text: %s gives %d tokens, fewer than one window of %d", cal.P, cal.Text, len(textIDs), l.Seq)
			}
			sigSamples[i] = sigSamples[i][:min(len(sigSamples[i]), counts[i])]
		}
		if sigSamples[i] != nil {
			counts[i] = len(sigSamples[i])
		}
		// Progress counts operators run for a batch.
		ops := len(m.Meta.Subgraphs[sig.Subgraph].Operators)
		if p.Stop != nil {
			if stop := p.Stop(sig); stop >= 0 {
				ops = stop + 1
			}
		}
		total += ops * ((counts[i] + batchSize - 1) / batchSize)
	}
	prog := progress.Start(log, p.Step, int64(total), "operators")
	defer prog.Done()
	for i, sig := range sigs {
		l, n, samples := layouts[i], counts[i], sigSamples[i]
		file := cal.Inputs
		if cal.Text != "" {
			file = cal.Text
		}
		stop := -1
		if p.Stop != nil {
			stop = p.Stop(sig)
		}
		base := 0 // the first sample of the batch
		before := func(k int, ev interp.OpEvent) bool {
			if k == 0 && ev.Subgraph == sig.Subgraph {
				prog.Add(1)
			}
			if p.Before != nil {
				p.Before(base+k, ev)
			}
			return ev.Operator != stop
		}
		for lo := 0; lo < n; lo += batchSize {
			base = lo
			batch := make([]map[string]*interp.Tensor, 0, min(batchSize, n-lo))
			for k := lo; k < min(n, lo+batchSize); k++ {
				var inputs map[string]*interp.Tensor
				if samples != nil {
					// The file's lengths rule its token inputs (seq 0).
					inputs, err = l.Bind(samples[k], file, evaluate.CalibrationSeed, k, 0)
				} else {
					inputs, err = l.Generate(evaluate.CalibrationSeed, k)
				}
				if err != nil {
					return fmt.Errorf("calibration: %w", err)
				}
				if p.Inputs != nil {
					p.Inputs(sig, k, inputs)
				}
				batch = append(batch, inputs)
			}
			if _, err := in.RunBatch(ctx, sig.Key, batch, before); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("calibration, signature %q, samples %d-%d: %w", sig.Key, lo, lo+len(batch)-1, err)
			}
		}
	}
	return nil
}

// constantData says whether tensor t of subgraph sg holds data in the file.
func constantData(m *tflite.Model, sg, t int) bool {
	ts := m.Meta.Subgraphs[sg].Tensors
	return t >= 0 && t < len(ts) && m.HasData(ts[t])
}

// lastNeeded is the operator of subgraph sg before which a calibration
// pass stops: its last FULLY_CONNECTED (or, with bmm, BATCH_MATMUL with a
// constant right operand) when no later operator runs another subgraph
// (which may hold more), else -1 (the pass runs to the end).
func lastNeeded(m *tflite.Model, sg int, bmm bool) int {
	ops := m.Meta.Subgraphs[sg].Operators
	for i := len(ops) - 1; i >= 0; i-- {
		switch m.OpCode(ops[i]) {
		case fb.BuiltinOperatorFULLY_CONNECTED:
			return i
		case fb.BuiltinOperatorBATCH_MATMUL:
			if in := ops[i].Inputs; bmm && len(in) > 1 && constantData(m, sg, int(in[1])) {
				return i
			}
		case fb.BuiltinOperatorIF, fb.BuiltinOperatorWHILE, fb.BuiltinOperatorCALL_ONCE,
			fb.BuiltinOperatorSTABLEHLO_WHILE, fb.BuiltinOperatorSTABLEHLO_CASE, fb.BuiltinOperatorSTABLEHLO_COMPOSITE:
			return -1
		}
	}
	return -1
}

// stats are the mean and variance of the columns summed.
func (s *statSums) stats() *quant.ChannelStats {
	st := &quant.ChannelStats{Mean: make([]float32, len(s.sum)), Var: make([]float32, len(s.sum))}
	for j := range s.sum {
		mean := s.sum[j] / float64(s.n)
		st.Mean[j] = float32(mean)
		st.Var[j] = float32(max(0, s.sq[j]/float64(s.n)-float64(mean*mean)))
	}
	return st
}

// planSignature is the input layout a calibration pass of cal runs sig at.
func planSignature(m *tflite.Model, sig interp.Signature, cal *config.Calibration) (*evaluate.Layout, error) {
	l, err := evaluate.PlanInputs(sig, modelinput.TokenInputs(m.Meta, sig.Subgraph), seqFor(sig, m, cal.Seq))
	if err != nil {
		return nil, fmt.Errorf("calibration: %w", err)
	}
	return l, nil
}

// PassSize is what a calibration pass runs one signature's subgraph on,
// planned without running it.
type PassSize struct {
	// Samples is at most the samples the pass runs (with an inputs file
	// or text, fewer when the file holds fewer).
	Samples int
	// Seq is the sequence length of the token inputs (0: none).
	Seq int
}

// PlanPass returns, by subgraph of each signature of m, the size of the
// calibration pass of cal (RunPass's plan, nothing run): for estimates of
// the memory the pass's kept rows take.
func PlanPass(m *tflite.Model, cal *config.Calibration) (map[int]PassSize, error) {
	in, err := interp.New(m, interp.Options{})
	if err != nil {
		return nil, fmt.Errorf("calibration: %w", err)
	}
	out := map[int]PassSize{}
	for _, sig := range in.Signatures() {
		l, err := planSignature(m, sig, cal)
		if err != nil {
			return nil, err
		}
		n := SamplesFor(cal.Samples, l)
		if cal.Inputs != "" && cal.Samples <= 0 {
			n = autoMax // RunPass's limit on an inputs file's samples
		}
		p := out[sig.Subgraph]
		out[sig.Subgraph] = PassSize{Samples: max(p.Samples, n), Seq: max(p.Seq, l.Seq)}
	}
	return out, nil
}

// seqFor is the sequence length to run sig at: seq where one of its token
// inputs has a dynamic sequence (last) dimension, else 0, the model's own
// (a fixed length wins over the setting).
func seqFor(sig interp.Signature, m *tflite.Model, seq int) int {
	tokens := modelinput.TokenInputs(m.Meta, sig.Subgraph)
	for _, io := range sig.Inputs {
		if tokens[io.Tensor] > 0 && len(io.Shape) > 0 && io.Shape[len(io.Shape)-1] < 0 {
			return seq
		}
	}
	return 0
}

// fcInput is a FULLY_CONNECTED's float input as rows of its 2-D weight's
// columns; ok is false for any other op or layout.
func fcInput(m *tflite.Model, ev interp.OpEvent) (x []float32, cols int, ok bool) {
	if ev.Code != fb.BuiltinOperatorFULLY_CONNECTED || len(ev.InputTensors) < 2 || len(ev.Inputs) < 1 || ev.Inputs[0] == nil || ev.InputTensors[1] < 0 {
		return nil, 0, false
	}
	w := m.Meta.Subgraphs[ev.Subgraph].Tensors[ev.InputTensors[1]]
	if len(w.Shape) != 2 || w.Shape[1] <= 0 || ev.Inputs[0].Type != fb.TensorTypeFLOAT32 {
		return nil, 0, false
	}
	cols = int(w.Shape[1])
	x = ev.Inputs[0].F32
	return x, cols, len(x)%cols == 0
}

// observeFC adds a FULLY_CONNECTED's input rows to its weight's sums.
func observeFC(m *tflite.Model, ev interp.OpEvent, sums map[Key]*statSums) {
	x, cols, ok := fcInput(m, ev)
	if !ok {
		return
	}
	k := Key{ev.Subgraph, ev.InputTensors[1]}
	s := sums[k]
	if s == nil {
		s = &statSums{sum: make([]float64, cols), sq: make([]float64, cols)}
		sums[k] = s
	}
	if len(s.sum) != cols {
		return
	}
	s.add(x, cols)
}

// add adds rows of cols columns.
func (s *statSums) add(x []float32, cols int) {
	for r := 0; r < len(x); r += cols {
		for j, v := range x[r : r+cols] {
			s.sum[j] += float64(v)
			s.sq[j] += float64(float64(v) * float64(v))
		}
		s.n++
	}
}
