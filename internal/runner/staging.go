package runner

import (
	"os"
	"path/filepath"
	"strconv"

	"github.com/qpipe/qpipe/internal/lockfile"
	"github.com/qpipe/qpipe/pipeline"
)

// staging builds outputs somewhere else than their destinations: its path
// method is the build's OutputPath option (stages.Options).
type staging struct {
	// at picks where branch i's output, destined for dest, is built.
	at   func(i int, dest string) (string, error)
	outs []stagedOutput
}

// stagedOutput is an output built somewhere else than its destination.
type stagedOutput struct {
	staged, real string
}

func (s *staging) path(i int, dest string) (string, error) {
	p, err := s.at(i, dest)
	if err != nil {
		return "", err
	}
	s.outs = append(s.outs, stagedOutput{staged: p, real: dest})
	return p, nil
}

// besideDest is a new temporary folder next to dest (on the same file
// system, so that the output is moved into place by a rename).
func besideDest(_ int, dest string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return "", err
	}
	d, err := os.MkdirTemp(filepath.Dir(dest), ".qpipe-locked-")
	if err != nil {
		return "", err
	}
	return filepath.Join(d, filepath.Base(dest)), nil
}

// under returns an at function that builds branch i in dir/i.
func under(dir string) func(int, string) (string, error) {
	return func(i int, dest string) (string, error) {
		d := filepath.Join(dir, strconv.Itoa(i))
		if err := os.Mkdir(d, 0o755); err != nil {
			return "", err
		}
		return filepath.Join(d, filepath.Base(dest)), nil
	}
}

// remove deletes what is left of the staged outputs and their folders.
func (s *staging) remove() {
	for _, o := range s.outs {
		os.Remove(o.staged)
		os.Remove(filepath.Dir(o.staged))
	}
}

// unstage reports staged outputs under their destinations.
func (s *staging) unstage(outs []*pipeline.OutputReport) {
	for _, o := range outs {
		o.Path = s.real(o.Path)
	}
}

func (s *staging) real(p string) string {
	for _, o := range s.outs {
		if o.staged == p {
			return o.real
		}
	}
	return p
}

// commit moves the staged outputs to their destinations.
func (s *staging) commit(cache *lockfile.StatCache) error {
	for _, o := range s.outs {
		cache.Forget(o.real)
		if err := os.Rename(o.staged, o.real); err != nil {
			return err
		}
	}
	return nil
}
