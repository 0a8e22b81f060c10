package tokenizer

import "sort"

// pieceTrie is a byte trie of a vocabulary for prefix searches: node 0 is
// the root; node n's edges are edges[first[n]:first[n+1]], sorted by
// label.
type pieceTrie struct {
	first  []int32
	labels []byte
	next   []int32
	id     []int32 // the piece ending at the node, -1 if none
}

// newPieceTrie builds the trie of keys (distinct strings), key i having
// id ids[i].
func newPieceTrie(keys []string, ids []int) *pieceTrie {
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return keys[order[a]] < keys[order[b]] })
	t := &pieceTrie{}
	// Breadth-first over ranges of sorted keys that share a prefix of
	// length depth: each range is a node.
	type span struct{ lo, hi, depth int }
	queue := []span{{0, len(order), 0}}
	t.id = append(t.id, -1)
	for n := 0; n < len(queue); n++ {
		s := queue[n]
		t.first = append(t.first, int32(len(t.labels)))
		lo := s.lo
		if lo < s.hi && len(keys[order[lo]]) == s.depth {
			t.id[n] = int32(ids[order[lo]])
			lo++
		}
		for lo < s.hi {
			c := keys[order[lo]][s.depth]
			hi := lo + 1
			for hi < s.hi && keys[order[hi]][s.depth] == c {
				hi++
			}
			t.labels = append(t.labels, c)
			t.next = append(t.next, int32(len(queue)))
			queue = append(queue, span{lo, hi, s.depth + 1})
			t.id = append(t.id, -1)
			lo = hi
		}
	}
	t.first = append(t.first, int32(len(t.labels)))
	return t
}

// child returns the node reached from n by byte c, or -1.
func (t *pieceTrie) child(n int32, c byte) int32 {
	lo, hi := int(t.first[n]), int(t.first[n+1])
	for lo < hi {
		mid := (lo + hi) / 2
		switch {
		case t.labels[mid] == c:
			return t.next[mid]
		case t.labels[mid] < c:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return -1
}

// prefixes calls f(length, id) for every key that is a prefix of s, shortest
// first.
func (t *pieceTrie) prefixes(s string, f func(n, id int)) {
	node := int32(0)
	for i := 0; i < len(s); i++ {
		if node = t.child(node, s[i]); node < 0 {
			return
		}
		if id := t.id[node]; id >= 0 {
			f(i+1, int(id))
		}
	}
}

// longest returns the length of the longest key that is a prefix of s, 0
// if none is.
func (t *pieceTrie) longest(s string) int {
	best := 0
	t.prefixes(s, func(n, _ int) { best = n })
	return best
}
