package calib

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/interp"
	"github.com/qpipe/qpipe/internal/quant"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// Inputs are the calibration rows of the FULLY_CONNECTED inputs, for
// error-compensating quantization (`scales: gptq`), which needs each
// weight's full input covariance H = Σ x xᵀ rather than per-column
// statistics. Holding the rows (tokens × columns, float32) instead of the
// covariances keeps the memory at tokens/columns of theirs (the 1 GB
// decoder at 512 tokens: 100 MB of rows against 1.4 GB of float64
// covariances), and H is formed when its weight is quantized
// (Hessian). The rows are kept once per activation tensor: weights that
// read the same activation (q/k/v, gate/up) share them.
//
// Inputs of one run (RunInputs) can give an activation's rows back once
// every weight that reads it is written (Release): a 7B model's rows are
// 1.5 GB, and only the layers not yet written need theirs. Inputs from the
// process's cache (GetInputs) are shared and keep them.
type Inputs struct {
	mu      sync.Mutex       // guards the rows of acts against Release
	acts    map[Key]*actRows // by activation tensor
	readers map[Key][]Key    // weight → the activation tensors it was read with
	kept    map[keptRows]bool
	shared  bool // from GetInputs' cache: other runs may read the rows
	// Tokens is the number of rows per activation (of the largest).
	Tokens int
}

// keptRows identifies the rows of one activation for one sample.
type keptRows struct {
	act    Key
	sample int
}

// actRows are one activation's rows, a sample's at a time: appending to
// one slice would hold up to twice the rows while it grows (a 7B model's
// 1.5 GB of rows) and leave the copies to the collector.
type actRows struct {
	cols     int
	chunks   [][]float32
	tokens   int
	released bool
}

// InputsDefinition names what Inputs hold (the in-process cache key).
const InputsDefinition = "fc-input-rows/1"

var (
	inputsMu  sync.Mutex
	inputsMem = map[string]*inputsOnce{}
)

type inputsOnce struct {
	once sync.Once
	in   *Inputs
	err  error
}

// GetInputs returns the calibration rows of m under cal, whose statistics
// key is key (CacheKey), gathered once per process. They are not cached on
// disk (hundreds of MB: the pass costs less than writing them).
func GetInputs(ctx context.Context, m *tflite.Model, key string, cal *config.Calibration, log zerolog.Logger) (*Inputs, error) {
	key = InputsDefinition + " " + key
	inputsMu.Lock()
	e := inputsMem[key]
	if e == nil {
		e = &inputsOnce{}
		inputsMem[key] = e
	}
	inputsMu.Unlock()
	e.once.Do(func() {
		e.in, e.err = RunInputs(ctx, m, cal, log)
		if e.err == nil {
			e.in.shared = true
			e.in.LogKept(log)
		}
	})
	if e.err != nil {
		inputsMu.Lock()
		delete(inputsMem, key)
		inputsMu.Unlock()
	}
	return e.in, e.err
}

// RunInputs runs m on the calibration inputs of cal (as Run does) and keeps
// every FULLY_CONNECTED input's rows.
func RunInputs(ctx context.Context, m *tflite.Model, cal *config.Calibration, log zerolog.Logger) (*Inputs, error) {
	in := &Inputs{acts: map[Key]*actRows{}, readers: map[Key][]Key{}, kept: map[keptRows]bool{}}
	top := -1 // the signature's subgraph: its FULLY_CONNECTEDs are seen before they run
	err := RunPass(ctx, m, cal, log, Pass{
		Step: "calibration",
		Observe: func(ev interp.OpEvent) {
			if ev.Subgraph != top && ev.Code == fb.BuiltinOperatorFULLY_CONNECTED {
				in.observe(m, -1, ev)
			}
		},
		Stop: func(sig interp.Signature) int {
			top = sig.Subgraph
			return lastNeeded(m, sig.Subgraph)
		},
		Before: func(sample int, ev interp.OpEvent) {
			if ev.Code == fb.BuiltinOperatorFULLY_CONNECTED {
				in.observe(m, sample, ev)
			}
		},
	})
	in.kept = nil
	if err != nil {
		return nil, err
	}
	for _, a := range in.acts {
		in.Tokens = max(in.Tokens, a.tokens)
	}
	return in, nil
}

// LogKept says in the log what the rows hold.
func (in *Inputs) LogKept(log zerolog.Logger) {
	log.Info().Int("activations", len(in.acts)).Int("tokens", in.Tokens).Int64("MiB", in.Bytes()>>20).Msg("calibration: kept the inputs of the FULLY_CONNECTED weights")
}

func (in *Inputs) observe(m *tflite.Model, sample int, ev interp.OpEvent) {
	x, cols, ok := fcInput(m, ev)
	if !ok || ev.InputTensors[0] < 0 {
		return
	}
	wk, ak := Key{ev.Subgraph, ev.InputTensors[1]}, Key{ev.Subgraph, ev.InputTensors[0]}
	a := in.acts[ak]
	if a == nil {
		a = &actRows{cols: cols}
		in.acts[ak] = a
	}
	if a.cols != cols {
		return
	}
	known := false
	for _, k := range in.readers[wk] {
		known = known || k == ak
	}
	if !known {
		in.readers[wk] = append(in.readers[wk], ak)
	}
	// The first reader of an activation keeps a sample's rows; the others
	// (q/k/v, gate/up) read the same values.
	kr := keptRows{ak, sample}
	if sample < 0 || !in.kept[kr] {
		in.kept[kr] = true
		a.chunks = append(a.chunks, append([]float32(nil), x...))
		a.tokens += len(x) / cols
	}
}

// Has reports whether some calibration input reached weight w.
func (in *Inputs) Has(w Key) bool { return in != nil && len(in.readers[w]) > 0 }

// Readers is how many distinct activations weight w was read with.
func (in *Inputs) Readers(w Key) int { return len(in.readers[w]) }

// Hessian returns H = Σ x xᵀ (cols × cols) over the rows of every
// activation weight w was read with (one covariance per reader, summed:
// each reader's tokens count once), or nil when none has cols columns.
func (in *Inputs) Hessian(w Key, cols int) *quant.Covariance {
	rows := in.Rows(w, cols)
	if len(rows) == 0 {
		return nil
	}
	return quant.CovarianceOf(cols, rows)
}

// HessianKey names the covariance Hessian(w) returns: weights with the same
// key share it (and its factor).
func (in *Inputs) HessianKey(w Key) string {
	return fmt.Sprint(in.readers[w])
}

// Bytes is the memory the rows hold.
func (in *Inputs) Bytes() int64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	var n int64
	for _, a := range in.acts {
		if !a.released {
			n += 4 * int64(a.tokens) * int64(a.cols)
		}
	}
	return n
}

// Activations are the activation tensors weight w was read with: the rows
// its covariance is formed from.
func (in *Inputs) Activations(w Key) []Key { return slices.Clone(in.readers[w]) }

// Release drops the rows of activation a and returns their bytes, when
// the Inputs are a run's own (RunInputs); shared ones (GetInputs) keep
// their rows and return 0. The caller releases an activation only once
// every weight that reads it is written: a weight whose rows were released
// cannot be compensated any more (Check).
func (in *Inputs) Release(a Key) int64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	r := in.acts[a]
	if in.shared || r == nil || r.released {
		return 0
	}
	r.released, r.chunks = true, nil
	return 4 * int64(r.tokens) * int64(r.cols)
}

// Check returns an error when the rows of an activation weight w was read
// with were released.
func (in *Inputs) Check(w Key) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, ak := range in.readers[w] {
		if in.acts[ak].released {
			return fmt.Errorf("the calibration rows of tensor %d (subgraph %d), an input of tensor %d, were released after the weights that read it were written; a weight written twice needs rows kept (a shared calibration)", ak.Tensor, ak.Subgraph, w.Tensor)
		}
	}
	return nil
}

// Stats are the per-column mean and variance of the rows weight w was read
// with (nil when none has cols columns).
func (in *Inputs) Stats(w Key, cols int) *quant.ChannelStats {
	s := &statSums{sum: make([]float64, cols), sq: make([]float64, cols)}
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, ak := range in.readers[w] {
		a := in.acts[ak]
		if a.cols == cols {
			for _, x := range a.chunks {
				s.add(x, cols)
			}
		}
	}
	if s.n == 0 {
		return nil
	}
	return s.stats()
}

// Rows are the rows ([tokens, cols] each, a sample's at a time) of every activation weight w was
// read with that has cols columns: what Hessian sums.
func (in *Inputs) Rows(w Key, cols int) [][]float32 {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out [][]float32
	for _, ak := range in.readers[w] {
		if a := in.acts[ak]; a.cols == cols {
			out = append(out, a.chunks...)
		}
	}
	return out
}
