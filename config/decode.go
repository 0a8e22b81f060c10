package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxAliases bounds how many times the walker follows YAML aliases (*name)
// in one file, so that nested aliases cannot make it do exponential work and
// a self-referencing anchor cannot make it loop.
const maxAliases = 1000

// decoder walks yaml.Node trees and collects every problem with its place.
// The methods report a problem and return a false ok (or nil) instead of
// stopping, so that one bad value does not hide the next.
type decoder struct {
	file    string
	cat     *catalog // recipe presets and schemes; nil while the catalog itself is parsed
	errs    Diagnostics
	warns   Diagnostics
	aliases int
}

func (d *decoder) at(n *yaml.Node) Pos {
	return Pos{File: d.file, Line: n.Line, Col: n.Column}
}

func (d *decoder) errorf(n *yaml.Node, field, format string, args ...any) {
	d.errs = append(d.errs, Diagnostic{Pos: d.at(n), Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) warnf(n *yaml.Node, field, format string, args ...any) {
	d.warns = append(d.warns, Diagnostic{Pos: d.at(n), Field: field, Msg: fmt.Sprintf(format, args...)})
}

// deref follows aliases to the node they name. It returns nil, after
// reporting it once, when the file has used up its alias budget.
func (d *decoder) deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		d.aliases++
		if d.aliases > maxAliases {
			if d.aliases == maxAliases+1 {
				d.errorf(n, "", "more than %d alias expansions; write the values out instead of using *aliases", maxAliases)
			}
			return nil
		}
		n = n.Alias
	}
	return n
}

// parseYAML parses data as exactly one YAML document and returns its root
// node (nil for an empty document). Syntax errors come back as Diagnostics
// carrying the line the parser reported.
func parseYAML(file string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxError(file, data, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, syntaxError(file, data, err)
	default:
		return nil, Diagnostics{{Pos: Pos{File: file, Line: extra.Line, Col: extra.Column},
			Msg: "a second YAML document (after ---); a file holds exactly one"}}
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0], nil
	}
	return nil, nil
}

var (
	yamlLineRE   = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlAnchorRE = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)
)

// parserProblems start the messages of yaml.v3's parser (as opposed to its
// scanner). For those it reports a 0-based line: the start of the enclosing
// collection, or the problem's own line when the collection starts on the
// first line.
var parserProblems = []string{
	"did not find expected", "found undefined tag handle", "found duplicate %YAML directive",
	"found incompatible YAML document", "found duplicate %TAG directive",
}

// syntaxError turns a yaml.v3 parse error ("yaml: line 3: did not find
// expected key") into a Diagnostic at that line, with a hint for the most
// likely mistake in a job file.
func syntaxError(file string, data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	pos := Pos{File: file}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		pos.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	for _, p := range parserProblems {
		if strings.HasPrefix(msg, p) {
			pos.Line++
			break
		}
	}
	// At the end of the input the parser may point one line past it.
	if lines := bytes.Count(data, []byte("\n")) + 1; pos.Line > lines {
		pos.Line = lines
	}
	if m := yamlAnchorRE.FindStringSubmatch(msg); m != nil {
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			before := data[:i]
			pos.Line = bytes.Count(before, []byte("\n")) + 1
			pos.Col = i - bytes.LastIndexByte(before, '\n')
		}
	}
	if pos.Line > 0 && strings.HasPrefix(msg, "did not find expected ',' or '}'") {
		if line := lineOf(data, pos.Line); strings.Contains(line, "{name}") || strings.Contains(line, "{suffix}") {
			msg += `; inside {...} a path with {name} or {suffix} must be quoted: {path: "out/{name}_{suffix}.tflite"}`
		}
	}
	return Diagnostics{{Pos: pos, Msg: "YAML syntax error: " + msg}}
}

// lineOf returns the 1-based line n of data, or "".
func lineOf(data []byte, n int) string {
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(data, '\n')
		if j < 0 {
			return ""
		}
		data = data[j+1:]
	}
	if j := bytes.IndexByte(data, '\n'); j >= 0 {
		data = data[:j]
	}
	return string(data)
}

// join extends a dotted field path.
func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

func index(field string, i int) string {
	return fmt.Sprintf("%s[%d]", field, i)
}

// quote shows a user-supplied string in a message, shortened if long.
func quote(s string) string { return strconv.Quote(shorten(s)) }

// shorten cuts s to 60 bytes so that a huge value cannot flood a message.
func shorten(s string) string {
	const max = 60
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// describe names what a node is, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing (null)"
		case "!!str":
			return "the string " + quote(n.Value)
		case "!!int":
			return "the integer " + shorten(n.Value)
		case "!!bool":
			return "the boolean " + shorten(n.Value)
		case "!!float":
			return "the number " + shorten(n.Value)
		default:
			return fmt.Sprintf("a %s value", n.ShortTag())
		}
	}
	return "nothing"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// mapping walks the mapping n and calls fn for each key, in file order.
// Keys that are not scalars, duplicate keys and, when valid is non-nil, keys
// not in valid are reported and skipped. A null n counts as an empty mapping
// when allowNull is set. It reports and returns false when n is not a
// mapping.
func (d *decoder) mapping(n *yaml.Node, field string, valid []string, allowNull bool, fn func(key string, k, v *yaml.Node)) bool {
	if n = d.deref(n); n == nil {
		return false
	}
	if allowNull && isNull(n) {
		return true
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, field, "expected a mapping, got %s", describe(n))
		return false
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.deref(n.Content[i]), n.Content[i+1]
		if k == nil {
			continue
		}
		switch {
		case k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge":
			d.errorf(k, field, "merge keys (<<) are not supported; write the keys out")
			continue
		case k.Kind != yaml.ScalarNode || isNull(k):
			d.errorf(k, field, "a key must be a plain word, got %s", describe(k))
			continue
		}
		key := k.Value
		if first, dup := seen[key]; dup {
			d.errorf(k, join(field, key), "duplicate key %s (first at line %d, column %d)", quote(key), first.Line, first.Column)
			continue
		}
		seen[key] = k
		if valid != nil && !contains(valid, key) {
			d.errorf(k, field, "unknown key %s%s; valid: %s", quote(key), suggest(key, valid), strings.Join(valid, ", "))
			continue
		}
		fn(key, k, v)
	}
	return true
}

// keys returns the scalar keys of mapping n (after aliases), without
// reporting anything.
func (d *decoder) keys(n *yaml.Node) []string {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	var ks []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode {
			ks = append(ks, k.Value)
		}
	}
	return ks
}

// list walks the sequence n, calling fn for each item.
func (d *decoder) list(n *yaml.Node, field string, fn func(i int, item *yaml.Node)) bool {
	if n = d.deref(n); n == nil {
		return false
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, field, "expected a list, got %s", describe(n))
		return false
	}
	for i, item := range n.Content {
		fn(i, item)
	}
	return true
}

// str decodes a string scalar. A quoted number is a string; an unquoted
// number, boolean or null is not.
func (d *decoder) str(n *yaml.Node, field string) (string, bool) {
	if n = d.deref(n); n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.errorf(n, field, "expected a string, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

// nonEmpty decodes a string scalar that must not be empty.
func (d *decoder) nonEmpty(n *yaml.Node, field string) (string, bool) {
	s, ok := d.str(n, field)
	if ok && strings.TrimSpace(s) == "" {
		d.errorf(d.deref(n), field, "must not be empty")
		return "", false
	}
	return s, ok
}

// integer decodes an integer scalar.
func (d *decoder) integer(n *yaml.Node, field string) (int, bool) {
	if n = d.deref(n); n == nil {
		return 0, false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.errorf(n, field, "expected an integer, got %s", describe(n))
		return 0, false
	}
	var v int
	if err := n.Decode(&v); err != nil {
		d.errorf(n, field, "integer %s is out of range", quote(n.Value))
		return 0, false
	}
	return v, true
}

// number decodes a finite integer or float scalar.
func (d *decoder) number(n *yaml.Node, field string) (float64, bool) {
	if n = d.deref(n); n == nil {
		return 0, false
	}
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
		d.errorf(n, field, "expected a number, got %s", describe(n))
		return 0, false
	}
	var v float64
	if err := n.Decode(&v); err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		d.errorf(n, field, "expected a finite number, got %s", quote(n.Value))
		return 0, false
	}
	return v, true
}

// boolean decodes true or false.
func (d *decoder) boolean(n *yaml.Node, field string) (bool, bool) {
	if n = d.deref(n); n == nil {
		return false, false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		d.errorf(n, field, "expected true or false, got %s", describe(n))
		return false, false
	}
	var v bool
	if err := n.Decode(&v); err != nil {
		d.errorf(n, field, "expected true or false, got %s", describe(n))
		return false, false
	}
	return v, true
}

// enum decodes a string that must be one of valid (compared without case)
// and returns it in the spelling of valid.
func (d *decoder) enum(n *yaml.Node, field string, valid []string) (string, bool) {
	s, ok := d.str(n, field)
	if !ok {
		return "", false
	}
	for _, v := range valid {
		if strings.EqualFold(s, v) {
			return v, true
		}
	}
	d.errorf(d.deref(n), field, "unknown value %s%s; valid: %s", quote(s), suggest(s, valid), strings.Join(valid, ", "))
	return "", false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// wordRE is what a preset name, a recipe name or an output suffix may look
// like: it ends up in file names.
var wordRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// word decodes a string usable in a file name.
func (d *decoder) word(n *yaml.Node, field string) (string, bool) {
	s, ok := d.str(n, field)
	if !ok {
		return "", false
	}
	if !wordRE.MatchString(s) || len(s) > 100 {
		d.errorf(d.deref(n), field, "%s: use letters, digits, '.', '_' and '-' (at most 100, starting with a letter or digit)", quote(s))
		return "", false
	}
	return s, true
}
