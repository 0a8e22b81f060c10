package tflite

import (
	"bytes"
	"fmt"
	"io"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// Model is a .tflite model held as its flatbuffer tables plus, for every
// buffer, a source of its bytes. Weight bytes are never loaded as a whole:
// a buffer read from a file is a Section of that file, read on demand.
type Model struct {
	// Meta holds every table of the file as the flatbuffers object API
	// unpacks it, with absent vectors kept nil. Meta.Buffers[i].Data is
	// always nil: the bytes of buffer i are Buffers[i]. Meta.Buffers[i]'s
	// Offset and Size are what the file said; the writer recomputes them.
	Meta *fb.ModelT

	// Buffers parallels Meta.Buffers.
	Buffers []Buffer

	// Layout is how the file that was read stored its buffers.
	Layout Layout

	// Name names the model in errors (the file path, when read from one).
	Name string

	// LargeCustomOptions holds the custom options that the file stored
	// after the flatbuffer (Operator.large_custom_options_offset > 1 and no
	// custom_options vector), keyed by operator. The writer places them
	// after the buffer data and rewrites the operator's offset and size.
	LargeCustomOptions map[*fb.OperatorT]Content

	// LateTables says that some table values (quantization scales) are
	// filled in while buffer contents are written, so that each weight is
	// read once. WriteFile then writes the flatbuffer after every content,
	// building it again; the values may change, the size may not. Write,
	// which streams in file order, refuses such a model.
	LateTables bool

	closer io.Closer
	src    *source // the input read by Open or Read
}

// Buffer is the content of one entry of Model.buffers.
type Buffer struct {
	// Data is nil when the buffer holds no data (buffer 0, activations).
	// A non-nil Data of length 0 is a present but empty data vector.
	Data Content
}

// Content is a buffer's bytes: their length is known before they are
// produced, so a writer can lay out a file before any weight is computed.
type Content interface {
	// Len is the number of bytes WriteTo writes.
	Len() int64
	// WriteTo writes exactly Len bytes to w.
	WriteTo(w io.Writer) (int64, error)
}

// Late is Content that WriteFile produces only after every other buffer's
// content: bytes computed while those are written (the scale tensor of a
// weight quantized on the fly). Write refuses a model that has one.
type Late struct{ Content }

// Layout says where buffer bytes live in a file.
type Layout int

const (
	// LayoutAuto lets the writer choose: offset when the input was offset or
	// when the data would push the flatbuffer near 2 GiB, inline otherwise.
	LayoutAuto Layout = iota
	// LayoutInline stores bytes in Buffer.data vectors.
	LayoutInline
	// LayoutOffset stores bytes after the flatbuffer, addressed by
	// Buffer.offset and Buffer.size (schema 3c, models over 2 GB).
	LayoutOffset
)

func (l Layout) String() string {
	switch l {
	case LayoutInline:
		return "inline"
	case LayoutOffset:
		return "offset"
	default:
		return "auto"
	}
}

// Bytes is Content held in memory.
type Bytes []byte

func (b Bytes) Len() int64 { return int64(len(b)) }

func (b Bytes) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}

// ReadAll returns the bytes of c. When c already holds its bytes in memory
// (Bytes, or a Section of a memory-mapped file) it returns them without
// copying; the result must then not be modified.
func ReadAll(c Content) ([]byte, error) {
	if c == nil {
		return nil, nil
	}
	if m, ok := c.(interface{ Bytes() []byte }); ok {
		if b := m.Bytes(); b != nil {
			return b, nil
		}
	}
	var buf bytes.Buffer
	buf.Grow(int(c.Len()))
	if _, err := c.WriteTo(&buf); err != nil {
		return nil, err
	}
	if int64(buf.Len()) != c.Len() {
		return nil, fmt.Errorf("tflite: content wrote %d bytes, expected %d", buf.Len(), c.Len())
	}
	return buf.Bytes(), nil
}

// ContentFunc is Content produced by a function when the writer asks for it.
type ContentFunc struct {
	N     int64
	Write func(w io.Writer) error
}

func (c ContentFunc) Len() int64 { return c.N }

func (c ContentFunc) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	err := c.Write(cw)
	if err == nil && cw.n != c.N {
		err = fmt.Errorf("tflite: content wrote %d bytes, expected %d", cw.n, c.N)
	}
	return cw.n, err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Close releases the file the model was read from. Sections of it must not
// be used afterwards.
func (m *Model) Close() error {
	if m.closer == nil {
		return nil
	}
	err := m.closer.Close()
	m.closer = nil
	return err
}

// AddBuffer appends a buffer holding c and returns its index. Existing
// indices never move (FORMAT.md §6).
func (m *Model) AddBuffer(c Content) uint32 {
	m.Meta.Buffers = append(m.Meta.Buffers, &fb.BufferT{})
	m.Buffers = append(m.Buffers, Buffer{Data: c})
	return uint32(len(m.Buffers) - 1)
}

// BuiltinCode is an OperatorCode's effective builtin code:
// max(builtin_code, deprecated_builtin_code) (FORMAT.md §4).
func BuiltinCode(oc *fb.OperatorCodeT) fb.BuiltinOperator {
	code := oc.BuiltinCode
	if d := fb.BuiltinOperator(oc.DeprecatedBuiltinCode); d > code {
		code = d
	}
	return code
}

// HasData says whether tensor t's buffer holds data in the model (a
// constant), not buffer 0 or an empty one (an activation).
func (m *Model) HasData(t *fb.TensorT) bool {
	b := int(t.Buffer)
	return b > 0 && b < len(m.Buffers) && m.Buffers[b].Data != nil && m.Buffers[b].Data.Len() > 0
}

// OpCode returns the effective builtin code of op in m.
func (m *Model) OpCode(op *fb.OperatorT) fb.BuiltinOperator {
	if int(op.OpcodeIndex) >= len(m.Meta.OperatorCodes) {
		return -1
	}
	return BuiltinCode(m.Meta.OperatorCodes[op.OpcodeIndex])
}

// OperatorCodeIndex returns the index of the OperatorCode for the builtin
// code, appending one (written in both the new and the deprecated field,
// as the converter does) when the model has none. When the existing code's
// version is below minVersion it is raised: one OperatorCode serves every op
// that uses it.
func (m *Model) OperatorCodeIndex(code fb.BuiltinOperator, minVersion int32) uint32 {
	for i, oc := range m.Meta.OperatorCodes {
		if BuiltinCode(oc) == code && code != fb.BuiltinOperatorCUSTOM {
			if oc.Version < minVersion {
				oc.Version = minVersion
			}
			return uint32(i)
		}
	}
	dep := int8(fb.BuiltinOperatorPLACEHOLDER_FOR_GREATER_OP_CODES)
	if code < fb.BuiltinOperatorPLACEHOLDER_FOR_GREATER_OP_CODES {
		dep = int8(code)
	}
	if minVersion < 1 {
		minVersion = 1
	}
	m.Meta.OperatorCodes = append(m.Meta.OperatorCodes, &fb.OperatorCodeT{
		BuiltinCode:           code,
		DeprecatedBuiltinCode: dep,
		Version:               minVersion,
	})
	return uint32(len(m.Meta.OperatorCodes) - 1)
}
