package trained

import (
	"context"
	"os"

	"github.com/qpipe/qpipe/internal/litertlm"
)

// byteContent is a section's bytes held in memory.
type byteContent []byte

func (c byteContent) Len() int64 { return int64(len(c)) }
func (c byteContent) WriteAt(_ context.Context, f *os.File, off int64) error {
	_, err := f.WriteAt(c, off)
	return err
}

// WriteBundle writes a LiteRT-LM bundle of a SentencePiece tokenizer
// (section 0, SP_Tokenizer) and a decoder .tflite (section 1, TFLiteModel,
// model_type tf_lite_prefill_decode): the trained model as LiteRT-LM
// ships a model (docs/TRAINED.md §1).
func WriteBundle(ctx context.Context, path, model, tokenizer string) error {
	m, err := os.ReadFile(model)
	if err != nil {
		return err
	}
	tok, err := os.ReadFile(tokenizer)
	if err != nil {
		return err
	}
	b, err := litertlm.New([]litertlm.KV{{Key: "Authors", Value: "qpipe tools/train"}}, []litertlm.NewSection{
		{Type: litertlm.TypeSPTokenizer},
		{Type: litertlm.TypeTFLiteModel, Items: []litertlm.KV{{Key: "model_type", Value: "tf_lite_prefill_decode"}}},
	})
	if err != nil {
		return err
	}
	return litertlm.WriteFile(ctx, path, b, map[int]litertlm.Content{0: byteContent(tok), 1: byteContent(m)}, litertlm.WriteOptions{})
}
