package bench

import (
	"context"
	"flag"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Flags of the heavy workloads; cmd/report passes them.
var (
	flagStampede = flag.Duration("stampede", DefaultStampede.Duration, "timed length of each expiry stampede run")
	flagEntries  = flag.Int("memory.entries", 100_000, "entries per library in the memory benchmark")
	flagStormRR  = flag.Int("storm.roundrobin", 0, "if > 0: BenchmarkMissStorm runs this many rounds of every library round-robin in one go, and each lib= sub-benchmark reports its library's")
	flagStormOut = flag.String("storm.out", "", "with -storm.roundrobin: also write each round's release time to this CSV file (see WriteStormRounds)")
)

// Sizes of the hit path and mixed workloads (issue 7).
const (
	hitKeys    = 10_000    // all loaded
	traceLen   = 1 << 20   // key indices per hit-path trace
	mixedKeys  = 1_000_000 // key space of the mixed workload
	mixedCap   = 10_000    // its cache size
	mixedTrace = 1 << 22   // its trace length
	mixedWarm  = 200_000   // Gets that fill the cache before timing
	zipfS      = 1.01      // Zipf exponent of both workloads
)

var (
	hitKeyList  = sync.OnceValue(func() []string { return Keys("key:", hitKeys) })
	hitUniform  = sync.OnceValue(func() []uint32 { return UniformTrace(hitKeys, traceLen, 1) })
	hitZipf     = sync.OnceValue(func() []uint32 { return ZipfTrace(hitKeys, traceLen, zipfS, 2) })
	mixedKeyLst = sync.OnceValue(func() []string { return Keys("key:", mixedKeys) })
	mixedZipf   = sync.OnceValue(func() []uint32 { return ZipfTrace(mixedKeys, mixedTrace, zipfS, 3) })
)

// BenchmarkHit measures Gets answered from the cache, from every P at
// once: 10,000 keys all loaded, read along a uniform or a Zipf trace, each
// goroutine from its own offset. rwmutex-map is the calibration floor: the
// same loop over a map behind a sync.RWMutex, with no cache bookkeeping.
// Run it with -cpu 1,2.
func BenchmarkHit(b *testing.B) {
	for _, d := range []struct {
		name  string
		trace func() []uint32
	}{{"uniform", hitUniform}, {"zipf", hitZipf}} {
		b.Run("dist="+d.name, func(b *testing.B) {
			b.Run("lib=rwmutex-map", func(b *testing.B) { benchFloor(b, hitKeyList(), d.trace()) })
			for _, lib := range Select(HitPath) {
				b.Run("lib="+lib.Name, func(b *testing.B) { benchHit(b, lib, hitKeyList(), d.trace()) })
			}
		})
	}
}

// parallelGets is the timed part of the hit-path and mixed benchmarks: from
// every P, Gets of keys along trace, each goroutine from its own offset.
func parallelGets(b *testing.B, c Cache, keys []string, trace []uint32) {
	ctx := context.Background()
	var off offsets
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := off.take(len(trace))
		for pb.Next() {
			if _, err := c.Get(ctx, keys[trace[i]]); err != nil {
				b.Error(err)
				return
			}
			if i++; i == len(trace) {
				i = 0
			}
		}
	})
	b.StopTimer()
}

// offsets hands each RunParallel goroutine its own starting point in a
// trace of length n.
type offsets struct{ next atomic.Uint64 }

func (o *offsets) take(n int) int { return int(o.next.Add(104729) % uint64(n)) }

func benchHit(b *testing.B, lib Library, keys []string, trace []uint32) {
	var fetches atomic.Int64
	c, err := lib.Open(Setup{Capacity: 2 * len(keys), TTL: time.Hour, Fetch: func(ctx context.Context, key string) (string, error) {
		fetches.Add(1)
		return key, nil
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := preload(c, keys); err != nil {
		b.Fatal(err)
	}
	f0 := fetches.Load()
	if err := preload(c, keys); err != nil {
		b.Fatal(err)
	}
	if n := fetches.Load() - f0; n != 0 {
		b.Fatalf("%d of %d keys were not cached after loading them", n, len(keys))
	}
	parallelGets(b, c, keys, trace)
	if n := fetches.Load() - f0; n != 0 {
		b.Errorf("%d fetches during the hit path", n)
	}
}

// preload Gets every key once.
func preload(c Cache, keys []string) error {
	ctx := context.Background()
	for _, k := range keys {
		if _, err := c.Get(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

func benchFloor(b *testing.B, keys []string, trace []uint32) {
	var mu sync.RWMutex
	m := make(map[string]string, len(keys))
	for _, k := range keys {
		m[k] = k
	}
	var off offsets
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := off.take(len(trace))
		for pb.Next() {
			mu.RLock()
			_, ok := m[keys[trace[i]]]
			mu.RUnlock()
			if !ok {
				b.Error("missing key")
				return
			}
			if i++; i == len(trace) {
				i = 0
			}
		}
	})
}

// BenchmarkMixedZipf reads a Zipf(s=1.01) trace over 1,000,000 keys through
// a 10,000-entry cache whose fetch returns at once and is counted, from
// every P. Besides ns/op it reports fetches/op, the fraction of Gets that
// fetched (a Get that joined another's fetch did not). The cache is filled
// (200,000 Gets) before timing. lru-exact and 2q are reference models of an
// exact LRU and of golang-lru's 2Q with the same capacity, not contenders.
// The hit ratio to compare is BenchmarkHitRatio's: the same trace, the
// same Gets for every library.
func BenchmarkMixedZipf(b *testing.B) {
	for _, lib := range Select(WithReferences) {
		b.Run("lib="+lib.Name, func(b *testing.B) { benchMixed(b, lib, mixedKeyLst(), mixedZipf(), mixedCap, mixedWarm) })
	}
}

func benchMixed(b *testing.B, lib Library, keys []string, trace []uint32, capacity, warm int) {
	var fetches atomic.Int64
	c, err := lib.Open(Setup{Capacity: capacity, TTL: time.Hour, Fetch: func(ctx context.Context, key string) (string, error) {
		fetches.Add(1)
		return key, nil
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for _, i := range trace[len(trace)-warm:] {
		if _, err := c.Get(ctx, keys[i]); err != nil {
			b.Fatal(err)
		}
	}
	f0 := fetches.Load()
	parallelGets(b, c, keys, trace)
	b.ReportMetric(float64(fetches.Load()-f0)/float64(b.N), "fetches/op")
}

// hitRatioGets is the length of BenchmarkHitRatio's measured pass.
const hitRatioGets = 2_000_000

// BenchmarkHitRatio measures the mixed workload's hit ratio alone: one
// goroutine fills a 10,000-entry cache with the first 200,000 Gets of the
// Zipf trace, then makes the next 2,000,000 and counts the fetches. Every
// library sees exactly the same Gets, in the same order. It reports
// hits/op, 1 - fetches/Gets; one op is the whole pass (run it with
// -benchtime=1x).
func BenchmarkHitRatio(b *testing.B) {
	for _, lib := range Select(WithReferences) {
		b.Run("lib="+lib.Name, func(b *testing.B) {
			var hits float64
			for range b.N {
				r, err := HitRatio(lib, mixedKeyLst(), mixedZipf()[:mixedWarm+hitRatioGets], mixedCap, mixedWarm)
				if err != nil {
					b.Fatal(err)
				}
				hits += r
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(hits/float64(b.N), "hits/op")
		})
	}
}

// BenchmarkFlightOverhead measures one uncontended Get in flight mode: one
// goroutine, one key, a fetch that returns at once.
func BenchmarkFlightOverhead(b *testing.B) {
	for _, lib := range Select(Flights) {
		b.Run("lib="+lib.Name, func(b *testing.B) {
			c, err := lib.Open(Setup{Fetch: func(ctx context.Context, key string) (string, error) { return key, nil }})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Get(ctx, "key"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMissStorm releases 1,000 goroutines together on a cold key whose
// fetch takes 50ms; one op is one round. It reports fetches/op (per round;
// 1 is the target), max-fetches (the most in one round), and release-ns
// and release-max-ns: the median and the largest, over the rounds, of the
// time from the fetch's return until the last waiter had its value.
//
// With -storm.roundrobin=N (what the report runs, with -benchtime=1x),
// every library runs N rounds, one round of each in turn, before the
// sub-benchmarks report: see MissStormRoundRobin. Each sub-benchmark then
// reports its library's N rounds, whatever its b.N; -storm.out also keeps
// every round's release time, for the report to compare the libraries
// round by round.
func BenchmarkMissStorm(b *testing.B) {
	libs := Select(Loaders)
	cfg := StormConfig{Waiters: 1000, FetchTime: 50 * time.Millisecond}
	var rr []StormResult
	if *flagStormRR > 0 {
		c := cfg
		c.Rounds = *flagStormRR
		var err error
		if rr, err = MissStormRoundRobin(libs, c); err != nil {
			b.Fatal(err)
		}
		if *flagStormOut != "" {
			if err := WriteStormRounds(*flagStormOut, libs, rr); err != nil {
				b.Fatal(err)
			}
		}
	}
	for i, lib := range libs {
		b.Run("lib="+lib.Name, func(b *testing.B) {
			var res StormResult
			if rr != nil {
				res = rr[i]
			} else {
				c := cfg
				c.Rounds = b.N
				var err error
				if res, err = MissStorm(lib, c); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(res.Elapsed)/float64(res.Rounds), "ns/op")
			b.ReportMetric(float64(res.Fetches)/float64(res.Rounds), "fetches/op")
			b.ReportMetric(float64(res.MaxFetches), "max-fetches")
			b.ReportMetric(float64(res.MedianRelease()), "release-ns")
			b.ReportMetric(float64(res.MaxRelease()), "release-max-ns")
		})
	}
}

// BenchmarkExpiryStampede runs DefaultStampede (64 readers, 100 hot keys,
// TTL 50ms, a 20ms fetch) for -stampede (3s) per op; the report runs one op
// (-benchtime=1x). flightcache-stale and otter-refresh serve the stale value
// for 1s while one refresh runs; flightcache-noexpiry is flightcache with a
// TTL of an hour: the hit path in the same harness, the yardstick of the
// others' p99. ns/op is wall time per Get. It also reports p50/p99/max Get
// latency, fetches/key/cycle (1: one fetch per key per expiry),
// overlaps (fetches that began while another fetch of the same key ran),
// early-fetches (fetches of a key whose last fetched value was still fresh:
// more than one fetch per expiry) and slow-gets/op (the fraction of Gets that took at least 1ms: waited for
// a fetch).
func BenchmarkExpiryStampede(b *testing.B) {
	type run struct {
		name string
		lib  Library
		ttl  time.Duration
	}
	var runs []run
	for _, lib := range Select(Expiring) {
		runs = append(runs, run{lib.Name, lib, DefaultStampede.TTL})
	}
	fc, err := Lookup("flightcache")
	if err != nil {
		b.Fatal(err)
	}
	runs = append(runs, run{"flightcache-noexpiry", fc, time.Hour})
	for _, r := range runs {
		b.Run("lib="+r.name, func(b *testing.B) {
			cfg := DefaultStampede
			cfg.TTL, cfg.Duration = r.ttl, *flagStampede
			var gets uint64
			var elapsed time.Duration
			var all StampedeResult
			for range b.N {
				res, err := Stampede(r.lib, cfg)
				if err != nil {
					b.Fatal(err)
				}
				gets += res.Gets
				elapsed += res.Elapsed
				all.Fetches += res.Fetches
				all.Overlaps += res.Overlaps
				all.Early += res.Early
				all.Slow += res.Slow
				all.P50, all.P99, all.Max = max(all.P50, res.P50), max(all.P99, res.P99), max(all.Max, res.Max)
				all.MeanFetch = res.MeanFetch
			}
			all.Gets, all.Elapsed = gets, elapsed
			b.ReportMetric(float64(elapsed)/float64(gets), "ns/op")
			b.ReportMetric(float64(all.P50), "p50-ns")
			b.ReportMetric(float64(all.P99), "p99-ns")
			b.ReportMetric(float64(all.Max), "max-ns")
			if r.ttl < time.Minute {
				b.ReportMetric(all.FetchesPerCycle(cfg), "fetches/key/cycle")
			}
			b.ReportMetric(float64(all.Overlaps), "overlaps")
			b.ReportMetric(float64(all.Early), "early-fetches")
			b.ReportMetric(float64(all.Slow)/float64(gets), "slow-gets/op")
		})
	}
}

// BenchmarkMemory measures the heap each library retains for
// -memory.entries (100,000) string entries, in a fresh process per op (the
// test binary run again as a memory child). It reports B/entry, the
// library's own bytes per entry (keys and values excluded), and held, the
// entries still cached at the end.
func BenchmarkMemory(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	for _, lib := range Select(Caches) {
		b.Run("lib="+lib.Name, func(b *testing.B) {
			var perEntry float64
			held := 0
			for range b.N {
				res, err := Memory(exe, lib, *flagEntries)
				if err != nil {
					b.Fatal(err)
				}
				perEntry += res.PerEntry()
				held = res.Held
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(perEntry/float64(b.N), "B/entry")
			b.ReportMetric(float64(held), "held")
		})
	}
}

// BenchmarkCancel runs DefaultCancel: the first caller's ctx is cancelled
// 10ms into a 50ms fetch while 99 others wait. It is a behaviour table, not
// a speed figure: failed-waiters (of 99), fetches, fetch-cancelled (1: the
// fetch saw the first caller's cancellation), first-ms (when the first
// caller returned) and last-ms (when the last waiter did), from the start
// of the fetch; averaged over the ops.
func BenchmarkCancel(b *testing.B) {
	for _, lib := range Select(Loaders) {
		b.Run("lib="+lib.Name, func(b *testing.B) {
			var failed, fetches, cancelled, first, last float64
			for range b.N {
				res, err := Cancellation(lib, DefaultCancel)
				if err != nil {
					b.Fatal(err)
				}
				failed += float64(res.Failed)
				fetches += float64(res.Fetches)
				if res.FetchCancelled {
					cancelled++
				}
				first += res.FirstReturned.Seconds() * 1000
				last += res.LastReturned.Seconds() * 1000
			}
			n := float64(b.N)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(failed/n, "failed-waiters")
			b.ReportMetric(fetches/n, "fetches")
			b.ReportMetric(cancelled/n, "fetch-cancelled")
			b.ReportMetric(first/n, "first-ms")
			b.ReportMetric(last/n, "last-ms")
		})
	}
}

var _ = runtime.GOMAXPROCS
