// Package interp is a reference interpreter for .tflite models (float,
// weight-quantized, hybrid and full-integer): it
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
// Activations are FLOAT32, INT32, INT64 or BOOL Tensors, or INT8/INT16
// quantized ones (see "Integer models"). Element-wise ops
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
// int4) GEMM. Upstream sources (repository, file; facts only):
//
//   - google/XNNPACK, src/xnnpack/quantization.h,
//     xnn_f32_qd8_asymmetric_quantization_params: range [min(0, min x),
//     max(0, max x)], multiplier 255/(max − min) (1 when equal), zero point
//     from whichever end has the smaller error, clamped to [−128, 127] and
//     rounded half to even (lrintf); the dequantization scale is
//     1/multiplier.
//   - google/XNNPACK, src/operator-run.c (xnn_compute_f32_qd8_convert) and
//     the f32-qs8-vcvt kernels: q = clamp(rint(x · (1/scale)) + zero_point),
//     round half to even; asymmetric, per row, int8.
//   - google/XNNPACK, test/gemm-microkernel-tester.cc, the reference
//     of the qd8-f32-qc8w GEMM: out = float(Σ (q_a − zp)·q_w) · scale_a ·
//     scale_w[n] + bias, the int32 sum exact.
//   - google/XNNPACK, src/reference/packing.cc
//     (xnn_pack_qs8_qb4w_gemm_goi_w): the blockwise int4 weights are
//     packed with kernel zero point 8 and a float "ksum" per output channel,
//     −Σ_blocks Σ_k w·bf16(scale_b); the
//     qb4w GEMM starts from ksum·zp_a, adds float(Σ_{k∈b} q_a·w)·scale_b
//     block by block, then multiplies by scale_a and adds the bias
//     (hybridFC follows that order). The scales are bfloat16: the float16
//     scales of the file are rounded to bf16 (nearest even). Measured: with
//     bf16-rounded scales the interpreter matches LiteRT.js bit for bit on
//     litert_qwen_fc_blockwise_quantized (rel L2 0 over 3 seeds); with the
//     exact float16 scales 1.8e-3, with truncated ones 4.3e-3.
//   - google-ai-edge/LiteRT, tflite/kernels/embedding_lookup.cc:
//     EMBEDDING_LOOKUP is not delegated; its hybrid path writes q·scale
//     per row (blockwise int4 tables: q·float16 block scale); no
//     activation is quantized.
//   - docs/SEMANTICS.md §6.4 and §11 for the layouts, and that XNNPACK
//     refuses hybrid weights with non-zero zero points
//     (google-ai-edge/LiteRT, tflite/delegates/xnnpack/xnnpack_delegate.cc;
//     the interpreter refuses them too, as unsupported).
//
// Convolutions: hybrid CONV_2D / DEPTHWISE_CONV_2D / TRANSPOSE_CONV quantize
// the input per image (XNNPACK's convert with num_nonbatch_dims = 3: one
// scale and zero point per batch element over H·W·C) with the same
// asymmetric scheme, and scale back per output channel. Measured against
// LiteRT.js on the bundled single-image models: rel L2 0 (depthwise,
// transpose conv) and 7.5e-8 (conv + FC mnist); with one image, per image
// and per batch (TFLite's builtin hybrid conv) cannot be told apart.
// BATCH_MATMUL with a constant int8 RHS quantizes each LHS row as FC does.
//
// Against LiteRT.js over every bundled model and preset output
// (conformance.TestInterpreterMatchesRuntime): float and weight-only outputs
// within rel L2 7.9e-7; hybrid outputs 0 to 1.1e-7 except where float32
// noise of ~1e-7 moves one activation across a rounding boundary of a later
// on-the-fly quantization, which a deep model amplifies (worst 1.5e-3 on
// tiny_decoder with int4 block 64, 0.3 % of that model's own quantization
// error).
//
// # Integer models
//
// Full-integer (static) models run with INT8 or INT16 activation Tensors
// (Tensor.I8, Tensor.I16: the stored integers; scales and zero points are
// the model tensors'). An operator with a quantized activation input or
// output gets its integer kernel (ops_int.go, ops_int_misc.go, lut.go);
// data movement ops move the integers unchanged. The arithmetic is
// LiteRT's CPU kernels' (google-ai-edge/LiteRT, tflite/kernels/):
//
//   - internal/quantization_util.cc QuantizeMultiplier and
//     internal/common.cc MultiplyByQuantizedMultiplier, the default
//     double-rounding build (gemmlowp SaturatingRoundingDoublingHighMul +
//     RoundingDivideByPOT) and its int64 overload for 16x8 sums: quantized.go.
//   - each kernel's Prepare for how its multipliers are computed (double, or
//     float32 where the C++ multiplies two float scales first: MUL,
//     BATCH_MATMUL) and which path Eval takes (16x8 FULLY_CONNECTED rescales
//     in double when the bias is INT64; SOFTMAX int8 is the optimized float
//     table; SUM the optimized float rescale).
//   - internal/common.h LUTPopulate / LUTLookup for LOGISTIC, TANH, GELU,
//     RSQRT and SOFTMAX int16 tables (lut.go), recomputed from their
//     definitions; int16 LOGISTIC and TANH interpolate the runtime's
//     256-entry sigmoid(i/24) table (reference_integer_ops/logistic.h,
//     tanh.h), also recomputed (lut.go sigmoidTable16).
//
// What the runtime would refuse at Prepare (zero points that must be 0,
// bias types, fixed output scales, differing concatenation or pooling
// parameters) and what would make the arithmetic meaningless (no, several,
// zero, NaN or infinite scales; zero points outside the type) is refused by
// New naming the tensor. Not implemented: int16 LOGISTIC/TANH with a
// power-of-two input scale (2^-12, or 2^-11 for TANH: the runtime's
// gemmlowp fixed-point kernel), the int16 power-of-two ADD/SUB path,
// integer TRANSPOSE_CONV.
//
// LiteRT's default CPU path delegates many int8 ops to XNNPACK, which
// rescales otherwise (the sum in float32 times a float32 scale, rounded half
// to even; ADD with 21-bit multipliers). Options.IntArithmetic = IntXNNPACK
// emulates it for int8 CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD, SUB,
// MUL, MEAN and float→int8 QUANTIZE; the default IntReference is the builtin arithmetic.
// Float SOFTMAX with β = 1 is always XNNPACK's wasm kernel (softmax_xnn.go),
// and the 16x8 FULLY_CONNECTED the optimized kernel's ruy rescaling, so
// that the static decoders' outputs equal LiteRT.js's. Measured
// against LiteRT.js (int_litert_test.go, int_ops_test.go): with IntXNNPACK
// every one of the 1,854,512 activation integers of tflm_person_detect over
// 8 inputs is equal; with IntReference 88.1 % are equal and 97.7 % within
// one step (the final outputs all within one step); every int16 op and the
// builtin-run int8 ops are equal in both modes. docs/SEMANTICS.md §15 has
// the table.
//
// # Speed and memory
//
// On amd64 with AVX2 the GEMMs run assembly tiles (gemm_amd64.s,
// gemm_vec.go) vectorised across output columns, so that every element
// keeps the scalar order (one accumulator, k ascending, the float32
// product rounded before the add: VMULPS then VADDPS, no FMA): a worker
// packs a block of weight rows transposed into a panel of L1 size
// (decoding int4/int8 rows into int16 pairs or int8 quads with their block
// sums), then runs a 3×32 float32 or 6×16 integer tile over the activation
// rows. Integer sums are exact in any order (int16 pairs by VPMADDWD; int4
// blocks of 32 as (q+128)·w by VPMADDUBSW, 128·Σw subtracted); the float
// epilogues keep the scalar operation order, 8 lanes at a time. The scalar
// Go kernels (2×4 register blocks) are the reference: QPIPE_SIMD=off, other
// architectures and the differential tests (gemm_simd_test.go) run them.
// Element-wise ops and softmax rows are split over the workers too.
// BenchmarkFC, BenchmarkTile and BenchmarkPeak measure them against the
// machine's register-only peak. A run holds the live activations only
// (each value is dropped after its last reader) plus per-worker panels.
//
// # Threads and determinism
//
// Matrix multiplies and convolutions split their work by output rows or
// columns over Options.Threads workers, never inside a reduction; every
// element is summed in one fixed order, so outputs are bit-identical for
// any thread count. Products that feed a sum are rounded explicitly
// (float32(x*y)): Go may otherwise fuse them into a multiply-add on arm64
// or with GOAMD64=v3, and calibration statistics and budget choices would
// then differ between machines (.ci/run checks that none is compiled).
package interp
