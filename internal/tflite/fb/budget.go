package fb

import (
	"sync"
	"sync/atomic"
)

// The object API's UnPack methods allocate according to counts read from the
// file. Every such allocation is charged, in elements, to a budget that the
// caller sets from the size of the input (see Decode), so that a hostile file
// whose tables share sub-tables or vectors many times over cannot make the
// decoder allocate without bound. Exceeding the budget panics with
// ErrBudget, which Decode turns into an error.

// tableCost is what one unpacked table is charged.
const tableCost = 16

// ErrBudget is the panic value raised when the budget is exhausted.
var ErrBudget = budgetError{}

type budgetError struct{}

func (budgetError) Error() string {
	return "flatbuffer unpacks to far more data than the file holds (shared or overlapping tables)"
}

var (
	decodeMu sync.Mutex
	budget   atomic.Int64
)

// Decode runs f with an unpack budget of limit elements. Calls are
// serialized: the budget is process-wide. A panic inside f (a budget overrun,
// or an out-of-range read by a generated accessor on corrupt input) is
// returned as an error; f must not leave shared state half-updated.
func Decode(limit int64, f func() error) (err error) {
	decodeMu.Lock()
	defer decodeMu.Unlock()
	budget.Store(limit)
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = &PanicError{Err: e}
				return
			}
			err = &PanicError{Err: panicValue{r}}
		}
	}()
	return f()
}

// PanicError wraps what a generated accessor panicked with on corrupt input.
type PanicError struct{ Err error }

func (e *PanicError) Error() string { return e.Err.Error() }
func (e *PanicError) Unwrap() error { return e.Err }

type panicValue struct{ v any }

func (p panicValue) Error() string { return "corrupt flatbuffer" }

func charge(n int) {
	if n < 0 || budget.Add(-int64(n)) < 0 {
		panic(ErrBudget)
	}
}

func unpackLen(n int) int {
	charge(n)
	return n
}

func unpackBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	charge(len(b))
	return append(make([]byte, 0, len(b)), b...)
}

func unpackString(b []byte) string {
	charge(len(b))
	return string(b)
}
