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
		return "non-finite value"
	case Float16Overflow:
		return "value beyond the float16 range (|x| > 65504)"
	case ScaleOverflow:
		return "block scale beyond the float16 range (max |x| > 458,000)"
	}
	return fmt.Sprintf("ValueKind(%d)", int(k))
}

// ValueError reports input values a kernel refuses to encode. It is returned,
// never panicked, because it depends on the data: the caller wraps it with the
// tensor's name.
type ValueError struct {
	Kind  ValueKind
	Count int     // how many values (ScaleOverflow: how many blocks)
	First int     // flat index of the first offending element (ScaleOverflow: of its block's first element)
	Value float32 // the value at First
}

func (e *ValueError) Error() string {
	what := "values"
	if e.Kind == ScaleOverflow {
		what = "blocks"
	}
	return fmt.Sprintf("quant: %d %s with a %s (first at flat index %d: %v)",
		e.Count, what, e.Kind, e.First, e.Value)
}

// sizeError is the panic value for a programmer error: slices whose lengths
// disagree with the shape, or an impossible shape/axis/block size.
type sizeError string

func (e sizeError) Error() string { return "quant: " + string(e) }

func panicf(format string, args ...any) {
	panic(sizeError(fmt.Sprintf(format, args...)))
}
