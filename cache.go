package flightcache

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// never is the expiry of an entry that does not expire.
const never = math.MaxInt64

// entry is one cached value. Times are nanoseconds on the Loader's clock
// (see Loader.now).
type entry[V any] struct {
	value   V
	expires int64 // first instant at which the entry is no longer served
}

// cache is the LRU of cache mode, with lazy expiry and the bookkeeping that
// keeps a load from storing over a newer Set or Invalidate. It never calls
// user code.
type cache[K comparable, V any] struct {
	mu sync.Mutex // guards lru, pending and seq
	// lru holds the entries, most recently used first.
	lru *simplelru.LRU[K, entry[V]]
	// pending maps a key to the token of the load allowed to store it. Set,
	// Invalidate and InvalidateAll delete tokens, so a load that started
	// before them finds its token gone and stores nothing.
	pending map[K]uint64
	seq     uint64 // last token handed out
	closed  bool   // set by close: nothing is stored any more

	// len mirrors lru.Len() for lock-free reads by Stats and Len.
	len atomic.Int64
}

func newCache[K comparable, V any](maxEntries int) *cache[K, V] {
	l, err := simplelru.NewLRU[K, entry[V]](maxEntries, nil)
	if err != nil { // only for a size <= 0, which Config.Validate rejects
		panic("flightcache: " + err.Error())
	}
	return &cache[K, V]{lru: l, pending: make(map[K]uint64)}
}

// get returns the value of key if it is held and fresh at now, marking it
// most recently used. An expired entry is dropped.
func (c *cache[K, V]) get(key K, now int64) (V, bool) {
	c.mu.Lock()
	e, ok := c.lru.Get(key)
	if ok && now >= e.expires {
		c.lru.Remove(key)
		c.len.Store(int64(c.lru.Len()))
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		var zero V
		return zero, false
	}
	return e.value, true
}

// begin registers a load of key and returns its token.
func (c *cache[K, V]) begin(key K) uint64 {
	c.mu.Lock()
	c.seq++
	token := c.seq
	c.pending[key] = token
	c.mu.Unlock()
	return token
}

// finish ends the load with the given token. When store is true and no
// write to key came after the load began, it stores value until expires and
// reports whether another entry was evicted for it.
func (c *cache[K, V]) finish(key K, token uint64, store bool, value V, expires int64) (stored, evicted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending[key] != token || c.closed {
		return false, false
	}
	delete(c.pending, key)
	if !store {
		return false, false
	}
	evicted = c.lru.Add(key, entry[V]{value: value, expires: expires})
	c.len.Store(int64(c.lru.Len()))
	return true, evicted
}

// set stores value for key until expires, overriding any running load, and
// reports whether another entry was evicted for it.
func (c *cache[K, V]) set(key K, value V, expires int64) (evicted bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	delete(c.pending, key)
	evicted = c.lru.Add(key, entry[V]{value: value, expires: expires})
	c.len.Store(int64(c.lru.Len()))
	c.mu.Unlock()
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
