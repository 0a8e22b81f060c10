package stages

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/qpipe/qpipe/internal/lockfile"
	"github.com/qpipe/qpipe/internal/progress"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/pipeline"
)

// Serialize writes the model: to a temporary file in the destination
// folder, renamed into place only when complete, so an interrupted or
// failed job leaves no partial output. It never writes over the input.
type Serialize struct {
	// Path may hold {name} (the job's name) and {suffix} (the recipe's).
	Path string
	// Section picks the bundle section a .tflite path receives, by index
	// or model type ("": the only TFLiteModel section).
	Section string
	Layout  tflite.Layout
	// Hash adds the output's sha256 to the report (one more read of it).
	Hash bool
	// Sync flushes the output to the disk before the job counts as done.
	Sync bool
	// Progress, when set, is told how many output bytes were produced.
	Progress func(done, total int64)
}

func (*Serialize) Name() string { return "serialize" }

// ExpandPath fills in a serialize path template.
func ExpandPath(tmpl, name, suffix string) string {
	return strings.NewReplacer("{name}", name, "{suffix}", suffix).Replace(tmpl)
}

// Whole implements pipeline.WholeStage: serialize writes a bundle's
// sections together.
func (*Serialize) Whole() {}

func (z *Serialize) Run(ctx context.Context, s *pipeline.State) error {
	bs, isBundle := s.Model.(*bundleState)
	var ms *modelState
	if !isBundle {
		var err error
		if ms, err = model(s); err != nil {
			return err
		}
	}
	path := ExpandPath(z.Path, s.Job, s.Suffix)
	if err := checkOutputPath(path, s.InputPath); err != nil {
		return err
	}
	var part *pipeline.Part
	if isBundle && !IsBundlePath(path) {
		var err error
		if part, err = bs.onePart(path, z.Section); err != nil {
			return err
		}
	}
	if s.DryRun {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("cannot create the output folder: %w", err)
	}
	switch {
	case isBundle && part == nil:
		return z.writeBundle(ctx, s, path, bs.b, bs.parts)
	case isBundle: // one section as a bare .tflite
		sub := *s
		sub.Model, sub.Plan = part.Model, part.Plan
		if err := z.writeModel(ctx, &sub, part.Model.(*modelState), path); err != nil {
			return err
		}
		s.Output = sub.Output
		return nil
	case IsBundlePath(path): // a bare model wrapped into a bundle
		b, err := wrapBare()
		if err != nil {
			return err
		}
		return z.writeBundle(ctx, s, path, b, []*pipeline.Part{{Section: 0, Name: "section 0", Model: ms, Plan: s.Plan}})
	}
	return z.writeModel(ctx, s, ms, path)
}

// writeModel writes one model to a .tflite file at path.
func (z *Serialize) writeModel(ctx context.Context, s *pipeline.State, ms *modelState, path string) error {
	report, done := z.progress(s)
	defer done()
	m := withProgressAll([]*tflite.Model{ms.m}, report)[0]
	wo := tflite.WriteOptions{Layout: z.Layout, Sync: z.Sync}
	var accuracy *pipeline.Accuracy
	if g := ms.gate; g != nil {
		wo.Check = func(tmp string) error {
			s.Log.Info().Int("samples", g.cfg.Samples).Msg("accuracy gate: comparing the written model with the float model")
			var err error
			accuracy, err = g.measure(ctx, tmp, -1)
			return err
		}
	}
	out, err := z.written(ctx, s, path, func() error { return tflite.WriteFile(ctx, path, m, wo) })
	if err != nil {
		return err
	}
	out.Accuracy = accuracy
	out.Layout = layoutOf(path)
	out.Tensors = tensorReports(s, ms, s.Plan)
	if s.Plan != nil {
		out.Sizes = s.Plan.SizesByRole()
		out.Budget = s.Plan.Budget
	}
	s.Output = out
	return nil
}

// written runs write, which writes path, and reports the output: its path,
// size and, when asked, sha256. Cancelled while the last bytes were
// written, the job reports an interruption, so it leaves no output.
func (z *Serialize) written(ctx context.Context, s *pipeline.State, path string, write func() error) (*pipeline.OutputReport, error) {
	if err := write(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		os.Remove(path)
		return nil, err
	}
	out := &pipeline.OutputReport{Recipe: s.Recipe, Path: path}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	out.Bytes = fi.Size()
	if z.Hash {
		if out.SHA256, err = FileSHA256(path); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// tensorReports lists the measured error of the tensors the quantize stage
// rewrote in ms (plan gives their roles), and notes the clamped scales.
func tensorReports(s *pipeline.State, ms *modelState, plan *pipeline.Plan) []pipeline.TensorMetric {
	planned := map[tensorKey]*pipeline.WeightPlan{}
	if plan != nil {
		for _, w := range plan.Weights {
			planned[tensorKey{w.Subgraph, w.Tensor}] = w
		}
	}
	var out []pipeline.TensorMetric
	for _, j := range ms.jobs {
		if j.clamped > 0 {
			note := fmt.Sprintf("%s: %d int4 block scale(s) raised to the smallest normal float16 (2^-14) so that the CPU runtime accepts them", j.label, j.clamped)
			if s.Plan != nil {
				s.Plan.Notes = append(s.Plan.Notes, note)
			}
			s.Log.Info().Msg(note)
		}
		if j.errs.N == 0 {
			continue
		}
		for _, g := range j.tensors {
			tm := j.metric(ms.m.Meta.Subgraphs[g.sg].Tensors[g.tensor].Name)
			if w := planned[g.original()]; w != nil {
				tm.Role, tm.Layer = w.Role, w.Layer
				if w.Budget != nil {
					for _, o := range w.Budget.Options {
						if o.Chosen {
							kl := o.KL
							tm.SensitivityKL = &kl
						}
					}
				}
			}
			out = append(out, tm)
		}
	}
	return out
}

// metric reports the job's measured error. JSON cannot carry infinities:
// a perfect reconstruction (SQNR +Inf) is reported as 999 dB, and the
// values are clamped to ±999 in general.
func (j *bufferJob) metric(name string) pipeline.TensorMetric {
	m := j.errs.Metrics()
	tm := pipeline.TensorMetric{Tensor: name, Scheme: j.req.sc.name, SQNR: reportable(m.SQNR), MaxAbs: reportable(m.MaxAbs), RelL2: reportable(m.RelL2)}
	if j.req.sc.searched() {
		tm.Scales = j.req.sc.scales
		mm := dB(j.errs.Signal, j.search.MinMax)
		tm.SQNRMinMax = &mm
		if j.search.OutMinMax > 0 {
			r := j.search.OutChosen / j.search.OutMinMax
			tm.OutputErrorRatio = &r
		}
	}
	return tm
}

// checkOutputPath refuses to write over the input.
func checkOutputPath(out, in string) error {
	if out == "" {
		return fmt.Errorf("no output path")
	}
	a, err1 := os.Stat(out)
	b, err2 := os.Stat(in)
	if err1 == nil && err2 == nil && os.SameFile(a, b) {
		return fmt.Errorf("output %s is the input model: qpipe never overwrites its input; choose another serialize path", out)
	}
	if ao, err := filepath.Abs(out); err == nil {
		if ai, err := filepath.Abs(in); err == nil && ao == ai {
			return fmt.Errorf("output %s is the input model: qpipe never overwrites its input; choose another serialize path", out)
		}
	}
	return nil
}

func layoutOf(path string) string {
	m, err := tflite.Open(path)
	if err != nil {
		return ""
	}
	defer m.Close()
	return m.Layout.String()
}

// digests remembers the files FileSHA256 hashed, with their stat data: the
// model's digest keys the calibration statistics and the budget's
// sensitivities, and a job's branches and passes ask for it several times.
var digests = lockfile.NewStatCache()

// FileSHA256 is the hex sha256 of a file, read once per process while the
// file is unchanged (lockfile.StatCache's rules).
func FileSHA256(path string) (string, error) {
	f, _, err := digests.Digest(path)
	return f.SHA256, err
}

// progress is how the write reports the bytes it has written: through
// z.Progress (the command's terminal line) when set, else as "progress"
// events of step "write" in the log (progress.Reporter), so that a job
// whose quantization happens while it writes (gptq on a 7B model: most of
// an hour) shows how far it is in its JSON log too. done ends it.
func (z *Serialize) progress(s *pipeline.State) (report func(done, total int64), done func()) {
	if z.Progress != nil {
		return z.Progress, func() {}
	}
	var mu sync.Mutex
	var r *progress.Reporter
	report = func(d, total int64) {
		mu.Lock()
		if r == nil {
			r = progress.Start(s.Log, "write", total, progress.Bytes)
		}
		mu.Unlock()
		r.Set(d)
	}
	return report, func() {
		mu.Lock()
		defer mu.Unlock()
		r.Done()
	}
}

// withProgressAll returns shallow copies of the models whose buffer
// contents report the bytes they write, counted together.
func withProgressAll(ms []*tflite.Model, report func(done, total int64)) []*tflite.Model {
	p := &byteCounter{report: report}
	for _, m := range ms {
		for _, b := range m.Buffers {
			if b.Data != nil {
				p.total += b.Data.Len()
			}
		}
	}
	out := make([]*tflite.Model, len(ms))
	for i, m := range ms {
		out[i] = wrapContents(m, func(c tflite.Content) tflite.Content { return progressContent{c, p} })
	}
	return out
}

// wrapContents returns a shallow copy of m whose non-empty buffer contents
// are wrapped by wrap. A tflite.Late content stays Late around its wrapper,
// so that the writer still produces it after the others.
func wrapContents(m *tflite.Model, wrap func(tflite.Content) tflite.Content) *tflite.Model {
	c := *m
	c.Buffers = make([]tflite.Buffer, len(m.Buffers))
	for i, b := range m.Buffers {
		c.Buffers[i] = b
		if b.Data == nil || b.Data.Len() == 0 {
			continue
		}
		if l, ok := b.Data.(tflite.Late); ok {
			c.Buffers[i].Data = tflite.Late{Content: wrap(l.Content)}
		} else {
			c.Buffers[i].Data = wrap(b.Data)
		}
	}
	return &c
}
