// Package stages implements qpipe's job stages — load, annotate, quantize,
// verify, serialize — on top of the .tflite format package
// (internal/tflite) and the numeric kernels (internal/quant). Build turns a
// parsed job file into a runnable pipeline.Job.
//
// The quantize stage rewrites the model's tables and computes every scale
// up front, so that verify can check the finished model before any weight
// data is produced; the quantized bytes themselves are computed while
// serialize streams the file out, a chunk of rows at a time, so memory does
// not grow with the model.
//
// The quantize stage (quantize.go) only orchestrates its steps, each in its
// own file: resolve.go picks and checks each reader's scheme, group.go gives
// disagreeing readers their own tensors and buffers, params.go computes the
// parameters (kernels.go holds the per-buffer kernels and writer),
// rewrite.go changes the tables and inserts DEQUANTIZE ops, plan.go fills
// in the plan.
package stages
