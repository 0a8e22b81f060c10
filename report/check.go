package report

import (
	"bytes"
	"encoding/json"
	"html"
	"regexp"
	"strconv"
	"strings"
)

// Missing lists the values of a run report that a page does not show,
// each as its path in the JSON (".jobs[0].seconds = 0.28"): numbers are
// looked for by value anywhere in the page's text and attributes, strings
// as text. A page written by HTML misses nothing; tests and users check it
// with this.
func Missing(runJSON, page []byte) ([]string, error) {
	d := json.NewDecoder(bytes.NewReader(runJSON))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, jsonError(runJSON, err)
	}
	text := html.UnescapeString(string(page))
	shown := map[float64]bool{}
	for _, m := range numberRE.FindAllString(text, -1) {
		if f, err := strconv.ParseFloat(m, 64); err == nil {
			shown[f] = true
		}
	}
	var missing []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case json.Number:
			if f, err := v.Float64(); err != nil || !shown[f] {
				missing = append(missing, path+" = "+v.String())
			}
		case string:
			if !strings.Contains(text, v) {
				missing = append(missing, path+" = "+strconv.Quote(v))
			}
		case []any:
			for i, e := range v {
				walk(path+"["+strconv.Itoa(i)+"]", e)
			}
		case map[string]any:
			for k, e := range v {
				walk(path+"."+k, e)
			}
		}
	}
	walk("", v)
	return missing, nil
}

var numberRE = regexp.MustCompile(`-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?`)
