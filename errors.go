package flightcache

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound is what a fetch function returns, or wraps, to say that the
	// key names no record. The Loader passes it through to callers unchanged.
	ErrNotFound = errors.New("flightcache: not found")

	// ErrPanic is wrapped by the *PanicError that every waiter of a fetch
	// receives when that fetch panicked. Match it with errors.Is.
	ErrPanic = errors.New("flightcache: fetch panicked")

	// ErrGoexit is returned to every waiter of a fetch that called
	// runtime.Goexit (for example through t.FailNow) instead of returning.
	ErrGoexit = errors.New("flightcache: fetch called runtime.Goexit")

	// ErrClosed is returned by Get once Close has been called, and to callers
	// whose load was interrupted by Close.
	ErrClosed = errors.New("flightcache: loader is closed")

	// ErrInvalidConfig is wrapped by every error that New and Config.Validate
	// return for a Config they reject.
	ErrInvalidConfig = errors.New("flightcache: invalid config")
)

// PanicError is the error a fetch's waiters receive when the fetch panicked.
// It carries the panic value and the stack of the panicking goroutine.
// errors.Is(err, ErrPanic) reports true for it, and when the panic value is
// itself an error, errors.Is and errors.As see that error too.
//
// A PanicError is never stored in the cache; the next Get fetches again.
type PanicError struct {
	// Value is the value the fetch passed to panic.
	Value any
	// Stack is the stack trace of the fetch goroutine at the panic.
	Stack []byte
}

// Error returns a one-line description; the stack is in Stack.
func (e *PanicError) Error() string {
	return fmt.Sprintf("%v: %v", ErrPanic, e.Value)
}

// Unwrap returns ErrPanic and, when the panic value is an error, that error.
func (e *PanicError) Unwrap() []error {
	if err, ok := e.Value.(error); ok {
		return []error{ErrPanic, err}
	}
	return []error{ErrPanic}
}

// invalidf returns an error wrapping ErrInvalidConfig with the given detail.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}
