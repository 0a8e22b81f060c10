package stages

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/calib"
	"github.com/qpipe/qpipe/internal/quant"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/pipeline"
)

// Calibration for `scales: calibrated` is internal/calib's; this file is
// its adapter: the key from the files' digests, the statistics by the
// stages' tensor key.

// weightStats are the statistics of one model, by weight tensor.
type weightStats calib.Stats

// calibrationStats returns the activation statistics of the model of ms
// (still float), from the caches or by running it.
func calibrationStats(ctx context.Context, ms *modelState, cal *config.Calibration, log zerolog.Logger) (weightStats, error) {
	if cal == nil {
		cal = config.DefaultCalibration()
	}
	m := ms.m
	key, err := calibrationKey(ms, cal)
	if err != nil {
		return nil, err
	}
	return keyedStats(ctx, m, key, cal, log)
}

// keyedStats is calibrationStats for a cal that is set and the key
// calibrationKey gives for it.
func keyedStats(ctx context.Context, m *tflite.Model, key string, cal *config.Calibration, log zerolog.Logger) (weightStats, error) {
	st, err := calib.Get(ctx, m, key, cal, log)
	return weightStats(st), err
}

// calibrationKey identifies the statistics of the model of ms under cal:
// what they are cached by. A bundle's sections share the file's digest and
// are told apart by their index.
func calibrationKey(ms *modelState, cal *config.Calibration) (string, error) {
	sum, err := FileSHA256(ms.path)
	if err != nil {
		return "", err
	}
	if ms.section >= 0 {
		sum += fmt.Sprintf("#section%d", ms.section)
	}
	in := ""
	if cal.Inputs != "" {
		if in, err = FileSHA256(cal.Inputs); err != nil {
			return "", fmt.Errorf("%s: quantize.calibration.inputs: %w", cal.P, err)
		}
	}
	if cal.Text != "" {
		text, err := FileSHA256(cal.Text)
		if err != nil {
			return "", fmt.Errorf("%s: quantize.calibration.text: %w", cal.P, err)
		}
		tok, err := FileSHA256(cal.Tokenizer)
		if err != nil {
			return "", fmt.Errorf("%s: quantize.calibration.tokenizer: %w", cal.P, err)
		}
		in = "text:" + text + ",tokenizer:" + tok
	}
	return calib.CacheKey(sum, cal, in), nil
}

// calibrate returns the activation statistics when some request asks for
// calibrated scales, else nil. It runs before the tables change, on the
// float model.
func (q *Quantize) calibrate(ctx context.Context, s *pipeline.State, reqs []request) (weightStats, error) {
	need := false
	for _, r := range reqs {
		need = need || (r.sc != nil && r.sc.scales == config.ScalesCalibrated)
	}
	if !need {
		return nil, nil
	}
	if q.stats != nil {
		return q.stats, nil
	}
	ms, err := model(s)
	if err != nil {
		return nil, err
	}
	return calibrationStats(ctx, ms, q.Calibration, s.Log)
}

// of returns the statistics for a calibrated job's weight (nil for other
// jobs and for weights no FULLY_CONNECTED read during calibration).
func (st weightStats) of(j *bufferJob) *quant.ChannelStats {
	if j.req.sc.scales != config.ScalesCalibrated {
		return nil
	}
	return inputStats(st, j)
}
