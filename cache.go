package flightcache

import (
	"math"
	"sync/atomic"
	"time"
)

// never is the expiry of an entry that does not expire.
const never int64 = math.MaxInt64

// Entry flags, in entry.flags.
const (
	flagVisited    uint32 = 1 << iota // read since the SIEVE hand last passed (sieve policy)
	flagNegative                      // a not-found entry: x.err holds the error
	flagRefreshing                    // a refresh of this entry has been started; set and cleared under the cache's lock
)

// entry is one cached result. Times are nanoseconds on the Loader's clock
// (see Loader.now). An entry's life: fresh until expires, then stale (served
// while one refresh runs) until staleUntil, then gone.
//
// key, value, expires, staleUntil, hash and x's err and took are written
// before the entry is published in a cache and never after, so the
// lock-free hit path may read them; a new result is a new entry.
//
// The fields a lock-free hit reads come first, so that they share one
// cache line more often (a bucket walk past another key reads only hash
// and chain).
type entry[K comparable, V any] struct {
	hash    uint32                      // low bits of the key's hash (sieve cache)
	flags   atomic.Uint32               // flagVisited, flagNegative, flagRefreshing
	chain   atomic.Pointer[entry[K, V]] // next entry of the hash bucket (sieve cache)
	key     K
	value   V
	expires int64 // first instant at which the entry is not fresh

	staleUntil int64 // first instant at which it is not served at all
	// x holds what few entries need (a not-found error, the fetch time for
	// early refresh, refresh failures); nil for most. Guarded by the
	// cache's lock once published.
	x          *entryExtra
	prev, next *entry[K, V] // the sieve queue, newer and older; guarded by the shard's lock
}

// entryExtra is the rarely needed part of an entry.
type entryExtra struct {
	err  error         // a negative entry's not-found error
	took time.Duration // how long the fetch took, kept for early refresh

	// Guarded by the cache's lock.
	failures int   // refreshes that failed in a row
	retryAt  int64 // no refresh starts before this instant
}

// newEntry returns an entry for a value (err nil) or a not-found error,
// keeping took when early refresh needs it.
func newEntry[K comparable, V any](key K, value V, err error, expires, staleUntil int64, took time.Duration) *entry[K, V] {
	e := &entry[K, V]{key: key, value: value, expires: expires, staleUntil: staleUntil}
	if err != nil || took > 0 {
		e.x = &entryExtra{err: err, took: took}
	}
	if err != nil {
		e.flags.Store(flagNegative)
	}
	return e
}

// err returns a negative entry's error, nil otherwise.
func (e *entry[K, V]) err() error {
	if e.flags.Load()&flagNegative == 0 {
		return nil
	}
	return e.x.err
}

// took returns how long the entry's fetch took (0 when not kept).
func (e *entry[K, V]) took() time.Duration {
	if e.x == nil {
		return 0
	}
	return e.x.took
}

// retryAt returns the instant before which no refresh of e starts. The
// cache's lock must be held.
func (e *entry[K, V]) retryAt() int64 {
	if e.x == nil {
		return 0
	}
	return e.x.retryAt
}

// lookup is what a cache's get found.
type lookup[K comparable, V any] struct {
	value    V
	err      error // the stored not-found error of a negative entry
	found    bool  // served from the cache: fresh, stale or negative
	stale    bool
	negative bool
	// refresh, when non-nil, is the entry whose refresh the caller must
	// start (or hand back with refreshSkipped).
	refresh *entry[K, V]
}

// store is cache mode's local tier: the entries, their eviction policy and
// the bookkeeping that keeps a load from storing over a newer Set or
// Invalidate. Implementations never call user code and are safe for
// concurrent use.
type store[K comparable, V any] interface {
	// getFresh is the hit path: it returns key's value when the entry is
	// held, fresh and not negative (marking it used), and otherwise reports
	// whether key is held at all, so that the caller takes the full path
	// (get) only for stale or negative entries.
	getFresh(key K, now int64) (v V, fresh, held bool)
	// get looks key up at now, marking it used. An entry past its stale
	// window is dropped. A stale entry asks for a refresh unless one is
	// running or backing off; so does a fresh one when early (the XFetch
	// draw, β·(−ln u), 0 when early refresh is off) times its fetch
	// duration reaches its remaining freshness.
	get(key K, now int64, early float64) lookup[K, V]
	// refreshSkipped hands back a refresh that get asked for but that was
	// not started, because a load of the key was already running.
	refreshSkipped(e *entry[K, V])
	// refreshFailed records a failed refresh of e at now and returns how
	// long the next one must wait.
	refreshFailed(e *entry[K, V], now int64) time.Duration
	// begin registers a load of key and returns its token.
	begin(key K) uint64
	// getOrBegin is get (without early refresh) and, when key is not
	// found, begin, under one lock: the miss path's re-check.
	getOrBegin(key K, now int64) (lookup[K, V], uint64)
	// finish ends the load with the given token. If no write to key came
	// after the load began, it stores e (when non-nil) or, with drop,
	// removes key. It returns the number of other entries evicted.
	finish(key K, token uint64, e *entry[K, V], drop bool) (evicted int)
	// set stores e for key, overriding any running load, and returns the
	// number of other entries evicted to make room.
	set(key K, e *entry[K, V]) (evicted int)
	// remove drops key and keeps a running load of it from storing.
	remove(key K)
	// purge drops every entry and keeps every running load from storing.
	// With closing set, nothing is stored afterwards either.
	purge(closing bool)
	// size returns the number of entries held.
	size() int
}

// newStore returns the local tier for cfg's policy and MaxEntries (> 0).
func newStore[K comparable, V any](p Policy, maxEntries int) store[K, V] {
	if p == PolicySieve {
		return newSieveCache[K, V](maxEntries)
	}
	return newLockedCache[K, V](maxEntries, p)
}

// canRefresh reports whether a refresh of e may start at now: none running,
// not backing off, not negative. The cache's lock must be held.
func canRefresh[K comparable, V any](e *entry[K, V], now int64) bool {
	return e.flags.Load()&(flagRefreshing|flagNegative) == 0 && now >= e.retryAt()
}

// lookupLocked turns the entry e that get found at now into its lookup,
// starting a refresh when one is due (see store.get). The cache's lock
// must be held.
func lookupLocked[K comparable, V any](e *entry[K, V], now int64, early float64) lookup[K, V] {
	err := e.err()
	res := lookup[K, V]{value: e.value, err: err, found: true, negative: err != nil}
	switch {
	case now >= e.expires:
		res.stale = true
		if canRefresh(e, now) {
			e.flags.Or(flagRefreshing)
			res.refresh = e
		}
	case early > 0 && e.expires != never && canRefresh(e, now) &&
		float64(e.took())*early >= float64(e.expires-now):
		e.flags.Or(flagRefreshing)
		res.refresh = e
	}
	return res
}

// refreshFailedLocked records a failed refresh of e at now and returns how
// long the next one must wait: minBackoff, doubling with each failure in a
// row, at most maxBackoff. (An entry replaced meanwhile is no longer
// served, so what is recorded on it does not matter.) The cache's lock must
// be held.
func refreshFailedLocked[K comparable, V any](e *entry[K, V], now int64) time.Duration {
	if e.x == nil {
		e.x = &entryExtra{}
	}
	e.x.failures++
	backoff := maxBackoff
	if e.x.failures <= 20 {
		backoff = min(minBackoff<<(e.x.failures-1), maxBackoff)
	}
	e.x.retryAt = addSat(now, backoff)
	e.flags.And(^flagRefreshing)
	return backoff
}

// Refresh backoff bounds: a failing backend sees at most one refresh per
// key per backoff interval.
const (
	minBackoff = time.Second
	maxBackoff = 5 * time.Minute
)

// addSat returns t+d, saturating at never instead of overflowing.
func addSat(t int64, d time.Duration) int64 {
	if d > 0 && t > never-int64(d) {
		return never
	}
	return t + int64(d)
}
