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
	if cal.Text != "" && cal.Tokenizer == "" && ms.section >= 0 {
		c := *cal
		c.Bundle = ms.path // the bundle's tokenizer section
		cal = &c
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
// what they are cached by.
func calibrationKey(ms *modelState, cal *config.Calibration) (string, error) {
	sum, in, err := calibrationSums(ms, cal)
	if err != nil {
		return "", err
	}
	return calib.CacheKey(sum, cal, in), nil
}

// calibrationSums are the digests calibration caches are keyed by: of the
// model of ms (modelSum) and of cal's inputs (calibrationInputsSum).
func calibrationSums(ms *modelState, cal *config.Calibration) (model, inputs string, err error) {
	if model, err = modelSum(ms); err != nil {
		return "", "", err
	}
	inputs, err = calibrationInputsSum(cal)
	return model, inputs, err
}

// modelSum is the digest of the model of ms; a bundle's sections share
// the file's digest and are told apart by their index.
func modelSum(ms *modelState) (string, error) {
	model, err := FileSHA256(ms.path)
	if err != nil {
		return "", err
	}
	if ms.section >= 0 {
		model += fmt.Sprintf("#section%d", ms.section)
	}
	return model, nil
}

// calibrationInputsSum is the digest of cal's inputs ("" without any); an
// input file that cannot be read is an error naming the job file's line.
func calibrationInputsSum(cal *config.Calibration) (inputs string, err error) {
	if cal.Inputs != "" {
		if inputs, err = FileSHA256(cal.Inputs); err != nil {
			return "", fmt.Errorf("%s: quantize.calibration.inputs: %w", cal.P, err)
		}
	}
	if cal.Text != "" {
		text, err := FileSHA256(cal.Text)
		if err != nil {
			return "", fmt.Errorf("%s: quantize.calibration.text: %w", cal.P, err)
		}
		tok, err := tokenizerDigest(cal.Tokenizer)
		if err != nil {
			return "", fmt.Errorf("%s: quantize.calibration.tokenizer: %w", cal.P, err)
		}
		inputs = "text:" + text + ",tokenizer:" + tok
	}
	return inputs, nil
}

// tokenizerDigest is what a cache key holds of a text's tokenizer: the
// file's digest, or "bundle" for the model's own (covered by the model
// file's digest).
func tokenizerDigest(file string) (string, error) {
	if file == "" {
		return "bundle", nil
	}
	return FileSHA256(file)
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
