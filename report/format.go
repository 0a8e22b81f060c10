package report

import (
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/qpipe/qpipe/internal/bytesize"
)

// exact writes a float as the shortest text that reads back as the same
// value, as the JSON has it.
func exact(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// fixed rounds for reading; the exact value goes in a title.
func fixed(x float64, prec int) string { return strconv.FormatFloat(x, 'f', prec, 64) }

// db rounds an SQNR to a tenth of a decibel; the report's 999 (a perfect
// reconstruction: JSON has no infinity) reads ∞.
func db(x float64) string {
	if x >= 999 {
		return "∞"
	}
	return fixed(x, 1)
}

// sig rounds to a few significant digits (for KL divergences, errors).
func sig(x float64) string {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return exact(x)
	}
	if a := math.Abs(x); a >= 1e-3 && a < 1e4 {
		d := 3 - int(math.Floor(math.Log10(a))) - 1
		if d < 0 {
			d = 0
		}
		return strconv.FormatFloat(x, 'f', d, 64)
	}
	return strconv.FormatFloat(x, 'e', 2, 64)
}

// num shows x rounded with its exact value as the tooltip.
func num(shown string, x float64, unit string) template.HTML {
	t := exact(x)
	if unit != "" {
		t += " " + unit
	}
	return template.HTML(`<span title="` + esc(t) + `">` + esc(shown) + `</span>`)
}

// size shows a byte count in binary units with the exact count as the
// tooltip.
func size(n int64) template.HTML {
	return template.HTML(`<span title="` + strconv.FormatInt(n, 10) + ` bytes">` + esc(bytesize.Format(n)) + `</span>`)
}

// ratio is a / b, or 0.
func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// value renders a JSON value of a field the report does not know: numbers
// exactly as written, objects as nested lists with sorted keys.
func value(v any) template.HTML {
	var b strings.Builder
	writeValue(&b, v)
	return template.HTML(b.String())
}

func writeValue(b *strings.Builder, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString(`<span class="muted">null</span>`)
	case json.Number:
		b.WriteString(`<span class="n">` + esc(v.String()) + `</span>`)
	case string:
		b.WriteString(esc(v))
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case []any:
		if len(v) == 0 {
			b.WriteString(`<span class="muted">[]</span>`)
			return
		}
		b.WriteString(`<ol class="raw" start="0">`)
		for _, e := range v {
			b.WriteString("<li>")
			writeValue(b, e)
			b.WriteString("</li>")
		}
		b.WriteString("</ol>")
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString(`<dl class="raw">`)
		for _, k := range keys {
			b.WriteString("<dt>" + esc(k) + "</dt><dd>")
			writeValue(b, v[k])
			b.WriteString("</dd>")
		}
		b.WriteString("</dl>")
	default:
		b.WriteString(esc(fmt.Sprint(v)))
	}
}

// roleOrder is the order roles are listed and coloured in.
var roleOrder = []string{"embedding", "attention", "feedforward", "lm_head", "default"}

// roleColors are distinguishable with the common colour-vision deficiencies
// (Okabe and Ito's palette).
var roleColors = map[string]string{
	"embedding":   "#0072B2",
	"attention":   "#E69F00",
	"feedforward": "#009E73",
	"lm_head":     "#CC79A7",
	"default":     "#56B4E9",
}

var extraColors = []string{"#D55E00", "#8C6D31", "#F0E442", "#7F7F7F"}

// roleLess orders roles: the known ones first, the rest by name.
func roleLess(a, b string) bool {
	rank := func(r string) int {
		for i, k := range roleOrder {
			if k == r {
				return i
			}
		}
		return len(roleOrder)
	}
	if ra, rb := rank(a), rank(b); ra != rb {
		return ra < rb
	}
	return a < b
}

func sortRoles(roles []string) {
	sort.Slice(roles, func(i, j int) bool { return roleLess(roles[i], roles[j]) })
}

// palette assigns colours to the roles of one chart.
func palette(roles []string) map[string]string {
	p := map[string]string{}
	n := 0
	for _, r := range roles {
		if col, ok := roleColors[r]; ok {
			p[r] = col
		} else {
			p[r] = extraColors[n%len(extraColors)]
			n++
		}
	}
	return p
}

// shortScheme is a scheme's name as a chart label has room for.
func shortScheme(s string) string {
	switch {
	case s == "unchanged":
		return "float"
	case strings.HasPrefix(s, "dynamic_int4_block"):
		return "int4/" + strings.TrimPrefix(s, "dynamic_int4_block")
	case s == "dynamic_int8":
		return "int8"
	case s == "weight_only_int8":
		return "w8"
	case s == "weight_only_int8_asym":
		return "w8a"
	}
	return s
}
