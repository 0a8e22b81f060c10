package static

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/cache"
	"github.com/qpipe/qpipe/internal/calib"
	"github.com/qpipe/qpipe/internal/interp"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// Range estimators: how the samples' ranges of a tensor merge.
const (
	// EstimatorMinMax keeps the smallest minimum and the largest maximum
	// over every sample.
	EstimatorMinMax = "minmax"
	// EstimatorMovingAverage is the reference quantizer's default: the
	// first sample's min and max, then q = 0.95·q + 0.05·sample for each
	// later sample, in sample order (qsv_utils.moving_average_update).
	EstimatorMovingAverage = "moving_average"

	// EstimatorPercentile clips each sample's range to its P-th and
	// (100−P)-th percentiles, then merges the samples as min/max; written
	// "percentile:P" (P in (50, 100]).
	EstimatorPercentile = "percentile"
)

// parseEstimator splits "percentile:P" into the kind and P (100 for the
// other kinds).
func parseEstimator(est string) (kind string, p float64, err error) {
	if est == "" {
		return EstimatorMinMax, 100, nil
	}
	kind, arg, hasArg := strings.Cut(est, ":")
	switch {
	case kind == EstimatorPercentile && hasArg:
		p, err = strconv.ParseFloat(arg, 64)
		if err != nil || !(p > 50 && p <= 100) {
			return "", 0, fmt.Errorf("range estimator %q: the percentile must be a number in (50, 100]", est)
		}
		return kind, p, nil
	case (kind == EstimatorMinMax || kind == EstimatorMovingAverage) && !hasArg:
		return kind, 100, nil
	}
	return "", 0, fmt.Errorf("range estimator %q: want %s, %s or %s:P", est, EstimatorMinMax, EstimatorMovingAverage, EstimatorPercentile)
}

// percentileRange is the (100−p)-th and p-th percentiles of x without
// values at or beyond ±bigValue: the nearest-rank values of the sorted
// finite values.
func percentileRange(x []float32, p float64) (lo, hi float64, clipped, ok bool) {
	v := make([]float32, 0, len(x))
	for _, f := range x {
		if d := float64(f); d > -bigValue && d < bigValue {
			v = append(v, f)
		} else {
			clipped = true
		}
	}
	if len(v) == 0 {
		return 0, 0, clipped, false
	}
	slices.Sort(v)
	k := int(math.Ceil(p/100*float64(len(v)))) - 1
	k = max(0, min(len(v)-1, k))
	return float64(v[len(v)-1-k]), float64(v[k]), clipped, true
}

// smoothing is the moving average's weight of the old value.
const smoothing = 0.95

// bigValue: values at or beyond ±3e38 are left out of a sample's range
// (the reference quantizer's guard against -inf padding constants).
const bigValue = 3e38

// Key names a tensor: its subgraph and index.
type Key struct{ Subgraph, Tensor int }

// Range is the merged range of one tensor.
type Range struct {
	Min, Max float64
	// Samples is how many sample ranges were merged in.
	Samples int
	// Clipped says some sample held values at or beyond ±3e38 (an
	// attention mask's lowest float32), left out of the range.
	Clipped bool
}

// Ranges are the activation ranges of a model.
type Ranges map[Key]*Range

// Definition names what Ranges are; part of the cache key.
const Definition = "activation-range/2"

const rangesFormat = 1

// CacheKey is the key of the ranges of the model whose sha256 is modelSum
// under cal and the estimator (inputsSum: the sha256 of cal.Inputs).
func CacheKey(modelSum string, cal *config.Calibration, inputsSum, estimator string) string {
	return fmt.Sprintf("%s estimator=%s [%s]", Definition, estimator, calib.CacheKey(modelSum, cal, inputsSum))
}

var (
	memMu sync.Mutex
	mem   = map[string]Ranges{}
)

// Get returns the ranges of m under cal and estimator whose key is key
// (CacheKey), from the caches or by running m (Calibrate).
func Get(ctx context.Context, m *tflite.Model, key string, cal *config.Calibration, estimator string, log zerolog.Logger) (Ranges, error) {
	memMu.Lock()
	r := mem[key]
	memMu.Unlock()
	if r != nil {
		return r, nil
	}
	file := cache.File(cache.Dir(), "static-ranges", key, rangesFormat, "json")
	if r, err := readRanges(file, key); err == nil {
		log.Info().Str("cache", file).Msg("activation ranges from the cache")
		remember(key, r)
		return r, nil
	}
	r, err := Calibrate(ctx, m, cal, estimator, log)
	if err != nil {
		return nil, err
	}
	log.Info().Int("tensors", len(r)).Str("cache", file).Msg("activation ranges: ran the float model")
	if file != "" {
		if err := writeRanges(file, key, r); err != nil {
			log.Warn().Err(err).Msg("activation ranges not cached")
		}
	}
	remember(key, r)
	return r, nil
}

func remember(key string, r Ranges) {
	memMu.Lock()
	mem[key] = r
	memMu.Unlock()
}

type rangesFile struct {
	Format  int          `json:"format"`
	Key     string       `json:"key"`
	Tensors []rangeEntry `json:"tensors"`
}

type rangeEntry struct {
	Subgraph int     `json:"subgraph"`
	Tensor   int     `json:"tensor"`
	Min      float64 `json:"min"`
	Max      float64 `json:"max"`
	Samples  int     `json:"samples"`
	Clipped  bool    `json:"clipped,omitempty"`
}

var errStale = errors.New("stale ranges")

func readRanges(file, key string) (Ranges, error) {
	if file == "" {
		return nil, errStale
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var f rangesFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	if f.Format != rangesFormat || f.Key != key {
		return nil, errStale
	}
	r := Ranges{}
	for _, e := range f.Tensors {
		if math.IsNaN(e.Min) || math.IsNaN(e.Max) || math.IsInf(e.Min, 0) || math.IsInf(e.Max, 0) || e.Min > e.Max {
			return nil, errStale
		}
		r[Key{e.Subgraph, e.Tensor}] = &Range{Min: e.Min, Max: e.Max, Samples: e.Samples, Clipped: e.Clipped}
	}
	return r, nil
}

func writeRanges(file, key string, r Ranges) error {
	f := rangesFile{Format: rangesFormat, Key: key}
	for _, k := range r.keys() {
		e := r[k]
		f.Tensors = append(f.Tensors, rangeEntry{Subgraph: k.Subgraph, Tensor: k.Tensor, Min: e.Min, Max: e.Max, Samples: e.Samples, Clipped: e.Clipped})
	}
	data, err := json.Marshal(&f)
	if err != nil {
		return err
	}
	return cache.Write(file, data)
}

// keys are r's keys in order.
func (r Ranges) keys() []Key {
	ks := make([]Key, 0, len(r))
	for k := range r {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].Subgraph != ks[j].Subgraph {
			return ks[i].Subgraph < ks[j].Subgraph
		}
		return ks[i].Tensor < ks[j].Tensor
	})
	return ks
}

// Calibrate runs m on cal's inputs (calib.RunPass: one batched pass over
// every signature) and returns the range of every float32 tensor an
// operator computes and of every float32 signature input, each sample's
// range merged by estimator. Signature inputs and outputs that several
// signatures name alike (a KV cache read by one and written by another)
// get one range: the union of theirs.
func Calibrate(ctx context.Context, m *tflite.Model, cal *config.Calibration, estimator string, log zerolog.Logger) (Ranges, error) {
	if cal == nil {
		cal = config.DefaultCalibration()
	}
	kind, pct, err := parseEstimator(estimator)
	if err != nil {
		return nil, err
	}
	r := Ranges{}
	add := func(k Key, t *interp.Tensor) {
		if t == nil || t.Type != fb.TensorTypeFLOAT32 {
			return
		}
		lo, hi, clipped, ok := finiteRange(t.F32)
		if kind == EstimatorPercentile && pct < 100 {
			lo, hi, clipped, ok = percentileRange(t.F32, pct)
		}
		if !ok {
			return
		}
		e := r[k]
		switch {
		case e == nil:
			r[k] = &Range{Min: lo, Max: hi, Samples: 1, Clipped: clipped}
			return
		case kind == EstimatorMovingAverage:
			e.Min = float64(smoothing*e.Min) + float64((1-smoothing)*lo)
			e.Max = float64(smoothing*e.Max) + float64((1-smoothing)*hi)
		default:
			e.Min, e.Max = math.Min(e.Min, lo), math.Max(e.Max, hi)
		}
		e.Samples++
		e.Clipped = e.Clipped || clipped
	}
	var sigs []interp.Signature
	err = calib.RunPass(ctx, m, cal, log, calib.Pass{
		Step: "activation ranges",
		Observe: func(ev interp.OpEvent) {
			for k, t := range ev.Outputs {
				if k < len(m.Meta.Subgraphs[ev.Subgraph].Operators[ev.Operator].Outputs) {
					add(Key{ev.Subgraph, int(m.Meta.Subgraphs[ev.Subgraph].Operators[ev.Operator].Outputs[k])}, t)
				}
			}
		},
		Stop: func(sig interp.Signature) int {
			if len(sigs) == 0 || sigs[len(sigs)-1].Key != sig.Key {
				sigs = append(sigs, sig)
			}
			return -1
		},
		Inputs: func(sig interp.Signature, _ int, inputs map[string]*interp.Tensor) {
			for _, io := range sig.Inputs {
				add(Key{sig.Subgraph, io.Tensor}, inputs[io.Name])
			}
		},
	})
	if err != nil {
		return nil, err
	}
	unifyShared(m, r)
	return r, nil
}

// finiteRange is the min and max of x without values at or beyond
// ±bigValue (and NaN), which clipped reports; ok is false when none is
// left.
func finiteRange(x []float32) (lo, hi float64, clipped, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range x {
		f := float64(v)
		if !(f > -bigValue && f < bigValue) {
			clipped = true
			continue
		}
		lo, hi = math.Min(lo, f), math.Max(hi, f)
		ok = true
	}
	return lo, hi, clipped, ok
}

// unifyShared gives the signature inputs and outputs that share a name
// across signatures the union of their ranges.
func unifyShared(m *tflite.Model, r Ranges) {
	byName := map[string][]Key{}
	for _, sd := range m.Meta.SignatureDefs {
		for _, tm := range append(append([]*fb.TensorMapT(nil), sd.Inputs...), sd.Outputs...) {
			k := Key{int(sd.SubgraphIndex), int(tm.TensorIndex)}
			byName[tm.Name] = append(byName[tm.Name], k)
		}
	}
	for _, ks := range byName {
		if len(ks) < 2 {
			continue
		}
		var u *Range
		for _, k := range ks {
			if e := r[k]; e != nil {
				if u == nil {
					u = &Range{Min: e.Min, Max: e.Max, Samples: e.Samples}
				}
				u.Min, u.Max = math.Min(u.Min, e.Min), math.Max(u.Max, e.Max)
				u.Clipped = u.Clipped || e.Clipped
			}
		}
		if u == nil {
			continue
		}
		for _, k := range ks {
			if e := r[k]; e != nil {
				e.Min, e.Max, e.Clipped = u.Min, u.Max, u.Clipped
			}
		}
	}
}
