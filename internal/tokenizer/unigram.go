package tokenizer

// unkPenalty is how much worse than the worst piece an unknown character
// scores in the unigram lattice (SentencePiece's kUnkPenalty).
const unkPenalty = 10

// encodeUnigram segments a normalised string with the Viterbi algorithm
// of the unigram model: the segmentation whose pieces' scores sum highest,
// a character no piece covers scoring minScore − 10 as the unknown piece,
// a user-defined piece scoring length·maxScore − 0.1 (so that it is always
// taken). The arithmetic is SentencePiece's, float and double as there:
// equal sums in a different order decide ties. Positions are UTF-8 byte offsets; among equal scores the first
// path found is kept, as SentencePiece's optimised encoder does.
func (m *SentencePiece) encodeUnigram(s string) []segment {
	type best struct {
		score float32
		start int // -1: not reached
		id    int
	}
	ends := make([]best, len(s)+1)
	for i := range ends {
		ends[i].start = -1
	}
	unkScore := m.minScore - unkPenalty
	for start := 0; start < len(s); {
		here := ends[start].score
		mblen := min(oneCharLen(s[start]), len(s)-start)
		single := false
		m.trie.prefixes(s[start:], func(n, id int) {
			p := &m.Pieces[id]
			if p.Type == Unused {
				return
			}
			t := &ends[start+n]
			// SentencePiece's piece score is a double (the common type
			// of its user-defined and normal branches): the path's score
			// is summed and compared in double, then kept as a float.
			score := float64(p.Score)
			if p.Type == UserDefined {
				score = float64(float32(n)*m.maxScore) - 0.1
			}
			if c := score + float64(here); t.start < 0 || c > float64(t.score) {
				*t = best{float32(c), start, id}
			}
			if n == mblen {
				single = true
			}
		})
		if !single {
			t := &ends[start+mblen]
			if c := unkScore + here; t.start < 0 || c > t.score {
				*t = best{c, start, m.unk}
			}
		}
		start += mblen
	}
	var out []segment
	for end := len(s); end > 0; {
		b := ends[end]
		if b.start < 0 { // unreachable: every character has a path
			b = best{start: end - 1, id: m.unk}
		}
		out = append(out, segment{s[b.start:end], b.id})
		end = b.start
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// oneCharLen is the length of the UTF-8 sequence that lead byte c starts,
// as SentencePiece reckons it (from the top four bits only).
func oneCharLen(c byte) int {
	switch {
	case c < 0xC0:
		return 1
	case c < 0xE0:
		return 2
	case c < 0xF0:
		return 3
	}
	return 4
}
