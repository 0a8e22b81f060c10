package tokenizer

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// PieceType is a SentencePiece piece's type (ModelProto.SentencePiece.Type).
type PieceType int

// The piece types, with the numbers of the model file.
const (
	Normal      PieceType = 1
	Unknown     PieceType = 2
	Control     PieceType = 3
	UserDefined PieceType = 4
	Unused      PieceType = 5
	Byte        PieceType = 6
)

func (t PieceType) String() string {
	switch t {
	case Normal:
		return "NORMAL"
	case Unknown:
		return "UNKNOWN"
	case Control:
		return "CONTROL"
	case UserDefined:
		return "USER_DEFINED"
	case Unused:
		return "UNUSED"
	case Byte:
		return "BYTE"
	}
	return fmt.Sprintf("type %d", int(t))
}

// Piece is one vocabulary entry of a SentencePiece model.
type Piece struct {
	Piece string
	Score float32
	Type  PieceType
}

// The model types of TrainerSpec.model_type.
const (
	modelUnigram = 1
	modelBPE     = 2
	modelWord    = 3
	modelChar    = 4
)

// MaxModelBytes bounds the size of a SentencePiece model file (real ones
// are a few MB: a 256k vocabulary is about 4 MB).
const MaxModelBytes = 256 << 20

// SentencePiece is a SentencePiece model: its vocabulary, the algorithm
// (unigram or BPE) and the normaliser it asks for.
type SentencePiece struct {
	Pieces []Piece
	// ModelType is "unigram" or "bpe".
	ModelType string
	// ByteFallback: unknown characters become their UTF-8 bytes as <0xXX>
	// pieces instead of the unknown piece.
	ByteFallback bool
	// TreatWhitespaceAsSuffix puts the whitespace mark after words instead
	// of before them.
	TreatWhitespaceAsSuffix bool
	// Normalizer is the normaliser of the text (NormalizerSpec).
	Normalizer Normalizer

	unk      int
	byteIDs  [256]int
	pieces   map[string]int // NORMAL, USER_DEFINED and UNUSED pieces
	reserved map[string]int // UNKNOWN, CONTROL and BYTE pieces
	trie     *pieceTrie     // the same pieces, for the unigram lattice
	user     *pieceTrie     // USER_DEFINED pieces: never split, never normalised
	minScore float32        // of the NORMAL pieces
	maxScore float32
}

// Normalizer is a NormalizerSpec: the rules that turn text into the string
// the model segments.
type Normalizer struct {
	// Name of the rule set ("nmt_nfkc", "identity", ...), informative:
	// the rules themselves are the precompiled character map.
	Name                   string
	AddDummyPrefix         bool
	RemoveExtraWhitespaces bool
	EscapeWhitespaces      bool
	charsmap               *charsmap // nil: identity
}

// ParseSentencePiece reads a SentencePiece model file (a serialized
// ModelProto). name names the file in errors. Everything the encoder
// relies on is checked (the unknown piece exists once, byte pieces are the
// 256 bytes when byte fallback is on, no piece is empty or defined twice,
// the character map is well formed); a model type other than unigram and
// BPE is refused.
func ParseSentencePiece(data []byte, name string) (*SentencePiece, error) {
	errf := func(format string, a ...any) error {
		return fmt.Errorf("%s: SentencePiece model: %s", name, fmt.Sprintf(format, a...))
	}
	if len(data) > MaxModelBytes {
		return nil, errf("%d bytes, more than the %d MiB a model may have", len(data), MaxModelBytes>>20)
	}
	m := &SentencePiece{unk: -1, ModelType: "unigram"}
	// Defaults of the proto2 fields.
	m.Normalizer = Normalizer{AddDummyPrefix: true, RemoveExtraWhitespaces: true, EscapeWhitespaces: true}
	var charsmapBlob []byte
	modelType := int32(modelUnigram)
	err := fields(data, func(f field) error {
		switch f.num {
		case 1: // pieces
			b, err := f.bytes("pieces")
			if err != nil {
				return err
			}
			p := Piece{Type: Normal}
			err = fields(b, func(g field) error {
				var err error
				switch g.num {
				case 1:
					var s []byte
					s, err = g.bytes("piece")
					p.Piece = string(s)
				case 2:
					p.Score, err = g.float32("score")
				case 3:
					var t int32
					t, err = g.int32("type")
					p.Type = PieceType(t)
				}
				return err
			})
			if err != nil {
				return fmt.Errorf("piece %d: %w", len(m.Pieces), err)
			}
			m.Pieces = append(m.Pieces, p)
		case 2: // trainer_spec
			b, err := f.bytes("trainer_spec")
			if err != nil {
				return err
			}
			return fields(b, func(g field) error {
				var err error
				switch g.num {
				case 3:
					modelType, err = g.int32("trainer_spec.model_type")
				case 24:
					m.TreatWhitespaceAsSuffix, err = g.boolean("trainer_spec.treat_whitespace_as_suffix")
				case 35:
					m.ByteFallback, err = g.boolean("trainer_spec.byte_fallback")
				}
				if err != nil {
					return fmt.Errorf("trainer_spec: %w", err)
				}
				return nil
			})
		case 3: // normalizer_spec
			b, err := f.bytes("normalizer_spec")
			if err != nil {
				return err
			}
			n := &m.Normalizer
			return fields(b, func(g field) error {
				var err error
				switch g.num {
				case 1:
					var s []byte
					s, err = g.bytes("normalizer_spec.name")
					n.Name = string(s)
				case 2:
					charsmapBlob, err = g.bytes("normalizer_spec.precompiled_charsmap")
				case 3:
					n.AddDummyPrefix, err = g.boolean("normalizer_spec.add_dummy_prefix")
				case 4:
					n.RemoveExtraWhitespaces, err = g.boolean("normalizer_spec.remove_extra_whitespaces")
				case 5:
					n.EscapeWhitespaces, err = g.boolean("normalizer_spec.escape_whitespaces")
				}
				if err != nil {
					return fmt.Errorf("normalizer_spec: %w", err)
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, errf("%v", err)
	}
	switch modelType {
	case modelUnigram:
		m.ModelType = "unigram"
	case modelBPE:
		m.ModelType = "bpe"
	case modelWord, modelChar:
		return nil, errf("model type %s: only unigram and BPE models are supported", map[int32]string{modelWord: "WORD", modelChar: "CHAR"}[modelType])
	default:
		return nil, errf("unknown model type %d (want 1 = unigram or 2 = BPE)", modelType)
	}
	if len(m.Pieces) == 0 {
		return nil, errf("no pieces (is this a SentencePiece model file?)")
	}
	if len(charsmapBlob) > 0 {
		cm, err := parseCharsmap(charsmapBlob)
		if err != nil {
			return nil, errf("normalizer_spec.precompiled_charsmap (%q): %v", m.Normalizer.Name, err)
		}
		m.Normalizer.charsmap = cm
	}
	if err := m.index(); err != nil {
		return nil, errf("%v", err)
	}
	return m, nil
}

// index builds the lookup tables and checks the vocabulary as
// SentencePiece does when it loads a model.
func (m *SentencePiece) index() error {
	m.pieces = make(map[string]int, len(m.Pieces))
	m.reserved = map[string]int{}
	var user []string
	var userIDs []int
	bytesFound := 0
	for i := range m.byteIDs {
		m.byteIDs[i] = -1
	}
	m.minScore, m.maxScore = math.MaxFloat32, math.SmallestNonzeroFloat32
	// SentencePiece starts the maximum at FLT_MIN, the smallest normal
	// float, so all-negative scores leave it there.
	m.maxScore = 0x1p-126
	for i, p := range m.Pieces {
		if p.Piece == "" {
			return fmt.Errorf("piece %d is empty", i)
		}
		if !utf8.ValidString(p.Piece) && p.Type != Byte {
			return fmt.Errorf("piece %d (%q) is not valid UTF-8", i, p.Piece)
		}
		normal := false
		switch p.Type {
		case Normal, UserDefined, Unused:
			normal = true
		case Unknown, Control, Byte:
		default:
			return fmt.Errorf("piece %d (%q) has unknown type %d", i, p.Piece, int(p.Type))
		}
		_, dupN := m.pieces[p.Piece]
		_, dupR := m.reserved[p.Piece]
		if (normal && dupN) || (!normal && dupR) {
			return fmt.Errorf("piece %d (%q) is defined twice", i, p.Piece)
		}
		if normal {
			m.pieces[p.Piece] = i
		} else {
			m.reserved[p.Piece] = i
		}
		switch p.Type {
		case Normal:
			if math.IsNaN(float64(p.Score)) || math.IsInf(float64(p.Score), 0) {
				return fmt.Errorf("piece %d (%q) has score %v", i, p.Piece, p.Score)
			}
			m.minScore = min(m.minScore, p.Score)
			m.maxScore = max(m.maxScore, p.Score)
		case UserDefined:
			user = append(user, p.Piece)
			userIDs = append(userIDs, i)
		case Unknown:
			if m.unk >= 0 {
				return fmt.Errorf("pieces %d and %d are both the unknown piece", m.unk, i)
			}
			m.unk = i
		case Byte:
			if !m.ByteFallback {
				return fmt.Errorf("piece %d (%q) is a byte piece, but byte_fallback is off", i, p.Piece)
			}
			b, ok := pieceByte(p.Piece)
			if !ok {
				return fmt.Errorf("byte piece %d is %q, not <0x00> ... <0xFF>", i, p.Piece)
			}
			if m.byteIDs[b] < 0 {
				bytesFound++
			}
			m.byteIDs[b] = i
		}
	}
	if m.unk < 0 {
		return fmt.Errorf("no unknown piece (type UNKNOWN)")
	}
	if m.ByteFallback && bytesFound != 256 {
		return fmt.Errorf("byte_fallback is on but only %d of the 256 byte pieces are present", bytesFound)
	}
	if m.minScore > m.maxScore { // no NORMAL piece
		m.minScore = 0
	}
	var keys []string
	var ids []int
	for i, p := range m.Pieces {
		if p.Type == Normal || p.Type == UserDefined || p.Type == Unused {
			keys = append(keys, p.Piece)
			ids = append(ids, i)
		}
	}
	m.trie = newPieceTrie(keys, ids)
	if len(user) > 0 {
		m.user = newPieceTrie(user, userIDs)
	}
	return nil
}

// pieceByte reads a byte piece "<0xXX>".
func pieceByte(s string) (byte, bool) {
	if len(s) != 6 || !strings.HasPrefix(s, "<0x") || s[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(s[3:5], 16, 8)
	return byte(v), err == nil
}

// VocabSize is the number of pieces.
func (m *SentencePiece) VocabSize() int { return len(m.Pieces) }

// Kind names the tokenizer.
func (m *SentencePiece) Kind() string { return "sentencepiece " + m.ModelType }

// Encode returns the ids of text as spm_encode --output_format=id gives
// them: normalised, segmented by the model's algorithm, unknown pieces
// split into byte pieces (byte fallback) or runs of them merged into one
// unknown id. No BOS or EOS is added.
func (m *SentencePiece) Encode(text string) []int {
	norm := m.Normalizer.normalize(text, m.user, m.TreatWhitespaceAsSuffix)
	if norm == "" {
		return nil
	}
	var segs []segment
	if m.ModelType == "bpe" {
		segs = m.encodeBPE(norm)
	} else {
		segs = m.encodeUnigram(norm)
	}
	var out []int
	prevUnk := false
	for _, s := range segs {
		unk := s.id == m.unk
		switch {
		case unk && m.ByteFallback:
			for i := 0; i < len(s.piece); i++ {
				out = append(out, m.byteIDs[s.piece[i]])
			}
		case unk && prevUnk:
			// A run of unknown pieces is one unknown id.
		default:
			out = append(out, s.id)
		}
		prevUnk = unk
	}
	return out
}

// segment is one piece of the segmentation: its text and id.
type segment struct {
	piece string
	id    int
}

// pieceID is the id of a piece of the text as SentencePiece's PieceToId
// gives it: a reserved (UNKNOWN, CONTROL, BYTE) piece's, else a NORMAL,
// USER_DEFINED or UNUSED piece's, else the unknown piece's.
func (m *SentencePiece) pieceID(s string) int {
	if id, ok := m.reserved[s]; ok {
		return id
	}
	if id, ok := m.pieces[s]; ok {
		return id
	}
	return m.unk
}
