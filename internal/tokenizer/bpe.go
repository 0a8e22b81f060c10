package tokenizer

import "container/heap"

// encodeBPE segments a normalised string with SentencePiece's BPE: the
// string split into characters (a user-defined piece staying whole and
// never merged), then, repeatedly, the adjacent pair whose concatenation is
// the piece of highest score merged (the leftmost among equal scores),
// until no pair is a piece. A merged UNUSED piece is split back into the
// pair it was made of.
func (m *SentencePiece) encodeBPE(s string) []segment {
	type symbol struct {
		start, end int // bytes of s
		prev, next int
		freeze     bool
	}
	var syms []symbol
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
		syms = append(syms, symbol{start: i, end: i + n, prev: len(syms) - 1, next: len(syms) + 1, freeze: freeze})
		i += n
	}
	if len(syms) == 0 {
		return nil
	}
	syms[len(syms)-1].next = -1
	revMerge := map[string][2]string{}
	q := &pairQueue{}
	add := func(l, r int) {
		if l < 0 || r < 0 || syms[l].freeze || syms[r].freeze {
			return
		}
		piece := s[syms[l].start:syms[r].end]
		id, ok := m.pieces[piece]
		if !ok {
			return
		}
		heap.Push(q, pair{left: l, right: r, score: m.Pieces[id].Score, size: len(piece)})
		if m.Pieces[id].Type == Unused {
			revMerge[piece] = [2]string{s[syms[l].start:syms[l].end], s[syms[r].start:syms[r].end]}
		}
	}
	for i := 1; i < len(syms); i++ {
		add(i-1, i)
	}
	for q.Len() > 0 {
		top := heap.Pop(q).(pair)
		l, r := &syms[top.left], &syms[top.right]
		if l.end == l.start || r.end == r.start || (r.end-r.start)+(l.end-l.start) != top.size {
			continue // stale: one side was merged since
		}
		l.end = r.end
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = top.left
		}
		r.start = r.end // empty
		add(l.prev, top.left)
		add(top.left, l.next)
	}
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
	for i := 0; i >= 0; i = syms[i].next {
		reseg(s[syms[i].start:syms[i].end])
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
