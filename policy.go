package flightcache

import (
	"fmt"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Policy selects how cache mode chooses the entry to evict. The zero value
// is PolicySieve. Like Mode, a Policy reads and writes itself as text
// ("sieve", "lru", "2q").
type Policy uint8

const (
	// PolicySieve, the default, is SIEVE: a hit only marks its entry as
	// visited (no reordering, no lock), and eviction takes the oldest entry
	// not visited since the eviction hand last passed it. Entries read only
	// once leave first, so on skewed workloads it keeps more hits than LRU
	// for the same MaxEntries (bench/: 0.671 against LRU's 0.604 on a
	// Zipf(1.01) trace). Caches of at least 2048 entries are split into
	// shards by key hash, each with its own SIEVE queue.
	PolicySieve Policy = iota
	// PolicyLRU evicts the least recently used entry: an exact LRU from
	// golang-lru/v2 under one lock, which every hit takes to move its
	// entry to the front.
	PolicyLRU
	// Policy2Q is golang-lru/v2's 2Q: keys seen once wait in a small
	// "recent" queue and only keys used again enter the main LRU, so a scan
	// of one-off keys does not flush the hot set. On skewed workloads it
	// keeps more hits than LRU for the same MaxEntries (see bench/).
	Policy2Q
)

// String returns "sieve", "lru", "2q", or "Policy(N)".
func (p Policy) String() string {
	switch p {
	case PolicySieve:
		return "sieve"
	case PolicyLRU:
		return "lru"
	case Policy2Q:
		return "2q"
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// MarshalText implements encoding.TextMarshaler; it fails for an unknown
// Policy.
func (p Policy) MarshalText() ([]byte, error) {
	if p > Policy2Q {
		return nil, fmt.Errorf("flightcache: cannot marshal unknown %v", p)
	}
	return []byte(p.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler: "sieve" (or empty),
// "lru" and "2q", in any letter case; anything else is an error naming the
// text.
func (p *Policy) UnmarshalText(text []byte) error {
	switch strings.ToLower(strings.TrimSpace(string(text))) {
	case "", "sieve":
		*p = PolicySieve
	case "lru":
		*p = PolicyLRU
	case "2q":
		*p = Policy2Q
	default:
		return fmt.Errorf("flightcache: unknown policy %q (want \"sieve\", \"lru\" or \"2q\")", text)
	}
	return nil
}

// evictor is what the cache needs of an eviction policy. It is used under
// the cache's lock only.
type evictor[K comparable, V any] interface {
	Get(key K) (V, bool)
	Add(key K, value V) (evicted bool)
	Remove(key K) bool
	Purge()
	Len() int
}

// newEvictor returns the policy's structure for maxEntries (> 0) entries.
func newEvictor[K comparable, V any](p Policy, maxEntries int) evictor[K, V] {
	if p == Policy2Q {
		q, err := lru.New2Q[K, V](maxEntries)
		if err != nil { // only for a size <= 0, which Config.Validate rejects
			panic("flightcache: " + err.Error())
		}
		return twoQueue[K, V]{q}
	}
	l, err := simplelru.NewLRU[K, V](maxEntries, nil)
	if err != nil {
		panic("flightcache: " + err.Error())
	}
	return l
}

// twoQueue adapts golang-lru/v2's 2Q to evictor. It takes its own lock
// too, uncontended since the cache's lock is held around every call.
type twoQueue[K comparable, V any] struct {
	*lru.TwoQueueCache[K, V]
}

func (q twoQueue[K, V]) Add(key K, value V) (evicted bool) {
	had, n := q.Contains(key), q.Len()
	q.TwoQueueCache.Add(key, value)
	return !had && q.Len() == n
}

func (q twoQueue[K, V]) Remove(key K) bool {
	had := q.Contains(key)
	q.TwoQueueCache.Remove(key)
	return had
}
