package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/cache"
	"github.com/qpipe/qpipe/internal/lockfile"
	"github.com/qpipe/qpipe/pipeline"
	"github.com/qpipe/qpipe/stages"
)

func init() {
	register(command{
		name:    "run",
		usage:   "[--keep-going] [--json] [--report DIR] [--fsync] [--strict] [--strict-reference] [--scales minmax|search|calibrated] [--force | --check | --locked] [--shard I/N] [--jobs N] [--memory SIZE] JOB.yaml...",
		summary: "run job files (load, annotate, quantize, verify, serialize), skipping those up to date with their JOB.lock; a summary at the end",
		run:     runCmd,
	})
}

// runner runs job files with the settings of one `qpipe run`.
type runner struct {
	log    zerolog.Logger
	prog   *progressLine
	stage  stages.Options
	force  bool // redo jobs that are up to date
	check  bool // rebuild into a temporary folder and compare with the locks
	locked bool // fail instead of changing a lock
}

func runCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	keepGoing := fs.Bool("keep-going", false, "run every job even after one failed")
	asJSON := fs.Bool("json", false, "print the report as JSON on stdout")
	reportDir := fs.String("report", "", "also write the report as an HTML page, DIR/report.html")
	fsync := fs.Bool("fsync", false, "flush each output to the disk before reporting it written")
	strict := fs.Bool("strict-reference", false, "do not clamp tiny int4 block scales (outputs the CPU runtime may refuse)")
	strictLint := fs.Bool("strict", false, "fail a job whose file has lines that do nothing on its model (unmatched annotate rules, per-layer overrides of missing blocks, recipe roles no weight has) instead of warning")
	force := fs.Bool("force", false, "redo jobs even when their lock says they are up to date")
	check := fs.Bool("check", false, "rebuild into a temporary folder and compare with the lock files; change nothing")
	locked := fs.Bool("locked", false, "fail instead of creating or changing a lock file")
	shard := fs.String("shard", "", "INDEX/COUNT: run only this process's share of the job files")
	jobsN := fs.Int("jobs", 1, "run up to N job files at once, within the memory budget")
	memory := fs.String("memory", "", "memory budget for --jobs (e.g. 8GiB); default 3/4 of the available memory")
	scales, checkScales := scalesFlag(fs)
	flags, jobs := flagArgs(args, map[string]bool{"report": true, "shard": true, "jobs": true, "memory": true, "scales": true})
	if err := fs.Parse(flags); err != nil {
		return usagef("%v", err)
	}
	if err := checkScales(); err != nil {
		return err
	}
	if len(jobs) == 0 {
		return usagef("no job file given")
	}
	jobs, err := expandJobArgs(jobs)
	if err != nil {
		return err
	}
	if *check && (*force || *locked) {
		return usagef("--check changes nothing; it does not combine with --force or --locked")
	}
	if *force && *locked {
		return usagef("--force redoes jobs and may change their locks; it does not combine with --locked")
	}
	if *jobsN < 1 {
		return usagef("--jobs %d: want at least 1", *jobsN)
	}
	budget, err := memoryBudget(*memory)
	if err != nil {
		return usagef("--memory %s: %v", *memory, err)
	}
	if *shard != "" {
		index, count, err := parseShard(*shard)
		if err != nil {
			return usagef("--shard %s: %v", *shard, err)
		}
		if jobs, err = shardJobs(jobs, index, count); err != nil {
			return err
		}
	}
	ctx, stop := signalContext()
	defer stop()
	stderr = &syncWriter{w: stderr}
	rn := &runner{
		log:    newLogger(stderr),
		stage:  stages.Options{Hash: true, Sync: *fsync, StrictReference: *strict, Strict: *strictLint, Scales: *scales, BudgetCache: cache.Dir()},
		force:  *force,
		check:  *check,
		locked: *locked,
	}
	if *jobsN == 1 {
		rn.prog = newProgress(stderr)
	}
	if *shard != "" {
		rn.log.Info().Str("shard", *shard).Strs("jobs", jobs).Msg("this shard's job files")
	}
	var reports []*pipeline.JobReport
	if *jobsN == 1 {
		reports = rn.serial(ctx, jobs, *keepGoing)
	} else {
		reports = rn.concurrent(ctx, jobs, *jobsN, budget, *keepGoing)
	}
	failed := 0
	for _, r := range reports {
		if r.Status == "failed" {
			failed++
		}
	}
	runJSON, err := runReportJSON(reports)
	if err != nil {
		return err
	}
	if *asJSON {
		if _, err := stdout.Write(runJSON); err != nil {
			return err
		}
	} else {
		printSummary(stderr, reports)
	}
	if ctx.Err() != nil {
		return interrupted(ctx, ctx.Err())
	}
	if *reportDir != "" {
		path, err := writeReport(*reportDir, runJSON)
		if err != nil {
			return exitError{code: exitFailed, err: fmt.Errorf("report: %w", err)}
		}
		fmt.Fprintf(stderr, "report: %s\n", path)
	}
	if failed > 0 {
		if *check {
			return exitError{code: exitFailed, err: fmt.Errorf("%d of %d job(s) do not match their lock", failed, len(jobs))}
		}
		return exitError{code: exitFailed, err: fmt.Errorf("%d of %d job(s) failed", failed, len(jobs))}
	}
	return nil
}

// notRun is the report of a job left out after an earlier failure.
func notRun(path string) *pipeline.JobReport {
	return &pipeline.JobReport{File: path, Status: "skipped", Reason: "not run: an earlier job failed (--keep-going runs every job)", Outputs: []*pipeline.OutputReport{}}
}

func (rn *runner) serial(ctx context.Context, jobs []string, keepGoing bool) []*pipeline.JobReport {
	var reports []*pipeline.JobReport
	for _, path := range jobs {
		if ctx.Err() != nil {
			break
		}
		r := rn.job(ctx, path)
		reports = append(reports, r)
		if r.Status == "failed" && !keepGoing {
			break
		}
	}
	for _, path := range jobs[len(reports):] {
		reports = append(reports, notRun(path))
	}
	return reports
}

// job runs one job file and reports on it; it never panics on a bad job.
func (rn *runner) job(ctx context.Context, path string) *pipeline.JobReport {
	start := time.Now()
	r := &pipeline.JobReport{File: path, Status: "failed", Outputs: []*pipeline.OutputReport{}}
	defer func() { r.Seconds = time.Since(start).Seconds() }()
	log := rn.log
	fail := func(err error) *pipeline.JobReport {
		r.Error = err.Error()
		if ctx.Err() != nil {
			r.Error = "interrupted"
		}
		log.Error().Str("job", r.Name).Msg(r.Error)
		return r
	}
	job, err := config.LoadJob(path)
	if err != nil {
		r.Name = path
		return fail(err)
	}
	r.Name = job.Name
	log = log.With().Str("job", job.Name).Logger()
	for _, w := range job.Warnings {
		log.Warn().Msg(w.Error())
		r.Warnings = append(r.Warnings, w.Error())
	}
	lockPath := lockfile.PathFor(path)
	r.Lock = lockPath
	dir := lockDir(path)
	want, err := expectedLock(path, job, rn.stage.StrictReference, rn.stage.Scales)
	if err != nil {
		return fail(err)
	}
	old, err := lockfile.Read(lockPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		old = nil
	case err != nil && (rn.check || rn.locked):
		return fail(fmt.Errorf("%w; delete it and run without --check/--locked to write a new one", err))
	case err != nil:
		log.Warn().Msg(err.Error() + "; it will be rewritten")
		old = nil
	}
	if rn.check {
		return rn.checkJob(ctx, r, job, dir, old, want)
	}
	cache := lockfile.OpenStatCache(lockfile.CachePathFor(lockPath))
	defer func() {
		if r.Status == "failed" {
			return // a failed job leaves no new file behind
		}
		if err := cache.Save(); err != nil {
			log.Warn().Msg("stat cache not saved (the next run rehashes): " + err.Error())
		}
	}()
	if old != nil && !rn.force {
		reasons := staleReasons(dir, old, want, cache)
		if reasons == nil {
			r.Status = "skipped"
			r.Reason = "up to date with " + lockPath
			r.InputSHA256, r.InputBytes = old.Outputs[0].Input.SHA256, old.Outputs[0].Input.Size
			for _, o := range job.Outputs() {
				lo := old.Output(lockfile.Rel(dir, o.Path))
				r.Outputs = append(r.Outputs, &pipeline.OutputReport{Recipe: o.Recipe.Name, Path: o.Path, SHA256: lo.File.SHA256, Bytes: lo.File.Size})
			}
			log.Info().Str("lock", lockPath).Msg("up to date: skipped (--force redoes it)")
			return r
		}
		for _, why := range reasons {
			log.Info().Str("lock", lockPath).Msg("not up to date: " + why)
		}
	}
	if rn.locked {
		if old == nil {
			return fail(fmt.Errorf("no lock file %s; --locked does not create one (run without --locked and commit it)", lockPath))
		}
		if d := headerDiff(old, want); d != nil {
			return fail(fmt.Errorf("the lock %s would change (--locked):\n%s", lockPath, strings.Join(d, "\n")))
		}
	}
	// With --locked, outputs are built beside their destinations and
	// moved into place only if they match the lock.
	var staged []stagedOutput
	branches, state, err := rn.build(ctx, job, log, func(pj *pipeline.Job) error {
		if !rn.locked {
			return nil
		}
		var err error
		staged, err = redirectOutputs(pj, job.Name, func(i int, real string) (string, error) {
			if err := os.MkdirAll(filepath.Dir(real), 0o755); err != nil {
				return "", err
			}
			d, err := os.MkdirTemp(filepath.Dir(real), ".qpipe-locked-")
			if err != nil {
				return "", err
			}
			return filepath.Join(d, filepath.Base(real)), nil
		})
		return err
	})
	defer removeStaged(staged)
	if state != nil {
		defer stages.Close(state)
	}
	if state != nil {
		r.Warnings = append(r.Warnings, state.Warnings...)
	}
	for _, b := range branches {
		if b.Output != nil {
			r.Outputs = append(r.Outputs, b.Output)
		}
	}
	// The input's digest is reported for failed jobs too.
	in, _, inErr := cache.Digest(job.Load().Path)
	if inErr == nil {
		r.InputSHA256, r.InputBytes = in.SHA256, in.Size
	}
	if err != nil {
		return fail(err)
	}
	if inErr != nil {
		return fail(fmt.Errorf("input %s: %w", job.Load().Path, inErr))
	}
	unstage(r.Outputs, staged)
	got := newLock(dir, want, in, r.Outputs)
	if rn.locked {
		if d := lockfile.Diff(old, got); d != nil {
			return fail(fmt.Errorf("the lock %s would change (--locked); the outputs were left as they were:\n%s", lockPath, strings.Join(d, "\n")))
		}
		for _, s := range staged {
			cache.Forget(s.real)
			if err := os.Rename(s.staged, s.real); err != nil {
				return fail(err)
			}
		}
		for _, o := range r.Outputs {
			o.Path = realPath(o.Path, staged)
		}
	} else if old == nil || lockfile.Diff(old, got) != nil || rn.force {
		if err := got.WriteFile(lockPath); err != nil {
			return fail(err)
		}
	}
	for _, o := range got.Outputs {
		// The outputs were just written: their stat data are racy, so
		// the next run rehashes them once (lockfile.Racy).
		cache.Forget(lockfile.Abs(dir, o.File.Path))
	}
	r.Status = "ok"
	for _, o := range r.Outputs {
		log.Info().Str("recipe", o.Recipe).Str("path", o.Path).Int64("bytes", o.Bytes).Msg("wrote")
	}
	return r
}

// build runs the job; adjust may change the runnable job (its output
// paths) first. The returned state must be closed.
func (rn *runner) build(ctx context.Context, job *config.Job, log zerolog.Logger, adjust func(*pipeline.Job) error) ([]*pipeline.State, *pipeline.State, error) {
	opt := rn.stage
	if rn.prog != nil {
		opt.Progress = rn.prog.update
	}
	pj, err := stages.Build(job, opt)
	if err != nil {
		return nil, nil, err
	}
	if err := adjust(pj); err != nil {
		return nil, nil, err
	}
	rn.prog.start(job.Name)
	state := &pipeline.State{Log: log, Metrics: true}
	branches, err := pipeline.Run(ctx, pj, state)
	rn.prog.finish()
	logInputPath(&log)
	return branches, state, err
}

// newLock is want with the digests of the input and of what was written.
func newLock(dir string, want *lockfile.Lock, in lockfile.File, outs []*pipeline.OutputReport) *lockfile.Lock {
	l := *want
	l.Outputs = append([]lockfile.Output(nil), want.Outputs...)
	for i := range l.Outputs {
		l.Outputs[i].Input = lockfile.File{Path: l.Outputs[i].Input.Path, Size: in.Size, SHA256: in.SHA256}
		for _, o := range outs {
			if lockfile.Rel(dir, o.Path) == l.Outputs[i].File.Path {
				l.Outputs[i].File.Size, l.Outputs[i].File.SHA256 = o.Bytes, o.SHA256
			}
		}
	}
	return &l
}

// stagedOutput is an output built somewhere else than its destination.
type stagedOutput struct {
	staged, real string
}

// redirectOutputs makes each branch of pj write to to(i, destination)
// instead of its destination.
func redirectOutputs(pj *pipeline.Job, name string, to func(i int, real string) (string, error)) ([]stagedOutput, error) {
	var out []stagedOutput
	for i, b := range pj.Branches {
		for _, st := range b.Stages {
			z, ok := st.(*stages.Serialize)
			if !ok {
				continue
			}
			real := stages.ExpandPath(z.Path, name, b.Suffix)
			p, err := to(i, real)
			if err != nil {
				removeStaged(out)
				return nil, err
			}
			z.Path = p
			out = append(out, stagedOutput{staged: p, real: real})
		}
	}
	return out, nil
}

// removeStaged deletes what is left of staged outputs and their folders.
func removeStaged(staged []stagedOutput) {
	for _, s := range staged {
		os.Remove(s.staged)
		os.Remove(filepath.Dir(s.staged))
	}
}

// unstage reports staged outputs under their destinations for the lock.
func unstage(outs []*pipeline.OutputReport, staged []stagedOutput) {
	for _, o := range outs {
		o.Path = realPath(o.Path, staged)
	}
}

func realPath(p string, staged []stagedOutput) string {
	for _, s := range staged {
		if s.staged == p {
			return s.real
		}
	}
	return p
}

// checkJob rebuilds the job into a temporary folder and compares the job
// file, the input, the outputs on disk and the rebuilt outputs with the
// lock. It writes nothing outside the temporary folder ($TMPDIR).
func (rn *runner) checkJob(ctx context.Context, r *pipeline.JobReport, job *config.Job, dir string, old, want *lockfile.Lock) *pipeline.JobReport {
	log := rn.log.With().Str("job", job.Name).Logger()
	if old == nil {
		r.Error = fmt.Sprintf("no lock file %s; run `qpipe run %s` to write one", r.Lock, r.File)
		log.Error().Msg(r.Error)
		return r
	}
	add := func(what, path string, ok bool, detail string) {
		r.Check = append(r.Check, pipeline.CheckResult{What: what, Path: path, OK: ok, Detail: detail})
	}
	if t := toolIdentity(); t != old.Tool {
		log.Info().Msgf("the lock was written by qpipe %s (%s, %s); checking with qpipe %s (%s, %s)", old.Tool.Version, old.Tool.Build, old.Tool.Platform, t.Version, t.Build, t.Platform)
	}
	jobOK := old.Job.SHA256 == want.Job.SHA256 && old.Options == want.Options && lockfile.Diff(old, fillFrom(old, want)) == nil
	detail := ""
	if !jobOK {
		detail = strings.Join(headerDiff(old, withTool(want, old.Tool)), "; ")
		if detail == "" {
			detail = "the job file or the options differ from the lock"
		}
	}
	add("job", old.Job.Path, jobOK, detail)
	// The input, the outputs on disk: read in full, no stat cache.
	inputs := map[string]bool{}
	for _, o := range old.Outputs {
		if inputs[o.Input.Path] {
			continue
		}
		inputs[o.Input.Path] = true
		ok, detail := compareFile(lockfile.Abs(dir, o.Input.Path), o.Input)
		add("input", o.Input.Path, ok, detail)
	}
	for _, o := range old.Outputs {
		ok, detail := compareFile(lockfile.Abs(dir, o.File.Path), o.File)
		add("output", o.File.Path, ok, detail)
	}
	tmp, err := os.MkdirTemp("", "qpipe-check-")
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer os.RemoveAll(tmp)
	var staged []stagedOutput
	branches, state, err := rn.build(ctx, job, log, func(pj *pipeline.Job) error {
		var err error
		staged, err = redirectOutputs(pj, job.Name, func(i int, real string) (string, error) {
			d := filepath.Join(tmp, strconv.Itoa(i))
			return filepath.Join(d, filepath.Base(real)), os.Mkdir(d, 0o755)
		})
		return err
	})
	if state != nil {
		defer stages.Close(state)
	}
	if err != nil {
		r.Error = err.Error()
		if ctx.Err() != nil {
			r.Error = "interrupted"
		}
		log.Error().Msg(r.Error)
		return r
	}
	for _, b := range branches {
		o := b.Output
		rel := lockfile.Rel(dir, realPath(o.Path, staged))
		lo := old.Output(rel)
		switch {
		case lo == nil:
			add("rebuilt", rel, false, "the job writes it but the lock does not list it")
		case lo.File.Size != o.Bytes || lo.File.SHA256 != o.SHA256:
			add("rebuilt", rel, false, fmt.Sprintf("rebuilt %d bytes sha256:%s, the lock %d bytes sha256:%s", o.Bytes, o.SHA256, lo.File.Size, lo.File.SHA256))
		default:
			add("rebuilt", rel, true, "")
		}
		o.Path = realPath(o.Path, staged)
		r.Outputs = append(r.Outputs, o)
	}
	var bad []string
	for _, c := range r.Check {
		if !c.OK {
			bad = append(bad, fmt.Sprintf("%s %s: %s", c.What, c.Path, c.Detail))
		}
	}
	if bad != nil {
		r.Error = "differs from " + r.Lock + ":\n" + strings.Join(bad, "\n")
		log.Error().Msg(r.Error)
		return r
	}
	r.Status = "ok"
	log.Info().Msg("every output matches " + r.Lock)
	return r
}

// fillFrom is want with the digests and the tool of old, so that Diff
// shows only what a job file decides.
func fillFrom(old, want *lockfile.Lock) *lockfile.Lock {
	w := withTool(want, old.Tool)
	for i := range w.Outputs {
		if o := old.Output(w.Outputs[i].File.Path); o != nil {
			w.Outputs[i].File = o.File
			w.Outputs[i].Input.Size, w.Outputs[i].Input.SHA256 = o.Input.Size, o.Input.SHA256
		}
	}
	return w
}

func withTool(l *lockfile.Lock, t lockfile.Tool) *lockfile.Lock {
	c := *l
	c.Tool = t
	c.Outputs = append([]lockfile.Output(nil), l.Outputs...)
	return &c
}

// compareFile reads a file in full and compares it with the lock's entry.
func compareFile(path string, want lockfile.File) (bool, string) {
	f, err := lockfile.SHA256(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, "missing"
	case err != nil:
		return false, err.Error()
	case f.Size != want.Size || f.SHA256 != want.SHA256:
		return false, fmt.Sprintf("%d bytes sha256:%s, the lock %d bytes sha256:%s", f.Size, f.SHA256, want.Size, want.SHA256)
	}
	return true, ""
}

func printSummary(w io.Writer, reports []*pipeline.JobReport) {
	fmt.Fprintln(w, "\nsummary:")
	for _, r := range reports {
		name := r.Name
		if name == "" {
			name = r.File
		}
		fmt.Fprintf(w, "  %-8s %s (%.1fs)\n", r.Status, name, r.Seconds)
		if r.Reason != "" {
			fmt.Fprintf(w, "           %s\n", r.Reason)
		}
		for _, o := range r.Outputs {
			fmt.Fprintf(w, "           %s  %s  %s\n", o.Recipe, o.Path, humanBytes(o.Bytes))
			if a := o.Accuracy; a != nil {
				fmt.Fprintf(w, "             accuracy (%s): %s\n", accuracySetting(a), accuracyChecks(a))
			}
		}
		for _, c := range r.Check {
			status := "ok"
			if !c.OK {
				status = "DIFFERS"
			}
			line := fmt.Sprintf("           %-7s %-7s %s", status, c.What, c.Path)
			if c.Detail != "" {
				line += ": " + c.Detail
			}
			fmt.Fprintln(w, line)
		}
		if r.Error != "" && r.Check == nil {
			fmt.Fprintf(w, "           %s\n", indent(r.Error, "           "))
		}
	}
}

func indent(s, prefix string) string {
	out := []byte{}
	for i := 0; i < len(s); i++ {
		out = append(out, s[i])
		if s[i] == '\n' {
			out = append(out, prefix...)
		}
	}
	return string(out)
}

// syncWriter serialises writes from concurrent jobs (each log line is one
// Write).
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// expandJobArgs replaces a folder among the job arguments by the job files
// it holds (*.yaml and *.yml, not in subfolders, sorted), so that a
// container without a shell can be given a folder instead of a glob.
func expandJobArgs(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		fi, err := os.Stat(a)
		if err != nil || !fi.IsDir() {
			out = append(out, a) // a file, or missing: its run says why
			continue
		}
		ents, err := os.ReadDir(a)
		if err != nil {
			return nil, err
		}
		n := len(out)
		for _, e := range ents {
			if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
				out = append(out, filepath.Join(a, e.Name()))
			}
		}
		if len(out) == n {
			return nil, usagef("no job files (*.yaml, *.yml) in the folder %s", a)
		}
	}
	return out, nil
}
