package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"

	"github.com/qpipe/qpipe/internal/trained"
)

// The corpus is encoded line by line (spm_encode --extra_options=eos), so
// the model learned id 2 (</s>) as the end of a line. qpipe eval --text,
// calibration text and internal/tokenizer encode a file as one text, where
// a newline would become the byte piece <0x0A>. newlinePiece rewrites the
// SentencePiece model file so that piece 2 is the user-defined piece "\n"
// (kept whole, never split, matched before any other piece; no other
// piece holds a newline): encoding a whole text then gives exactly the
// line-by-line ids with </s> after each line (TestHeldoutIDsFromTokenizer).
//
// The file is a protobuf ModelProto whose top-level fields are all
// length-delimited; each field 1 is a SentencePiece message (piece = 1,
// score = 2, type = 3). Only the third field 1 changes.
func newlinePiece(model []byte) ([]byte, error) {
	var out []byte
	piece := 0
	for p := 0; p < len(model); {
		key, n := binary.Uvarint(model[p:])
		if n <= 0 || key&7 != 2 {
			return nil, fmt.Errorf("byte %d: not a length-delimited field of a SentencePiece model", p)
		}
		size, m := binary.Uvarint(model[p+n:])
		end := p + n + m + int(size)
		if m <= 0 || size > uint64(len(model)) || end > len(model) {
			return nil, errors.New("a field runs past the end of the file")
		}
		if key>>3 == 1 {
			if piece == trained.EOS {
				out = appendNewlinePiece(out)
				piece++
				p = end
				continue
			}
			piece++
		}
		out = append(out, model[p:end]...)
		p = end
	}
	if piece <= trained.EOS {
		return nil, fmt.Errorf("%d pieces: no piece %d", piece, trained.EOS)
	}
	return out, nil
}

// appendNewlinePiece appends field 1 holding {piece: "\n", score: 0,
// type: USER_DEFINED (4)}.
func appendNewlinePiece(b []byte) []byte {
	msg := []byte{1<<3 | 2, 1, '\n', 2<<3 | 5}
	msg = binary.LittleEndian.AppendUint32(msg, math.Float32bits(0))
	msg = append(msg, 3<<3|0, 4)
	b = append(b, 1<<3|2, byte(len(msg)))
	return append(b, msg...)
}

func cmdTokenizer(args []string) error {
	fs := flag.NewFlagSet("tokenizer", flag.ExitOnError)
	in := fs.String("in", ".cache/train/spm.model", "the model spm_train wrote")
	out := fs.String("out", trained.Tokenizer, "the tokenizer to commit (piece 2 the newline)")
	fs.Parse(args)
	b, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	nb, err := newlinePiece(b)
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	return os.WriteFile(*out, nb, 0o644)
}
