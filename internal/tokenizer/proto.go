package tokenizer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The SentencePiece model file is a protobuf message (ModelProto). Only a
// handful of its fields matter for encoding, so the wire format is read
// here by hand: a field is a varint key (number<<3 | wire type) followed by
// a varint, 8 bytes, a varint length and that many bytes, or 4 bytes.
// Groups (wire types 3 and 4) are obsolete and refused. Unknown fields are
// skipped, as protobuf readers do.

const (
	wireVarint = 0
	wireI64    = 1
	wireLen    = 2
	wireI32    = 5
)

// field is one field of a message as read: its number, wire type and value
// (num for varints and fixed-width values, data for length-delimited ones).
type field struct {
	num  int
	typ  int
	v    uint64
	data []byte
	off  int // byte offset of the field's key in the message
}

var errTruncated = errors.New("message ends inside a field")

func readVarint(b []byte, p int) (uint64, int, error) {
	var x uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if p >= len(b) {
			return 0, p, errTruncated
		}
		c := b[p]
		p++
		if shift == 63 && c > 1 {
			return 0, p, errors.New("varint overflows 64 bits")
		}
		x |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return x, p, nil
		}
	}
	return 0, p, errors.New("varint longer than 10 bytes")
}

// fields splits a message into its fields, calling f for each in order.
func fields(b []byte, f func(field) error) error {
	for p := 0; p < len(b); {
		start := p
		key, q, err := readVarint(b, p)
		if err != nil {
			return fmt.Errorf("byte %d: %w", start, err)
		}
		p = q
		fl := field{num: int(key >> 3), typ: int(key & 7), off: start}
		if key>>3 == 0 || key>>3 > math.MaxInt32 {
			return fmt.Errorf("byte %d: field number %d is not valid", start, key>>3)
		}
		switch fl.typ {
		case wireVarint:
			fl.v, p, err = readVarint(b, p)
		case wireI64:
			if len(b)-p < 8 {
				err = errTruncated
			} else {
				fl.v = binary.LittleEndian.Uint64(b[p:])
				p += 8
			}
		case wireI32:
			if len(b)-p < 4 {
				err = errTruncated
			} else {
				fl.v = uint64(binary.LittleEndian.Uint32(b[p:]))
				p += 4
			}
		case wireLen:
			var n uint64
			n, p, err = readVarint(b, p)
			if err == nil && n > uint64(len(b)-p) {
				err = fmt.Errorf("field %d says %d bytes, %d are left", fl.num, n, len(b)-p)
			}
			if err == nil {
				fl.data = b[p : p+int(n)]
				p += int(n)
			}
		default:
			err = fmt.Errorf("field %d has wire type %d, which this reader does not take (groups are obsolete)", fl.num, fl.typ)
		}
		if err != nil {
			return fmt.Errorf("byte %d: %w", start, err)
		}
		if err := f(fl); err != nil {
			return fmt.Errorf("byte %d: %w", start, err)
		}
	}
	return nil
}

// want checks a field's wire type.
func (f field) want(typ int, what string) error {
	if f.typ != typ {
		return fmt.Errorf("%s (field %d) has wire type %d, want %d", what, f.num, f.typ, typ)
	}
	return nil
}

func (f field) boolean(what string) (bool, error) {
	if err := f.want(wireVarint, what); err != nil {
		return false, err
	}
	return f.v != 0, nil
}

func (f field) int32(what string) (int32, error) {
	if err := f.want(wireVarint, what); err != nil {
		return 0, err
	}
	return int32(f.v), nil
}

func (f field) float32(what string) (float32, error) {
	if err := f.want(wireI32, what); err != nil {
		return 0, err
	}
	return math.Float32frombits(uint32(f.v)), nil
}

func (f field) bytes(what string) ([]byte, error) {
	if err := f.want(wireLen, what); err != nil {
		return nil, err
	}
	return f.data, nil
}
