package evaluate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// MaxSampleLine is the longest line an inputs file may have, in bytes.
const MaxSampleLine = 64 << 20

// maxNesting bounds how deeply a value's lists may nest.
const maxNesting = 8

// Sample is one line of an inputs file: a JSON object whose keys name
// signature inputs and whose values are numbers or (nested) lists of
// numbers, e.g. {"tokens": [1, 2, 3]}. Binding it to a signature
// (Bind) checks names, shapes, types and token ranges.
type Sample struct {
	Line   int // 1-based line number in the file
	Values map[string]*Value
	keys   []string // in file order
}

// Value is one input's value as written: the shape of its nesting (nil
// for a bare number) and its numbers in row-major order, kept as written
// so that integers are read exactly.
type Value struct {
	Shape []int
	Nums  []json.Number
	col   int // 1-based byte column of the value
}

// SampleError is a problem at a place of an inputs file.
type SampleError struct {
	File      string
	Line, Col int // Col 0: the whole line
	Msg       string
}

func (e *SampleError) Error() string {
	if e.Col > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// ParseSamples reads an inputs file: JSON lines, one sample per line,
// blank lines ignored. file names the input in errors. The first problem
// is returned as a *SampleError.
func ParseSamples(r io.Reader, file string) ([]*Sample, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var out []*Sample
	for line := 1; ; line++ {
		text, err := readLine(br)
		if errors.Is(err, errLineTooLong) {
			return nil, &SampleError{File: file, Line: line, Msg: fmt.Sprintf("line longer than %d MiB", MaxSampleLine>>20)}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if len(bytes.TrimSpace(text)) > 0 {
			s, perr := parseSample(text, line)
			if perr != nil {
				perr.File = file
				return nil, perr
			}
			out = append(out, s)
		}
		if err != nil { // io.EOF
			break
		}
	}
	if len(out) == 0 {
		return nil, &SampleError{File: file, Line: 1, Msg: `no samples: write one JSON object per line, e.g. {"tokens": [1, 2, 3]}`}
	}
	return out, nil
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its end of line, and io.EOF with
// the last one.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxSampleLine {
			return nil, errLineTooLong
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == nil {
			line = line[:len(line)-1]
			return bytes.TrimSuffix(line, []byte{'\r'}), nil
		}
		return line, err
	}
}

func parseSample(text []byte, line int) (*Sample, *SampleError) {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	s := &Sample{Line: line, Values: map[string]*Value{}}
	fail := func(msg string, a ...any) *SampleError {
		return &SampleError{Line: line, Col: int(dec.InputOffset()) + 1, Msg: fmt.Sprintf(msg, a...)}
	}
	syntax := func(err error) *SampleError {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return &SampleError{Line: line, Col: int(se.Offset) + 1, Msg: "invalid JSON: " + se.Error()}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return &SampleError{Line: line, Col: len(text) + 1, Msg: "invalid JSON: the line ends inside the object"}
		}
		return &SampleError{Line: line, Msg: "invalid JSON: " + err.Error()}
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, syntax(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, &SampleError{Line: line, Col: 1, Msg: `a sample is a JSON object on one line, e.g. {"tokens": [1, 2, 3]}`}
	}
	for dec.More() {
		col := skipSeparators(text, int(dec.InputOffset())) + 1
		tok, err := dec.Token()
		if err != nil {
			return nil, syntax(err)
		}
		key := tok.(string) // object keys are always strings
		if _, dup := s.Values[key]; dup {
			return nil, &SampleError{Line: line, Col: col, Msg: fmt.Sprintf("input %q is given twice", key)}
		}
		v := &Value{col: col}
		sh, perr := parseValue(dec, v, nil, key, fail, syntax)
		if perr != nil {
			return nil, perr
		}
		v.Shape = sh
		s.Values[key] = v
		s.keys = append(s.keys, key)
	}
	if _, err := dec.Token(); err != nil { // the closing }
		return nil, syntax(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fail("one JSON object per line: found more after the closing }")
	}
	if len(s.Values) == 0 {
		return nil, &SampleError{Line: line, Col: 1, Msg: `empty sample: name at least one input, e.g. {"tokens": [1, 2, 3]}`}
	}
	return s, nil
}

// parseValue reads a number or a list of values, appending the numbers
// to v.Nums, and returns its shape (nil for a number). Sibling lists must
// have equal shapes. path is the list index at each depth, for messages.
func parseValue(dec *json.Decoder, v *Value, path []int, key string,
	fail func(string, ...any) *SampleError, syntax func(error) *SampleError) ([]int, *SampleError) {
	where := func() string {
		var b strings.Builder
		b.WriteString(key)
		for _, i := range path {
			fmt.Fprintf(&b, "[%d]", i)
		}
		return b.String()
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, syntax(err)
	}
	switch t := tok.(type) {
	case json.Number:
		v.Nums = append(v.Nums, t)
		return nil, nil
	case json.Delim:
		if t != '[' {
			return nil, fail("%s: want a number or a list of numbers, got an object", where())
		}
		if len(path) >= maxNesting {
			return nil, fail("%s: lists nested deeper than %d", where(), maxNesting)
		}
		var first []int
		n := 0
		for dec.More() {
			sh, err := parseValue(dec, v, append(path, n), key, fail, syntax)
			if err != nil {
				return nil, err
			}
			if n == 0 {
				first = sh
			} else if !slices.Equal(sh, first) {
				return nil, fail("%s: element %d has shape %v, element 0 has %v; lists must be rectangular", where(), n, sh, first)
			}
			n++
		}
		if _, err := dec.Token(); err != nil {
			return nil, syntax(err)
		}
		return append([]int{n}, first...), nil
	default:
		return nil, fail("%s: want a number or a list of numbers, got %v", where(), describeToken(tok))
	}
}

func describeToken(tok any) string {
	switch t := tok.(type) {
	case string:
		return fmt.Sprintf("the string %q", t)
	case bool:
		return fmt.Sprintf("%v (write 1 or 0)", t)
	case nil:
		return "null"
	}
	return fmt.Sprint(tok)
}

// skipSeparators returns the offset of the first byte at or after off that
// is not JSON white space, ',' or ':'.
func skipSeparators(text []byte, off int) int {
	for off < len(text) && strings.IndexByte(" \t\r\n,:", text[off]) >= 0 {
		off++
	}
	return off
}
