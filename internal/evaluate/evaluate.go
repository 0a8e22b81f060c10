package evaluate

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/internal/interp"
	"github.com/qpipe/qpipe/internal/modelinput"
	"github.com/qpipe/qpipe/internal/progress"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// DefaultSamples is how many samples run when none are asked for.
const DefaultSamples = 8

// evalBatch is how many samples run through a model at once
// (interp.RunBatch): a model larger than memory is read from disk once
// per batch, and a batch's outputs of every model are held.
const evalBatch = 8

// Model is a model file opened for evaluation: memory-mapped, weights
// read in place by the interpreter.
type Model struct {
	Path   string
	File   *tflite.Model
	Interp *interp.Interpreter
}

// Open opens the model at path for the interpreter (threads 0 =
// GOMAXPROCS; the results do not depend on it).
func Open(path string, threads int) (*Model, error) {
	f, err := tflite.Open(path)
	if err != nil {
		return nil, err
	}
	return OpenFile(f, path, threads)
}

// OpenFile is Open of a model already read (a bundle's section, read with
// tflite.OpenSection); path names it. It closes f when it fails.
func OpenFile(f *tflite.Model, path string, threads int) (*Model, error) {
	in, err := interp.New(f, interp.Options{Threads: threads})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Model{Path: path, File: f, Interp: in}, nil
}

// Close releases the model file.
func (m *Model) Close() error { return m.File.Close() }

// Options select what an evaluation runs.
type Options struct {
	// Signatures to run, by key; nil runs every signature.
	Signatures []string
	// Samples is the number of samples (0: DefaultSamples, or every line
	// of Inputs).
	Samples int
	// Seq is the sequence length of the token inputs; 0 = the model's own
	// (DefaultSeq where it is dynamic). See PlanInputs.
	Seq int
	// Seed selects the generated inputs.
	Seed int64
	// Inputs, when set, are the samples (ParseSamples of InputsFile); the
	// inputs a line does not name are generated.
	Inputs     []*Sample
	InputsFile string
	// Log, when set, receives the progress of the runs (one count per
	// sample per model; internal/progress): a line on a terminal, else
	// periodic "progress" events.
	Log *zerolog.Logger
}

// Report is the result of Compare or Smoke; its JSON form is what
// `qpipe eval --json` prints (documented in the README; fields are only
// ever added).
type Report struct {
	Reference string `json:"reference"`
	Candidate string `json:"candidate,omitempty"`
	Seed      int64  `json:"seed"`
	Samples   int    `json:"samples"`
	Inputs    string `json:"inputs"` // "generated" or the inputs (or text) file
	// Text says how the text became the samples (qpipe eval --text).
	Text       *TextInfo         `json:"text,omitempty"`
	Signatures []SignatureReport `json:"signatures"`
}

// SignatureReport is one signature's inputs and outputs.
type SignatureReport struct {
	Signature string         `json:"signature"`
	Seq       int            `json:"seq,omitempty"`
	Inputs    []InputReport  `json:"inputs"`
	Outputs   []OutputReport `json:"outputs"`
}

// InputReport says how an input was filled.
type InputReport struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Shape []int  `json:"shape"`
	// Vocab > 0: token ids in [0, Vocab).
	Vocab int `json:"vocab,omitempty"`
}

// OutputReport is one output: compared (Distance, Logits) or summarised
// (Stats).
type OutputReport struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Shape []int  `json:"shape"`
	// Vocab > 0 marks a logits output: its last dimension is the
	// vocabulary of the model's embedding table.
	Vocab    int             `json:"vocab,omitempty"`
	Distance *DistanceReport `json:"distance,omitempty"`
	Logits   *LogitsReport   `json:"logits,omitempty"`
	// NextToken compares the models' predictions of the next token of
	// the samples' token ids (perplexity, KL, Δp): only when the samples
	// come from a file (inputs file or text).
	NextToken *NextTokenReport `json:"next_token,omitempty"`
	Stats     *StatsReport     `json:"stats,omitempty"`
}

// NextTokenReport is NextToken in JSON.
type NextTokenReport struct {
	Scored     int `json:"scored"`
	PPLRef     Num `json:"ppl_reference"`
	PPLCand    Num `json:"ppl_candidate"`
	PPLRatio   Num `json:"ppl_ratio"`
	LnPPLRatio Num `json:"ln_ppl_ratio"`
	MeanKL     Num `json:"mean_kl"`
	MedianKL   Num `json:"median_kl"`
	P99KL      Num `json:"p99_kl"`
	MaxKL      Num `json:"max_kl"`
	Top1       Num `json:"top1"`
	RMSDp      Num `json:"rms_dp"`
}

// DistanceReport is Distance in JSON. A value that is not finite is
// written as null.
type DistanceReport struct {
	RelL2      Num `json:"rel_l2"`
	MaxAbs     Num `json:"max_abs"`
	Cosine     Num `json:"cosine"`
	Mismatched int `json:"nonfinite_mismatches"`
}

// LogitsReport is Logits in JSON: KL in nats, agreements as fractions.
type LogitsReport struct {
	Vocab     int `json:"vocab"`
	Positions int `json:"positions"`
	MeanKL    Num `json:"mean_kl"`
	P99KL     Num `json:"p99_kl"`
	MaxKL     Num `json:"max_kl"`
	Top1      Num `json:"top1"`
	Top5      Num `json:"top5"`
}

// StatsReport is Stats in JSON.
type StatsReport struct {
	Count int `json:"count"`
	Min   Num `json:"min"`
	Max   Num `json:"max"`
	Mean  Num `json:"mean"`
	Std   Num `json:"std"`
	NaN   int `json:"nan"`
	Inf   int `json:"inf"`
}

// Num is a float64 whose JSON form is null when it is NaN or infinite
// (JSON has no such numbers).
type Num float64

func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Num(f)
	return nil
}

// Compare runs ref and cand on the same inputs and compares every output
// of every selected signature.
func Compare(ctx context.Context, ref, cand *Model, opt Options) (*Report, error) {
	return evaluate(ctx, []*Model{ref, cand}, opt, func(vocab int) sink {
		c := &compareSink{acc: NewAccumulator(vocab)}
		if vocab > 0 && opt.Inputs != nil {
			c.next = NewNextTokenAccumulator(vocab)
		}
		return c
	})
}

// Smoke runs m alone and summarises every output of every selected
// signature.
func Smoke(ctx context.Context, m *Model, opt Options) (*Report, error) {
	return evaluate(ctx, []*Model{m}, opt, func(int) sink { return &statsSink{} })
}

// sink gathers one output's values over the samples: one tensor per
// model, in the order of the models, and the sample's token ids (nil when
// the signature has not exactly one token input) in windows of seq.
type sink interface {
	add(vals []*interp.Tensor, tokens []int64, seq int)
	report(o *OutputReport)
}

type compareSink struct {
	acc  *Accumulator
	next *NextTokenAccumulator // nil: no next-token comparison
	// unfit: a sample's logits did not match its tokens (rows per
	// token), so there is no next-token comparison.
	unfit bool
}

func (c *compareSink) add(vals []*interp.Tensor, tokens []int64, seq int) {
	ref, cand := floats(vals[0]), floats(vals[1])
	c.acc.Add(ref, cand)
	if c.next != nil && !c.unfit && (tokens == nil || !c.next.Add(ref, cand, tokens, seq)) {
		c.unfit = true
	}
}

func (c *compareSink) report(o *OutputReport) {
	d := c.acc.Distance()
	o.Distance = &DistanceReport{RelL2: Num(d.RelL2), MaxAbs: Num(d.MaxAbs), Cosine: Num(d.Cosine), Mismatched: d.Mismatched}
	if lg := c.acc.Logits(); lg != nil {
		o.Logits = &LogitsReport{Vocab: c.acc.vocab, Positions: lg.Positions, MeanKL: Num(lg.MeanKL), P99KL: Num(lg.P99KL),
			MaxKL: Num(lg.MaxKL), Top1: Num(lg.Top1), Top5: Num(lg.TopK)}
	}
	if c.next == nil || c.unfit {
		return
	}
	if n := c.next.Result(); n != nil {
		o.NextToken = &NextTokenReport{Scored: n.Scored, PPLRef: Num(n.PPLRef), PPLCand: Num(n.PPLCand),
			PPLRatio: Num(n.PPLCand / n.PPLRef), LnPPLRatio: Num(n.LnPPLRatio), MeanKL: Num(n.MeanKL),
			MedianKL: Num(n.MedianKL), P99KL: Num(n.P99KL), MaxKL: Num(n.MaxKL), Top1: Num(n.Top1), RMSDp: Num(n.RMSDp)}
	}
}

type statsSink struct{ acc StatsAccumulator }

func (s *statsSink) add(vals []*interp.Tensor, _ []int64, _ int) { s.acc.Add(floats(vals[0])) }

func (s *statsSink) report(o *OutputReport) {
	st := s.acc.Stats()
	o.Stats = &StatsReport{Count: st.Count, Min: Num(st.Min), Max: Num(st.Max), Mean: Num(st.Mean), Std: Num(st.Std), NaN: st.NaN, Inf: st.Inf}
}

// evaluate runs every model on the same inputs, signature by signature
// (the first model's), and gives each output's values to its sink, made
// by newSink with the output's logits vocabulary (0 if it is not logits)
// on its first sample.
func evaluate(ctx context.Context, models []*Model, opt Options, newSink func(vocab int) sink) (*Report, error) {
	r := newReport(models[0], opt)
	if len(models) > 1 {
		r.Candidate = models[1].Path
	}
	vocabs := modelVocabs(models[0].File.Meta)
	var prog *progress.Reporter
	if opt.Log != nil {
		sigs := len(opt.Signatures)
		if sigs == 0 {
			sigs = len(models[0].Interp.Signatures())
		}
		prog = progress.Start(*opt.Log, "eval", int64(samplesOf(opt)*sigs*len(models)), "runs")
		defer prog.Done()
	}
	err := eachSignature(models[0], opt, func(sig interp.Signature, l *Layout) error {
		for _, m := range models[1:] {
			if err := matchSignature(m, sig); err != nil {
				return err
			}
		}
		sr := signatureReport(l)
		sinks := make([]sink, len(sig.Outputs))
		tokenInput := ""
		for _, in := range l.Inputs {
			if in.Vocab > 0 {
				if tokenInput != "" {
					tokenInput = ""
					break
				}
				tokenInput = in.Name
			}
		}
		// The samples run in batches, each model on the whole batch
		// operator by operator (each weight read once per batch), and
		// the sinks take them in sample order.
		var batch []map[string]*interp.Tensor
		first := 0
		flush := func() error {
			outs := make([][]map[string]*interp.Tensor, len(models))
			for j, m := range models {
				var err error
				if outs[j], err = m.Interp.RunBatch(ctx, sig.Key, batch, nil); err != nil {
					return fmt.Errorf("%s: signature %q, samples %d-%d: %w", m.Path, sig.Key, first, first+len(batch)-1, err)
				}
				prog.Add(int64(len(batch)))
			}
			for b := range batch {
				for i, o := range sig.Outputs {
					vals := make([]*interp.Tensor, len(models))
					for j := range models {
						if vals[j] = outs[j][b][o.Name]; vals[j] == nil {
							return fmt.Errorf("%s: signature %q output %q: missing from the run", models[j].Path, sig.Key, o.Name)
						}
					}
					w := vals[0]
					for _, g := range vals[1:] {
						if w.Type != g.Type || !slices.Equal(w.Shape, g.Shape) {
							return fmt.Errorf("signature %q output %q: the candidate gives %s %v, the reference %s %v", sig.Key, o.Name, g.Type, g.Shape, w.Type, w.Shape)
						}
					}
					if sinks[i] == nil {
						v := logitsVocab(w.Type, w.Shape, vocabs)
						sinks[i] = newSink(v)
						sr.Outputs = append(sr.Outputs, OutputReport{Name: o.Name, Type: w.Type.String(), Shape: slices.Clone(w.Shape), Vocab: v})
					}
					tok := batch[b][tokenInput]
					seq := 0
					if tok != nil && len(tok.Shape) > 0 {
						seq = tok.Shape[len(tok.Shape)-1]
					}
					sinks[i].add(vals, int64s(tok), seq)
				}
			}
			first += len(batch)
			batch = batch[:0]
			return nil
		}
		err := eachSample(ctx, l, opt, func(k int, inputs map[string]*interp.Tensor) error {
			batch = append(batch, inputs)
			if len(batch) == evalBatch {
				return flush()
			}
			return nil
		})
		if err == nil && len(batch) > 0 {
			err = flush()
		}
		if err != nil {
			return err
		}
		for i, s := range sinks {
			if s != nil {
				s.report(&sr.Outputs[i])
			}
		}
		r.Signatures = append(r.Signatures, sr)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Describe lists what Compare and Smoke would run: every selected
// signature with its inputs and outputs (shapes as the model states them;
// Vocab set on the logits outputs). It runs nothing, so it also checks
// cheaply that the signatures exist and the sequence length fits.
func Describe(m *Model, opt Options) ([]SignatureReport, error) {
	var out []SignatureReport
	vocabs := modelVocabs(m.File.Meta)
	err := eachSignature(m, opt, func(sig interp.Signature, l *Layout) error {
		sr := signatureReport(l)
		for _, o := range sig.Outputs {
			sr.Outputs = append(sr.Outputs, OutputReport{Name: o.Name, Type: o.Type.String(), Shape: slices.Clone(o.Shape), Vocab: logitsVocab(o.Type, o.Shape, vocabs)})
		}
		out = append(out, sr)
		return nil
	})
	return out, err
}

func newReport(m *Model, opt Options) *Report {
	r := &Report{Reference: m.Path, Seed: opt.Seed, Samples: samplesOf(opt), Inputs: "generated"}
	if opt.Inputs != nil {
		r.Inputs = opt.InputsFile
	}
	return r
}

func samplesOf(opt Options) int {
	switch {
	case opt.Inputs != nil && (opt.Samples <= 0 || opt.Samples > len(opt.Inputs)):
		return len(opt.Inputs)
	case opt.Samples <= 0:
		return DefaultSamples
	}
	return opt.Samples
}

// eachSignature plans the inputs of every selected signature of m and
// calls f with each, in the model's order.
func eachSignature(m *Model, opt Options, f func(interp.Signature, *Layout) error) error {
	sigs := m.Interp.Signatures()
	var keys []string
	for _, s := range sigs {
		keys = append(keys, strconv.Quote(s.Key))
	}
	for _, want := range opt.Signatures {
		if !slices.ContainsFunc(sigs, func(s interp.Signature) bool { return s.Key == want }) {
			return fmt.Errorf("%s has no signature %q; its signatures are %s", m.Path, want, strings.Join(keys, ", "))
		}
	}
	for _, sig := range sigs {
		if opt.Signatures != nil && !slices.Contains(opt.Signatures, sig.Key) {
			continue
		}
		l, err := PlanInputs(sig, modelinput.TokenInputs(m.File.Meta, sig.Subgraph), opt.Seq)
		if err != nil {
			return fmt.Errorf("%s: %w", m.Path, err)
		}
		if err := f(sig, l); err != nil {
			return err
		}
	}
	return nil
}

// eachSample calls f with the inputs of every sample, generated or read.
func eachSample(ctx context.Context, l *Layout, opt Options, f func(int, map[string]*interp.Tensor) error) error {
	if opt.Inputs != nil {
		// Every line is checked before the first run.
		for k := range samplesOf(opt) {
			if _, err := l.Bind(opt.Inputs[k], opt.InputsFile, opt.Seed, k, opt.Seq); err != nil {
				return err
			}
		}
	}
	for k := range samplesOf(opt) {
		if err := ctx.Err(); err != nil {
			return err
		}
		var inputs map[string]*interp.Tensor
		var err error
		if opt.Inputs != nil {
			inputs, err = l.Bind(opt.Inputs[k], opt.InputsFile, opt.Seed, k, opt.Seq)
		} else {
			inputs, err = l.Generate(opt.Seed, k)
		}
		if err != nil {
			return err
		}
		if err := f(k, inputs); err != nil {
			return err
		}
	}
	return nil
}

func signatureReport(l *Layout) SignatureReport {
	sr := SignatureReport{Signature: l.Signature, Seq: l.Seq, Inputs: []InputReport{}, Outputs: []OutputReport{}}
	for _, in := range l.Inputs {
		sr.Inputs = append(sr.Inputs, InputReport{Name: in.Name, Type: in.Type.String(), Shape: in.Shape, Vocab: in.Vocab})
	}
	return sr
}

// matchSignature finds sig in cand, which must take the same inputs and
// give the same outputs.
func matchSignature(cand *Model, sig interp.Signature) error {
	for _, c := range cand.Interp.Signatures() {
		if c.Key != sig.Key {
			continue
		}
		if !sameIOs(c.Inputs, sig.Inputs) || !sameIOs(c.Outputs, sig.Outputs) {
			return fmt.Errorf("%s: signature %q takes or gives other tensors than the reference's (names, types or shapes differ): the models cannot be compared", cand.Path, sig.Key)
		}
		return nil
	}
	return fmt.Errorf("%s has no signature %q, which the reference has: the models cannot be compared", cand.Path, sig.Key)
}

func sameIOs(a, b []interp.IO) bool {
	return slices.EqualFunc(a, b, func(x, y interp.IO) bool {
		return x.Name == y.Name && x.Type == y.Type && slices.Equal(x.Shape, y.Shape)
	})
}

// modelVocabs lists the vocabularies of the model's embedding tables.
func modelVocabs(meta *fb.ModelT) []int {
	var out []int
	for sg := range meta.Subgraphs {
		for _, n := range modelinput.TokenInputs(meta, sg) {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// logitsVocab is the vocabulary of a float output whose last dimension is
// one of the model's vocabularies (a logits output), else 0.
func logitsVocab(typ fb.TensorType, shape []int, vocabs []int) int {
	if typ != fb.TensorTypeFLOAT32 || len(shape) == 0 {
		return 0
	}
	if v := shape[len(shape)-1]; v > 1 && slices.Contains(vocabs, v) {
		return v
	}
	return 0
}

// int64s returns an integer tensor's values (nil for nil or another
// type).
func int64s(t *interp.Tensor) []int64 {
	switch {
	case t == nil:
		return nil
	case t.I64 != nil:
		return t.I64
	case t.I32 != nil:
		out := make([]int64, len(t.I32))
		for i, v := range t.I32 {
			out[i] = int64(v)
		}
		return out
	}
	return nil
}

// floats returns t's values as float32 (integers and booleans converted).
func floats(t *interp.Tensor) []float32 {
	switch {
	case t.F32 != nil:
		return t.F32
	case t.I32 != nil:
		out := make([]float32, len(t.I32))
		for i, v := range t.I32 {
			out[i] = float32(v)
		}
		return out
	case t.I64 != nil:
		out := make([]float32, len(t.I64))
		for i, v := range t.I64 {
			out[i] = float32(v)
		}
		return out
	case t.Bool != nil:
		out := make([]float32, len(t.Bool))
		for i, v := range t.Bool {
			if v {
				out[i] = 1
			}
		}
		return out
	}
	return nil
}
