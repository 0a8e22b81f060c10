package stages

import (
	"context"
	"fmt"
	"math"

	"github.com/qpipe/qpipe/internal/quant"
)

// Searched int4 scales (Scheme.Scales search or calibrated): the kernels
// live in internal/quant (SearchBlocksInt4) and run while serialize writes
// each weight (bufferJob.quantizeInt4). This file measures them for the
// plan.

// planSQNR is a searched job's weight SQNR in dB with min-max and with the
// chosen scales, measured by a dry run.
type planSQNR struct{ minMax, chosen float64 }

// measureScales runs the scale search of every searched int4 job into
// scratch memory, so that a dry run's plan can show what the search gains.
func measureScales(ctx context.Context, jobs []*bufferJob, clampTiny bool) error {
	for _, j := range jobs {
		if !j.req.sc.searched() || j.reference {
			continue
		}
		if err := j.measure(ctx, clampTiny); err != nil {
			return fmt.Errorf("%s: %w", j.label, err)
		}
	}
	return nil
}

func (j *bufferJob) measure(ctx context.Context, clampTiny bool) error {
	if err := j.computeParams(clampTiny); err != nil {
		return err
	}
	rows, cols := j.rows()
	step := chunkRows(cols)
	n := min(step, rows) * cols
	if n == 0 {
		return nil
	}
	in, err := readPieces(kindInt4Block, j.src, 4*n)
	if err != nil {
		return err
	}
	defer in.Close()
	release, err := j.holdFactor(0)
	if err != nil {
		return err
	}
	defer release()
	dst := make([]byte, n/2)
	rowErrs := make([]quant.RowErrors, min(step, rows))
	j.search = quant.RowErrors{}
	var signal float64
	for r0 := 0; r0 < rows; r0 += step {
		if err := ctx.Err(); err != nil {
			return err
		}
		r1 := min(rows, r0+step)
		p, err := in.Next()
		if err != nil {
			return err
		}
		x := quant.Float32s(p[:4*(r1-r0)*cols])
		per := cols / j.req.sc.block
		if _, err := j.quantizeInt4(dst[:len(x)/2], j.blockScales[r0*per:r1*per], x, cols, rowErrs); err != nil {
			return describe(err, r0*cols)
		}
		for _, v := range x {
			signal += float64(float64(v) * float64(v))
		}
	}
	j.planSQNR = &planSQNR{minMax: dB(signal, j.search.MinMax), chosen: dB(signal, j.search.Chosen)}
	return nil
}

// dB is 10·log10(signal/noise), clamped to ±999 (JSON has no infinities).
func dB(signal, noise float64) float64 { return reportable(10 * math.Log10(signal/noise)) }
