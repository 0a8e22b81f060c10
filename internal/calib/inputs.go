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

// Inputs are the calibration rows of the FULLY_CONNECTED inputs and of
// the left operands of BATCH_MATMULs with a constant float right operand,
// for error-compensating quantization (`scales: gptq`), which needs each
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
	mu      sync.Mutex          // guards the rows of acts against Release
	acts    map[Source]*actRows // by activation tensor and view
	readers map[Matrix][]Source // weight matrix → the rows it was read with
	kept    map[keptRows]bool
	shared  bool // from GetInputs' cache: other runs may read the rows
	// Tokens is the number of rows per activation (of the largest).
	Tokens int
}

// Matrix names a weight matrix whose inputs are kept: a FULLY_CONNECTED
// weight, or one batch of a BATCH_MATMUL's constant right operand (each
// batch multiplies its own rows, so each has its own covariance).
type Matrix struct {
	Weight Key
	BMM    bool // read as a BATCH_MATMUL's right operand
	Batch  int  // the operand's batch, row-major over its batch dimensions
}

// Source names kept rows: an activation tensor and the view its readers
// take of it ("" for a FULLY_CONNECTED's input, rows along its last axis;
// a BATCH_MATMUL's names its adj_x, the operands' batch dimensions and the
// right operand's batch whose rows these are).
type Source struct {
	Act  Key
	View string
}

// keptRows identifies the rows of one source for one sample.
type keptRows struct {
	src    Source
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
const InputsDefinition = "fc-bmm-input-rows/2"

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
// the rows of every FULLY_CONNECTED input and of every BATCH_MATMUL left
// operand whose right operand is a constant float weight.
func RunInputs(ctx context.Context, m *tflite.Model, cal *config.Calibration, log zerolog.Logger) (*Inputs, error) {
	in := &Inputs{acts: map[Source]*actRows{}, readers: map[Matrix][]Source{}, kept: map[keptRows]bool{}}
	top := -1 // the signature's subgraph: its readers are seen before they run
	err := RunPass(ctx, m, cal, log, Pass{
		Step: "calibration",
		Observe: func(ev interp.OpEvent) {
			if ev.Subgraph != top {
				in.observe(m, -1, ev)
			}
		},
		Stop: func(sig interp.Signature) int {
			top = sig.Subgraph
			return lastNeeded(m, sig.Subgraph, true)
		},
		Before: func(sample int, ev interp.OpEvent) {
			in.observe(m, sample, ev)
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
	log.Info().Int("activations", len(in.acts)).Int("tokens", in.Tokens).Int64("MiB", in.Bytes()>>20).Msg("calibration: kept the inputs of the FULLY_CONNECTED and BATCH_MATMUL weights")
}

// observe keeps the rows of ev's weight inputs, if it is a
// FULLY_CONNECTED or a BATCH_MATMUL with a constant float right operand.
func (in *Inputs) observe(m *tflite.Model, sample int, ev interp.OpEvent) {
	switch ev.Code {
	case fb.BuiltinOperatorFULLY_CONNECTED:
		x, cols, ok := fcInput(m, ev)
		if !ok || ev.InputTensors[0] < 0 {
			return
		}
		in.add(Matrix{Weight: Key{ev.Subgraph, ev.InputTensors[1]}}, Source{Act: Key{ev.Subgraph, ev.InputTensors[0]}}, sample, cols,
			func() []float32 { return append([]float32(nil), x...) })
	case fb.BuiltinOperatorBATCH_MATMUL:
		in.observeBMM(m, sample, ev)
	}
}

// observeBMM keeps, for each batch r of a BATCH_MATMUL's constant float
// right operand W ([..., K, N], or [..., N, K] with adj_y), the rows of
// length K of the left operand ([..., M, K], or [..., K, M] with adj_x)
// that batch multiplies: those of every output batch that reads r, from
// the left batch it pairs with (broadcasting as the op does).
func (in *Inputs) observeBMM(m *tflite.Model, sample int, ev interp.OpEvent) {
	if len(ev.InputTensors) < 2 || len(ev.Inputs) < 2 || ev.InputTensors[0] < 0 || ev.InputTensors[1] < 0 {
		return
	}
	a := ev.Inputs[0]
	w := m.Meta.Subgraphs[ev.Subgraph].Tensors[ev.InputTensors[1]]
	// A constant right operand is not materialised (ev.Inputs[1] nil).
	if a == nil || a.Type != fb.TensorTypeFLOAT32 || ev.Inputs[1] != nil || w.Type != fb.TensorTypeFLOAT32 || !constantData(m, ev.Subgraph, ev.InputTensors[1]) || len(w.Shape) < 2 || len(a.Shape) < 2 {
		return
	}
	var adjX bool
	if op := m.Meta.Subgraphs[ev.Subgraph].Operators[ev.Operator]; op.BuiltinOptions != nil {
		if o, ok := op.BuiltinOptions.Value.(*fb.BatchMatMulOptionsT); ok {
			adjX = o.AdjX
		}
	}
	ra, rw := len(a.Shape), len(w.Shape)
	M, K := a.Shape[ra-2], a.Shape[ra-1]
	if adjX {
		M, K = K, M
	}
	wb := make([]int, rw-2)
	for i := range wb {
		wb[i] = int(w.Shape[i])
	}
	_, ia, ib, ok := interp.BatchPairs(a.Shape[:ra-2], wb)
	if !ok || M*K == 0 || len(a.F32) < (slices.Max(append(ia, 0))+1)*M*K {
		return
	}
	batches := 1
	for _, d := range wb {
		batches *= d
	}
	for r := range batches {
		var lhs []int // the left batches batch r multiplies, in output order
		for bi, b := range ib {
			if b == r {
				lhs = append(lhs, ia[bi])
			}
		}
		if len(lhs) == 0 {
			continue
		}
		view := fmt.Sprintf("bmm adj_x=%t lhs=%v rhs=%v batch=%d", adjX, a.Shape[:ra-2], wb, r)
		in.add(Matrix{Weight: Key{ev.Subgraph, ev.InputTensors[1]}, BMM: true, Batch: r}, Source{Act: Key{ev.Subgraph, ev.InputTensors[0]}, View: view}, sample, K,
			func() []float32 {
				x := make([]float32, 0, len(lhs)*M*K)
				for _, l := range lhs {
					src := a.F32[l*M*K : (l+1)*M*K]
					if !adjX {
						x = append(x, src...)
						continue
					}
					for i := range M { // src is [K, M]
						for k := range K {
							x = append(x, src[k*M+i])
						}
					}
				}
				return x
			})
	}
}

// add records that matrix w reads the rows of src (cols columns) and keeps
// a sample's rows (rows() copies them) unless another reader of src kept
// them already.
func (in *Inputs) add(w Matrix, src Source, sample, cols int, rows func() []float32) {
	a := in.acts[src]
	if a == nil {
		a = &actRows{cols: cols}
		in.acts[src] = a
	}
	if a.cols != cols {
		return
	}
	if !slices.Contains(in.readers[w], src) {
		in.readers[w] = append(in.readers[w], src)
	}
	// The first reader of an activation keeps a sample's rows; the others
	// (q/k/v, gate/up) read the same values.
	kr := keptRows{src, sample}
	if sample < 0 || !in.kept[kr] {
		in.kept[kr] = true
		x := rows()
		a.chunks = append(a.chunks, x)
		a.tokens += len(x) / cols
	}
}

// Has reports whether some calibration input reached weight matrix w.
func (in *Inputs) Has(w Matrix) bool { return in != nil && len(in.readers[w]) > 0 }

// Readers is how many distinct activations weight matrix w was read with.
func (in *Inputs) Readers(w Matrix) int { return len(in.readers[w]) }

// Hessian returns H = Σ x xᵀ (cols × cols) over the rows of every
// activation weight matrix w was read with (one covariance per reader,
// summed: each reader's tokens count once), or nil when none has cols
// columns.
func (in *Inputs) Hessian(w Matrix, cols int) *quant.Covariance {
	rows := in.Rows(w, cols)
	if len(rows) == 0 {
		return nil
	}
	return quant.CovarianceOf(cols, rows)
}

// HessianKey names the covariance Hessian(w) returns: weights with the same
// key share it (and its factor).
func (in *Inputs) HessianKey(w Matrix) string {
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
func (in *Inputs) Activations(w Matrix) []Source { return slices.Clone(in.readers[w]) }

// Release drops the rows of activation a and returns their bytes, when
// the Inputs are a run's own (RunInputs); shared ones (GetInputs) keep
// their rows and return 0. The caller releases an activation only once
// every weight that reads it is written: a weight whose rows were released
// cannot be compensated any more (Check).
func (in *Inputs) Release(a Source) int64 {
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
func (in *Inputs) Check(w Matrix) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, ak := range in.readers[w] {
		if in.acts[ak].released {
			return fmt.Errorf("the calibration rows of tensor %d (subgraph %d), an input of tensor %d, were released after the weights that read it were written; a weight written twice needs rows kept (a shared calibration)", ak.Act.Tensor, ak.Act.Subgraph, w.Weight.Tensor)
		}
	}
	return nil
}

// Stats are the per-column mean and variance of the rows weight w was read
// with (nil when none has cols columns).
func (in *Inputs) Stats(w Matrix, cols int) *quant.ChannelStats {
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
func (in *Inputs) Rows(w Matrix, cols int) [][]float32 {
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
