package evaluate

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/qpipe/qpipe/internal/tokenizer"
)

// MaxTextBytes bounds a text file given to eval, calibration or the
// accuracy gate: 64 MiB is some 16 million tokens, hours of evaluation of
// a small model, and its windows are held as samples (about 30 bytes a
// token).
const MaxTextBytes = 64 << 20

// TextInfo says how a text file became samples.
type TextInfo struct {
	File      string `json:"file"`
	Tokenizer string `json:"tokenizer"`
	Kind      string `json:"tokenizer_kind"`
	// Tokens is how many ids the text gave; Windows how many samples of
	// Seq tokens they fill (Seq − 1 with BOS); the rest is not run.
	Tokens  int `json:"tokens"`
	Seq     int `json:"seq"`
	Windows int `json:"windows"`
	// BOS, when set, is the id put before each window's text tokens.
	BOS *int `json:"bos,omitempty"`
}

// NoBOS asks TextSamples for windows of text tokens only.
const NoBOS = -1

// TextSamples tokenizes the text file with the tokenizer file and cuts
// the ids into consecutive windows of the sequence length of m's token
// input (the signature's, when one is selected), one sample each, named
// by the "tokens" key as an inputs file would name them: a text run
// through these samples gives exactly the numbers of the same ids written
// as an inputs file. The whole file is one text (no EOS is added); bos
// ≥ 0 starts every window with that id, followed by the next Seq − 1 text
// tokens (NoBOS: none). The tokenizer's ids must fit the model's
// embedding table.
func TextSamples(m *Model, opt Options, textFile, tokenizerFile string, bos int) ([]*Sample, *TextInfo, error) {
	tok, err := tokenizer.Load(tokenizerFile)
	if err != nil {
		return nil, nil, err
	}
	sigs, err := Describe(m, Options{Signatures: opt.Signatures, Seq: opt.Seq})
	if err != nil {
		return nil, nil, err
	}
	seq, vocab := 0, 0
	for _, s := range sigs {
		for _, in := range s.Inputs {
			if in.Vocab == 0 {
				continue
			}
			if seq != 0 && (s.Seq != seq || in.Vocab != vocab) {
				return nil, nil, fmt.Errorf("%s: its signatures' token inputs differ in length or vocabulary (%d and %d tokens, %d and %d ids): choose one signature for text", m.Path, seq, s.Seq, vocab, in.Vocab)
			}
			seq, vocab = s.Seq, in.Vocab
		}
	}
	if seq == 0 {
		return nil, nil, fmt.Errorf("%s has no token input (an integer input that indexes an embedding table): it cannot be run on text", m.Path)
	}
	ids, info, err := TokenizeText(textFile, tok, tokenizerFile, vocab, m.Path)
	if err != nil {
		return nil, nil, err
	}
	if bos >= vocab {
		return nil, nil, fmt.Errorf("BOS id %d: the model %s's embedding table has %d rows", bos, m.Path, vocab)
	}
	samples := WindowSamples(ids, seq, bos)
	info.Seq, info.Windows = seq, len(samples)
	if bos >= 0 {
		info.BOS = &bos
	}
	if info.Windows == 0 {
		return nil, nil, fmt.Errorf("%s gives %d tokens with %s, fewer than one window of the model's %d", textFile, len(ids), tokenizerFile, seq)
	}
	return samples, info, nil
}

// TokenizeText reads the text file and returns its ids under tok (read
// from tokenizerFile), checking that they fit an embedding table of vocab
// rows (of the model named model). The info's Seq and Windows are left
// for the caller.
func TokenizeText(textFile string, tok tokenizer.Tokenizer, tokenizerFile string, vocab int, model string) ([]int, *TextInfo, error) {
	if tok.VocabSize() > vocab {
		return nil, nil, fmt.Errorf("tokenizer %s (%s) has %d ids, the model %s's embedding table %d rows: they do not belong together", tokenizerFile, tok.Kind(), tok.VocabSize(), model, vocab)
	}
	st, err := os.Stat(textFile)
	if err != nil {
		return nil, nil, err
	}
	if st.Size() > MaxTextBytes {
		return nil, nil, fmt.Errorf("%s: %d bytes, more than the %d MiB a text may have", textFile, st.Size(), MaxTextBytes>>20)
	}
	text, err := os.ReadFile(textFile)
	if err != nil {
		return nil, nil, err
	}
	ids := tok.Encode(string(text))
	return ids, &TextInfo{File: textFile, Tokenizer: tokenizerFile, Kind: tok.Kind(), Tokens: len(ids)}, nil
}

// LayoutText returns the ids of the text file under the tokenizer file
// for the token input of layout l (whose vocabulary they must fit); the
// caller cuts them into windows (WindowSamples).
func LayoutText(l *Layout, textFile, tokenizerFile string) ([]int, error) {
	vocab := 0
	for _, in := range l.Inputs {
		if in.Vocab > 0 {
			vocab = in.Vocab
		}
	}
	if vocab == 0 || l.Seq == 0 {
		return nil, fmt.Errorf("signature %q has no token input to feed text to", l.Signature)
	}
	tok, err := tokenizer.Load(tokenizerFile)
	if err != nil {
		return nil, err
	}
	ids, _, err := TokenizeText(textFile, tok, tokenizerFile, vocab, "of signature "+strconv.Quote(l.Signature))
	return ids, err
}

// WindowSamples cuts ids into consecutive windows of seq, one sample each
// (the last, partial window left out), as ParseSamples would read the
// lines {"tokens": [...]} of each window. bos ≥ 0 starts each window with
// that id and fills it with the next seq − 1 ids.
func WindowSamples(ids []int, seq, bos int) []*Sample {
	var out []*Sample
	step := seq
	if bos >= 0 {
		step = seq - 1
	}
	if step <= 0 {
		return nil
	}
	for w := 0; (w+1)*step <= len(ids); w++ {
		v := &Value{Shape: []int{seq}, Nums: make([]json.Number, 0, seq), col: 1}
		if bos >= 0 {
			v.Nums = append(v.Nums, json.Number(strconv.Itoa(bos)))
		}
		for _, id := range ids[w*step : (w+1)*step] {
			v.Nums = append(v.Nums, json.Number(strconv.Itoa(id)))
		}
		out = append(out, &Sample{Line: w + 1, Values: map[string]*Value{TokensKey: v}, keys: []string{TokensKey}})
	}
	return out
}
