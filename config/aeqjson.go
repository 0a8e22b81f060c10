package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// jsonNode is one JSON value with the byte offset where it starts: what
// encoding/json's decoders do not keep, and what a message needs to point
// at a line and column.
type jsonNode struct {
	kind  jsonKind
	off   int64
	keys  []jsonMember // objects, in file order
	items []*jsonNode  // arrays
	str   string       // strings
	num   json.Number  // numbers, as written
	b     bool         // booleans
}

type jsonMember struct {
	name string
	off  int64
	val  *jsonNode
}

type jsonKind int

const (
	jsonNull jsonKind = iota
	jsonObject
	jsonArray
	jsonString
	jsonNumber
	jsonBool
)

func (k jsonKind) String() string {
	return [...]string{"null", "an object", "a list", "a string", "a number", "a boolean"}[k]
}

// maxJSONDepth bounds nesting: a recipe is four levels deep.
const maxJSONDepth = 32

// jsonParser reads one JSON document token by token, noting offsets.
type jsonParser struct {
	data []byte
	dec  *json.Decoder
}

// parseJSONTree parses data as exactly one JSON value. Errors carry the
// byte offset where the problem is.
func parseJSONTree(data []byte) (*jsonNode, *jsonError) {
	if !json.Valid(data) {
		return nil, syntaxProblem(data)
	}
	p := &jsonParser{data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	p.dec.UseNumber()
	n, jerr := p.value(0)
	if jerr != nil {
		return nil, jerr
	}
	off := p.next()
	if _, err := p.dec.Token(); err != io.EOF {
		return nil, &jsonError{off: off, msg: "unexpected data after the recipe's closing ]"}
	}
	return n, nil
}

// jsonError is a syntax problem at a byte offset.
type jsonError struct {
	off int64
	msg string
}

// next is the offset of the next token: encoding/json reports where the
// last one ended, so skip the blanks and separators it would skip.
func (p *jsonParser) next() int64 {
	off := p.dec.InputOffset()
	for off < int64(len(p.data)) {
		switch p.data[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
			continue
		}
		break
	}
	return off
}

func (p *jsonParser) token() (json.Token, int64, *jsonError) {
	off := p.next()
	tok, err := p.dec.Token()
	if err != nil { // the document passed json.Valid: only a reader error
		return nil, off, &jsonError{off: off, msg: "invalid JSON: " + err.Error()}
	}
	return tok, off, nil
}

// syntaxProblem locates the first syntax error of data. encoding/json's
// Unmarshal reports it as the count of bytes read, the offending one
// included (the token stream reports less precise offsets).
func syntaxProblem(data []byte) *jsonError {
	var v any
	err := json.Unmarshal(data, &v)
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return &jsonError{off: 0, msg: fmt.Sprintf("invalid JSON: %v", err)}
	}
	if se.Offset >= int64(len(data)) && strings.Contains(se.Error(), "unexpected end") {
		return &jsonError{off: int64(len(data)), msg: "invalid JSON: the file ends before the value is complete"}
	}
	return &jsonError{off: max(se.Offset-1, 0), msg: "invalid JSON: " + se.Error()}
}

func (p *jsonParser) value(depth int) (*jsonNode, *jsonError) {
	tok, off, jerr := p.token()
	if jerr != nil {
		return nil, jerr
	}
	n := &jsonNode{off: off}
	switch t := tok.(type) {
	case nil:
		n.kind = jsonNull
	case bool:
		n.kind, n.b = jsonBool, t
	case json.Number:
		n.kind, n.num = jsonNumber, t
	case string:
		n.kind, n.str = jsonString, t
	case json.Delim:
		if depth >= maxJSONDepth {
			return nil, &jsonError{off: off, msg: fmt.Sprintf("nested more than %d levels deep; a recipe has four", maxJSONDepth)}
		}
		if t == '[' {
			n.kind = jsonArray
			for p.dec.More() {
				item, jerr := p.value(depth + 1)
				if jerr != nil {
					return nil, jerr
				}
				n.items = append(n.items, item)
			}
		} else {
			n.kind = jsonObject
			for p.dec.More() {
				ktok, koff, jerr := p.token()
				if jerr != nil {
					return nil, jerr
				}
				name, _ := ktok.(string) // encoding/json only yields strings here
				v, jerr := p.value(depth + 1)
				if jerr != nil {
					return nil, jerr
				}
				n.keys = append(n.keys, jsonMember{name: name, off: koff, val: v})
			}
		}
		if _, _, jerr := p.token(); jerr != nil { // the closing ] or }
			return nil, jerr
		}
	}
	return n, nil
}

// posAt converts a byte offset into a 1-based line and column (in
// characters) of data.
func posAt(file string, data []byte, off int64) Pos {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	start := bytes.LastIndexByte(before, '\n') + 1
	return Pos{File: file, Line: line, Col: utf8.RuneCount(before[start:]) + 1}
}
