package redistier

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Breaker states.
const (
	breakerClosed   int32 = iota // calls go to Redis
	breakerOpen                  // calls fail at once until the cooldown ends
	breakerHalfOpen              // one probe is in flight; others fail at once
)

// outcome is what a call tells the breaker.
type outcome uint8

const (
	outcomeSuccess outcome = iota // Redis answered (a miss included)
	outcomeFailure                // Redis failed or timed out
	outcomeNeutral                // the caller gave up first: says nothing about Redis
)

// breaker is a consecutive-failure circuit breaker. Its methods are safe
// for concurrent use; the closed state, the common case, takes no lock.
type breaker struct {
	threshold int64
	cooldown  time.Duration
	now       func() time.Time
	logger    *slog.Logger

	state    atomic.Int32 // breakerClosed, breakerOpen, breakerHalfOpen
	failures atomic.Int64 // consecutive failures while closed

	mu       sync.Mutex // guards openedAt and the transitions of state
	openedAt time.Time  // when the breaker last opened
}

// allow reports whether a call may go to Redis; probe is true for the one
// call let through after the cooldown, which must report its outcome.
func (b *breaker) allow() (probe, ok bool) {
	if b.state.Load() == breakerClosed {
		return false, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state.Load() {
	case breakerClosed:
		return false, true
	case breakerOpen:
		if b.now().Sub(b.openedAt) < b.cooldown {
			return false, false
		}
		b.state.Store(breakerHalfOpen)
		return true, true
	}
	return false, false // half-open: a probe is in flight
}

// done records the outcome of a call that allow let through.
func (b *breaker) done(probe bool, o outcome) {
	switch o {
	case outcomeSuccess:
		if b.failures.Load() != 0 {
			b.failures.Store(0)
		}
		if b.state.Load() != breakerClosed {
			b.mu.Lock()
			wasOpen := b.state.Load() != breakerClosed
			b.state.Store(breakerClosed)
			b.mu.Unlock()
			if wasOpen {
				b.log(slog.LevelInfo, "redistier: circuit closed: Redis answered again")
			}
		}
	case outcomeFailure:
		if probe {
			b.mu.Lock()
			b.state.Store(breakerOpen)
			b.openedAt = b.now()
			b.mu.Unlock()
			return
		}
		if b.failures.Add(1) < b.threshold {
			return
		}
		b.mu.Lock()
		opened := b.state.Load() == breakerClosed
		if opened {
			b.state.Store(breakerOpen)
			b.openedAt = b.now()
			b.failures.Store(0)
		}
		b.mu.Unlock()
		if opened {
			b.log(slog.LevelWarn, "redistier: circuit open: skipping Redis after consecutive failures",
				"failures", b.threshold, "cooldown", b.cooldown)
		}
	case outcomeNeutral:
		if probe { // let the next call probe instead
			b.mu.Lock()
			if b.state.Load() == breakerHalfOpen {
				b.state.Store(breakerOpen)
			}
			b.mu.Unlock()
		}
	}
}

// isOpen reports whether calls are being skipped (open or half-open).
func (b *breaker) isOpen() bool { return b.state.Load() != breakerClosed }

func (b *breaker) log(level slog.Level, msg string, attrs ...any) {
	logSafe(b.logger, level, msg, attrs...)
}
