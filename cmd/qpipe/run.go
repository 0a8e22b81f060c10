package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"

	"github.com/qpipe/qpipe/internal/bytesize"
	"github.com/qpipe/qpipe/internal/cache"
	"github.com/qpipe/qpipe/internal/runner"
	"github.com/qpipe/qpipe/pipeline"
	"github.com/qpipe/qpipe/report"
	"github.com/qpipe/qpipe/stages"
)

func init() {
	register(command{
		name:    "run",
		usage:   "[--keep-going] [--json] [--report DIR] [--fsync] [--strict] [--strict-reference] [--scales minmax|search|calibrated|gptq] [--force | --check | --locked] [--shard I/N] [--jobs N] [--memory SIZE] JOB.yaml...",
		summary: "run job files (load, annotate, quantize, verify, serialize), skipping those up to date with their JOB.lock; a summary at the end",
		run:     runCmd,
	})
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
	jobs, err := runner.ExpandJobArgs(jobs)
	if errors.Is(err, runner.ErrNoJobFiles) {
		return usagef("%v", err)
	} else if err != nil {
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
	budget, err := runner.MemoryBudget(*memory)
	if err != nil {
		return usagef("--memory %s: %v", *memory, err)
	}
	if *shard != "" {
		index, count, err := runner.ParseShard(*shard)
		if err != nil {
			return usagef("--shard %s: %v", *shard, err)
		}
		if jobs, err = runner.ShardJobs(jobs, index, count); err != nil {
			return err
		}
	}
	ctx, stop := signalContext()
	defer stop()
	stderr = &syncWriter{w: stderr}
	mode := runner.Update
	switch {
	case *force:
		mode = runner.Force
	case *check:
		mode = runner.Check
	case *locked:
		mode = runner.Locked
	}
	rn := &runner.Runner{
		Log:   newLogger(stderr),
		Stage: stages.Options{Hash: true, Sync: *fsync, StrictReference: *strict, Strict: *strictLint, Scales: *scales, BudgetCache: cache.Dir()},
		Mode:  mode,
		Tool:  runner.Tool(versionString()),
	}
	if p := newProgress(stderr); p != nil && *jobsN == 1 {
		rn.Progress = p
	}
	if *shard != "" {
		rn.Log.Info().Str("shard", *shard).Strs("jobs", jobs).Msg("this shard's job files")
	}
	reports := rn.Run(ctx, jobs, *jobsN, budget, *keepGoing)
	failed := 0
	for _, r := range reports {
		if r.Status == pipeline.StatusFailed {
			failed++
		}
	}
	runJSON, err := report.RunJSON(reports)
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
		path, err := report.WriteFile(*reportDir, runJSON)
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
			fmt.Fprintf(w, "           %s  %s  %s\n", o.Recipe, o.Path, bytesize.Format(o.Bytes))
			if a := o.Accuracy; a != nil {
				fmt.Fprintf(w, "             accuracy (%s): %s\n", a.Setting(), a.Bounds())
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
