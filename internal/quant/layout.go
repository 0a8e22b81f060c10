package quant

// layout views a row-major tensor as [outer, channels, inner]: element i
// belongs to channel (i / inner) % channels. Per-tensor (axis -1) is one
// channel covering everything.
type layout struct{ outer, channels, inner int }

func channelLayout(fn string, n int, shape []int, axis int) layout {
	if axis < -1 || axis >= len(shape) {
		panicf("%s: axis %d out of range for rank %d", fn, axis, len(shape))
	}
	numel := 1
	for _, d := range shape {
		if d < 0 {
			panicf("%s: negative dimension in shape %v", fn, shape)
		}
		numel *= d
	}
	if numel != n {
		panicf("%s: shape %v has %d elements, slice has %d", fn, shape, numel, n)
	}
	if axis == -1 {
		return layout{outer: 1, channels: 1, inner: n}
	}
	l := layout{outer: 1, channels: shape[axis], inner: 1}
	for _, d := range shape[:axis] {
		l.outer *= d
	}
	for _, d := range shape[axis+1:] {
		l.inner *= d
	}
	return l
}

// forRuns calls fn for each maximal stretch [a, b) of [lo, hi) that lies in
// one run of inner elements, with the run's channel c.
func (l layout) forRuns(lo, hi int, fn func(a, b, c int)) {
	for a := lo; a < hi; {
		run := a / l.inner
		b := min(hi, (run+1)*l.inner)
		fn(a, b, run%l.channels)
		a = b
	}
}
