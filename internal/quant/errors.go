package quant

import "fmt"

// ValueKind says what is wrong with the values a ValueError counts.
type ValueKind int

const (
	// NotFinite: NaN or ±Inf in the input.
	NotFinite ValueKind = iota + 1
	// Float16Overflow: a finite value whose magnitude rounds beyond 65504,
	// the largest float16, so it would be written as ±Inf.
	Float16Overflow
	// ScaleOverflow: an int4 block whose scale (max|x|/7, rounded through
	// bfloat16) does not fit in float16, i.e. max|x| of about 457,000 or more.
	ScaleOverflow
)

func (k ValueKind) String() string {
	switch k {
	case NotFinite:
		return "non-finite values (NaN or ±Inf)"
	case Float16Overflow:
		return "values beyond the float16 range ±65504"
	case ScaleOverflow:
		return "int4 blocks whose scale exceeds the float16 range (max |x| above about 457,000)"
	}
	return fmt.Sprintf("ValueKind(%d)", int(k))
}

// ValueError reports input values a kernel refuses to encode. It is returned,
// never panicked, because it depends on the data: the caller wraps it with the
// tensor's name.
type ValueError struct {
	Kind  ValueKind
	Count int     // how many values (ScaleOverflow: how many blocks)
	First int     // flat index of the first offending value (ScaleOverflow: of the first element of the first such block)
	Value float32 // the value at First (ScaleOverflow: that block's max |x|)
}

func (e *ValueError) Error() string {
	return fmt.Sprintf("quant: %s: %d, the first at flat index %d (%v)", e.Kind, e.Count, e.First, e.Value)
}

// sizeError is the panic value for a programmer error: slices whose lengths
// disagree with the shape, or an impossible shape/axis/block size.
type sizeError string

func (e sizeError) Error() string { return "quant: " + string(e) }

func panicf(format string, args ...any) {
	panic(sizeError(fmt.Sprintf(format, args...)))
}
