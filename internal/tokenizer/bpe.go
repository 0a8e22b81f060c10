package tokenizer

import "container/heap"

// encodeBPE segments a normalised string with SentencePiece's BPE: the
// string split into characters (a user-defined piece staying whole and
// never merged), then, repeatedly, the adjacent pair whose concatenation is
// the piece of highest score merged (the leftmost among equal scores),
// until no pair is a piece. A merged UNUSED piece is split back into the
// pair it was made of.
func (m *SentencePiece) encodeBPE(s string) []segment {
	var syms []span
	for i := 0; i < len(s); {
		n, freeze := 0, false
		if m.user != nil {
			if n = m.user.longest(s[i:]); n > 0 {
				freeze = true
			}
		}
		if n == 0 {
			n = min(oneCharLen(s[i]), len(s)-i)
		}
		syms = append(syms, span{start: i, end: i + n, freeze: freeze})
		i += n
	}
	revMerge := map[string][2]string{}
	merged := mergePairs(s, syms, func(l, r span) (float32, bool) {
		piece := s[l.start:r.end]
		id, ok := m.pieces[piece]
		if !ok {
			return 0, false
		}
		if m.Pieces[id].Type == Unused {
			revMerge[piece] = [2]string{s[l.start:l.end], s[r.start:r.end]}
		}
		return m.Pieces[id].Score, true
	})
	var out []segment
	var reseg func(w string)
	reseg = func(w string) {
		id := m.pieceID(w)
		if m.Pieces[id].Type != Unused {
			out = append(out, segment{w, id})
			return
		}
		p, ok := revMerge[w]
		if !ok {
			out = append(out, segment{w, id})
			return
		}
		reseg(p[0])
		reseg(p[1])
	}
	for _, sp := range merged {
		reseg(s[sp.start:sp.end])
	}
	return out
}

// span is a symbol of BPE: bytes [start, end) of the string being merged.
// A frozen symbol is never merged.
type span struct {
	start, end int
	freeze     bool
}

// mergePairs runs BPE over the symbols syms of s (adjacent, in order):
// repeatedly the adjacent pair with the highest score (score reports
// whether a pair may merge at all, and its score) is merged, the leftmost
// among equal scores, until no pair may. It returns the symbols left, in
// order. It takes O(n log n) for n symbols.
func mergePairs(s string, syms []span, score func(l, r span) (float32, bool)) []span {
	if len(syms) == 0 {
		return nil
	}
	prev := make([]int, len(syms))
	next := make([]int, len(syms))
	for i := range syms {
		prev[i], next[i] = i-1, i+1
	}
	next[len(syms)-1] = -1
	q := &pairQueue{}
	add := func(l, r int) {
		if l < 0 || r < 0 || syms[l].freeze || syms[r].freeze {
			return
		}
		if sc, ok := score(syms[l], syms[r]); ok {
			heap.Push(q, pair{left: l, right: r, score: sc, size: syms[r].end - syms[l].start})
		}
	}
	for i := 1; i < len(syms); i++ {
		add(i-1, i)
	}
	for q.Len() > 0 {
		top := heap.Pop(q).(pair)
		l, r := &syms[top.left], &syms[top.right]
		if l.end == l.start || r.end == r.start || r.end-l.start != top.size || l.end != r.start {
			continue // stale: one side was merged since
		}
		l.end = r.end
		next[top.left] = next[top.right]
		if next[top.right] >= 0 {
			prev[next[top.right]] = top.left
		}
		r.start = r.end // empty
		add(prev[top.left], top.left)
		add(top.left, next[top.left])
	}
	var out []span
	for i := 0; i >= 0; i = next[i] {
		out = append(out, syms[i])
	}
	return out
}

// pair is a candidate merge of adjacent symbols.
type pair struct {
	left, right int
	score       float32
	size        int
}

// pairQueue orders merges as SentencePiece's agenda does: highest score
// first, then leftmost.
type pairQueue []pair

func (q pairQueue) Len() int { return len(q) }
func (q pairQueue) Less(i, j int) bool {
	if q[i].score != q[j].score {
		return q[i].score > q[j].score
	}
	return q[i].left < q[j].left
}
func (q pairQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *pairQueue) Push(x any)   { *q = append(*q, x.(pair)) }
func (q *pairQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
