// Package static writes full-integer ("static") models: int8 or int16
// activations with calibrated ranges, int8 per-channel weights and int32
// or int64 biases, as the reference quantizer's static_wi8_ai8 and
// static_wi8_ai16 recipes and LiteRT's integer kernels define them
// (docs/SEMANTICS.md §16).
//
// Calibrate gathers the range of every float activation tensor of the
// signatures' subgraphs in one batched pass of the reference interpreter
// (calib.RunPass: generated inputs or a JSON-lines file), merged across
// samples by min/max or by the reference quantizer's moving average, and
// caches them (internal/cache, kind "static-ranges"). Rewrite turns the
// float model into the integer one in place: tensor types and parameters,
// quantized constants (computed while the file is written), QUANTIZE and
// DEQUANTIZE ops at the float/integer boundaries and re-pointed
// signatures, operator versions. Check verifies what LiteRT's kernels
// check at Prepare, naming the operator and tensor.
package static
