package tokenizer

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"io"
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

// Parse reads a tokenizer from its bytes; name names it in errors. A
// gzip or zlib stream (a tokenizer.json.gz, a bundle's compressed
// tokenizer) is inflated first, to at most MaxModelBytes.
func Parse(data []byte, name string) (Tokenizer, error) {
	data, err := inflate(data, name)
	if err != nil {
		return nil, err
	}
	if t := bytes.TrimLeft(data, " \t\r\n\ufeff"); len(t) > 0 && t[0] == '{' {
		t, err := ParseHF(data, name)
		if err != nil {
			return nil, err
		}
		return t, nil
	}
	return ParseSentencePiece(data, name)
}

// inflateLimit is the most a compressed tokenizer may inflate to (a
// variable so that the tests need not inflate 256 MiB).
var inflateLimit = MaxModelBytes

// inflate returns data, or what it inflates to when it is a gzip stream
// (magic 1f 8b) or a zlib stream (a header whose check bits hold, deflate
// method); neither start can begin a SentencePiece model (0x0a) or JSON.
func inflate(data []byte, name string) ([]byte, error) {
	var r io.Reader
	var err error
	switch {
	case len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b:
		r, err = gzip.NewReader(bytes.NewReader(data))
	case len(data) >= 2 && data[0]&0x0f == 8 && (uint(data[0])<<8|uint(data[1]))%31 == 0:
		r, err = zlib.NewReader(bytes.NewReader(data))
	default:
		return data, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: compressed tokenizer: %w", name, err)
	}
	out, err := io.ReadAll(io.LimitReader(r, int64(inflateLimit)+1))
	if err != nil {
		return nil, fmt.Errorf("%s: compressed tokenizer: %w", name, err)
	}
	if len(out) > inflateLimit {
		return nil, fmt.Errorf("%s: compressed tokenizer inflates to more than %d bytes", name, inflateLimit)
	}
	return out, nil
}
