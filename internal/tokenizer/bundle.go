package tokenizer

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/qpipe/qpipe/internal/litertlm"
)

// FromBundle returns the tokenizer of a LiteRT-LM bundle, from its first
// SP_Tokenizer or HF_Tokenizer_Zlib section, and the name it goes by in
// messages ("B.litertlm section 2 (SP_Tokenizer)"); nil and "" when the
// bundle has neither.
//
// An SP_Tokenizer section is a SentencePiece model file. An
// HF_Tokenizer_Zlib section is a tokenizer.json compressed: an 8-byte
// little-endian count of the uncompressed bytes, then a zlib stream
// (upstream's schema/core/litertlm_read.cc reads the count and inflates
// the rest into a buffer of that size); the stream must inflate to exactly
// that count.
func FromBundle(b *litertlm.Bundle) (Tokenizer, string, error) {
	for _, s := range b.Sections {
		if s.Type != litertlm.TypeSPTokenizer && s.Type != litertlm.TypeHFTokenizerZlib {
			continue
		}
		name := fmt.Sprintf("%s section %d (%s)", b.Name, s.Index, s.Type)
		data, err := readSection(b, s, name)
		if err != nil {
			return nil, "", err
		}
		if s.Type == litertlm.TypeSPTokenizer {
			t, err := ParseSentencePiece(data, name)
			return t, name, err
		}
		if len(data) < 8 {
			return nil, "", fmt.Errorf("%s: %d bytes, too few for the 8-byte size before the zlib stream", name, len(data))
		}
		want := binary.LittleEndian.Uint64(data)
		if want > uint64(inflateLimit) {
			return nil, "", fmt.Errorf("%s: announces %d uncompressed bytes, more than the %d a tokenizer may have", name, want, inflateLimit)
		}
		if !isZlib(data[8:]) {
			return nil, "", fmt.Errorf("%s: no zlib stream after the 8-byte size", name)
		}
		js, err := inflate(data[8:], name)
		if err != nil {
			return nil, "", err
		}
		if uint64(len(js)) != want {
			return nil, "", fmt.Errorf("%s: inflates to %d bytes, its size prefix says %d", name, len(js), want)
		}
		t, err := ParseHF(js, name)
		if err != nil {
			return nil, "", err
		}
		return t, name, nil
	}
	return nil, "", nil
}

// readSection reads a section of at most MaxModelBytes.
func readSection(b *litertlm.Bundle, s *litertlm.Section, name string) ([]byte, error) {
	if s.Len() > MaxModelBytes {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d MiB a tokenizer may have", name, s.Len(), MaxModelBytes>>20)
	}
	data := make([]byte, s.Len())
	if _, err := io.ReadFull(b.SectionReader(s.Index), data); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return data, nil
}

// StartToken returns the start token of the bundle's LlmMetadataProto
// section (LlmMetadata.start_token, field 1: a TokenUnion whose field 1
// is TokenIds, field 1 its repeated int32 ids) when it is one token id;
// ok is false when the bundle has no such section, or the start token is
// a string (token_str) or several ids.
func StartToken(b *litertlm.Bundle) (id int, ok bool, err error) {
	for _, s := range b.Sections {
		if s.Type != litertlm.TypeLlmMetadataProto {
			continue
		}
		name := fmt.Sprintf("%s section %d (%s)", b.Name, s.Index, s.Type)
		data, err := readSection(b, s, name)
		if err != nil {
			return 0, false, err
		}
		var ids []int
		// A message field that occurs twice is merged, as protobuf readers
		// do: the ids of both accumulate.
		err = fields(data, func(f field) error {
			if f.num != 1 {
				return nil
			}
			if err := f.want(wireLen, "LlmMetadata.start_token"); err != nil {
				return err
			}
			return fields(f.data, func(u field) error {
				if u.num != 1 {
					return nil
				}
				if err := u.want(wireLen, "TokenUnion.token_ids"); err != nil {
					return err
				}
				return fields(u.data, func(t field) error {
					if t.num != 1 {
						return nil
					}
					return repeatedInt32(t, &ids)
				})
			})
		})
		if err != nil {
			return 0, false, fmt.Errorf("%s: %w", name, err)
		}
		if len(ids) != 1 || ids[0] < 0 {
			return 0, false, nil
		}
		return ids[0], true, nil
	}
	return 0, false, nil
}

// repeatedInt32 appends a repeated int32 field's values: one varint, or a
// packed run of them.
func repeatedInt32(f field, out *[]int) error {
	switch f.typ {
	case wireVarint:
		*out = append(*out, int(int32(f.v)))
	case wireLen:
		for p := 0; p < len(f.data); {
			v, q, err := readVarint(f.data, p)
			if err != nil {
				return fmt.Errorf("TokenIds.ids: %w", err)
			}
			*out = append(*out, int(int32(v)))
			p = q
		}
	default:
		return fmt.Errorf("TokenIds.ids at byte %d: wire type %d, want a varint or a packed run", f.off, f.typ)
	}
	return nil
}
