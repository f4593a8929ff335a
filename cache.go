package flightcache

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// never is the expiry of an entry that does not expire.
const never int64 = math.MaxInt64

// entry is one cached result. Times are nanoseconds on the Loader's clock
// (see Loader.now). An entry's life: fresh until expires, then stale (served
// while one refresh runs) until staleUntil, then gone.
type entry[V any] struct {
	value      V
	err        error         // non-nil: a negative (not-found) entry
	expires    int64         // first instant at which the entry is not fresh
	staleUntil int64         // first instant at which it is not served at all
	took       time.Duration // how long the fetch took; 0 for Set

	// Guarded by cache.mu.
	refreshing bool  // a refresh of this entry has been started
	failures   int   // refreshes that failed in a row
	retryAt    int64 // no refresh starts before this instant
}

// lookup is what cache.get found.
type lookup[V any] struct {
	value    V
	err      error // the stored not-found error of a negative entry
	found    bool  // served from the cache: fresh, stale or negative
	stale    bool
	negative bool
	// refresh, when non-nil, is the entry whose refresh the caller must
	// start (or hand back with refreshSkipped).
	refresh *entry[V]
}

// cache is the LRU (or 2Q, see Policy) of cache mode, with lazy expiry and the bookkeeping that
// keeps a load from storing over a newer Set or Invalidate. It never calls
// user code.
type cache[K comparable, V any] struct {
	mu sync.Mutex // guards lru, pending, seq, closed and the entries' refresh fields
	// lru holds the entries, most recently used first.
	lru evictor[K, *entry[V]]
	// pending maps a key to the token of the load allowed to store it. Set,
	// Invalidate and InvalidateAll delete tokens, so a load that started
	// before them finds its token gone and stores nothing.
	pending map[K]uint64
	seq     uint64 // last token handed out
	closed  bool   // set by purge(true): nothing is stored any more

	// len mirrors lru.Len() for lock-free reads by Stats and Len.
	len atomic.Int64
}

func newCache[K comparable, V any](maxEntries int, p Policy) *cache[K, V] {
	return &cache[K, V]{lru: newEvictor[K, *entry[V]](p, maxEntries), pending: make(map[K]uint64)}
}

// getFresh is the hit path: it returns key's value when the entry is held,
// fresh and not negative (marking it most recently used), and otherwise
// reports whether key is held at all, so that the caller takes the full
// path (get) only for stale or negative entries.
func (c *cache[K, V]) getFresh(key K, now int64) (v V, fresh, held bool) {
	c.mu.Lock()
	e, ok := c.lru.Get(key)
	if ok && now < e.expires && e.err == nil {
		v = e.value
		c.mu.Unlock()
		return v, true, true
	}
	c.mu.Unlock()
	return v, false, ok
}

// get looks key up at now, marking it most recently used. An entry past its
// stale window is dropped. A stale entry asks for a refresh unless one is
// running or backing off; so does a fresh one when early (the XFetch draw,
// β·(−ln u), 0 when early refresh is off) times its fetch duration reaches
// its remaining freshness.
func (c *cache[K, V]) get(key K, now int64, early float64) lookup[V] {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lru.Get(key)
	if !ok {
		return lookup[V]{}
	}
	if now >= e.staleUntil {
		c.lru.Remove(key)
		c.len.Store(int64(c.lru.Len()))
		return lookup[V]{}
	}
	res := lookup[V]{value: e.value, err: e.err, found: true, negative: e.err != nil}
	canRefresh := !e.refreshing && now >= e.retryAt && e.err == nil
	switch {
	case now >= e.expires:
		res.stale = true
		if canRefresh {
			e.refreshing, res.refresh = true, e
		}
	case early > 0 && canRefresh && e.expires != never &&
		float64(e.took)*early >= float64(e.expires-now):
		e.refreshing, res.refresh = true, e
	}
	return res
}

// refreshSkipped hands back a refresh that get asked for but that was not
// started, because a load of the key was already running.
func (c *cache[K, V]) refreshSkipped(e *entry[V]) {
	c.mu.Lock()
	e.refreshing = false
	c.mu.Unlock()
}

// refreshFailed records a failed refresh of e at now and returns how long
// the next one must wait: minBackoff, doubling with each failure in a row,
// at most maxBackoff. (An entry replaced meanwhile is no longer served, so
// what is recorded on it does not matter.)
func (c *cache[K, V]) refreshFailed(e *entry[V], now int64) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.failures++
	backoff := maxBackoff
	if e.failures <= 20 {
		backoff = min(minBackoff<<(e.failures-1), maxBackoff)
	}
	e.retryAt = addSat(now, backoff)
	e.refreshing = false
	return backoff
}

// Refresh backoff bounds: a failing backend sees at most one refresh per
// key per backoff interval.
const (
	minBackoff = time.Second
	maxBackoff = 5 * time.Minute
)

// begin registers a load of key and returns its token.
func (c *cache[K, V]) begin(key K) uint64 {
	c.mu.Lock()
	c.seq++
	token := c.seq
	c.pending[key] = token
	c.mu.Unlock()
	return token
}

// finish ends the load with the given token. If no write to key came after
// the load began, it stores e (when non-nil) or, with drop, removes key. It
// reports whether another entry was evicted to make room.
func (c *cache[K, V]) finish(key K, token uint64, e *entry[V], drop bool) (evicted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending[key] != token || c.closed {
		return false
	}
	delete(c.pending, key)
	switch {
	case e != nil:
		evicted = c.lru.Add(key, e)
	case drop:
		c.lru.Remove(key)
	}
	c.len.Store(int64(c.lru.Len()))
	return evicted
}

// set stores e for key, overriding any running load, and reports whether
// another entry was evicted to make room.
func (c *cache[K, V]) set(key K, e *entry[V]) (evicted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	delete(c.pending, key)
	evicted = c.lru.Add(key, e)
	c.len.Store(int64(c.lru.Len()))
	return evicted
}

// remove drops key and keeps a running load of it from storing.
func (c *cache[K, V]) remove(key K) {
	c.mu.Lock()
	delete(c.pending, key)
	c.lru.Remove(key)
	c.len.Store(int64(c.lru.Len()))
	c.mu.Unlock()
}

// purge drops every entry and keeps every running load from storing. With
// closing set, nothing is stored afterwards either.
func (c *cache[K, V]) purge(closing bool) {
	c.mu.Lock()
	c.closed = c.closed || closing
	clear(c.pending)
	c.lru.Purge()
	c.len.Store(0)
	c.mu.Unlock()
}

// addSat returns t+d, saturating at never instead of overflowing.
func addSat(t int64, d time.Duration) int64 {
	if d > 0 && t > never-int64(d) {
		return never
	}
	return t + int64(d)
}
