package stages

import (
	"context"
	"math"
	"sort"
	"strings"

	"github.com/qpipe/qpipe/config"
)

// climbTries bounds the moves measured per step of the climb, climbSteps
// the steps.
const (
	climbTries = 6
	climbSteps = 8
)

// move is a change of a mix: some units to other options, with the bytes
// it adds and the KL it is predicted to add (from the changes measured
// around the mix).
type move struct {
	to    map[int]int // unit → option
	bytes int64
	kl    float64
}

// climb improves a mix by moves whose effect is measured before it is
// kept: under a size, one weight up (more accurate) paid for by the
// cheapest weights down, so that the mix still fits; under an error, the
// weights down that save the most bytes per KL added, while the measured
// KL stays within the bound. The best few moves by prediction are
// measured at each step, the best measured one kept; it stops when none
// helps. Returns nil when no move helped.
func (b *Budget) climb(ctx context.Context, mm *measurer, units []*budgetUnit, tab *sensitivityTable, around [][]float64, start mixCandidate) (*mixCandidate, error) {
	cur := start
	cur.choice = append([]int(nil), start.choice...)
	improved := false
	for step := 0; step < climbSteps; step++ {
		moves := b.moves(units, tab, around, cur)
		var best *mixCandidate
		for k := 0; k < len(moves) && k < climbTries; k++ {
			choice := append([]int(nil), cur.choice...)
			for i, j := range moves[k].to {
				choice[i] = j
			}
			ch := choiceOf(units, func(i int, u *budgetUnit) *config.Scheme { return u.schemes[choice[i]] })
			size, err := mm.size(ctx, ch)
			if err != nil {
				return nil, err
			}
			if b.Config.Size > 0 && size > b.Config.Size {
				continue
			}
			kl, err := mm.kl(ctx, ch)
			if err != nil {
				return nil, err
			}
			if b.maxErr() > 0 && kl > b.maxErr() {
				continue
			}
			c := mixCandidate{method: "climbed from " + origin(start.method), choice: choice, kl: around, out: outcome{size, kl}, onMix: true}
			if b.better(c, cur) && (best == nil || b.better(c, *best)) {
				best = &c
			}
		}
		if best == nil {
			break
		}
		cur, improved = *best, true
	}
	if !improved {
		return nil, nil
	}
	return &cur, nil
}

// moves lists the changes of cur worth measuring, best predicted first.
// around holds, per unit, the KL change of moving it to a neighbouring
// option (aroundOff where not measured); it was measured around the mix
// the climb started from, so it is a prediction for later steps.
func (b *Budget) moves(units []*budgetUnit, tab *sensitivityTable, around [][]float64, cur mixCandidate) []move {
	type step struct {
		unit, to int
		bytes    int64 // added (negative: saved)
		kl       float64
	}
	var ups, downs []step
	for i := range units {
		c := cur.choice[i]
		for j := range units[i].schemes {
			if j == c || around[i][j] >= aroundOff || around[i][c] >= aroundOff {
				continue
			}
			s := step{i, j, tab.bytes[i][j] - tab.bytes[i][c], around[i][j] - around[i][c]}
			if s.bytes == 0 && s.kl >= 0 {
				continue // other scales of the same size that do not help
			}
			if s.bytes > 0 {
				ups = append(ups, s)
			} else {
				downs = append(downs, s)
			}
		}
	}
	// Downs by KL added per byte saved, cheapest first.
	sort.SliceStable(downs, func(a, c int) bool {
		return downs[a].kl/float64(-downs[a].bytes+1) < downs[c].kl/float64(-downs[c].bytes+1)
	})
	var out []move
	if b.Config.Size > 0 {
		slack := b.Config.Size - cur.out.size
		for _, u := range ups {
			if u.kl >= 0 {
				continue
			}
			m := move{to: map[int]int{u.unit: u.to}, bytes: u.bytes, kl: u.kl}
			for _, d := range downs {
				if m.bytes <= slack {
					break
				}
				if _, taken := m.to[d.unit]; taken {
					continue
				}
				m.to[d.unit] = d.to
				m.bytes += d.bytes
				m.kl += d.kl
			}
			if m.bytes <= slack && m.kl < 0 {
				out = append(out, m)
			}
		}
		// Downs that lower the KL (and free bytes) on their own.
		for _, d := range downs {
			if d.kl < 0 {
				out = append(out, move{to: map[int]int{d.unit: d.to}, bytes: d.bytes, kl: d.kl})
			}
		}
	} else {
		room := b.maxErr() - cur.out.kl
		// Prefixes of the cheapest downs: the longest that the prediction
		// keeps within the bound, and shorter ones in case it errs.
		m := move{to: map[int]int{}}
		var prefixes []move
		for _, d := range downs {
			if _, taken := m.to[d.unit]; taken || m.kl+d.kl > room {
				continue
			}
			m.to[d.unit] = d.to
			m.bytes += d.bytes
			m.kl += d.kl
			c := move{to: map[int]int{}, bytes: m.bytes, kl: m.kl}
			for k, v := range m.to {
				c.to[k] = v
			}
			prefixes = append(prefixes, c)
		}
		for k := len(prefixes); k > 0; k = k / 2 {
			out = append(out, prefixes[k-1])
		}
		return out
	}
	sort.SliceStable(out, func(a, c int) bool {
		if out[a].kl != out[c].kl {
			return out[a].kl < out[c].kl
		}
		return math.Abs(float64(out[a].bytes)) < math.Abs(float64(out[c].bytes))
	})
	return out
}

// fillShare is how close under a size budget a mix must land: within 1 %.
const fillShare = 0.99

// fill spends what a size budget has left when the best mix lands more
// than 1 % under it: one weight at a time moves to its next larger option
// that still fits, the one the table predicts to remove the most KL per
// byte first, as long as the mix stays better than every uniform preset
// within the budget (measured). Returns nil when the mix was close enough
// or nothing fits.
func (b *Budget) fill(ctx context.Context, mm *measurer, units []*budgetUnit, tab *sensitivityTable, cands []mixCandidate, best mixCandidate) (*mixCandidate, error) {
	floor := int64(fillShare * float64(b.Config.Size))
	if best.out.size >= floor {
		return nil, nil
	}
	bar := math.Inf(1) // the best uniform preset within the budget
	for _, c := range cands {
		if strings.HasPrefix(c.method, "uniform") && c.out.size <= b.Config.Size {
			bar = math.Min(bar, c.out.kl)
		}
	}
	cur := best
	cur.choice = append([]int(nil), best.choice...)
	changed := false
	for cur.out.size < floor {
		slack := b.Config.Size - cur.out.size
		// Single moves up that fit, and moves up paid in part by one move
		// down, by the KL the table predicts them to remove.
		type fillMove struct {
			to   map[int]int
			add  int64
			gain float64
		}
		var fm []fillMove
		for i := range units {
			c := cur.choice[i]
			for j := range units[i].schemes {
				add := tab.bytes[i][j] - tab.bytes[i][c]
				if add <= 0 {
					continue
				}
				gain := tab.kl[i][c] - tab.kl[i][j]
				if add <= slack {
					fm = append(fm, fillMove{map[int]int{i: j}, add, gain})
				}
				for k := range units {
					if k == i {
						continue
					}
					ck := cur.choice[k]
					for l := range units[k].schemes {
						save := tab.bytes[k][ck] - tab.bytes[k][l]
						if save <= 0 || add-save <= 0 || add-save > slack {
							continue
						}
						fm = append(fm, fillMove{map[int]int{i: j, k: l}, add - save, gain - (tab.kl[k][l] - tab.kl[k][ck])})
					}
				}
			}
		}
		sort.SliceStable(fm, func(a, c int) bool { return fm[a].gain > fm[c].gain })
		moved := false
		for t := 0; t < len(fm) && t < climbTries && !moved; t++ {
			choice := append([]int(nil), cur.choice...)
			for i, j := range fm[t].to {
				choice[i] = j
			}
			ch := choiceOf(units, func(i int, u *budgetUnit) *config.Scheme { return u.schemes[choice[i]] })
			size, err := mm.size(ctx, ch)
			if err != nil {
				return nil, err
			}
			if size > b.Config.Size || size <= cur.out.size {
				continue
			}
			kl, err := mm.kl(ctx, ch)
			if err != nil {
				return nil, err
			}
			if kl >= bar {
				continue
			}
			cur = mixCandidate{method: "filled from " + origin(best.method), choice: choice, kl: best.kl, out: outcome{size, kl}, onMix: best.onMix}
			changed, moved = true, true
		}
		if !moved {
			break
		}
	}
	if !changed {
		return nil, nil
	}
	return &cur, nil
}
