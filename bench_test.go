package flightcache_test

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/flightcache/flightcache"
)

// benchKeys returns n distinct keys shaped like the tokens and ids a Loader
// is typically asked for.
func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "user:" + strconv.Itoa(i)
	}
	return keys
}

// benchWork is the fetch of the miss benchmark: a little CPU work that
// returns at once, the same for every contender.
func benchWork(key string) int {
	return benchHash(key)
}

// benchYieldingWork is benchWork for a fetch that yields once before it
// returns, letting the goroutines that are ready run first.
func benchYieldingWork(key string) int {
	runtime.Gosched()
	return benchHash(key)
}

// benchHash is the FNV-1a hash of key.
func benchHash(key string) int {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h = (h ^ uint64(key[i])) * 1099511628211
	}
	return int(h >> 1)
}

// BenchmarkHit measures Gets answered from the cache, from every P at once,
// against a map behind a sync.RWMutex read-locked for the same lookups (the
// floor a read-mostly cache could reach, with no LRU bookkeeping). Each
// goroutine walks the keys from its own starting point.
func BenchmarkHit(b *testing.B) {
	const n = 10_000
	keys := benchKeys(n)

	b.Run("flightcache", func(b *testing.B) {
		fetch := func(ctx context.Context, key string) (int, error) {
			b.Error("fetch called: every key should be cached")
			return 0, nil
		}
		l, err := flightcache.New(fetch, flightcache.Config{
			Mode: flightcache.ModeCache, MaxEntries: n, TTL: time.Hour,
		})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		for i, k := range keys {
			l.Set(k, i)
		}
		ctx := context.Background()
		var seed atomic.Uint64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := int(seed.Add(7919) % n)
			for pb.Next() {
				if _, err := l.Get(ctx, keys[i]); err != nil {
					b.Error(err)
					return
				}
				if i++; i == n {
					i = 0
				}
			}
		})
		b.StopTimer()
		if s := l.Stats(); s.Misses != 0 {
			b.Errorf("misses = %d, want 0", s.Misses)
		}
	})

	b.Run("rwmutex-map", func(b *testing.B) {
		var mu sync.RWMutex
		m := make(map[string]int, n)
		for i, k := range keys {
			m[k] = i
		}
		var seed atomic.Uint64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := int(seed.Add(7919) % n)
			for pb.Next() {
				mu.RLock()
				_, ok := m[keys[i]]
				mu.RUnlock()
				if !ok {
					b.Error("missing key")
					return
				}
				if i++; i == n {
					i = 0
				}
			}
		})
	})
}

// round is one burst of burstRunner: the workers wait for start to be
// closed, then all ask for key; next is the following round, set before
// start is closed.
type round struct {
	start chan struct{}
	key   string
	stop  bool
	next  *round
}

// burstRunner releases g long-lived workers at once, b.N times, each time
// for a fresh key, and waits for all of them to return. Every contender is
// driven by the same runner, so they pay the same release cost.
func burstRunner(b *testing.B, g int, call func(ctx context.Context, key string) int) {
	ctx := b.Context()
	cur := &round{start: make(chan struct{})}
	var done sync.WaitGroup
	var workers sync.WaitGroup
	for range g {
		r := cur
		workers.Go(func() {
			for {
				<-r.start
				if r.stop {
					return
				}
				if call(ctx, r.key) != benchWork(r.key) {
					b.Error("wrong value")
				}
				done.Done()
				r = r.next
			}
		})
	}
	keys := benchKeys(1 << 12) // reused only after 4096 bursts, long after they ended
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		next := &round{start: make(chan struct{})}
		cur.key, cur.next = keys[i&(len(keys)-1)], next
		done.Add(g)
		close(cur.start)
		done.Wait()
		cur = next
	}
	b.StopTimer()
	cur.stop = true
	close(cur.start)
	workers.Wait()
}

// BenchmarkFlightBurst measures one burst of G goroutines released together
// to ask for one key, per op: flightcache in flight mode against
// golang.org/x/sync/singleflight's Do (callers cannot leave early) and DoChan
// selected with ctx.Done (the equivalent that lets a caller leave on its
// context, as Get does). The fetch, identical for all three, does a little
// work and yields once, as a fetch that waits for I/O would, so that the
// other callers get to join it; it returns as soon as it is rescheduled.
// fetches/op is how many fetches each burst ran: callers that arrive after a
// fetch returned start another.
func BenchmarkFlightBurst(b *testing.B) {
	for _, g := range []int{8, 64} {
		suffix := "/g=" + strconv.Itoa(g)

		b.Run("flightcache"+suffix, func(b *testing.B) {
			var fetches atomic.Int64
			l, err := flightcache.New(func(ctx context.Context, key string) (int, error) {
				fetches.Add(1)
				return benchYieldingWork(key), nil
			}, flightcache.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			burstRunner(b, g, func(ctx context.Context, key string) int {
				v, err := l.Get(ctx, key)
				if err != nil {
					b.Error(err)
				}
				return v
			})
			b.ReportMetric(float64(fetches.Load())/float64(b.N), "fetches/op")
		})

		// InlineFetch: the Get that starts a load runs it, as Do does; its
		// context must be one that cannot be cancelled.
		b.Run("flightcache-inline"+suffix, func(b *testing.B) {
			var fetches atomic.Int64
			l, err := flightcache.New(func(ctx context.Context, key string) (int, error) {
				fetches.Add(1)
				return benchYieldingWork(key), nil
			}, flightcache.Config{InlineFetch: true})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			burstRunner(b, g, func(_ context.Context, key string) int {
				v, err := l.Get(context.Background(), key)
				if err != nil {
					b.Error(err)
				}
				return v
			})
			b.ReportMetric(float64(fetches.Load())/float64(b.N), "fetches/op")
		})

		b.Run("xsync-Do"+suffix, func(b *testing.B) {
			var fetches atomic.Int64
			var sf singleflight.Group
			burstRunner(b, g, func(ctx context.Context, key string) int {
				v, err, _ := sf.Do(key, func() (any, error) {
					fetches.Add(1)
					return benchYieldingWork(key), nil
				})
				if err != nil {
					b.Error(err)
				}
				return v.(int)
			})
			b.ReportMetric(float64(fetches.Load())/float64(b.N), "fetches/op")
		})

		b.Run("xsync-DoChan"+suffix, func(b *testing.B) {
			var fetches atomic.Int64
			var sf singleflight.Group
			burstRunner(b, g, func(ctx context.Context, key string) int {
				ch := sf.DoChan(key, func() (any, error) {
					fetches.Add(1)
					return benchYieldingWork(key), nil
				})
				select {
				case r := <-ch:
					if r.Err != nil {
						b.Error(r.Err)
					}
					return r.Val.(int)
				case <-ctx.Done():
					b.Error(ctx.Err())
					return 0
				}
			})
			b.ReportMetric(float64(fetches.Load())/float64(b.N), "fetches/op")
		})
	}
}

// BenchmarkMiss measures one uncontended load, from a single goroutine with
// a distinct key each time, in flight mode against singleflight.Group's Do
// and DoChan.
func BenchmarkMiss(b *testing.B) {
	keys := benchKeys(1 << 16)

	b.Run("flightcache", func(b *testing.B) {
		l, err := flightcache.New(func(ctx context.Context, key string) (int, error) {
			return benchWork(key), nil
		}, flightcache.Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		ctx := b.Context()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := l.Get(ctx, keys[i&(len(keys)-1)]); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if s := l.Stats(); s.Loads != s.Misses || s.Shared != 0 {
			b.Errorf("loads = %d, misses = %d, shared = %d: want every Get to load", s.Loads, s.Misses, s.Shared)
		}
	})

	// InlineFetch (its Gets need a context that cannot be cancelled), and
	// without the load-duration histogram.
	for _, v := range []struct {
		name string
		cfg  flightcache.Config
	}{
		{"flightcache-inline", flightcache.Config{InlineFetch: true}},
		{"flightcache-inline-untimed", flightcache.Config{InlineFetch: true, DisableLoadTiming: true}},
	} {
		cfg := v.cfg
		b.Run(v.name, func(b *testing.B) {
			l, err := flightcache.New(func(ctx context.Context, key string) (int, error) {
				return benchWork(key), nil
			}, cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ctx := context.Background()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := l.Get(ctx, keys[i&(len(keys)-1)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}

	b.Run("xsync-Do", func(b *testing.B) {
		var sf singleflight.Group
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			key := keys[i&(len(keys)-1)]
			if _, err, _ := sf.Do(key, func() (any, error) { return benchWork(key), nil }); err != nil {
				b.Fatal(err)
			}
		}
	})

	// DoChan runs the fetch in a goroutine of its own, as flightcache does.
	b.Run("xsync-DoChan", func(b *testing.B) {
		var sf singleflight.Group
		ctx := b.Context()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			key := keys[i&(len(keys)-1)]
			select {
			case r := <-sf.DoChan(key, func() (any, error) { return benchWork(key), nil }):
				if r.Err != nil {
					b.Fatal(r.Err)
				}
			case <-ctx.Done():
				b.Fatal(ctx.Err())
			}
		}
	})
}
