package calib

import (
	"context"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qpipe/qpipe/internal/evaluate"
	"github.com/qpipe/qpipe/internal/interp"
	"github.com/qpipe/qpipe/internal/modelinput"
	"github.com/qpipe/qpipe/internal/quant"
	"github.com/qpipe/qpipe/internal/tflite"
)

// TestMeasureSettings is a measurement, not a check: it runs only when
// QPIPE_CALIB_MEASURE names models (comma-separated) and prints, for
// calibrations of QPIPE_CALIB_COUNTS samples (default 8,16,32,64) at
// each sequence length of QPIPE_CALIB_SEQS (default 64,128), how close
// their statistics and their int4 block-32 calibrated scales come to
// those of a reference: QPIPE_CALIB_REF samples (default 128) at the
// largest length, other samples than the settings': the relative error of the variances (mean over columns), the
// fraction of scales equal to the reference's, and the share of the
// reference's gain over min-max (expected output error under the
// reference statistics) that the setting keeps.
//
//	QPIPE_CALIB_MEASURE=/work/models/gen_1gb.tflite go test -run TestMeasureSettings -v -timeout 2h ./internal/calib
func TestMeasureSettings(t *testing.T) {
	env := os.Getenv("QPIPE_CALIB_MEASURE")
	if env == "" {
		t.Skip("set QPIPE_CALIB_MEASURE=MODEL[,MODEL] to measure")
	}
	ints := func(name, def string) []int {
		s := os.Getenv(name)
		if s == "" {
			s = def
		}
		var out []int
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			out = append(out, n)
		}
		return out
	}
	seqs := ints("QPIPE_CALIB_SEQS", "64,128")
	counts := ints("QPIPE_CALIB_COUNTS", "8,16,32,64")
	nRef := ints("QPIPE_CALIB_REF", "128")[0]
	for _, path := range strings.Split(env, ",") {
		m := openModel(t, path)
		type setting struct {
			samples, seq int
			st           Stats
		}
		var all []setting
		for _, seq := range seqs {
			start := time.Now()
			per := perSampleSums(t, m, 0, counts[len(counts)-1], seq)
			t.Logf("%s seq %d: %d samples in %v", path, seq, len(per), time.Since(start).Round(time.Millisecond))
			for _, n := range counts {
				all = append(all, setting{n, seq, finish(per[:n])})
			}
		}
		start := time.Now()
		ref := setting{nRef, seqs[len(seqs)-1], finish(perSampleSums(t, m, 1<<16, nRef, seqs[len(seqs)-1]))}
		t.Logf("%s: reference %d other samples x seq %d (%v)", path, ref.samples, ref.seq, time.Since(start).Round(time.Millisecond))
		t.Logf("%8s %5s %12s %12s %12s", "samples", "seq", "var rel err", "scales same", "gain kept")
		for _, s := range all {
			varErr, same, kept := compare(t, m, s.st, ref.st)
			t.Logf("%8d %5d %12.4f %12.4f %12.4f", s.samples, s.seq, varErr, same, kept)
		}
	}
}

// perSampleSums runs n generated samples from index first at seq and
// returns each sample's sums (as Run gathers them, sample by sample).
func perSampleSums(t *testing.T, m *tflite.Model, first, n, seq int) []map[Key]*statSums {
	var cur map[Key]*statSums
	in, err := interp.New(m, interp.Options{Observe: func(ev interp.OpEvent) { observeFC(m, ev, cur) }})
	if err != nil {
		t.Fatal(err)
	}
	sig := in.Signatures()[0]
	l, err := evaluate.PlanInputs(sig, modelinput.TokenInputs(m.Meta, sig.Subgraph), seqFor(sig, m, seq))
	if err != nil {
		t.Fatal(err)
	}
	var out []map[Key]*statSums
	for k := range n {
		cur = map[Key]*statSums{}
		inputs, err := l.Generate(evaluate.CalibrationSeed, first+k)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := in.Run(context.Background(), sig.Key, inputs); err != nil {
			t.Fatal(err)
		}
		out = append(out, cur)
	}
	return out
}

// finish pools per-sample sums into statistics.
func finish(per []map[Key]*statSums) Stats {
	tot := map[Key]*statSums{}
	for _, p := range per {
		for k, s := range p {
			a := tot[k]
			if a == nil {
				a = &statSums{sum: make([]float64, len(s.sum)), sq: make([]float64, len(s.sum))}
				tot[k] = a
			}
			for j := range s.sum {
				a.sum[j] += s.sum[j]
				a.sq[j] += s.sq[j]
			}
			a.n += s.n
		}
	}
	out := Stats{}
	for k, s := range tot {
		out[k] = s.stats()
	}
	return out
}

// compare measures st against ref on every weight both have.
func compare(t *testing.T, m *tflite.Model, st, ref Stats) (varErr, same, kept float64) {
	const bs = 32
	var nVar, nScales, nSame int
	var gainRef, gainSt float64
	keys := make([]Key, 0, len(ref))
	for k := range ref {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b Key) int { return a.Tensor - b.Tensor })
	for _, k := range keys {
		r, s := ref[k], st[k]
		if s == nil {
			continue
		}
		for j := range r.Var {
			if r.Var[j] > 0 {
				varErr += math.Abs(float64(s.Var[j])-float64(r.Var[j])) / float64(r.Var[j])
				nVar++
			}
		}
		w := m.Meta.Subgraphs[k.Subgraph].Tensors[k.Tensor]
		cols := int(w.Shape[1])
		if cols%bs != 0 {
			continue
		}
		data, err := tflite.ReadAll(m.Buffers[w.Buffer].Data)
		if err != nil {
			t.Fatal(err)
		}
		x := quant.Float32s(data)
		q := func(stats *quant.ChannelStats) ([]uint16, float64) {
			dst := make([]byte, len(x)/2)
			sc := make([]uint16, len(x)/bs)
			var err error
			if stats == nil {
				_, err = quant.QuantizeBlocksInt4(dst, sc, x, cols, bs, true)
			} else {
				_, err = quant.SearchBlocksInt4(dst, sc, x, cols, bs, true, stats, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			deq := make([]float32, len(x))
			quant.DequantizeInt4(deq, dst, cols, bs, sc)
			return sc, expectedError(x, deq, cols, r)
		}
		_, eMM := q(nil)
		scR, eR := q(r)
		scS, eS := q(s)
		gainRef += eMM - eR
		gainSt += eMM - eS
		for i := range scR {
			if scR[i] == scS[i] {
				nSame++
			}
		}
		nScales += len(scR)
	}
	return varErr / float64(max(nVar, 1)), float64(nSame) / float64(max(nScales, 1)), gainSt / gainRef
}

// expectedError is Σ over rows of E[(x·(deq−w))²] under st.
func expectedError(w, deq []float32, cols int, st *quant.ChannelStats) float64 {
	var e float64
	for r := 0; r < len(w); r += cols {
		var mean, v float64
		for j := range cols {
			d := float64(deq[r+j]) - float64(w[r+j])
			mean += float64(float64(st.Mean[j]) * d)
			v += float64(float64(st.Var[j]) * float64(d*d))
		}
		e += float64(mean*mean) + v
	}
	return e
}
