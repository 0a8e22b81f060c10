package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/pipeline"
	"github.com/qpipe/qpipe/stages"
)

func init() {
	register(command{
		name:    "run",
		usage:   "[--keep-going] [--json] [--report DIR] [--fsync] [--strict] [--strict-reference] JOB.yaml...",
		summary: "run job files: load, annotate, quantize, verify, serialize; a summary at the end",
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
	flags, jobs := flagArgs(args, map[string]bool{"report": true})
	if err := fs.Parse(flags); err != nil {
		return usagef("%v", err)
	}
	if len(jobs) == 0 {
		return usagef("no job file given")
	}
	ctx, stop := signalContext()
	defer stop()
	log := newLogger(stderr)
	prog := newProgress(stderr)
	var reports []*pipeline.JobReport
	failed := 0
	for _, path := range jobs {
		if ctx.Err() != nil {
			break
		}
		r := runJob(ctx, path, log, prog, stages.Options{Hash: true, Sync: *fsync, StrictReference: *strict, Strict: *strictLint})
		reports = append(reports, r)
		if r.Status != "ok" {
			failed++
			if !*keepGoing {
				break
			}
		}
	}
	for _, path := range jobs[len(reports):] {
		reports = append(reports, &pipeline.JobReport{File: path, Status: "skipped"})
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
		return exitError{code: exitFailed, err: fmt.Errorf("%d of %d job(s) failed", failed, len(jobs))}
	}
	return nil
}

// runJob runs one job file and reports on it; it never panics on a bad job.
func runJob(ctx context.Context, path string, log zerolog.Logger, prog *progressLine, opt stages.Options) *pipeline.JobReport {
	start := time.Now()
	r := &pipeline.JobReport{File: path, Status: "failed", Outputs: []*pipeline.OutputReport{}}
	defer func() { r.Seconds = time.Since(start).Seconds() }()
	job, err := config.LoadJob(path)
	if err != nil {
		r.Error = err.Error()
		log.Error().Str("job", path).Msg(r.Error)
		return r
	}
	r.Name = job.Name
	for _, w := range job.Warnings {
		log.Warn().Str("job", job.Name).Msg(w.Error())
		r.Warnings = append(r.Warnings, w.Error())
	}
	if prog != nil {
		opt.Progress = prog.update
	}
	pj, err := stages.Build(job, opt)
	if err != nil {
		r.Error = err.Error()
		log.Error().Str("job", job.Name).Msg(r.Error)
		return r
	}
	prog.start(job.Name)
	state := &pipeline.State{Log: log.With().Str("job", job.Name).Logger(), Metrics: true}
	branches, err := pipeline.Run(ctx, pj, state)
	prog.finish()
	defer stages.Close(state)
	r.Warnings = append(r.Warnings, state.Warnings...)
	for _, b := range branches {
		if b.Output != nil {
			r.Outputs = append(r.Outputs, b.Output)
		}
	}
	if state.InputPath != "" {
		r.InputSHA256, _ = stages.FileSHA256(state.InputPath)
		if fi, err := os.Stat(state.InputPath); err == nil {
			r.InputBytes = fi.Size()
		}
	}
	if err != nil {
		r.Error = err.Error()
		if ctx.Err() != nil {
			r.Error = "interrupted"
		}
		log.Error().Str("job", job.Name).Msg(r.Error)
		return r
	}
	r.Status = "ok"
	for _, o := range r.Outputs {
		log.Info().Str("job", job.Name).Str("recipe", o.Recipe).Str("path", o.Path).Int64("bytes", o.Bytes).Msg("wrote")
	}
	return r
}

func printSummary(w io.Writer, reports []*pipeline.JobReport) {
	fmt.Fprintln(w, "\nsummary:")
	for _, r := range reports {
		name := r.Name
		if name == "" {
			name = r.File
		}
		fmt.Fprintf(w, "  %-8s %s (%.1fs)\n", r.Status, name, r.Seconds)
		for _, o := range r.Outputs {
			fmt.Fprintf(w, "           %s  %s  %s\n", o.Recipe, o.Path, humanBytes(o.Bytes))
		}
		if r.Error != "" {
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
