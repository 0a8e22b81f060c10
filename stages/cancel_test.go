package stages

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/gen"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/pipeline"
)

var (
	largeOnce sync.Once
	largeDir  string
	largePath string
	largeErr  error
)

// largeDecoder is a generated decoder of about 11 MB in 30 weight buffers
// of at most 1 MiB, so that a cancel at 30% of the output leaves most of
// the writes still to do. It is written once per test binary and removed
// by TestMain's cleanup. (The cancel is triggered from serialize's progress
// callback, so the model need not be large for it to land mid-write.)
func largeDecoder(t *testing.T) string {
	t.Helper()
	largeOnce.Do(func() {
		cfg, _ := gen.Preset("tiny")
		cfg.Name, cfg.Layers = "large", 4
		m, err := gen.Decoder(cfg)
		if err != nil {
			largeErr = err
			return
		}
		if largeDir, largeErr = os.MkdirTemp("", "qpipe-stages-test-"); largeErr != nil {
			return
		}
		largePath = filepath.Join(largeDir, "large_decoder.tflite")
		largeErr = tflite.WriteFile(context.Background(), largePath, m, tflite.WriteOptions{})
	})
	if largeErr != nil {
		t.Fatal(largeErr)
	}
	return largePath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if largeDir != "" {
		os.RemoveAll(largeDir)
	}
	os.Exit(code)
}

// listFiles lists every file under dir, temporary ones included.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// runCancelled runs a job whose context is cancelled when serialize has
// produced at least `at` of its output bytes (at < 0: before the job
// starts). It returns the job's error and the output folder.
func runCancelled(t *testing.T, in, preset string, at float64) (err error, dir string, written, total int64) {
	t.Helper()
	r, err := config.Preset(preset)
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	out := filepath.Join(dir, "out", "m.tflite")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var last, size atomic.Int64
	progress := func(done, total int64) {
		last.Store(done)
		size.Store(total)
		if float64(done) >= at*float64(total) {
			cancel()
		}
	}
	job := &config.Job{Path: in, Name: "c", Stages: []config.Stage{
		&config.LoadStage{Path: in},
		&config.QuantizeStage{Recipes: []*config.Recipe{r}},
		&config.VerifyStage{},
		&config.SerializeStage{Path: out},
	}}
	pj, err := Build(job, Options{Progress: progress})
	if err != nil {
		t.Fatal(err)
	}
	if at < 0 {
		cancel()
	}
	s := &pipeline.State{Log: zerolog.Nop()}
	_, err = pipeline.Run(ctx, pj, s)
	Close(s)
	return err, dir, last.Load(), size.Load()
}

// TestCancelMidSerialize: cancelling while serialize streams the output
// (as Ctrl-C does) ends the job with context.Canceled and leaves neither
// the output nor a temporary file, for float and quantized buffers alike.
func TestCancelMidSerialize(t *testing.T) {
	in := largeDecoder(t)
	fi, err := os.Stat(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, preset := range []string{"none", "dynamic_int8", "fp16", "dynamic_int4_block32"} {
		for _, at := range []float64{-1, 0.3, 1} {
			t.Run(fmt.Sprintf("%s/at %v", preset, at), func(t *testing.T) {
				err, dir, written, total := runCancelled(t, in, preset, at)
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("error %v, want context.Canceled", err)
				}
				if files := listFiles(t, dir); len(files) != 0 {
					t.Errorf("files left after cancelling: %v", files)
				}
				if at >= 0 && written == 0 {
					t.Errorf("serialize wrote nothing before the cancel: the test did not cancel mid-serialize")
				}
				// Cancelled early, the writing stops: it does not finish the
				// file only to delete it.
				if at > 0 && at < 1 && written >= total {
					t.Errorf("all %d bytes written after a cancel at %d%%", total, int(100*at))
				}
			})
		}
	}
	if after, err := os.Stat(in); err != nil || after.Size() != fi.Size() || !after.ModTime().Equal(fi.ModTime()) {
		t.Errorf("the input changed: %v", err)
	}
}
