// Package tokenizer turns text into token ids for evaluation and
// calibration on real text (qpipe eval --text, calibration and the
// accuracy gate's text). It reads two formats (Load tells them apart):
//
//   - SentencePiece model files (a serialized ModelProto): unigram
//     (Viterbi over the pieces' scores) and BPE (merges by score),
//     byte fallback, user-defined pieces (never split, never normalised),
//     control and unused pieces, and the normaliser the model asks for:
//     identity, or any precompiled character map (nmt_nfkc, nfkc,
//     nfkc_cf, ...: a darts-clone double-array trie of the UTF-8 sequences
//     that change and a blob of their replacements), with
//     add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces and
//     treat_whitespace_as_suffix. The ids are spm_encode's (no BOS/EOS).
//     WORD and CHAR models are refused.
//   - Hugging Face tokenizer.json with a BPE model: over byte-level
//     pre-tokenisation (GPT-2, Llama 3, Qwen 2: ByteLevel with its GPT-2
//     split, or a Split by the GPT-2, Llama 3 or Qwen 2 pattern before it,
//     implemented by hand: Go's regexp has no look-ahead), or
//     SentencePiece-style (Llama 2, Mistral, Gemma: characters as symbols,
//     no pre-tokenizer or Metaspace, byte fallback to <0xXX> tokens,
//     fuse_unk); merges as "a b" or ["a", "b"]; added tokens
//     (lstrip/rstrip); ignore_merges; normalisers NFC, NFKC, NFD, NFKD
//     (golang.org/x/text's tables), Prepend, Replace of a string, and
//     Sequences of them. Other normalisers (Precompiled, regex Replace)
//     and pre-tokenizers, WordPiece/Unigram models and BPE dropout are
//     refused by name.
//
// The protobuf wire format is read by hand (proto.go): the model file
// needs seven fields of three messages, and a hand reader keeps the
// module free of a protobuf runtime and generated code while checking
// every length against the bytes left. No Go library on the module proxy
// list reads SentencePiece models (the well-kept ones bind the C++
// library through cgo), so the algorithms are written here from the
// reference implementation's behaviour and checked against its ids
// (testdata/tokenizers: spm_encode 0.1.97 on seven trained and two upstream
// models, Tokenizers.js on eight tokenizer.json files, one of them all of GPT-2).
//
// A model file is untrusted: every field, length, piece and trie offset
// is checked, and a bad file is an error naming the file and the place
// (FuzzParse); encoding never indexes outside the model.
package tokenizer
