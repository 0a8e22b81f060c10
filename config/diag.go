package config

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a place in a YAML file. Line and Col are 1-based; Col 0 means the
// column is unknown (YAML syntax errors report only a line) and Line 0 means
// the file as a whole.
type Pos struct {
	File      string
	Line, Col int
}

// String formats p as "file:line:col", dropping the parts that are unknown.
func (p Pos) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		if p.File != "" {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%d", p.Line)
		if p.Col > 0 {
			fmt.Fprintf(&b, ":%d", p.Col)
		}
	}
	return b.String()
}

// Diagnostic is one problem (or warning) found in a YAML file.
type Diagnostic struct {
	Pos Pos
	// Field is the dotted path of the offending value, relative to its
	// stage for stage contents: "quantize.recipe.attention",
	// "annotate.rules[0].match". Empty for file-level problems.
	Field string
	Msg   string
}

// Error formats d as "file:line:col: field: message".
func (d Diagnostic) Error() string {
	var b strings.Builder
	if s := d.Pos.String(); s != "" {
		b.WriteString(s)
		b.WriteString(": ")
	}
	if d.Field != "" {
		b.WriteString(d.Field)
		b.WriteString(": ")
	}
	b.WriteString(d.Msg)
	return b.String()
}

// Diagnostics is every problem found in one file, in file order. It is the
// error type ParseJob, LoadJob and ParseScheme return for a bad file; use
// errors.As to get at the individual problems.
type Diagnostics []Diagnostic

// Error prints one diagnostic per line.
func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.Error()
	}
	return strings.Join(lines, "\n")
}

// Sorted orders ds by position, in place, keeping the order of discovery
// for problems at the same place, and returns it.
func (ds Diagnostics) Sorted() Diagnostics {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i].Pos, ds[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return ds
}

// suggest returns ` (did you mean "x"?)` when one of valid is a likely typo
// of s, else "".
func suggest(s string, valid []string) string {
	best, bestDist := "", 0
	for _, v := range valid {
		d := editDistance(strings.ToLower(s), strings.ToLower(v))
		limit := len(v) / 3
		if limit < 1 {
			limit = 1
		}
		if d <= limit && (best == "" || d < bestDist) {
			best, bestDist = v, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b, in bytes. Inputs
// longer than 64 bytes are never typos of a keyword; they get a large value
// without the quadratic work.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
