package interp

import (
	"math/rand/v2"
	"testing"
)

// TestRepeatIndex checks the fast broadcast walk of the element-wise ops
// against broadcastIndex on every pair of small shapes it accepts, from
// every starting element (a worker's chunk may start anywhere).
func TestRepeatIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	accepted := 0
	for range 2000 {
		rank := 1 + r.IntN(4)
		out := make([]int, rank)
		for i := range out {
			out[i] = 1 + r.IntN(4)
		}
		inRank := r.IntN(rank + 1)
		in := append([]int{}, out[rank-inRank:]...)
		for i := range in {
			if r.IntN(3) == 0 {
				in[i] = 1
			}
		}
		rr, n, ok := repeatIndex(in, out)
		if !ok {
			continue
		}
		accepted++
		want := broadcastIndex(in, out)
		for lo := range want {
			p := newRepeat(lo, rr, n)
			for i := lo; i < len(want); i++ {
				if p.i != want[i] {
					t.Fatalf("%v to %v from %d: element %d reads %d, want %d", in, out, lo, i, p.i, want[i])
				}
				p.next()
			}
		}
	}
	if accepted < 500 {
		t.Fatalf("only %d shape pairs took the fast path", accepted)
	}
}
