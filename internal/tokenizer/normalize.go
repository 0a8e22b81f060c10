package tokenizer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"
)

// charsmap is a NormalizerSpec's precompiled_charsmap: a little-endian
// uint32 n, then n bytes of a darts-clone double-array trie over the UTF-8
// sequences that normalise, then the normalised strings, each ended by a
// NUL. A trie leaf's value is the offset of its replacement in that blob.
//
// A double-array unit is a uint32: bits 0-7 the label, bit 8 "has a leaf",
// bit 9 selects an offset shift of 8, bits 10-31 the offset; a leaf unit's
// low 31 bits are its value. From node p, byte c leads to p' = p ^
// offset(unit[p]) ^ c, valid when label(unit[p']) == c; the node has a
// value when unit[p'] has a leaf, the value being that of unit[p' ^
// offset(unit[p'])].
type charsmap struct {
	units      []uint32
	normalized []byte
}

// maxCharsmapResults is how many prefix matches SentencePiece keeps per
// position (its kMaxTrieResultsSize): the longest of the first 32.
const maxCharsmapResults = 32

func parseCharsmap(blob []byte) (*charsmap, error) {
	if len(blob) <= 4 {
		return nil, fmt.Errorf("%d bytes, too short for the trie size", len(blob))
	}
	n := binary.LittleEndian.Uint32(blob)
	if uint64(n) >= uint64(len(blob)-4) || n%4 != 0 || n == 0 {
		return nil, fmt.Errorf("trie of %d bytes in a blob of %d (it must be a positive multiple of 4 and leave room for the strings)", n, len(blob))
	}
	cm := &charsmap{units: make([]uint32, n/4), normalized: blob[4+n:]}
	for i := range cm.units {
		cm.units[i] = binary.LittleEndian.Uint32(blob[4+4*i:])
	}
	// Every leaf must point at a NUL-ended string of the blob: walk every
	// unit that has a leaf (cheap: the trie is small) and check what a
	// search could reach.
	for p, u := range cm.units {
		if u>>8&1 == 0 {
			continue
		}
		q := uint64(p) ^ uint64(unitOffset(u))
		if q >= uint64(len(cm.units)) {
			continue // a search checks this when it gets here
		}
		if err := cm.checkValue(cm.units[q] & (1<<31 - 1)); err != nil {
			return nil, fmt.Errorf("trie unit %d: %v", p, err)
		}
	}
	return cm, nil
}

func (cm *charsmap) checkValue(v uint32) error {
	if uint64(v) >= uint64(len(cm.normalized)) {
		return fmt.Errorf("replacement at byte %d of %d", v, len(cm.normalized))
	}
	if bytes.IndexByte(cm.normalized[v:], 0) < 0 {
		return fmt.Errorf("replacement at byte %d is not NUL-ended", v)
	}
	return nil
}

func unitOffset(u uint32) uint32 { return (u >> 10) << ((u & (1 << 9)) >> 6) }

// match returns the longest prefix of s the map replaces (its length and
// replacement), or 0.
func (cm *charsmap) match(s string) (int, string) {
	units := cm.units
	p := uint64(unitOffset(units[0]))
	bestLen, bestVal, found := 0, uint32(0), 0
	for i := 0; i < len(s) && found < maxCharsmapResults; i++ {
		c := s[i]
		p ^= uint64(c)
		if p >= uint64(len(units)) {
			break
		}
		u := units[p]
		if u&(1<<31|0xff) != uint32(c) {
			break
		}
		p ^= uint64(unitOffset(u))
		if u>>8&1 == 1 {
			if p >= uint64(len(units)) {
				break
			}
			v := units[p] & (1<<31 - 1) // checked by parseCharsmap
			bestLen, bestVal = i+1, v
			found++
		}
	}
	if bestLen == 0 {
		return 0, ""
	}
	rest := cm.normalized[bestVal:]
	return bestLen, string(rest[:bytes.IndexByte(rest, 0)])
}

// normalizePrefix returns the normalised form of the start of s and how
// many bytes of s it consumed: a user-defined piece as it is, else the
// longest rule of the character map, else one character (an invalid UTF-8
// byte becoming U+FFFD).
func (n *Normalizer) normalizePrefix(s string, user *pieceTrie) (string, int) {
	if user != nil {
		if k := user.longest(s); k > 0 {
			return s[:k], k
		}
	}
	if n.charsmap != nil {
		if k, r := n.charsmap.match(s); k > 0 {
			return r, k
		}
	}
	r, k := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && k <= 1 {
		return "\uFFFD", 1
	}
	return s[:k], k
}

// spaceMark replaces spaces when whitespace is escaped (U+2581).
const spaceMark = "\u2581"

// normalize applies the normaliser as SentencePiece's Normalizer does:
// leading, trailing and repeated spaces dropped (RemoveExtraWhitespaces),
// a space put before the text (AddDummyPrefix; after it when whitespace is
// a suffix), spaces written as U+2581 (EscapeWhitespaces). user holds the
// user-defined pieces, which pass unchanged.
func (n *Normalizer) normalize(s string, user *pieceTrie, wsSuffix bool) string {
	if s == "" {
		return ""
	}
	if n.RemoveExtraWhitespaces {
		for s != "" {
			r, k := n.normalizePrefix(s, user)
			if r != " " {
				break
			}
			s = s[k:]
		}
	}
	if s == "" {
		return ""
	}
	space := " "
	if n.EscapeWhitespaces {
		space = spaceMark
	}
	var b strings.Builder
	b.Grow(3 * len(s))
	if !wsSuffix && n.AddDummyPrefix {
		b.WriteString(space)
	}
	prevSpace := n.RemoveExtraWhitespaces
	for s != "" {
		r, k := n.normalizePrefix(s, user)
		for prevSpace && strings.HasPrefix(r, " ") {
			r = r[1:]
		}
		if r != "" {
			if n.EscapeWhitespaces {
				b.WriteString(strings.ReplaceAll(r, " ", spaceMark))
			} else {
				b.WriteString(r)
			}
			prevSpace = strings.HasSuffix(r, " ")
		}
		s = s[k:]
		if !n.RemoveExtraWhitespaces {
			prevSpace = false
		}
	}
	out := b.String()
	if n.RemoveExtraWhitespaces {
		for strings.HasSuffix(out, space) {
			out = out[:len(out)-len(space)]
		}
	}
	if wsSuffix && n.AddDummyPrefix {
		out += space
	}
	return out
}
