package flightcache

import (
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// sieveCache is the local tier of the SIEVE policy (the default). The keys
// are split by hash over shards; each shard has its own lock for writes
// and evictions, while the hit path takes no lock at all: it finds the
// entry through hash buckets read with atomic loads and marks it visited
// with one atomic store (only when the bit is not already set, so hot
// entries are not written on every hit).
//
// SIEVE (Zhang et al., NSDI 2024) keeps entries in a queue, newest first.
// To evict, a hand walks from the oldest entry toward the newest, clearing
// the visited bit of each entry it passes, and evicts the first one that
// was not visited since the hand last passed it; the hand stays where it
// stopped. New entries that are never read again go first, and no hit ever
// reorders the queue.
//
// The memory a hit reads is kept apart from memory that anything writes:
// written fields sit 128 bytes (a pair of cache lines, which some CPUs
// fetch together) from read ones, and the header and the bucket tables are
// sized so that the allocator places them at 128-byte boundaries, away
// from other objects. (Before this, about one process in six ran its hits
// 25% slower at -cpu 2, even with hit counting switched off: the layout
// of that process's heap put something written next to what hits read.)
type sieveCache[K comparable, V any] struct {
	keys   keyHasher[K]
	shift  uint // the shard is hash >> shift (0 bits with one shard)
	shards []sieveShard[K, V]
	max    int64       // MaxEntries, over every shard
	closed atomic.Bool // set by purge(true), read under a shard's lock
	_      [76]byte    // keeps len's writes off the lines the hit path reads
	// len counts the entries held over every shard. A store reserves its
	// place here first and, when that takes len over max, evicts one entry
	// (from its own shard when it has one), so shards share MaxEntries
	// however unevenly keys hash.
	len atomic.Int64
	_   [120]byte
}

// sieveShard is one part of a sieveCache.
type sieveShard[K comparable, V any] struct {
	// table is replaced (grown) under mu and read by the hit path without
	// it, on a cache line of its own: stores write the fields below.
	table atomic.Pointer[bucketTable[K, V]]
	_     [120]byte

	mu               sync.Mutex // guards every field below and the entries' queue links and chain writes
	n                int        // entries held
	maxBuckets       int        // the table grows up to this many buckets
	head, tail, hand *entry[K, V]
	pending          map[K]uint64 // see lockedCache.pending
	seq              uint64

	_ [128]byte // keeps shards off each other's cache lines
}

// bucketTable is a fixed array of hash buckets, each a chain of entries
// linked by entry.chain. Its 128 bytes put it in a size class of its own
// lines (see sieveCache).
type bucketTable[K comparable, V any] struct {
	buckets []atomic.Pointer[entry[K, V]]
	mask    uint64
	_       [96]byte
}

// Shard sizing: a cache is split only when every shard keeps at least
// minShardEntries entries, so that small caches (and the tests' tiny ones)
// are one exact SIEVE; at most maxShards shards, 4 per P.
const (
	minShardEntries = 1024
	maxShards       = 64
	minBuckets      = 16
	maxBucketBits   = 32 // past 4G buckets per shard, chains grow instead
)

// shardBits returns log2 of the number of shards for a structure whose
// every shard must keep at least perShard of total items (0: no minimum):
// up to 4 shards per P, at most maxShards.
func shardBits(total, perShard int) int {
	want := min(4*runtime.GOMAXPROCS(0), maxShards)
	bits := 0
	for 1<<(bits+1) <= want && total>>(bits+1) >= perShard {
		bits++
	}
	return bits
}

func newSieveCache[K comparable, V any](maxEntries int) *sieveCache[K, V] {
	n := shardBits(maxEntries, minShardEntries)
	c := &sieveCache[K, V]{keys: newKeyHasher[K](), shift: uint(64 - n), shards: make([]sieveShard[K, V], 1<<n), max: int64(maxEntries)}
	for i := range c.shards {
		s := &c.shards[i]
		s.maxBuckets = 1 << min(bits.Len(uint(maxEntries-1)), maxBucketBits) // the power of two >= maxEntries
		s.table.Store(newBucketTable[K, V](min(minBuckets, s.maxBuckets)))
		s.pending = make(map[K]uint64)
	}
	return c
}

func newBucketTable[K comparable, V any](n int) *bucketTable[K, V] {
	return &bucketTable[K, V]{buckets: make([]atomic.Pointer[entry[K, V]], n), mask: uint64(n - 1)}
}

// find returns key's entry in t, or nil. It may run without the shard's
// lock: while the table grows, a reader may miss an entry that is there
// (then the caller takes the locked path), never find a wrong one.
func (t *bucketTable[K, V]) find(h uint64, key K) *entry[K, V] {
	for e := t.buckets[h&t.mask].Load(); e != nil; e = e.chain.Load() {
		if e.hash == uint32(h) && e.key == key {
			return e
		}
	}
	return nil
}

func (c *sieveCache[K, V]) locate(key K) (uint64, *sieveShard[K, V]) {
	h := c.keys.hash(key)
	return h, &c.shards[h>>c.shift]
}

func (c *sieveCache[K, V]) getFresh(key K, now int64) (v V, fresh, held bool) {
	h, s := c.locate(key)
	e := s.table.Load().find(h, key)
	if e == nil {
		return v, false, false
	}
	f := e.flags.Load()
	if now >= e.expires || f&flagNegative != 0 {
		return v, false, true
	}
	if f&flagVisited == 0 {
		e.flags.Or(flagVisited)
	}
	return e.value, true, true
}

func (c *sieveCache[K, V]) get(key K, now int64, early float64) lookup[K, V] {
	h, s := c.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return c.getLocked(s, h, key, now, early)
}

func (c *sieveCache[K, V]) getOrBegin(key K, now int64) (lookup[K, V], uint64) {
	h, s := c.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if res := c.getLocked(s, h, key, now, 0); res.found {
		return res, 0
	}
	s.seq++
	s.pending[key] = s.seq
	return lookup[K, V]{}, s.seq
}

// getLocked is get for the key of hash h in s, with s.mu held.
func (c *sieveCache[K, V]) getLocked(s *sieveShard[K, V], h uint64, key K, now int64, early float64) lookup[K, V] {
	e := s.table.Load().find(h, key)
	if e == nil {
		return lookup[K, V]{}
	}
	if now >= e.staleUntil {
		s.removeLocked(e)
		c.len.Add(-1)
		return lookup[K, V]{}
	}
	e.flags.Or(flagVisited)
	return lookupLocked(e, now, early)
}

func (c *sieveCache[K, V]) refreshSkipped(e *entry[K, V]) {
	_, s := c.locate(e.key)
	s.mu.Lock()
	e.flags.And(^flagRefreshing)
	s.mu.Unlock()
}

func (c *sieveCache[K, V]) refreshFailed(e *entry[K, V], now int64) time.Duration {
	_, s := c.locate(e.key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return refreshFailedLocked(e, now)
}

func (c *sieveCache[K, V]) begin(key K) uint64 {
	_, s := c.locate(key)
	s.mu.Lock()
	s.seq++
	token := s.seq
	s.pending[key] = token
	s.mu.Unlock()
	return token
}

func (c *sieveCache[K, V]) finish(key K, token uint64, e *entry[K, V], drop bool) (evicted int) {
	h, s := c.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[key] != token || c.closed.Load() {
		return 0
	}
	delete(s.pending, key)
	switch {
	case e != nil:
		return c.storeLocked(s, h, e)
	case drop:
		if old := s.table.Load().find(h, key); old != nil {
			s.removeLocked(old)
			c.len.Add(-1)
		}
	}
	return 0
}

func (c *sieveCache[K, V]) set(key K, e *entry[K, V]) (evicted int) {
	h, s := c.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed.Load() {
		return 0
	}
	delete(s.pending, key)
	return c.storeLocked(s, h, e)
}

func (c *sieveCache[K, V]) remove(key K) {
	h, s := c.locate(key)
	s.mu.Lock()
	delete(s.pending, key)
	if e := s.table.Load().find(h, key); e != nil {
		s.removeLocked(e)
		c.len.Add(-1)
	}
	s.mu.Unlock()
}

func (c *sieveCache[K, V]) purge(closing bool) {
	if closing {
		c.closed.Store(true)
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.pending)
		c.len.Add(int64(-s.n))
		s.n = 0
		s.head, s.tail, s.hand = nil, nil, nil
		s.table.Store(newBucketTable[K, V](min(minBuckets, s.maxBuckets)))
		s.mu.Unlock()
	}
}

func (c *sieveCache[K, V]) size() int { return int(c.len.Load()) }

// storeLocked puts e (for the key of hash h) in s: in place of the key's
// entry when there is one (keeping its place in the queue, as used), else
// as the newest entry, evicting first when the cache is full (more than
// one entry only when concurrent stores took the room it made). It
// returns the number of entries evicted. s.mu must be held.
func (c *sieveCache[K, V]) storeLocked(s *sieveShard[K, V], h uint64, e *entry[K, V]) (evicted int) {
	e.hash = uint32(h)
	t := s.table.Load()
	if old := t.find(h, e.key); old != nil {
		s.replaceLocked(t, old, e)
		return 0
	}
	for { // reserve a place in len, never taking it over max
		n := c.len.Load()
		if n < c.max {
			if c.len.CompareAndSwap(n, n+1) {
				break
			}
			continue
		}
		if c.evictFor(s) {
			evicted++
		}
	}
	s.insertLocked(e)
	return evicted
}

// evictFor evicts one entry to make room for a store into s: s's SIEVE
// victim, or when s is empty another shard's. s.mu must be held; other
// shards are only tried (TryLock), so two stores never wait for each
// other's shard. It reports false when no eviction is needed any more
// (a purge or removal made room meanwhile).
func (c *sieveCache[K, V]) evictFor(s *sieveShard[K, V]) bool {
	if s.n > 0 {
		s.evictLocked()
		c.len.Add(-1)
		return true
	}
	for c.len.Load() >= c.max {
		for i := range c.shards {
			o := &c.shards[i]
			if o == s || !o.mu.TryLock() {
				continue
			}
			if o.n > 0 {
				o.evictLocked()
				c.len.Add(-1)
				o.mu.Unlock()
				return true
			}
			o.mu.Unlock()
		}
		runtime.Gosched() // the shards with entries are busy: try again
	}
	return false
}

// insertLocked adds e as the newest entry. s.mu must be held.
func (s *sieveShard[K, V]) insertLocked(e *entry[K, V]) {
	t := s.table.Load()
	if s.n >= len(t.buckets) && len(t.buckets) < s.maxBuckets {
		t = s.growLocked(t) // before e is queued: growLocked links every queued entry
	}
	e.prev, e.next = nil, s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
	s.n++
	b := &t.buckets[uint64(e.hash)&t.mask]
	e.chain.Store(b.Load())
	b.Store(e) // publishes e: every field the hit path reads is set
}

// growLocked replaces t with a table of twice as many buckets. Readers
// still walking t may follow a moved entry's chain into the new table and
// miss their key (never find a wrong one): they take the locked path then.
// s.mu must be held.
func (s *sieveShard[K, V]) growLocked(t *bucketTable[K, V]) *bucketTable[K, V] {
	nt := newBucketTable[K, V](2 * len(t.buckets))
	for e := s.head; e != nil; e = e.next {
		b := &nt.buckets[uint64(e.hash)&nt.mask]
		e.chain.Store(b.Load())
		b.Store(e)
	}
	s.table.Store(nt)
	return nt
}

// replaceLocked puts e in old's place, in the queue and in t. s.mu must be
// held.
func (s *sieveShard[K, V]) replaceLocked(t *bucketTable[K, V], old, e *entry[K, V]) {
	e.flags.Or(flagVisited)
	e.prev, e.next = old.prev, old.next
	if e.prev != nil {
		e.prev.next = e
	} else {
		s.head = e
	}
	if e.next != nil {
		e.next.prev = e
	} else {
		s.tail = e
	}
	if s.hand == old {
		s.hand = e
	}
	e.chain.Store(old.chain.Load())
	s.relinkLocked(t, old, e)
}

// removeLocked drops e from the queue and from its bucket. s.mu must be
// held.
func (s *sieveShard[K, V]) removeLocked(e *entry[K, V]) {
	if s.hand == e {
		s.hand = e.prev
	}
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	s.n--
	s.relinkLocked(s.table.Load(), e, e.chain.Load())
	// e.chain is left as it is: a reader standing on e walks on.
}

// relinkLocked makes whatever pointed to old in its bucket of t point to
// repl instead. s.mu must be held.
func (s *sieveShard[K, V]) relinkLocked(t *bucketTable[K, V], old, repl *entry[K, V]) {
	p := &t.buckets[uint64(old.hash)&t.mask]
	for {
		cur := p.Load()
		if cur == old {
			p.Store(repl)
			return
		}
		if cur == nil {
			return // not linked: nothing to do
		}
		p = &cur.chain
	}
}

// evictLocked removes the entry the SIEVE hand chooses. s must hold at
// least one entry and s.mu must be held. Hits may mark entries again while
// the hand moves (they take no lock), so after two full turns the hand
// takes the entry it is on.
func (s *sieveShard[K, V]) evictLocked() {
	o := s.hand
	if o == nil {
		o = s.tail
	}
	for steps := 2 * s.n; steps > 0 && o.flags.Load()&flagVisited != 0; steps-- {
		o.flags.And(^flagVisited)
		if o = o.prev; o == nil {
			o = s.tail
		}
	}
	s.hand = o.prev
	s.removeLocked(o)
}
