package quant

import (
	"runtime"
	"sync"
	"sync/atomic"
)

var workers atomic.Int32

// SetWorkers sets how many goroutines a kernel call may use and returns the
// previous setting. n <= 0 means runtime.GOMAXPROCS(0), the default. The
// output of every kernel is the same for any setting; only speed changes.
// Callers that already run several tensors at once may set it to 1.
func SetWorkers(n int) (previous int) {
	if n < 0 {
		n = 0
	}
	return int(workers.Swap(int32(n)))
}

func workerCount() int {
	if n := int(workers.Load()); n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// minPart is the fewest elements worth a goroutine of their own: spawning
// costs about a microsecond, quantizing 16K elements about 10-20.
const minPart = 1 << 14

// split divides [0, n) into at most workerCount() contiguous parts whose
// inner bounds are multiples of grain; part p is [bounds[p], bounds[p+1]).
func split(n, grain int) (bounds []int) {
	parts := workerCount()
	grain = max(grain, 1)
	if p := n / max(minPart, grain); p < parts {
		parts = p
	}
	parts = max(parts, 1)
	units := (n + grain - 1) / grain
	bounds = make([]int, parts+1)
	for p := range bounds {
		bounds[p] = min(n, units*p/parts*grain)
	}
	return bounds
}

// forParts calls fn(p, lo, hi) for every part of bounds, part 0 on the
// calling goroutine and the others on their own. Parts are disjoint, so
// kernels that write only their own part produce the same bytes for any split.
func forParts(bounds []int, fn func(p, lo, hi int)) {
	parts := len(bounds) - 1
	if parts == 1 {
		fn(0, bounds[0], bounds[1])
		return
	}
	var wg sync.WaitGroup
	wg.Add(parts - 1)
	for p := 1; p < parts; p++ {
		go func() {
			defer wg.Done()
			fn(p, bounds[p], bounds[p+1])
		}()
	}
	fn(0, bounds[0], bounds[1])
	wg.Wait()
}

// parallelFor runs fn over the parts of split(n, grain).
func parallelFor(n, grain int, fn func(lo, hi int)) {
	forParts(split(n, grain), func(_, lo, hi int) { fn(lo, hi) })
}

// atomicCount sums counts from the parts of a parallelFor.
type atomicCount struct{ n atomic.Int64 }

func (c *atomicCount) add(n int) { c.n.Add(int64(n)) }
func (c *atomicCount) load() int { return int(c.n.Load()) }
