// Package conformance checks qpipe's output on the real LiteRT runtime: a
// quantized model is only right if the runtime that phones and browsers
// use loads it and computes nearly what the float model computes.
//
// The tests (go test ./conformance) apply every preset of recipes.yaml to
// every model in testdata/models. For each pair they write the quantized
// model and its dequantized reference (a float32 model whose weights hold
// the dequantized values of what the preset writes, `qpipe quantize
// --dequantized-reference`), run the float model, the reference and the
// quantized model on LiteRT.js (internal/litert) on the same seeded inputs,
// and compare every output by relative L2 and maximum error (Comparison):
//
//   - against the float model, loosely: the cost of rounding the weights;
//   - against the reference, sharply: what is left is the runtime's own
//     arithmetic (float32 reordering, and the int8 quantization of
//     activations in the hybrid kernels of the dynamic schemes).
//
// The bounds (Bounds, per Family of presets and Class of models) were set
// from measurement, a margin above the worst measured error, and tight
// enough that three deliberate bugs — scales on the wrong axis, int4
// nibbles in the wrong order, a wrong int8 zero point — are each rejected
// (mutants_test.go). Two static checks cover what running cannot show:
// every op reading a quantized weight has at least the OperatorCode
// version stages.RequiredVersion gives for its form (CheckOpVersions: old
// runtimes trust the version), and hybrid weights have zero points 0
// (CheckHybridZeroPoints: most hybrid kernels ignore them).
//
// `go test ./conformance -update` rewrites REPORT.md with every measured
// error, the bounds, the op versions written and the deliberate bugs. The
// runtime runs without relaxed SIMD on one thread and the inputs are
// seeded, so the report is the same on every machine.
//
// The runtime needs Node.js 20 and `npm ci` in internal/litert/runner;
// without them the tests skip, except on CI (CI=true), where they fail.
package conformance
