package tflite

import (
	"fmt"
	"strings"
)

// FormatError reports a .tflite file that cannot be read: what is wrong and
// where.
type FormatError struct {
	// Name is the model's name (its file path when read from a file).
	Name string
	// Where is the place in the model, e.g. `subgraph 0 tensor 12
	// ("dense/kernel")`; empty for the file as a whole.
	Where string
	// Offset is the byte offset in the file the problem was found at, or -1.
	Offset int64
	// Msg says what is wrong.
	Msg string
}

func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("tflite: ")
	if e.Name != "" {
		b.WriteString(e.Name)
		b.WriteString(": ")
	}
	if e.Where != "" {
		b.WriteString(e.Where)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Offset >= 0 {
		fmt.Fprintf(&b, " (at byte %#x)", e.Offset)
	}
	return b.String()
}

// tensorWhere names a tensor the way errors do.
func tensorWhere(sg, t int, name string) string {
	if name == "" {
		return fmt.Sprintf("subgraph %d tensor %d", sg, t)
	}
	return fmt.Sprintf("subgraph %d tensor %d (%q)", sg, t, name)
}
