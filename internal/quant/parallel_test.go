package quant

import "testing"

func TestSplit(t *testing.T) {
	defer SetWorkers(SetWorkers(7))
	for _, tc := range []struct{ n, grain, parts int }{
		{0, 1, 1}, {100, 1, 1}, {minPart*2 - 1, 1, 1}, {minPart * 2, 1, 2},
		{120 * 1024, 1, 7}, {120 * 1024, 256, 7}, {1 << 30, 96, 7}, {minPart * 3, minPart * 2, 1},
	} {
		b := split(tc.n, tc.grain)
		if len(b)-1 != tc.parts || b[0] != 0 || b[len(b)-1] != tc.n {
			t.Fatalf("split(%d, %d) = %v, want %d parts covering [0, %d)", tc.n, tc.grain, b, tc.parts, tc.n)
		}
		for p := 1; p < len(b)-1; p++ {
			if b[p]%tc.grain != 0 || b[p] <= b[p-1] {
				t.Fatalf("split(%d, %d) = %v: bound %d not increasing or not a multiple of the grain", tc.n, tc.grain, b, b[p])
			}
		}
	}
}
