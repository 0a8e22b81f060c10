// Package modelinput knows what values a model's inputs may take: which
// integer inputs are token ids and how many ids their embedding table has
// (VocabSize, TokenInputs), and the seeded pseudo-random stream (Stream)
// that test and evaluation inputs are drawn from, so that the Go side
// (internal/evaluate, internal/litert) and the LiteRT.js runner
// (internal/litert/runner/runner.mjs, seededFill) give the same values for
// the same seed.
//
// It reads only the model's tables and imports nothing of qpipe but
// internal/tflite, so that every package may use it.
package modelinput
