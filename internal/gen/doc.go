// Package gen builds a float32 decoder-only transformer as a tflite.Model,
// named the way LiteRT Torch's converter names a generative model, so that
// role rules, per-layer recipes, verification and benchmarks can be tested
// on a realistic model of any size without shipping one.
//
// Decoder(cfg) returns the model; its weight buffers are tflite.ContentFunc
// values that compute their bytes on demand from (cfg.Seed, the weight's
// module path). Building the graph costs a few kilobytes per block; the
// weights exist only while the writer streams them, one buffer at a time,
// and since every weight has its own random stream the writer may produce
// them in parallel. The same Config always gives the same bytes.
//
// # Graph
//
// All tensors are float32 except the token ids; every shape is static.
//
//	tokens int32 [seq] ─ EMBEDDING_LOOKUP(table [vocab, dim]) → x [seq, dim]
//	repeat layers times:
//	  n = RMSNorm(x)          MUL(x,x) MEAN(axis −1, keep) ADD(eps) RSQRT MUL MUL(weight [dim])
//	  q, k, v = FULLY_CONNECTED(n, [dim, dim]) each, no bias
//	  each: RESHAPE [seq, heads, head_dim], TRANSPOSE(1,0,2) → [heads, seq, head_dim]
//	  s = BATCH_MATMUL(q, k, adj_y) → [heads, seq, seq]; MUL(1/sqrt(head_dim)); ADD(mask [seq, seq])
//	  p = SOFTMAX(s); o = BATCH_MATMUL(p, v); TRANSPOSE(1,0,2); RESHAPE [seq, dim]
//	  x = ADD(x, FULLY_CONNECTED(o, [dim, dim]))
//	  n = RMSNorm(x)
//	  g = FULLY_CONNECTED(n, [ffn, dim]); a = MUL(g, LOGISTIC(g)) (silu) or GELU(g)
//	  x = ADD(x, FULLY_CONNECTED(MUL(a, FULLY_CONNECTED(n, [ffn, dim])), [dim, ffn]))
//	RMSNorm(x) ─ FULLY_CONNECTED(table, tied) → logits [seq, vocab]
//
// The mask holds 0 on and below the diagonal and the lowest float32 above
// it (finite: no inf enters the model). RMS eps is 1e-6. Every
// FULLY_CONNECTED has inputs (x, weight, −1) and keep_num_dims false, as the
// converter writes a bias-free linear; every OperatorCode has version 1,
// what LiteRT's op_version.cc gives each of these float ops. The model
// runs on LiteRT.js and matches a float64 reference forward pass
// (TestDecoderRunsOnLiteRT).
//
// lm_head's weight is its own tensor on the embedding table's buffer (tied
// weights, buffer sharing as converted models have it). Buffer 0 is the
// empty sentinel and every activation has its own empty buffer, as the
// MLIR converter writes them; every tensor carries an empty quantization
// table and has_rank. Description "MLIR Converted."; no metadata.
//
// # Names
//
// One signature, key "serving_default", input "tokens" (tensor
// "serving_default_tokens:0"), output "logits" (tensor
// "StatefulPartitionedCall:0", the name a signature output gets). Weights
// and graph constants are "arith.constant", "arith.constant1", …; the
// small constants (shapes, permutation, axis, eps, scale, mask) are one
// tensor each, shared by every op that reads them. Op outputs are named
// from the torch module path, "<class qualified name>_<attribute>" per
// level joined by "/", then ";" and the converter's counter ("", "1",
// "2", … per scope). With P = "litert_torch.generative.layers." and
// B = P+"attention.TransformerBlock_transformer_blocks[i]":
//
//	op outputs                                   scope
//	EMBEDDING_LOOKUP                             torch.nn.modules.sparse.Embedding_tok_embedding;
//	pre-attention RMS norm (6 ops)               B/P.normalization.RMSNorm_pre_atten_norm;  …;5
//	q, k, v projections                          B/P.attention.CausalSelfAttention_atten_func/torch.nn.modules.linear.Linear_{q,k,v}_projection;
//	reshape, transpose, BMM, scale, mask, softmax B/P.attention.CausalSelfAttention_atten_func;  …;12
//	output projection                            B/P.attention.CausalSelfAttention_atten_func/torch.nn.modules.linear.Linear_output_projection;
//	residual ADDs                                B;  B;1
//	post-attention RMS norm                      B/P.normalization.RMSNorm_post_atten_norm;  …;5
//	gate, up, down projections                   B/P.feed_forward.GatedFeedForward_ff/torch.nn.modules.linear.Linear_{w1,w3,w2};
//	activation and gating MULs                   B/P.feed_forward.GatedFeedForward_ff;  …
//	final RMS norm                               P.normalization.RMSNorm_final_norm;  …;5
//	lm_head FULLY_CONNECTED                      StatefulPartitionedCall:0
//
// The upstream role rules therefore match as in a converted model:
// `Embedding_tok_embedding` the embedding lookup, `StatefulPartitionedCall`
// the lm_head, `transformer_blocks\[i\]/(ai_edge_torch|litert_torch).generative.layers.attention`
// the four projections and the attention internals of block i only,
// `…feed_forward` the three feed-forward projections and the activation of
// block i; norms and residual ADDs match only the default rule, and the
// single-block `transformer_block/…` rules match nothing, as with the
// stock decoder (TestDecoderNamesMatchRoleRules).
//
// # Weights
//
// A weight's values depend only on the seed and its module path (for
// example "transformer_blocks[0].atten_func.q_projection.weight"), so a
// block keeps its weights when Layers changes. Each has its own splitmix64
// stream. Matrices ([out, in] projections and the [vocab, dim] table) are
// heavy-tailed with standard deviation 1/sqrt(in) and a few outlier input
// channels (weights.go says how); RMS norm weights are 1 + 0.05·N(0, 1).
// Generation runs at about 740 MB/s per core (BenchmarkWeightContent).
//
// DecoderFrom builds the same graph with given weights instead (keyed by
// module path; Weights lists the keys and shapes in graph order): that is
// how tools/train writes the trained test model (docs/TRAINED.md), so it
// annotates exactly as the generated ones do.
//
// # Sizes
//
// Params = vocab·dim + layers·(4·dim² + 3·dim·ffn + 2·dim) + dim (the table
// counted once). Presets (all dim and ffn multiples of 256, so every int4
// block size applies to every weight):
//
//	preset  vocab  dim   layers heads ffn    seq  parameters      float32 bytes
//	tiny    1024   256   2      4     512    8    1,574,144       6.3 MB (testdata/models/tiny_decoder.tflite)
//	1gb     32000  2048  4      16    5632   64   271,075,328     1.08 GB
//	4gb     32000  2048  18     16    5632   64   990,455,808     3.96 GB
//	7b      32000  4096  32     32    11264  64   6,708,006,912   26.8 GB
//
// NotDivisible takes 32 off the feed-forward width: with ffn a multiple of
// 256 the width becomes an odd multiple of 32, so every down projection
// (w2, input dimension ffn−32) takes int4 block 32 only and must be refused
// for blocks 64, 128 and 256, while every other weight takes all four.
// testdata/models/tiny_decoder_nodiv.tflite is the tiny preset with it
// and one block (ffn 480).
package gen
