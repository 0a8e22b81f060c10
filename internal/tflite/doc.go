// Package tflite reads and writes .tflite (LiteRT) model files faithfully.
//
// A file is a flatbuffer (schema.fbs, identifier "TFL3", version 3) whose
// Model.buffers hold the constant tensors, either inline in Buffer.data
// vectors or after the flatbuffer, addressed by Buffer.offset and
// Buffer.size (the "offset" layout, used for models over 2 GB).
//
// Open and Read return a Model: every flatbuffer table unpacked with the
// object API of package fb (absent vectors stay nil), and, for every buffer,
// a Section of the input file from which its bytes are read on demand.
// Weight bytes are never loaded as a whole: Open memory-maps the file and
// Section.WriteTo streams from the mapping.
//
// Read first verifies the structure of the whole flatbuffer against the
// embedded schema.fbs (tables, vtables, offsets, vectors, strings, enum
// values, union types, unknown fields: verify_flatbuffer.go), then
// validates what the tables mean: every index code downstream relies on
// (operator code, tensor, buffer and subgraph indices, shapes, buffer sizes
// against shapes, offsets against the file size), operator codes,
// quantization parameters and sparsity as the runtime accepts them, and the
// subgraphs operators call (no cycles). It reports problems as a
// *FormatError that names the file and the place (subgraph, tensor,
// operator, byte offset). It never panics on bad input and never allocates
// according to an untrusted count before checking it against the file
// size.
//
// Write and WriteFile lay the file out before producing any weight: the
// flatbuffer tables are built with the flatbuffers Builder, while buffer
// bytes never pass through it; they are streamed, 16-byte aligned, after
// the flatbuffer (see WriteOptions for the layout rules).
//
// Inspect summarises a model for `qpipe inspect`.
package tflite
