package tokenizer

import (
	"bytes"
	"fmt"
	"os"
)

// Tokenizer turns text into token ids.
type Tokenizer interface {
	// Encode returns the ids of text, without BOS or EOS.
	Encode(text string) []int
	// VocabSize is the number of ids: every id Encode returns is below it.
	VocabSize() int
	// Kind names the format and algorithm, e.g. "sentencepiece unigram".
	Kind() string
}

// Load reads a tokenizer file: a Hugging Face tokenizer.json (a JSON
// object) or else a SentencePiece model.
func Load(path string) (Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > MaxModelBytes {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d MiB a tokenizer may have", path, st.Size(), MaxModelBytes>>20)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

// Parse reads a tokenizer from its bytes; name names it in errors.
func Parse(data []byte, name string) (Tokenizer, error) {
	if t := bytes.TrimLeft(data, " \t\r\n\ufeff"); len(t) > 0 && t[0] == '{' {
		t, err := ParseHF(data, name)
		if err != nil {
			return nil, err
		}
		return t, nil
	}
	return ParseSentencePiece(data, name)
}
