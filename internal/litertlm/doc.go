// Package litertlm reads and writes LiteRT-LM bundles (.litertlm): one file
// holding the TFLite model(s) of an on-device LLM with its tokenizer and
// metadata (docs/FORMAT.md §12 has the layout and its upstream sources).
//
// A file starts with a 32-byte preamble (magic "LITERTLM", major, minor
// and patch version, the offset where the header ends), then the header: a
// flatbuffer (LiteRTLMMetaData) with key/value system metadata and the
// section table, each section a byte range of the file with a type
// (TFLiteModel, SP_Tokenizer, ...) and key/value items (model_type, ...).
// Sections start on 16 KiB boundaries.
//
// Read parses the preamble and the header only; sections are read through
// io.SectionReaders of the file on demand, so a multi-GB bundle costs its
// header in memory. The header is decoded by hand, every offset, count and
// string bounds-checked, and anything wrong is a *FormatError naming the
// place (section index, field, byte offset). Each section's first bytes
// must agree with its type (a TFLiteModel section must be a TFLite
// flatbuffer, an HF_Tokenizer_Zlib section a zlib stream, ...).
//
// WriteFile writes a bundle with some sections replaced (the quantized
// models) and the others copied byte for byte. The header is the input's,
// byte for byte, with only the sections' begin and end offsets patched in
// place: system metadata, items, fields and union encodings this package
// does not know survive unchanged. When no section changes size the output
// is the input, byte for byte. New builds a header from scratch (to wrap a
// bare .tflite into a bundle).
package litertlm
