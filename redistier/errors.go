package redistier

import "errors"

var (
	// ErrInvalidOptions is wrapped by every error New returns for Options
	// (or a client) it rejects.
	ErrInvalidOptions = errors.New("redistier: invalid options")

	// ErrCircuitOpen is returned, wrapped, by every call made while the
	// circuit breaker is open: Redis failed BreakerFailures times in a row
	// and is skipped until a probe succeeds.
	ErrCircuitOpen = errors.New("redistier: circuit open")

	// ErrClosed is returned, wrapped, by every call made after Close.
	ErrClosed = errors.New("redistier: tier is closed")

	// ErrValueTooLarge is returned, wrapped, by Set for a record whose
	// encoding exceeds Options.MaxValueBytes; it is not written.
	ErrValueTooLarge = errors.New("redistier: value too large")

	// ErrCodec is wrapped by the errors of Set and Invalidate when the
	// Codec fails (or panics) to encode a value or key.
	ErrCodec = errors.New("redistier: codec failed")
)
