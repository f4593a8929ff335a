package flightcache

import (
	"sync"
	"sync/atomic"
	"time"
)

// lockedCache is the local tier of the LRU and 2Q policies: an exact LRU
// (or golang-lru/v2's 2Q) under one mutex, with lazy expiry. Every hit
// takes the lock, to move the entry to the front.
type lockedCache[K comparable, V any] struct {
	mu sync.Mutex // guards lru, pending, seq, closed and the entries' refresh state
	// lru holds the entries, most recently used first.
	lru evictor[K, *entry[K, V]]
	// pending maps a key to the token of the load allowed to store it. Set,
	// Invalidate and InvalidateAll delete tokens, so a load that started
	// before them finds its token gone and stores nothing.
	pending map[K]uint64
	seq     uint64 // last token handed out
	closed  bool   // set by purge(true): nothing is stored any more

	// len mirrors lru.Len() for lock-free reads by Stats and Len.
	len atomic.Int64
}

func newLockedCache[K comparable, V any](maxEntries int, p Policy) *lockedCache[K, V] {
	return &lockedCache[K, V]{lru: newEvictor[K, *entry[K, V]](p, maxEntries), pending: make(map[K]uint64)}
}

func (c *lockedCache[K, V]) getFresh(key K, now int64) (v V, fresh, held bool) {
	c.mu.Lock()
	e, ok := c.lru.Get(key)
	if ok && now < e.expires && e.flags.Load()&flagNegative == 0 {
		v = e.value
		c.mu.Unlock()
		return v, true, true
	}
	c.mu.Unlock()
	return v, false, ok
}

func (c *lockedCache[K, V]) get(key K, now int64, early float64) lookup[K, V] {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.getLocked(key, now, early)
}

func (c *lockedCache[K, V]) getOrBegin(key K, now int64) (lookup[K, V], uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if res := c.getLocked(key, now, 0); res.found {
		return res, 0
	}
	c.seq++
	c.pending[key] = c.seq
	return lookup[K, V]{}, c.seq
}

// getLocked is get with c.mu held.
func (c *lockedCache[K, V]) getLocked(key K, now int64, early float64) lookup[K, V] {
	e, ok := c.lru.Get(key)
	if !ok {
		return lookup[K, V]{}
	}
	if now >= e.staleUntil {
		c.lru.Remove(key)
		c.len.Store(int64(c.lru.Len()))
		return lookup[K, V]{}
	}
	return lookupLocked(e, now, early)
}

func (c *lockedCache[K, V]) refreshSkipped(e *entry[K, V]) {
	c.mu.Lock()
	e.flags.And(^flagRefreshing)
	c.mu.Unlock()
}

func (c *lockedCache[K, V]) refreshFailed(e *entry[K, V], now int64) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return refreshFailedLocked(e, now)
}

func (c *lockedCache[K, V]) begin(key K) uint64 {
	c.mu.Lock()
	c.seq++
	token := c.seq
	c.pending[key] = token
	c.mu.Unlock()
	return token
}

func (c *lockedCache[K, V]) finish(key K, token uint64, e *entry[K, V], drop bool) (evicted int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending[key] != token || c.closed {
		return 0
	}
	delete(c.pending, key)
	switch {
	case e != nil:
		if c.lru.Add(key, e) {
			evicted = 1
		}
	case drop:
		c.lru.Remove(key)
	}
	c.len.Store(int64(c.lru.Len()))
	return evicted
}

func (c *lockedCache[K, V]) set(key K, e *entry[K, V]) (evicted int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0
	}
	delete(c.pending, key)
	if c.lru.Add(key, e) {
		evicted = 1
	}
	c.len.Store(int64(c.lru.Len()))
	return evicted
}

func (c *lockedCache[K, V]) remove(key K) {
	c.mu.Lock()
	delete(c.pending, key)
	c.lru.Remove(key)
	c.len.Store(int64(c.lru.Len()))
	c.mu.Unlock()
}

func (c *lockedCache[K, V]) purge(closing bool) {
	c.mu.Lock()
	c.closed = c.closed || closing
	clear(c.pending)
	c.lru.Purge()
	c.len.Store(0)
	c.mu.Unlock()
}

func (c *lockedCache[K, V]) size() int { return int(c.len.Load()) }
