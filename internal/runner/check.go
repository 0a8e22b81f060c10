package runner

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/qpipe/qpipe/internal/lockfile"
	"github.com/qpipe/qpipe/pipeline"
	"github.com/qpipe/qpipe/stages"
)

// checkJob rebuilds the job into a temporary folder and compares the job
// file, the input, the outputs on disk and the rebuilt outputs with the
// lock. It writes nothing outside the temporary folder ($TMPDIR).
func (rn *Runner) checkJob(ctx context.Context, r *pipeline.JobReport, p *prepared) *pipeline.JobReport {
	old, want, log := p.old, p.want, p.log
	add := func(what, path string, ok bool, detail string) {
		r.Check = append(r.Check, pipeline.CheckResult{What: what, Path: path, OK: ok, Detail: detail})
	}
	if t := rn.Tool; t != old.Tool {
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
		ok, detail := compareFile(lockfile.Abs(p.dir, o.Input.Path), o.Input)
		add("input", o.Input.Path, ok, detail)
	}
	for _, o := range old.Outputs {
		ok, detail := compareFile(lockfile.Abs(p.dir, o.File.Path), o.File)
		add("output", o.File.Path, ok, detail)
	}
	tmp, err := os.MkdirTemp("", "qpipe-check-")
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer os.RemoveAll(tmp)
	st := &staging{at: under(tmp)}
	opt := rn.Stage
	opt.OutputPath = st.path
	branches, state, err := rn.build(ctx, p.job, log, opt)
	defer stages.Close(state)
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
		rel := lockfile.Rel(p.dir, st.real(o.Path))
		lo := old.Output(rel)
		switch {
		case lo == nil:
			add("rebuilt", rel, false, "the job writes it but the lock does not list it")
		case lo.File.Size != o.Bytes || lo.File.SHA256 != o.SHA256:
			add("rebuilt", rel, false, fmt.Sprintf("rebuilt %d bytes sha256:%s, the lock %d bytes sha256:%s", o.Bytes, o.SHA256, lo.File.Size, lo.File.SHA256))
		default:
			add("rebuilt", rel, true, "")
		}
		o.Path = st.real(o.Path)
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
	r.Status = pipeline.StatusOK
	log.Info().Msg("every output matches " + r.Lock)
	return r
}
