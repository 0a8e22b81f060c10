package report

import (
	"fmt"
	"html/template"
	"math"
	"sort"
	"strconv"

	"github.com/qpipe/qpipe/internal/bytesize"
	"github.com/qpipe/qpipe/pipeline"
)

const chartWidth = 940

// segment is one piece of a stacked bar.
type segment struct {
	label, title, color string
	bytes               int64
	faded               bool
}

// sizeChart draws the float input and the output as two stacked bars on one
// scale: each role's weights (by scheme in the output) and the rest of the
// file.
func sizeChart(inputBytes int64, o *pipeline.OutputReport) template.HTML {
	var roles []string
	in := map[string]int64{}
	var inWeights, outWeights int64
	for _, s := range o.Sizes {
		if _, ok := in[s.Role]; !ok {
			roles = append(roles, s.Role)
		}
		in[s.Role] += s.BytesIn
		inWeights += s.BytesIn
		outWeights += s.BytesOut
	}
	sortRoles(roles)
	pal := palette(roles)
	if inputBytes < inWeights {
		inputBytes = inWeights
	}
	var inSegs, outSegs []segment
	for _, r := range roles {
		inSegs = append(inSegs, segment{label: r, title: fmt.Sprintf("%s: %s float", r, bytesize.Format(in[r])), color: pal[r], bytes: in[r]})
		for _, s := range o.Sizes {
			if s.Role == r {
				outSegs = append(outSegs, segment{
					label: shortScheme(s.Scheme), color: pal[r], bytes: s.BytesOut, faded: s.Scheme == pipeline.Unchanged,
					title: fmt.Sprintf("%s, %s: %d tensor(s), %s → %s", r, s.Scheme, s.Tensors, bytesize.Format(s.BytesIn), bytesize.Format(s.BytesOut)),
				})
			}
		}
	}
	other := func(total, weights int64) segment {
		return segment{label: "other", color: "#c9ccd1", bytes: total - weights,
			title: fmt.Sprintf("graph, signatures and constants no scheme reads: %s", bytesize.Format(total-weights))}
	}
	inSegs = append(inSegs, other(inputBytes, inWeights))
	outSegs = append(outSegs, other(o.Bytes, outWeights))

	const left, right, barH, gap, top = 92, 96, 30, 18, 8
	plotW := float64(chartWidth - left - right)
	scale := plotW / float64(max(inputBytes, o.Bytes, 1))
	h := float64(top + 2*barH + gap + 34)
	s := newSVG(chartWidth, h, "stacked bars: float input and output size by role and scheme")
	bar := func(y float64, name string, segs []segment, total int64) {
		s.text(left-10, y+barH/2+4, "end", "lab", name)
		x := float64(left)
		for _, g := range segs {
			w := float64(g.bytes) * scale
			if w <= 0 {
				continue
			}
			class := "seg"
			if g.faded {
				class = "seg faded"
			}
			s.rect(x, y, w, barH, class, g.color, g.title)
			if w >= 7*float64(len(g.label))+8 {
				s.text(x+w/2, y+barH/2+4, "middle", "seglab", g.label)
			}
			x += w
		}
		s.text(x+8, y+barH/2+4, "start", "tot", bytesize.Format(total))
	}
	bar(top, "float input", inSegs, inputBytes)
	bar(top+barH+gap, "output", outSegs, o.Bytes)
	// Legend.
	x := float64(left)
	y := h - 10
	for _, r := range roles {
		s.rect(x, y-9, 10, 10, "", pal[r], "")
		s.text(x+14, y, "start", "leg", r)
		x += 14 + 7.5*float64(len(r)) + 18
	}
	s.rect(x, y-9, 10, 10, "", "#c9ccd1", "")
	s.text(x+14, y, "start", "leg", "graph & other")
	return s.html()
}

// axis maps values to pixels, linearly or on a log10 scale.
type axis struct {
	lo, hi   float64 // in axis units (log10 of the value when log)
	log      bool
	px0, px1 float64
}

func (a axis) at(v float64) float64 {
	if a.log {
		v = math.Log10(v)
	}
	if a.hi == a.lo {
		return (a.px0 + a.px1) / 2
	}
	return a.px0 + (v-a.lo)/(a.hi-a.lo)*(a.px1-a.px0)
}

// ticks returns tick values in value units with their labels.
func (a axis) ticks(unit string) ([]float64, []string) {
	var vs []float64
	var ls []string
	if a.log {
		for e := math.Ceil(a.lo - 1e-9); e <= a.hi+1e-9; e++ {
			v := math.Pow(10, e)
			vs = append(vs, v)
			ls = append(ls, strconv.FormatFloat(v, 'g', -1, 64))
		}
		return vs, ls
	}
	step := niceStep((a.hi - a.lo) / 6)
	for v := math.Ceil(a.lo/step-1e-9) * step; v <= a.hi+1e-9; v += step {
		vs = append(vs, v)
		ls = append(ls, strconv.FormatFloat(v, 'f', -1, 64)+unit)
	}
	return vs, ls
}

// niceStep rounds up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

// linearAxis spans the values with round ends, at least minSpan wide.
func linearAxis(vals []float64, minSpan float64) axis {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if hi-lo < minSpan {
		mid := (hi + lo) / 2
		lo, hi = mid-minSpan/2, mid+minSpan/2
	}
	step := niceStep((hi - lo) / 6)
	return axis{lo: math.Floor(lo/step) * step, hi: math.Ceil(hi/step) * step}
}

// logAxis spans positive values in whole decades.
func logAxis(vals []float64) axis {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		if v > 0 {
			lo, hi = math.Min(lo, math.Log10(v)), math.Max(hi, math.Log10(v))
		}
	}
	lo, hi = math.Floor(lo), math.Ceil(hi)
	if hi <= lo {
		hi = lo + 1
	}
	return axis{lo: lo, hi: hi, log: true}
}

// layerMeasure is what a per-layer chart shows of each tensor.
type layerMeasure struct {
	name  string // for the aria label
	unit  string // after tick labels
	log   bool
	title string // y axis title
	value func(t *pipeline.TensorMetric) (float64, bool)
}

var sqnrMeasure = layerMeasure{
	name: "weight SQNR", unit: " dB", title: "weight SQNR, dB (higher is better)",
	value: func(t *pipeline.TensorMetric) (float64, bool) { return math.Min(t.SQNR, 999), true },
}

var sensitivityMeasure = layerMeasure{
	name: "sensitivity", log: true, title: "KL, this weight alone (lower is better)",
	value: func(t *pipeline.TensorMetric) (float64, bool) {
		if t.SensitivityKL == nil || *t.SensitivityKL <= 0 {
			return 0, false
		}
		return *t.SensitivityKL, true
	},
}

// layerChart plots a measure of each tensor across the transformer blocks,
// one colour per role with a line through the role's mean per block;
// tensors outside the blocks (embedding, lm_head) are dashed lines across.
// It returns "" when no tensor has both a layer and a value.
func layerChart(ts []tensor, m layerMeasure) template.HTML {
	type pt struct {
		t *pipeline.TensorMetric
		v float64
	}
	byRole := map[string]map[int][]pt{}
	var flat []pt
	var vals []float64
	minL, maxL := math.MaxInt, math.MinInt
	for i := range ts {
		t := &ts[i].TensorMetric
		v, ok := m.value(t)
		if !ok {
			continue
		}
		vals = append(vals, v)
		if t.Layer == nil {
			flat = append(flat, pt{t, v})
			continue
		}
		if byRole[t.Role] == nil {
			byRole[t.Role] = map[int][]pt{}
		}
		byRole[t.Role][*t.Layer] = append(byRole[t.Role][*t.Layer], pt{t, v})
		minL, maxL = min(minL, *t.Layer), max(maxL, *t.Layer)
	}
	if len(byRole) == 0 {
		return ""
	}
	roles := make([]string, 0, len(byRole))
	for r := range byRole {
		roles = append(roles, r)
	}
	sortRoles(roles)
	flatRoles := []string{}
	for _, p := range flat {
		flatRoles = append(flatRoles, p.t.Role)
	}
	pal := palette(append(append([]string{}, roles...), flatRoles...))

	const left, right, top, bottom, height = 64, 170, 14, 44, 300
	var y axis
	if m.log {
		y = logAxis(vals)
	} else {
		y = linearAxis(vals, 10)
	}
	y.px0, y.px1 = height-bottom, top
	plotL, plotR := float64(left), float64(chartWidth-right)
	n := maxL - minL + 1
	band := (plotR - plotL) / float64(n)
	xOf := func(l int) float64 { return plotL + (float64(l-minL)+0.5)*band }

	s := newSVG(chartWidth, height, m.name+" per transformer block and role")
	vs, ls := y.ticks(m.unit)
	for i, v := range vs {
		py := y.at(v)
		s.line(plotL, py, plotR, py, "grid", "")
		s.text(plotL-6, py+4, "end", "tick", ls[i])
	}
	every := 1
	for n/every > 24 {
		every++
	}
	for l := minL; l <= maxL; l++ {
		if (l-minL)%every == 0 {
			s.text(xOf(l), height-bottom+16, "middle", "tick", strconv.Itoa(l))
		}
	}
	s.line(plotL, height-bottom, plotR, height-bottom, "axis", "")
	s.text((plotL+plotR)/2, height-8, "middle", "axt", "transformer block")
	s.b.WriteString(fmt.Sprintf(`<text transform="translate(14 %s) rotate(-90)" text-anchor="middle" class="axt">%s</text>`,
		c((y.px0+y.px1)/2), esc(m.title)))

	// Tensors outside the blocks: dashed lines with labels at the right,
	// pushed apart so that they do not overlap.
	// Weights that read the same and show the same (a tied lm_head and its
	// embedding) share one line.
	sort.SliceStable(flat, func(i, j int) bool { return flat[i].v > flat[j].v })
	lastY := math.Inf(-1)
	for i := 0; i < len(flat); {
		p, label := flat[i], fmtMeasure(m, flat[i].v)
		n := 1
		for i+n < len(flat) && flat[i+n].t.Role == p.t.Role && fmtMeasure(m, flat[i+n].v) == label {
			n++
		}
		i += n
		py := y.at(p.v)
		s.line(plotL, py, plotR, py, "ref", pal[p.t.Role])
		ly := math.Max(py+4, lastY+13)
		lastY = ly
		name := p.t.Role
		if n > 1 {
			name += fmt.Sprintf(" ×%d", n)
		}
		s.text(plotR+6, ly, "start", "leg", name+" "+label)
	}
	// Points, then the mean line of each role.
	nr := len(roles)
	for ri, r := range roles {
		dx := (float64(ri) - float64(nr-1)/2) * math.Min(band/float64(nr+1), 9)
		var line []float64
		for l := minL; l <= maxL; l++ {
			ps := byRole[r][l]
			if len(ps) == 0 {
				continue
			}
			sum := 0.0
			for _, p := range ps {
				s.circle(xOf(l)+dx, y.at(p.v), 3.2, "pt", pal[r],
					fmt.Sprintf("%s — %s, block %d, %s: %s", p.t.Tensor, r, l, p.t.Scheme, fmtMeasure(m, p.v)))
				if m.log {
					sum += math.Log10(p.v)
				} else {
					sum += p.v
				}
			}
			mean := sum / float64(len(ps))
			if m.log {
				mean = math.Pow(10, mean)
			}
			line = append(line, xOf(l)+dx, y.at(mean))
		}
		s.polyline(line, "mean", pal[r])
	}
	// Legend: the roles with points.
	ly := float64(top) + 4
	if len(flat) > 0 {
		ly = math.Max(ly, lastY+22)
	}
	for _, r := range roles {
		s.circle(plotR+12, ly-4, 4, "", pal[r], "")
		s.text(plotR+22, ly, "start", "leg", r)
		ly += 16
	}
	return s.html()
}

func fmtMeasure(m layerMeasure, v float64) string {
	if m.log {
		return sig(v)
	}
	return db(v) + m.unit
}

// point is one model on the size–KL chart.
type point struct {
	label  string
	bytes  int64
	kl     float64
	chosen bool
}

// tradeoffChart plots size against KL divergence: each uniform preset and
// the budget's mix, with the budget as a dashed line.
func tradeoffChart(pts []point, budgetBytes int64, maxKL float64) template.HTML {
	var sizes, kls []float64
	for _, p := range pts {
		if p.kl > 0 {
			sizes = append(sizes, float64(p.bytes))
			kls = append(kls, p.kl)
		}
	}
	if len(kls) == 0 {
		return ""
	}
	if budgetBytes > 0 {
		sizes = append(sizes, float64(budgetBytes))
	}
	if maxKL > 0 {
		kls = append(kls, maxKL)
	}
	const left, right, top, bottom, height = 72, 40, 14, 44, 320
	x := linearAxis(scaleAll(sizes, 1.0/(1<<20)), 0.5)
	x.px0, x.px1 = left, chartWidth-right
	y := logAxis(kls)
	y.px0, y.px1 = height-bottom, top
	s := newSVG(chartWidth, height, "size against KL divergence")
	vs, ls := y.ticks("")
	for i, v := range vs {
		s.line(x.px0, y.at(v), x.px1, y.at(v), "grid", "")
		s.text(x.px0-6, y.at(v)+4, "end", "tick", ls[i])
	}
	xs, xl := x.ticks(" MiB")
	for i, v := range xs {
		s.line(x.at(v), y.px0, x.at(v), y.px1, "grid", "")
		s.text(x.at(v), y.px0+16, "middle", "tick", xl[i])
	}
	s.text((x.px0+x.px1)/2, height-8, "middle", "axt", "output size")
	s.b.WriteString(fmt.Sprintf(`<text transform="translate(16 %s) rotate(-90)" text-anchor="middle" class="axt">KL divergence (lower is better)</text>`,
		c((y.px0+y.px1)/2)))
	if budgetBytes > 0 {
		bx := x.at(float64(budgetBytes) / (1 << 20))
		s.line(bx, y.px0, bx, y.px1, "budget", "")
		s.text(bx+4, y.px0-6, "start", "leg", "budget "+bytesize.Format(budgetBytes))
	}
	if maxKL > 0 {
		by := y.at(maxKL)
		s.line(x.px0, by, x.px1, by, "budget", "")
		s.text(x.px1-4, by-5, "end", "leg", "max KL "+sig(maxKL))
	}
	var placed []box
	for _, p := range pts {
		if p.kl <= 0 {
			continue
		}
		px, py := x.at(float64(p.bytes)/(1<<20)), y.at(p.kl)
		class, r := "pt preset", 4.5
		if p.chosen {
			class, r = "pt chosen", 6.5
		}
		s.circle(px, py, r, class, "", fmt.Sprintf("%s: %s, KL %s", p.label, bytesize.Format(p.bytes), sig(p.kl)))
		placed = append(placed, box{px - r, py - r, px + r, py + r})
	}
	// Labels: the chosen point's first; a label with no free spot is left
	// out (the table below the chart names every point).
	order := make([]point, 0, len(pts))
	for _, p := range pts {
		if p.chosen {
			order = append([]point{p}, order...)
		} else {
			order = append(order, p)
		}
	}
	for _, p := range order {
		if p.kl <= 0 {
			continue
		}
		px, py := x.at(float64(p.bytes)/(1<<20)), y.at(p.kl)
		b, anchor, free := placeLabel(px, py, p.label, x.px0, x.px1, y.px1, y.px0, placed)
		if !free && !p.chosen {
			continue
		}
		placed = append(placed, b)
		tx := b.x0
		if anchor == "end" {
			tx = b.x1
		}
		s.text(tx, b.y1-3, anchor, map[bool]string{true: "ptlab strong", false: "ptlab"}[p.chosen], p.label)
	}
	return s.html()
}

func scaleAll(v []float64, k float64) []float64 {
	out := make([]float64, len(v))
	for i := range v {
		out[i] = v[i] * k
	}
	return out
}

// box is a rectangle in pixels: a label or a point already drawn.
type box struct{ x0, y0, x1, y1 float64 }

func (a box) overlaps(b box) bool {
	return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1
}

// placeLabel finds a spot near the point (px, py) for a label that covers
// nothing placed yet, trying right and left of it at growing distances;
// free is false when every spot covers something (the first one is
// returned then).
func placeLabel(px, py float64, label string, left, right, top, bottom float64, placed []box) (b box, anchor string, free bool) {
	w, h := 6.6*float64(len(label)), 14.0
	var first box
	firstAnchor := ""
	for _, dy := range []float64{-8, 8, -20, 20, -32, 32, -44, 44} {
		for _, side := range []string{"start", "end"} {
			b := box{px + 8, py + dy - h/2, px + 8 + w, py + dy + h/2}
			if side == "end" {
				b.x0, b.x1 = px-8-w, px-8
			}
			if b.x0 < left || b.x1 > right+30 || b.y0 < top-6 || b.y1 > bottom {
				continue
			}
			if firstAnchor == "" {
				first, firstAnchor = b, side
			}
			ok := true
			for _, o := range placed {
				if b.overlaps(o) {
					ok = false
					break
				}
			}
			if ok {
				return b, side, true
			}
		}
	}
	if firstAnchor == "" {
		return box{px + 8, py - 15, px + 8 + w, py - 1}, "start", false
	}
	return first, firstAnchor, false
}
