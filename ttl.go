package flightcache

import (
	"context"
	"sync/atomic"
	"time"
)

// ttlSlot holds a fetch's choice of lifetimes for the entry it returns.
type ttlSlot struct {
	ttl, stale       atomic.Int64 // time.Durations
	hasTTL, hasStale atomic.Bool
}

// ttlSlotKey is the context key under which a fetch's context carries its
// ttlSlot.
type ttlSlotKey struct{}

// SetTTL lets a fetch function choose how long the entry it returns stays
// fresh, instead of Config.TTL (or Config.NegativeTTL for a not-found
// error): for example a session that must not outlive the token it was made
// from. Call it with the context the fetch was given, before returning. A
// ttl of zero or less means "serve this result to the waiting callers but do
// not keep it"; a stored entry of that key is then dropped. Config.Jitter
// does not apply to a chosen TTL; Config.StaleTTL still follows it unless
// SetStaleTTL is called too.
//
// SetTTL reports whether ctx belongs to a fetch started by a Loader. In
// flight mode, where nothing is kept, it has no effect.
func SetTTL(ctx context.Context, ttl time.Duration) bool {
	s, ok := ctx.Value(ttlSlotKey{}).(*ttlSlot)
	if !ok {
		return false
	}
	s.ttl.Store(int64(ttl))
	s.hasTTL.Store(true)
	return true
}

// SetStaleTTL lets a fetch function choose the stale window of the entry it
// returns, instead of Config.StaleTTL; zero means none, so the entry is not
// served at all once its TTL ends. Like SetTTL, it is called with the
// fetch's context and reports whether that context belongs to a Loader's
// fetch.
func SetStaleTTL(ctx context.Context, stale time.Duration) bool {
	s, ok := ctx.Value(ttlSlotKey{}).(*ttlSlot)
	if !ok {
		return false
	}
	s.stale.Store(int64(max(stale, 0)))
	s.hasStale.Store(true)
	return true
}
