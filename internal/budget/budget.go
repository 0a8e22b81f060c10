package budget

import (
	"container/heap"
	"fmt"
	"math"
	"sort"
)

// Option is one way to store a unit.
type Option struct {
	Label string
	Bytes int64
	// Err is the option's predicted contribution to the output error; the
	// error of a mix is the sum over its units.
	Err float64
}

// Unit is something that gets exactly one option (a weight, or the
// weights that must share a scheme).
type Unit struct {
	Name    string
	Options []Option
}

// Mix is one option per unit.
type Mix struct {
	Choice []int // index into each unit's Options
	Bytes  int64 // sum of the chosen options' bytes
	Err    float64
}

// step is one move of the path: unit u goes to option to.
type step struct {
	u, to int
}

// Planner holds the units and their path.
type Planner struct {
	units []Unit
	hulls [][]int // per unit: option indices on the lower convex hull, largest first
	start Mix     // every unit at its largest hull option
	path  []step
}

// NewPlanner checks the units and computes the path.
func NewPlanner(units []Unit) (*Planner, error) {
	p := &Planner{units: units, start: Mix{Choice: make([]int, len(units))}}
	for i, u := range units {
		if len(u.Options) == 0 {
			return nil, fmt.Errorf("budget: unit %q has no option", u.Name)
		}
		for _, o := range u.Options {
			if o.Bytes < 0 || o.Err < 0 || o.Err != o.Err {
				return nil, fmt.Errorf("budget: unit %q option %q: bytes %d, error %g: want both non-negative", u.Name, o.Label, o.Bytes, o.Err)
			}
		}
		h := hull(u.Options)
		p.hulls = append(p.hulls, h)
		p.start.Choice[i] = h[0]
		p.start.Bytes += u.Options[h[0]].Bytes
		p.start.Err += u.Options[h[0]].Err
	}
	p.path = p.walk()
	return p, nil
}

// hull returns the options on the lower convex hull of (bytes, error),
// from the largest to the smallest: dominated options (no smaller and no
// more accurate than another) and those above the hull are left out.
func hull(opts []Option) []int {
	idx := make([]int, len(opts))
	for i := range idx {
		idx[i] = i
	}
	// Largest first; among equal sizes the most accurate, then the first.
	sort.SliceStable(idx, func(a, b int) bool {
		oa, ob := opts[idx[a]], opts[idx[b]]
		if oa.Bytes != ob.Bytes {
			return oa.Bytes > ob.Bytes
		}
		return oa.Err < ob.Err
	})
	// The Pareto front: an option is kept when it is smaller than the
	// previous one, and a larger option that is not more accurate than a
	// smaller one is dropped.
	var front []int
	for k, i := range idx {
		if k > 0 && opts[i].Bytes == opts[front[len(front)-1]].Bytes {
			continue // same size, less accurate
		}
		// A larger option at least as wrong as this one is dominated.
		for len(front) > 0 && opts[front[len(front)-1]].Err >= opts[i].Err {
			front = front[:len(front)-1]
		}
		front = append(front, i)
	}
	// Lower convex hull: the slope (error added per byte saved) must
	// increase along the path.
	var h []int
	for _, i := range front {
		for len(h) >= 2 {
			a, b := opts[h[len(h)-2]], opts[h[len(h)-1]]
			c := opts[i]
			// b is above the segment a–c when slope(a,b) >= slope(a,c).
			if (b.Err-a.Err)*float64(a.Bytes-c.Bytes) >= (c.Err-a.Err)*float64(a.Bytes-b.Bytes) {
				h = h[:len(h)-1]
				continue
			}
			break
		}
		h = append(h, i)
	}
	return h
}

// move is a candidate step in the walk's queue.
type move struct {
	u, pos int // unit, position on its hull after the move
	slope  float64
}

type moves []move

func (m moves) Len() int { return len(m) }
func (m moves) Less(i, j int) bool {
	if m[i].slope != m[j].slope {
		return m[i].slope < m[j].slope
	}
	return m[i].u < m[j].u
}
func (m moves) Swap(i, j int) { m[i], m[j] = m[j], m[i] }
func (m *moves) Push(x any)   { *m = append(*m, x.(move)) }
func (m *moves) Pop() any {
	old := *m
	x := old[len(old)-1]
	*m = old[:len(old)-1]
	return x
}

func (p *Planner) next(u, pos int) (move, bool) {
	h := p.hulls[u]
	if pos+1 >= len(h) {
		return move{}, false
	}
	a, b := p.units[u].Options[h[pos]], p.units[u].Options[h[pos+1]]
	return move{u: u, pos: pos + 1, slope: (b.Err - a.Err) / float64(a.Bytes-b.Bytes)}, true
}

// walk merges the units' hull steps by slope.
func (p *Planner) walk() []step {
	q := &moves{}
	for u := range p.units {
		if m, ok := p.next(u, 0); ok {
			*q = append(*q, m)
		}
	}
	heap.Init(q)
	var path []step
	for q.Len() > 0 {
		m := heap.Pop(q).(move)
		path = append(path, step{u: m.u, to: p.hulls[m.u][m.pos]})
		if n, ok := p.next(m.u, m.pos); ok {
			heap.Push(q, n)
		}
	}
	return path
}

// apply moves unit u to option to and recomputes the totals in unit
// order, so that they carry no drift from the path taken.
func (p *Planner) apply(mx *Mix, u, to int) {
	mx.Choice[u] = to
	mx.Bytes, mx.Err = 0, 0
	for i, c := range mx.Choice {
		mx.Bytes += p.units[i].Options[c].Bytes
		mx.Err += p.units[i].Options[c].Err
	}
}

func (p *Planner) clone(mx Mix) Mix {
	mx.Choice = append([]int(nil), mx.Choice...)
	return mx
}

// Largest is every unit at its most accurate option.
func (p *Planner) Largest() Mix { return p.clone(p.start) }

// Smallest is every unit at its smallest option.
func (p *Planner) Smallest() Mix {
	mx := p.Largest()
	for _, s := range p.path {
		p.apply(&mx, s.u, s.to)
	}
	return mx
}

// Points returns every mix along the path, from the largest to the
// smallest: each is the least error for its size.
func (p *Planner) Points() []Mix {
	mx := p.Largest()
	out := []Mix{p.clone(mx)}
	for _, s := range p.path {
		p.apply(&mx, s.u, s.to)
		out = append(out, p.clone(mx))
	}
	return out
}

// BySize returns the mix of least predicted error whose bytes are at most
// limit, and false when even the smallest mix is larger: the better of the
// path (then single moves into the bytes left) and a dynamic programme
// over sizes rounded up to 1/cells of the limit, whose mix is at least as
// good as the best one within limit − units·limit/cells.
func (p *Planner) BySize(limit int64) (Mix, bool) {
	mx, ok := p.bySizePath(limit)
	if !ok {
		return mx, false
	}
	if d, ok := p.knapsack(limit); ok && d.Err < mx.Err {
		mx = d
	}
	return mx, true
}

// maxCells bounds the programme's table (units × cells bytes).
const maxCells = 1 << 16

func (p *Planner) knapsack(limit int64) (Mix, bool) {
	n := len(p.units)
	cells := int64(maxCells)
	if n > 0 {
		cells = min(cells, int64(64<<20)/int64(n))
	}
	if limit <= 0 || cells < 16 {
		return Mix{}, false
	}
	g := (limit + cells - 1) / cells // bytes per cell, rounded up
	capacity := int(limit / g)
	inf := math.Inf(1)
	f := make([]float64, capacity+1) // least error of the units so far within c cells
	next := make([]float64, capacity+1)
	arg := make([][]uint8, n)
	for u, unit := range p.units {
		if len(unit.Options) > 255 {
			return Mix{}, false
		}
		arg[u] = make([]uint8, capacity+1)
		for c := range next {
			next[c] = inf
		}
		for o, opt := range unit.Options {
			w := int((opt.Bytes + g - 1) / g)
			for c := w; c <= capacity; c++ {
				if v := f[c-w] + opt.Err; v < next[c] {
					next[c], arg[u][c] = v, uint8(o)
				}
			}
		}
		f, next = next, f
	}
	bestC := -1
	for c := 0; c <= capacity; c++ {
		if f[c] < inf && (bestC < 0 || f[c] < f[bestC]) {
			bestC = c
		}
	}
	if bestC < 0 {
		return Mix{}, false
	}
	mx := p.Largest()
	c := bestC
	for u := n - 1; u >= 0; u-- {
		o := int(arg[u][c])
		mx.Choice[u] = o
		c -= int((p.units[u].Options[o].Bytes + g - 1) / g)
	}
	p.apply(&mx, 0, mx.Choice[0])
	return mx, mx.Bytes <= limit
}

func (p *Planner) bySizePath(limit int64) (Mix, bool) {
	mx := p.Largest()
	for _, s := range p.path {
		if mx.Bytes <= limit {
			break
		}
		p.apply(&mx, s.u, s.to)
	}
	if mx.Bytes > limit {
		return mx, false
	}
	// Spend what is left: the single move that removes the most error and
	// still fits, until none does.
	p.spend(&mx, func(cur, opt Option) float64 { return cur.Err - opt.Err },
		func(cur, opt Option) bool { return mx.Bytes+opt.Bytes-cur.Bytes <= limit })
	return mx, true
}

// spend applies, until there is none, the single move of highest positive
// value that allowed accepts (ties: the first unit and option).
func (p *Planner) spend(mx *Mix, value func(cur, opt Option) float64, allowed func(cur, opt Option) bool) {
	for {
		bu, bo, best := -1, -1, 0.0
		for u, unit := range p.units {
			cur := unit.Options[mx.Choice[u]]
			for o, opt := range unit.Options {
				if v := value(cur, opt); v > best && allowed(cur, opt) {
					bu, bo, best = u, o, v
				}
			}
		}
		if bu < 0 {
			return
		}
		p.apply(mx, bu, bo)
	}
}

// ByError returns the smallest mix whose predicted error is at most
// maxErr, and false when even the largest mix's error is above it. It
// takes the smaller of two searches: down the path, then single moves
// within the error left; and the least size whose BySize mix meets the
// error (bisection).
func (p *Planner) ByError(maxErr float64) (Mix, bool) {
	best, ok := p.byErrorPath(maxErr)
	if !ok {
		return best, false
	}
	// To within 1/4096 of the size: finer than the programme's cells.
	lo, hi := p.Smallest().Bytes, best.Bytes
	for hi-lo > max(1, hi/4096) {
		mid := lo + (hi-lo)/2
		mx, _ := p.BySize(mid)
		if mx.Bytes <= mid && mx.Err <= maxErr {
			if mx.Bytes < best.Bytes {
				best = mx
			}
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return best, true
}

func (p *Planner) byErrorPath(maxErr float64) (Mix, bool) {
	mx := p.Largest()
	if mx.Err > maxErr {
		return mx, false
	}
	for _, s := range p.path {
		next := p.clone(mx)
		p.apply(&next, s.u, s.to)
		if next.Err > maxErr {
			break
		}
		mx = next
	}
	// Spend what is left of the error: the single move that saves the
	// most bytes and stays within it, until none does.
	p.spend(&mx, func(cur, opt Option) float64 { return float64(cur.Bytes - opt.Bytes) },
		func(cur, opt Option) bool { return mx.Err+opt.Err-cur.Err <= maxErr })
	return mx, true
}
