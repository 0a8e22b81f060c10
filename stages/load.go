package stages

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/qpipe/qpipe/internal/litertlm"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/pipeline"
)

// Load reads the model. Weight bytes stay in the file (memory-mapped) until
// serialize streams them out.
type Load struct {
	Path string
	// At is where the job file names the model (file:line:col), for
	// messages; empty for jobs built without a file.
	At string
}

func (*Load) Name() string { return "load" }

func (l *Load) Run(ctx context.Context, s *pipeline.State) error {
	if litertlm.Sniff(l.Path) {
		bs, err := loadBundle(l.Path)
		if err != nil {
			return err
		}
		s.InputPath = l.Path
		s.Model = bs
		return ctx.Err()
	}
	m, err := tflite.Open(l.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			where := ""
			if l.At != "" {
				where = l.At + ": "
			}
			return fmt.Errorf("%smodel %s does not exist: check the load path (relative paths start at the job file's folder)", where, l.Path)
		}
		return err
	}
	s.InputPath = l.Path
	s.Model = &modelState{m: m, path: l.Path, section: -1}
	return ctx.Err()
}

// Close releases what a state's model holds open.
func Close(s *pipeline.State) error {
	if ms, ok := s.Model.(*modelState); ok && ms != nil {
		return ms.m.Close()
	}
	if bs, ok := s.Model.(*bundleState); ok && bs != nil {
		return bs.close()
	}
	return nil
}
