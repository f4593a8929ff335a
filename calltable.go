package flightcache

// callTable is a flight shard's index of the loads that new Gets join: a
// hash table whose buckets are chains of calls linked by call.nextKey,
// placed by the hash the shard was chosen by, so that a load hashes its key
// once (a map would hash it again to look it up, to insert and to delete).
// The zero callTable is empty. It is guarded by its shard's lock.
type callTable[K comparable, V any] struct {
	buckets []*call[K, V] // a power of two of them once one call is in
	n       int           // calls held
}

// minCallBuckets is the size of a callTable's first bucket array.
const minCallBuckets = 8

// find returns the call of key, whose hash is h, or nil.
func (t *callTable[K, V]) find(h uint64, key K) *call[K, V] {
	if t.n == 0 {
		return nil
	}
	for c := t.buckets[h&uint64(len(t.buckets)-1)]; c != nil; c = c.nextKey {
		if c.hash == h && c.key == key {
			return c
		}
	}
	return nil
}

// insert adds c as the call of key, whose hash is h; key must not have one.
// The table grows to keep chains short (at most one call per bucket on
// average).
func (t *callTable[K, V]) insert(h uint64, key K, c *call[K, V]) {
	if t.n >= len(t.buckets) {
		t.grow()
	}
	c.key, c.hash = key, h
	b := &t.buckets[h&uint64(len(t.buckets)-1)]
	c.nextKey = *b
	*b = c
	t.n++
}

// remove takes c, which must be in t, out of t.
func (t *callTable[K, V]) remove(c *call[K, V]) {
	for p := &t.buckets[c.hash&uint64(len(t.buckets)-1)]; *p != nil; p = &(*p).nextKey {
		if *p == c {
			*p = c.nextKey
			c.nextKey = nil
			t.n--
			return
		}
	}
	panic("flightcache: internal error: a call missing from its table")
}

// clear empties t and returns the calls it held.
func (t *callTable[K, V]) clear() []*call[K, V] {
	out := make([]*call[K, V], 0, t.n)
	for i, c := range t.buckets {
		for c != nil {
			next := c.nextKey
			c.nextKey = nil
			out = append(out, c)
			c = next
		}
		t.buckets[i] = nil
	}
	t.n = 0
	return out
}

// grow doubles t's buckets (or makes the first ones) and rechains every
// call.
func (t *callTable[K, V]) grow() {
	old := t.buckets
	t.buckets = make([]*call[K, V], max(2*len(old), minCallBuckets))
	mask := uint64(len(t.buckets) - 1)
	for _, c := range old {
		for c != nil {
			next := c.nextKey
			b := &t.buckets[c.hash&mask]
			c.nextKey = *b
			*b = c
			c = next
		}
	}
}
