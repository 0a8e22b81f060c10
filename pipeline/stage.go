package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// Stage is one step of a job.
type Stage interface {
	// Name is the stage's kind as written in job files: load, annotate, …
	Name() string
	// Run applies the stage to s. It must return promptly with ctx.Err()
	// once ctx is cancelled.
	Run(ctx context.Context, s *State) error
}

// Forker is implemented by a State's Model when it can be copied for a
// branch: the copy shares read-only weight data and owns its tables.
type Forker interface {
	Fork() (any, error)
}

// State is what flows between stages.
type State struct {
	Log zerolog.Logger

	// Job is the job's name; Recipe the name of the branch's recipe.
	Job    string
	Recipe string
	Suffix string

	// InputPath is the model file the job loaded.
	InputPath string
	// Model is the loaded model; its concrete type is the stages' business.
	Model any
	// Part is the bundle section a stage runs on (Parts), nil otherwise.
	Part *Part

	// Plan lists every weight tensor with its role and, once quantize has
	// run, its scheme and sizes.
	Plan *Plan

	// Output describes what serialize wrote (nil before).
	Output *OutputReport

	// Warnings are findings about the job that do not stop it (lines of
	// the job file that do nothing on this model), each naming its place.
	Warnings []string

	// DryRun makes stages that would write files only check that they could.
	DryRun bool
	// Estimate, with DryRun, asks only for each weight's scheme and sizes
	// (`run --jobs`' memory estimate): quantize runs no calibration pass
	// and measures no searched scales.
	Estimate bool
	// Metrics asks the quantize stage to measure per-tensor error while the
	// output is produced.
	Metrics bool
}

// fork copies s for a branch.
func (s *State) fork() (*State, error) {
	c := *s
	if f, ok := s.Model.(Forker); ok {
		m, err := f.Fork()
		if err != nil {
			return nil, err
		}
		c.Model = m
	}
	if s.Plan != nil {
		c.Plan = s.Plan.Clone()
	}
	c.Output = nil
	return &c, nil
}

// Job is a runnable job: Prefix runs once; then each branch runs on its own
// fork of the state, in order.
type Job struct {
	Name     string
	Prefix   []Stage
	Branches []Branch
}

// Branch is the part of a job that produces one output.
type Branch struct {
	Recipe string
	Suffix string
	Stages []Stage
}

// StageError says which stage of which job failed.
type StageError struct {
	Job, Recipe, Stage string
	Err                error
}

func (e *StageError) Error() string {
	if e.Recipe != "" {
		return fmt.Sprintf("job %s, recipe %s, stage %s: %v", e.Job, e.Recipe, e.Stage, e.Err)
	}
	return fmt.Sprintf("job %s, stage %s: %v", e.Job, e.Stage, e.Err)
}

func (e *StageError) Unwrap() error { return e.Err }

// Run runs the job on s and returns one State per branch that completed
// (the branch states hold the plans and outputs). It stops at the first
// failing stage; branches already completed keep their outputs.
func Run(ctx context.Context, job *Job, s *State) ([]*State, error) {
	s.Job = job.Name
	if err := runStages(ctx, job.Prefix, s); err != nil {
		return nil, err
	}
	var done []*State
	for _, b := range job.Branches {
		bs, err := s.fork()
		if err != nil {
			return done, &StageError{Job: job.Name, Recipe: b.Recipe, Stage: "fork", Err: err}
		}
		bs.Recipe, bs.Suffix = b.Recipe, b.Suffix
		bs.Log = s.Log.With().Str("recipe", b.Recipe).Logger()
		if err := runStages(ctx, b.Stages, bs); err != nil {
			return done, err
		}
		done = append(done, bs)
	}
	return done, nil
}

func runStages(ctx context.Context, stages []Stage, s *State) error {
	for _, st := range stages {
		if err := ctx.Err(); err != nil {
			return &StageError{Job: s.Job, Recipe: s.Recipe, Stage: st.Name(), Err: err}
		}
		start := time.Now()
		s.Log.Debug().Str("stage", st.Name()).Msg("start")
		if err := runStage(ctx, st, s); err != nil {
			return &StageError{Job: s.Job, Recipe: s.Recipe, Stage: st.Name(), Err: err}
		}
		s.Log.Info().Str("stage", st.Name()).Str("took", time.Since(start).Round(time.Millisecond).String()).Msg("done")
	}
	return nil
}
