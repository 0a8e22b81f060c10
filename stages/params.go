package stages

import (
	"context"
	"fmt"
	"runtime"

	"golang.org/x/sync/errgroup"

	"github.com/qpipe/qpipe/internal/tflite"
)

// computeParams computes every job's scales, several tensors at a time.
func computeParams(ctx context.Context, m *tflite.Model, jobs []*bufferJob, clampTiny bool) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, j := range jobs {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := j.computeParams(clampTiny); err != nil {
				return fmt.Errorf("%s: %w", j.label, err)
			}
			return nil
		})
	}
	return g.Wait()
}
