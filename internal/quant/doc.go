// Package quant holds qpipe's numeric kernels: pure functions on slices that
// compute quantization parameters, quantize, dequantize, convert to float16
// and bfloat16, and measure the error. It knows nothing about files, recipes
// or TFLite; the stages glue it to the model.
//
// # Conventions
//
// Destination first: QuantizeInt8(dst, src, …). Slice lengths that disagree
// with a shape, an axis out of range, or a block size that is not a multiple
// of 32 dividing the last dimension are programmer errors and panic. Problems
// in the data (NaN or ±Inf weights, values beyond the float16 range, int4
// scales that overflow float16) are returned as *ValueError, which counts
// the offending values and gives the flat index of the first, for the caller
// to name the tensor.
//
// Tensors are row-major. A channel axis may be any axis of any rank: element
// i belongs to channel (i / inner) % channels, inner being the product of the
// dimensions after the axis. Axis -1 means per-tensor (one scale and zero
// point). Blockwise int4 always cuts the last dimension into blocks.
//
// # Formulas
//
// These follow the reference quantizer (ai-edge-quantizer 0.10.0,
// uniform_quantize_tensor.py) with every intermediate in float32, so that the
// results match it bit for bit:
//
//	int8 symmetric:   bound = max(|min|, |max|, 1e-9); scale = bound/127; zp = 0;
//	                  q = clip(rint(x/scale), -127, 127)   (narrow range)
//	int8 asymmetric:  bmin = min(min, 0); bmax = max(max, 0);
//	                  scale = max(bmax-bmin, 1e-9)/255; zp = rint(-128 - bmin/scale);
//	                  q = clip(rint(x/scale + zp), -128, 127)
//	int4 blockwise:   s = float16(bfloat16(max(max|x|, 1e-9)/7)) per block;
//	                  q = clip(rint(x/s), -8, 7), packed two per byte, low nibble first
//	float16:          round to nearest even, subnormals kept, overflow to ±Inf
//	dequantize:       x = float32(q - zp) · scale
//
// rint rounds half to even. x/scale is a true division: multiplying by a
// reciprocal differs in the last bit often enough to change q. The kernels
// multiply anyway, and recompute with the division every element whose
// product lands within 2^-12 of a rounding boundary or outside the clip
// range (about 1 in 2000): reciprocal.go derives why no other element can
// differ, and reciprocal_test.go checks it against the division on exact
// ties, their float32 neighbours and tens of millions of random inputs.
// The golden test reproduces every scale, zero point and value of the
// reference's asymmetric weight-only quantization of aeq_conv_fc_mnist.
//
// # The int4 scale clamp
//
// A block whose max|x| is below about 4.3e-4 gets a float16 scale that is
// subnormal, and below about 2e-7 (all-zero blocks in particular) one that is
// exactly zero; the reference stores it as is, and the XNNPACK CPU runtime
// then refuses to load the whole model. BlockParamsInt4 and
// QuantizeBlocksInt4 with clampTiny raise such scales to 2^-14, the smallest
// normal float16 (exact in both bfloat16 and float16, so the clamp survives
// the rounding), and quantize against it: all-zero blocks store q = 0 exactly
// and tiny blocks keep an absolute error of at most 2^-15. The count of
// clamped blocks is returned; without the clamp, TinyScales counts the scales
// the runtime will refuse, so a run can report them either way.
//
// # Speed and determinism
//
// Kernels split large tensors into contiguous parts run on up to
// SetWorkers goroutines (default GOMAXPROCS). Every output element depends
// only on its inputs and parameters, extrema are exact, and Compare sums
// fixed chunks in a fixed order, so results are byte-identical for any worker
// count and CPU (no fused multiply-add: Go may fuse x*y + z on arm64 and
// with GOAMD64=v3 unless an explicit conversion rounds the product, so
// products that feed sums are written float32(x*y); .ci/run fails if any is
// compiled). Inner loops have no bounds checks and call out only for the
// rare elements of the exact path. The int8 and int4 quantizers, the
// largest-magnitude reductions and the data-free and calibrated searches
// have AVX2 forms
// (kernels_amd64.s, search_amd64.s) that give the scalar forms' bits; the
// scalar forms run elsewhere and with QPIPE_SIMD=off. Per element one
// multiplication and one addition give a
// float32 whose bits hold the rounded value, and integer tests on the same
// bits decide whether the exact path is needed; that is about half the time
// of the division, clip and "add 1.5·2^23" rounding it replaced. On tensors
// larger than the cache, memory traffic adds to that: the fused forms below
// read each input byte once, and the kernels whose quantize loop reads
// memory load the cache lines ahead of it in bursts (stream.go).
//
// # Streaming
//
// Channel axis 0 and blockwise int4 work on any range of whole rows with the
// matching slice of scales (and zero points), so a multi-GB embedding table
// can be quantized a chunk at a time. QuantizeRowsInt8 and
// QuantizeBlocksInt4 fuse the parameter and quantization passes for those
// layouts and read each input byte from memory once. Other channel axes need
// the whole tensor for their parameters; such tensors are small.
//
// bytes.go has the byte views and little-endian encodings needed to write
// the results into buffers without copies.
package quant
