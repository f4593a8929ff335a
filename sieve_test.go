package flightcache_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightcache/flightcache"
)

// TestSieveEvictionOrder: with the default policy a read only marks its
// entry, eviction clears marks from the oldest entry on and takes the first
// unmarked one, and the hand stays where it stopped. The same sequence
// under LRU evicts b, not a, and later c, not b.
func TestSieveEvictionOrder(t *testing.T) {
	var calls atomic.Int64
	l := mustNew(t, func(ctx context.Context, key string) (string, error) {
		calls.Add(1)
		return key, nil
	}, flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 2})
	get := func(k string) {
		t.Helper()
		v, err := l.Get(context.Background(), k)
		require.NoError(t, err)
		require.Equal(t, k, v)
	}
	get("a")
	get("b")
	get("b") // both read: the hand clears b's mark and a's, then takes a
	get("a")
	get("c") // evicts a, the oldest once no entry is marked
	require.EqualValues(t, 3, calls.Load())
	require.EqualValues(t, 1, l.Stats().Evictions)
	get("b") // kept (LRU would have evicted b): a hit that marks b again
	require.EqualValues(t, 3, calls.Load(), "b was kept")
	get("a") // the hand, after a, passes b (clearing it) and evicts c
	require.EqualValues(t, 4, calls.Load())
	get("b")
	require.EqualValues(t, 4, calls.Load(), "b was kept again")
	get("c")
	require.EqualValues(t, 5, calls.Load(), "c was evicted")
	s := l.Stats()
	require.EqualValues(t, 3, s.Evictions)
	require.Equal(t, 2, s.Entries)
	requireBalanced(t, s, 9)
}

// TestSieveShardedBound: a cache large enough to be split into shards
// still holds exactly MaxEntries entries however the keys hash (the shards
// share the bound), never more while Gets, Sets and Invalidates race, and
// never returns another key's value.
func TestSieveShardedBound(t *testing.T) {
	const maxEntries = 4096 // split into shards from 2048 on
	var fetches atomic.Int64
	l := mustNew(t, func(ctx context.Context, key string) (string, error) {
		fetches.Add(1)
		return "v:" + key, nil
	}, flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: maxEntries})
	ctx := context.Background()
	for i := range maxEntries {
		_, err := l.Get(ctx, fmt.Sprint(i))
		require.NoError(t, err)
	}
	require.Equal(t, maxEntries, l.Len(), "every shard may grow until the whole cache is full")
	require.Zero(t, l.Stats().Evictions)
	for i := range maxEntries {
		v, err := l.Get(ctx, fmt.Sprint(i))
		require.NoError(t, err)
		require.Equal(t, "v:"+fmt.Sprint(i), v)
	}
	require.EqualValues(t, maxEntries, fetches.Load(), "the second pass hit every key")

	var wg sync.WaitGroup
	var gets atomic.Uint64
	var over atomic.Int64
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for range 20_000 {
				k := fmt.Sprint(r.IntN(3 * maxEntries))
				switch n := r.IntN(10); {
				case n == 0:
					l.Set(k, "v:"+k)
				case n == 1:
					l.Invalidate(k)
				default:
					gets.Add(1)
					v, err := l.Get(ctx, k)
					if err != nil || v != "v:"+k {
						t.Errorf("Get(%s) = %q, %v", k, v, err)
						return
					}
				}
				if n := l.Len(); n > maxEntries {
					over.Store(int64(n))
				}
			}
		})
	}
	wg.Wait()
	require.Zero(t, over.Load(), "Len went over MaxEntries")
	s := l.Stats()
	require.LessOrEqual(t, s.Entries, maxEntries)
	require.Positive(t, s.Evictions)
	require.Equal(t, 2*uint64(maxEntries)+gets.Load(), s.Hits+s.Misses)
	require.Equal(t, s.Misses, s.Loads+s.Shared)
}
