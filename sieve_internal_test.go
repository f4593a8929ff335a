package flightcache

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// TestSieveShards: small caches are one exact SIEVE queue; large ones are
// split, at most 4 shards per P and 64 in all, each for at least 1024
// entries.
func TestSieveShards(t *testing.T) {
	want := min(4*runtime.GOMAXPROCS(0), maxShards)
	for _, tc := range []struct{ maxEntries, shards int }{
		{1, 1}, {2047, 1}, {2048, min(2, want)}, {1 << 20, want},
	} {
		c := newSieveCache[string, int](tc.maxEntries)
		if got := len(c.shards); got != tc.shards {
			t.Errorf("MaxEntries %d: %d shards, want %d", tc.maxEntries, got, tc.shards)
		}
		if got := len(c.shards); got > 1 && tc.maxEntries/got < minShardEntries {
			t.Errorf("MaxEntries %d: %d shards of fewer than %d entries", tc.maxEntries, got, minShardEntries)
		}
	}
}

// TestSieveGrowthUnderReaders: while one writer fills a cache, so that its
// bucket table grows from 16 buckets to 65536, readers look up the keys
// already stored without a lock. A reader may miss a key while the table
// is being rebuilt (the Loader then takes the locked path), but never gets
// another key's value, and the locked lookup always finds it.
func TestSieveGrowthUnderReaders(t *testing.T) {
	const n = 1 << 16
	c := newSieveCache[string, int](n)
	if len(c.shards) != 1 {
		// One shard keeps every insert on the table the readers watch.
		c = &sieveCache[string, int]{keys: c.keys, shift: 64, shards: c.shards[:1], max: n}
	}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = strconv.Itoa(i)
	}
	var stored atomic.Int64 // keys[:stored] are in the cache
	var misses, reads atomic.Int64
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Go(func() {
			for i := 0; stored.Load() < n; i++ {
				s := stored.Load()
				if s == 0 {
					runtime.Gosched()
					continue
				}
				k := (i*7919 + r) % int(s)
				reads.Add(1)
				v, fresh, held := c.getFresh(keys[k], 0)
				switch {
				case !held:
					misses.Add(1)
					if res := c.get(keys[k], 0, 0); !res.found || res.value != k {
						t.Errorf("locked lookup of %q: found %v, value %d", keys[k], res.found, res.value)
						return
					}
				case !fresh || v != k:
					t.Errorf("getFresh(%q) = %d, fresh %v", keys[k], v, fresh)
					return
				}
			}
		})
	}
	for i, k := range keys {
		if ev := c.set(k, newEntry(k, i, nil, never, never, 0)); ev != 0 {
			t.Fatalf("set %d evicted %d", i, ev)
		}
		stored.Store(int64(i + 1))
	}
	wg.Wait()
	if got := len(c.shards[0].table.Load().buckets); got != n {
		t.Errorf("table has %d buckets for %d entries, want %d", got, n, n)
	}
	if c.size() != n {
		t.Errorf("size %d, want %d", c.size(), n)
	}
	t.Logf("%d lock-free reads during growth, %d missed and found under the lock", reads.Load(), misses.Load())
}
