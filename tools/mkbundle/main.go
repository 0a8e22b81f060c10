// Command mkbundle wraps a .tflite model and its tokenizer into a LiteRT-LM
// bundle with qpipe's own writer (internal/litertlm): the model as a
// TFLiteModel section (model_type tf_lite_prefill_decode), the tokenizer as
// an SP_Tokenizer section (a SentencePiece model) or an HF_Tokenizer_Zlib
// section (a tokenizer.json: its size as 8 little-endian bytes, then a zlib
// stream), and, with -start-token or -max-tokens, a minimal LlmMetadataProto
// section. It makes test bundles (make trained-bundle); the output is
// the same bytes for the same inputs.
//
// Usage: mkbundle [-sp FILE | -hf FILE] [-start-token ID] [-max-tokens N] -o OUT.litertlm MODEL.tflite
package main

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"

	"github.com/qpipe/qpipe/internal/litertlm"
)

func main() {
	sp := flag.String("sp", "", "SentencePiece model file: an SP_Tokenizer section")
	hf := flag.String("hf", "", "tokenizer.json: an HF_Tokenizer_Zlib section")
	start := flag.Int("start-token", -1, "start token id of the LlmMetadata (none when negative)")
	maxTokens := flag.Int("max-tokens", 0, "max_num_tokens of the LlmMetadata (none when 0)")
	out := flag.String("o", "", "output .litertlm")
	flag.Parse()
	if flag.NArg() != 1 || *out == "" || (*sp != "" && *hf != "") {
		fmt.Fprintln(os.Stderr, "usage: mkbundle [-sp FILE | -hf FILE] [-start-token ID] [-max-tokens N] -o OUT.litertlm MODEL.tflite")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *sp, *hf, *start, *maxTokens, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkbundle:", err)
		os.Exit(1)
	}
}

func run(model, sp, hf string, start, maxTokens int, out string) error {
	data, err := os.ReadFile(model)
	if err != nil {
		return err
	}
	secs := []litertlm.NewSection{{Type: litertlm.TypeTFLiteModel, Data: data,
		Items: []litertlm.KV{{Key: "model_type", Value: "tf_lite_prefill_decode"}}}}
	switch {
	case sp != "":
		tok, err := os.ReadFile(sp)
		if err != nil {
			return err
		}
		secs = append(secs, litertlm.NewSection{Type: litertlm.TypeSPTokenizer, Data: tok})
	case hf != "":
		js, err := os.ReadFile(hf)
		if err != nil {
			return err
		}
		var z bytes.Buffer
		z.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(js))))
		zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
		if _, err := zw.Write(js); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		secs = append(secs, litertlm.NewSection{Type: litertlm.TypeHFTokenizerZlib, Data: z.Bytes()})
	}
	if start >= 0 || maxTokens > 0 {
		secs = append(secs, litertlm.NewSection{Type: litertlm.TypeLlmMetadataProto, Data: litertlm.LlmMetadata(start, maxTokens)})
	}
	return litertlm.Create(context.Background(), out, []litertlm.KV{{Key: "Authors", Value: "qpipe mkbundle"}}, secs)
}
