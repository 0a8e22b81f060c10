package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/lockfile"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/pipeline"
	"github.com/qpipe/qpipe/stages"
)

// Runner runs job files with the settings of one `qpipe run`.
type Runner struct {
	Log zerolog.Logger
	// Progress, when set, is shown while a job's outputs are written (one
	// job at a time only).
	Progress Progress
	// Stage are the settings every stage gets; OutputPath is the runner's.
	Stage stages.Options
	Mode  Mode
	// Tool is this qpipe as the locks record it (Tool(version)).
	Tool lockfile.Tool
}

// Progress draws the progress of one job's outputs.
type Progress interface {
	Start(label string)
	Update(done, total int64)
	Finish()
}

// Run runs the job files, n at most at once within a memory budget of
// budget bytes (0: unbounded), and reports on each in the given order. After
// a failure the jobs not started are reported not run, unless keepGoing.
func (rn *Runner) Run(ctx context.Context, jobs []string, n int, budget int64, keepGoing bool) []*pipeline.JobReport {
	if n > 1 {
		return rn.concurrent(ctx, jobs, n, budget, keepGoing)
	}
	var reports []*pipeline.JobReport
	for _, path := range jobs {
		if ctx.Err() != nil {
			break
		}
		r := rn.Job(ctx, path)
		reports = append(reports, r)
		if r.Status == pipeline.StatusFailed && !keepGoing {
			break
		}
	}
	for _, path := range jobs[len(reports):] {
		reports = append(reports, notRun(path))
	}
	return reports
}

// notRun is the report of a job left out after an earlier failure.
func notRun(path string) *pipeline.JobReport {
	return &pipeline.JobReport{File: path, Status: pipeline.StatusSkipped, Reason: "not run: an earlier job failed (--keep-going runs every job)", Outputs: []*pipeline.OutputReport{}}
}

// prepared is a job file read with its lock: the old one on disk (nil:
// none) and the one a run would write, without the digests (want).
type prepared struct {
	path, dir, lockPath string
	job                 *config.Job
	old, want           *lockfile.Lock
	log                 zerolog.Logger
}

// Job runs one job file and reports on it; it never panics on a bad job.
func (rn *Runner) Job(ctx context.Context, path string) *pipeline.JobReport {
	start := time.Now()
	r := &pipeline.JobReport{File: path, Status: pipeline.StatusFailed, Outputs: []*pipeline.OutputReport{}}
	defer func() { r.Seconds = time.Since(start).Seconds() }()
	p, err := rn.prepare(r)
	if err != nil {
		return rn.fail(ctx, r, p.log, err)
	}
	var cache *lockfile.StatCache
	if rn.Mode != Check {
		cache = lockfile.OpenStatCache(lockfile.CachePathFor(p.lockPath))
		defer func() {
			if r.Status == pipeline.StatusFailed {
				return // a failed job leaves no new file behind
			}
			if err := cache.Save(); err != nil {
				p.log.Warn().Msg("stat cache not saved (the next run rehashes): " + err.Error())
			}
		}()
	}
	action, reasons, err := Decide(rn.Mode, p.lockPath, path, p.old, p.want, func() []string { return staleReasons(p.dir, p.old, p.want, cache) })
	for _, why := range reasons {
		p.log.Info().Str("lock", p.lockPath).Msg("not up to date: " + why)
	}
	switch {
	case err != nil:
		return rn.fail(ctx, r, p.log, err)
	case action == Skip:
		return skipped(r, p)
	case action == Compare:
		return rn.checkJob(ctx, r, p)
	}
	return rn.buildJob(ctx, r, p, cache)
}

// prepare reads the job file, the lock it would write and its lock on disk.
func (rn *Runner) prepare(r *pipeline.JobReport) (*prepared, error) {
	p := &prepared{path: r.File, log: rn.Log}
	job, err := config.LoadJob(r.File)
	if err != nil {
		r.Name = r.File
		return p, err
	}
	p.job, r.Name = job, job.Name
	p.log = rn.Log.With().Str("job", job.Name).Logger()
	for _, w := range job.Warnings {
		p.log.Warn().Msg(w.Error())
		r.Warnings = append(r.Warnings, w.Error())
	}
	p.lockPath, p.dir = lockfile.PathFor(r.File), lockDir(r.File)
	r.Lock = p.lockPath
	if p.want, err = expectedLock(rn.Tool, r.File, job, rn.Stage.StrictReference, rn.Stage.Scales); err != nil {
		return p, err
	}
	p.old, err = lockfile.Read(p.lockPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.old = nil
	case err != nil && (rn.Mode == Check || rn.Mode == Locked):
		return p, fmt.Errorf("%w; delete it and run without --check/--locked to write a new one", err)
	case err != nil:
		p.log.Warn().Msg(err.Error() + "; it will be rewritten")
		p.old = nil
	}
	return p, nil
}

// fail reports the job failed with err ("interrupted" once ctx is done).
func (rn *Runner) fail(ctx context.Context, r *pipeline.JobReport, log zerolog.Logger, err error) *pipeline.JobReport {
	r.Status = pipeline.StatusFailed
	r.Error = err.Error()
	if ctx.Err() != nil {
		r.Error = "interrupted"
	}
	log.Error().Str("job", r.Name).Msg(r.Error)
	return r
}

// skipped reports a job up to date with its lock, with the lock's digests.
func skipped(r *pipeline.JobReport, p *prepared) *pipeline.JobReport {
	r.Status = pipeline.StatusSkipped
	r.Reason = "up to date with " + p.lockPath
	r.InputSHA256, r.InputBytes = p.old.Outputs[0].Input.SHA256, p.old.Outputs[0].Input.Size
	for _, o := range p.job.Outputs() {
		lo := p.old.Output(lockfile.Rel(p.dir, o.Path))
		r.Outputs = append(r.Outputs, &pipeline.OutputReport{Recipe: o.Recipe.Name, Path: o.Path, SHA256: lo.File.SHA256, Bytes: lo.File.Size})
	}
	p.log.Info().Str("lock", p.lockPath).Msg("up to date: skipped (--force redoes it)")
	return r
}

// buildJob runs the job and records it in its lock. With Locked, outputs
// are built beside their destinations and moved into place only if they
// match the lock.
func (rn *Runner) buildJob(ctx context.Context, r *pipeline.JobReport, p *prepared, cache *lockfile.StatCache) *pipeline.JobReport {
	opt := rn.Stage
	st := &staging{at: besideDest}
	if rn.Mode == Locked {
		opt.OutputPath = st.path
	}
	defer st.remove()
	branches, state, err := rn.build(ctx, p.job, p.log, opt)
	defer stages.Close(state)
	r.Warnings = append(r.Warnings, state.Warnings...)
	for _, b := range branches {
		if b.Output != nil {
			r.Outputs = append(r.Outputs, b.Output)
		}
	}
	// The input's digest is reported for failed jobs too.
	in, _, inErr := cache.Digest(p.job.Load().Path)
	if inErr == nil {
		r.InputSHA256, r.InputBytes = in.SHA256, in.Size
	}
	if err != nil {
		return rn.fail(ctx, r, p.log, err)
	}
	if inErr != nil {
		return rn.fail(ctx, r, p.log, fmt.Errorf("input %s: %w", p.job.Load().Path, inErr))
	}
	st.unstage(r.Outputs)
	got := newLock(p.dir, p.want, in, r.Outputs)
	write, err := WriteLock(rn.Mode, p.lockPath, p.old, got)
	if err != nil {
		return rn.fail(ctx, r, p.log, err)
	}
	if err := st.commit(cache); err != nil {
		return rn.fail(ctx, r, p.log, err)
	}
	if write {
		if err := got.WriteFile(p.lockPath); err != nil {
			return rn.fail(ctx, r, p.log, err)
		}
	}
	for _, o := range got.Outputs {
		// The outputs were just written: their stat data are racy, so
		// the next run rehashes them once (lockfile.Racy).
		cache.Forget(lockfile.Abs(p.dir, o.File.Path))
	}
	r.Status = pipeline.StatusOK
	for _, o := range r.Outputs {
		p.log.Info().Str("recipe", o.Recipe).Str("path", o.Path).Int64("bytes", o.Bytes).Msg("wrote")
	}
	return r
}

// build runs the job with opt. The returned state must be closed.
func (rn *Runner) build(ctx context.Context, job *config.Job, log zerolog.Logger, opt stages.Options) ([]*pipeline.State, *pipeline.State, error) {
	state := &pipeline.State{Log: log, Metrics: true}
	branches, err := Execute(ctx, job, opt, state, rn.Progress)
	return branches, state, err
}

// Execute builds the job with opt and runs it in state, showing progress
// (nil: none) while the outputs are written; the branches' states come
// back. state must be closed (stages.Close). Every command that runs a job (run, quantize, plan, the memory
// estimate) runs it so.
func Execute(ctx context.Context, job *config.Job, opt stages.Options, state *pipeline.State, progress Progress) ([]*pipeline.State, error) {
	if progress != nil {
		opt.Progress = progress.Update
		defer progress.Finish()
	}
	pj, err := stages.Build(job, opt)
	if err != nil {
		return nil, err
	}
	if progress != nil {
		progress.Start(job.Name)
	}
	branches, err := pipeline.Run(ctx, pj, state)
	if path, why := tflite.InputPath(); path != "" && !state.DryRun {
		state.Log.Debug().Str("input", path).Msg("large weights read by " + path + " (" + why + ")")
	}
	return branches, err
}
