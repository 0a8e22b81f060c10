package report

import (
	"fmt"
	"html"
	"html/template"
	"strings"
)

// svg builds one inline SVG element. Coordinates are written with one
// decimal so that the bytes do not depend on float formatting details.
type svg struct {
	b    strings.Builder
	w, h float64
}

func newSVG(w, h float64, label string) *svg {
	s := &svg{w: w, h: h}
	fmt.Fprintf(&s.b, `<svg viewBox="0 0 %s %s" width="%s" height="%s" role="img" aria-label="%s">`,
		c(w), c(h), c(w), c(h), esc(label))
	return s
}

// c formats a coordinate.
func c(x float64) string {
	s := fmt.Sprintf("%.1f", x)
	s = strings.TrimSuffix(s, ".0")
	if s == "-0" {
		s = "0"
	}
	return s
}

func esc(s string) string { return html.EscapeString(s) }

// rect draws a rectangle; title, when set, is its tooltip.
func (s *svg) rect(x, y, w, h float64, class, fill, title string) {
	fmt.Fprintf(&s.b, `<rect x="%s" y="%s" width="%s" height="%s"`, c(x), c(y), c(w), c(h))
	s.attrs(class, fill)
	s.close("rect", title)
}

func (s *svg) circle(x, y, r float64, class, fill, title string) {
	fmt.Fprintf(&s.b, `<circle cx="%s" cy="%s" r="%s"`, c(x), c(y), c(r))
	s.attrs(class, fill)
	s.close("circle", title)
}

func (s *svg) line(x1, y1, x2, y2 float64, class, stroke string) {
	fmt.Fprintf(&s.b, `<line x1="%s" y1="%s" x2="%s" y2="%s"`, c(x1), c(y1), c(x2), c(y2))
	if class != "" {
		fmt.Fprintf(&s.b, ` class="%s"`, class)
	}
	if stroke != "" {
		fmt.Fprintf(&s.b, ` stroke="%s"`, stroke)
	}
	s.b.WriteString("/>")
}

// polyline joins the points (x0, y0, x1, y1, …).
func (s *svg) polyline(pts []float64, class, stroke string) {
	if len(pts) < 4 {
		return
	}
	s.b.WriteString(`<polyline points="`)
	for i := 0; i+1 < len(pts); i += 2 {
		if i > 0 {
			s.b.WriteByte(' ')
		}
		s.b.WriteString(c(pts[i]) + "," + c(pts[i+1]))
	}
	fmt.Fprintf(&s.b, `" class="%s" stroke="%s"/>`, class, stroke)
}

// text writes a label; anchor is start, middle or end.
func (s *svg) text(x, y float64, anchor, class, text string) {
	fmt.Fprintf(&s.b, `<text x="%s" y="%s"`, c(x), c(y))
	if anchor != "" && anchor != "start" {
		fmt.Fprintf(&s.b, ` text-anchor="%s"`, anchor)
	}
	if class != "" {
		fmt.Fprintf(&s.b, ` class="%s"`, class)
	}
	fmt.Fprintf(&s.b, `>%s</text>`, esc(text))
}

func (s *svg) attrs(class, fill string) {
	if class != "" {
		fmt.Fprintf(&s.b, ` class="%s"`, class)
	}
	if fill != "" {
		fmt.Fprintf(&s.b, ` fill="%s"`, fill)
	}
}

func (s *svg) close(tag, title string) {
	if title == "" {
		s.b.WriteString("/>")
		return
	}
	fmt.Fprintf(&s.b, `><title>%s</title></%s>`, esc(title), tag)
}

func (s *svg) html() template.HTML {
	return template.HTML(s.b.String() + "</svg>")
}
