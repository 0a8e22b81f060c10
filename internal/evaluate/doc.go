// Package evaluate measures what quantization did to a model's outputs: it
// runs a reference model (the float original) and a candidate (a quantized
// version) on the same inputs with the reference interpreter
// (internal/interp) and compares every output (Compare), or runs one model
// and summarises its outputs (Smoke).
//
// Inputs are generated (Generate: token ids uniform in [0, vocab) for the
// integer inputs that index an embedding table, floats uniform in [-1, 1),
// deterministic from a seed) or read from a JSON-lines file (ParseSamples,
// the format is in the README).
//
// Per output the comparison gives the relative L2 distance, the largest
// absolute difference and the cosine similarity (Distance); for a logits
// output — one whose last dimension is the vocabulary of the model's
// embedding table — also, per position, KL(softmax(ref) ‖ softmax(cand))
// (the divergence of the candidate's next-token distribution from the
// reference's, as llama.cpp's perplexity --kl-divergence measures it), its
// mean and 99th percentile, and the top-1 and top-5 agreement (Logits).
// Everything is computed in float64 in a fixed order (log-sum-exp for the
// softmax), so the numbers are the same on every run and machine.
//
// Samples may also come from a text (TextSamples: tokenized by
// internal/tokenizer, cut into windows of the model's sequence length,
// each exactly the sample an inputs-file line of the same ids is). When
// samples come from a file, each logits output is also compared on the
// next token of the text (NextToken: perplexity of both models, KL mean,
// median, p99 and max, top-1 and RMS Δp over the second half of each
// window, as llama.cpp's perplexity --kl-divergence).
//
// Samples run through each model in batches (interp.RunBatch), so a model
// larger than memory is read from disk once per batch, not per sample.
//
// It is also the one evaluation baseline of the other measures: "the
// logits" are LogitsOutputs for eval, the accuracy gate and the budget,
// and the seed policy is MeasureSeed for measuring, CalibrationSeed (far
// from it) for calibration inputs.
//
// The package imports the interpreter, the format package,
// internal/modelinput, internal/tokenizer and internal/progress only: nothing of config,
// pipeline or stages.
package evaluate
