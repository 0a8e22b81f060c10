// Package interp is a float32 reference interpreter for .tflite models: it
// runs one signature of a model on given inputs and returns its outputs,
// computing what LiteRT's CPU path (TFLite + XNNPACK) computes, so that
// `qpipe eval` and the accuracy gate can measure a quantized model against
// its float original without another runtime.
//
// It imports only the format package (internal/tflite) and the kernels
// (internal/quant).
//
// # Use
//
//	m, _ := tflite.Open(path)          // memory-mapped; keep open while running
//	in, err := interp.New(m, interp.Options{})
//	out, err := in.Run(ctx, "serving_default", map[string]*interp.Tensor{"tokens": ids})
//
// New checks every operator a signature can reach (composite
// decompositions included) before anything runs: an operator or option
// that is not implemented is an *UnsupportedError naming the op, the
// subgraph and the operator index — never a wrong number. Values that do
// not fit an operator at run time (inconsistent shapes, indices out of
// range) are an *OpError; nothing panics on a hostile model.
//
// # Values
//
// Activations are FLOAT32, INT32, INT64 or BOOL Tensors. Element-wise ops
// broadcast as numpy does; fused activations (RELU, RELU_N1_TO_1, RELU6,
// TANH) are applied; float math is done in float64 and rounded once, so
// results are within a few ulps of the runtime's (rel L2 ≤ 1e-5 is the
// tested bound; on the bundled models it is ≤ 1e-6).
//
// # Weights
//
// Constant weights are read in place from the memory-mapped model
// (tflite.ReadAll of a mapped Section does not copy) and are never
// dequantized as a whole: a FULLY_CONNECTED, BATCH_MATMUL or
// EMBEDDING_LOOKUP reads its weight through a view that decodes a block of
// rows at a time into per-worker scratch (matmul.go). A DEQUANTIZE of a
// constant whose every reader takes it as such a weight is folded into
// them (its Observe event carries no values); other DEQUANTIZEs run.
//
// Quantized weights run as the runtime runs them:
//
//   - Weight-only forms (int8 per-tensor/per-channel with zero points,
//     float16) through DEQUANTIZE: (q − zero_point)·scale in float32, the
//     exact product as TFLite's dequantize kernel computes it.
//   - Hybrid ("dynamic range") forms, an INT8 or INT4 weight read directly
//     by FULLY_CONNECTED, BATCH_MATMUL, CONV_2D, DEPTHWISE_CONV_2D or
//     TRANSPOSE_CONV: the activations are quantized on the fly and the
//     products summed in int32 (hybrid.go), as described below.
//   - EMBEDDING_LOOKUP with INT8 or blockwise INT4 tables: the selected
//     rows are decoded (q·scale, q·block scale), as TFLite's builtin kernel
//     does; no activation is quantized.
//
// # The runtime's dynamic quantization (what was read, what was measured)
//
// LiteRT.js runs TFLite with the XNNPACK delegate (wasm). For a hybrid
// FULLY_CONNECTED XNNPACK inserts a convert node f32→qdint8 with one batch
// dimension per row (num_nonbatch_dims = 1: per row of the [batch, in]
// input) and a qd8-f32-qc8w (int8 per channel), qc4w or qb4w (blockwise
// int4) GEMM. Sources read (via the search tool; facts only):
//
//   - XNNPACK src/xnnpack/quantization.h,
//     xnn_f32_qd8_asymmetric_quantization_params: range [min(0, min x),
//     max(0, max x)], multiplier 255/(max − min) (1 when equal), zero point
//     from whichever end has the smaller error, clamped to [−128, 127] and
//     rounded half to even (lrintf); the dequantization scale is
//     1/multiplier.
//   - XNNPACK src/operator-run.c (xnn_compute_f32_qd8_convert) and the
//     f32-qs8-vcvt kernels: q = clamp(rint(x · (1/scale)) + zero_point),
//     round half to even; asymmetric, per row, int8.
//   - XNNPACK test references for qd8-f32-qc8w GEMM: out = float(Σ (q_a −
//     zp)·q_w) · scale_a · scale_w[n] + bias.
//   - The qb4w GEMM takes bfloat16 block scales: the float16 scales of the
//     file are rounded to bf16 (nearest even). Measured: with bf16-rounded
//     scales the interpreter matches LiteRT.js bit for bit on
//     litert_qwen_fc_blockwise_quantized (rel L2 0 over 3 seeds); with the
//     exact float16 scales 1.8e-3, with truncated ones 4.3e-3.
//   - TFLite tensorflow/lite/kernels/embedding_lookup.cc (hybrid path:
//     q·scale per row, zero point ignored; blockwise int4 tables decoded
//     with their float16 block scales).
//   - SEMANTICS.md (project reference) §6.4 and §11 for the layouts.
//
// Convolutions: CONV_2D / DEPTHWISE_CONV_2D / TRANSPOSE_CONV quantize the
// input per image (num_nonbatch_dims = 3) with the same asymmetric scheme
// and scale per output channel.
//
// # Threads and determinism
//
// Matrix multiplies and convolutions split their work by output rows or
// columns over Options.Threads workers, never inside a reduction; every
// element is summed in one fixed order, so outputs are bit-identical for
// any thread count.
package interp
