package flightcache_test

import (
	"context"
	"math/bits"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flightcache/flightcache"
)

// Parameters of BenchmarkExpiryStampede.
const (
	stampedeReaders = 64                    // goroutines issuing Gets
	stampedeKeys    = 100                   // hot keys, read uniformly
	stampedeTTL     = 50 * time.Millisecond // Config.TTL
	stampedeFetch   = 20 * time.Millisecond // simulated I/O latency of a fetch
	stampedeBatch   = 64                    // Gets a reader makes between yields
	stampedeCycles  = 3                     // untimed TTL+fetch cycles before timing
)

// BenchmarkExpiryStampede measures what happens when hot keys expire under
// load: 64 goroutines read 100 hot keys uniformly from a cache-mode Loader
// with a 50ms TTL, whose fetch takes 20ms (a timer, standing in for I/O).
// Each op is one Get; run it with -benchtime=2s (or longer) so that the timed
// run crosses many TTL periods:
//
//	go test -run '^$' -bench ExpiryStampede -benchtime=2s .
//
// Before timing, all keys are warmed at once, and then the readers run
// untimed for three TTL+fetch cycles, by which time the keys' expiries, which
// start out together, have drifted apart with the spread of fetch times. The
// timed run so starts in the steady state whatever its length, which keeps
// the testing package's b.N estimate honest: a short run that crossed no
// expiry would predict the cost of a Get from hits alone, and the stale=0 run
// sized from it would last about a minute instead of two seconds.
//
// Sub-benchmarks:
//
//   - stale=0: no stale window; an expired key is a miss and every reader
//     of it blocks on the one fetch (they share it, but they wait).
//   - stale=1s: stale-while-revalidate; readers of an expired key get the
//     stale value at once while one background refresh runs.
//   - noexpiry: TTL of an hour, the hit path alone, as a baseline for the
//     latencies of the other two.
//
// Readers claim Gets in batches of 64 and yield the processor
// (runtime.Gosched, outside the timed span) after each batch, standing in for
// the rest of a request handler's work. Without it, 64 readers that never
// block saturate the 2 cores so completely that the Go scheduler leaves the
// refresh goroutines and their timer wake-ups queued for up to the whole
// 1s stale window: then stale=1s reports most Gets stale, far fewer fetches
// than expiries and some Gets blocked at the end of the window, which
// measures the scheduler rather than the Loader.
//
// Besides ns/op (wall time per Get across all readers) it reports:
//
//   - p50-ns, p99-ns: per-Get latency percentiles, from per-reader log-linear
//     histograms (about 3% resolution) merged after the run.
//   - fetches/key/expiry: (Loads + Refreshes during the run) divided by
//     (100 keys × elapsed/TTL). An entry's TTL starts when its fetch ends, so
//     a key cycles every TTL + fetch time (plus the delay in scheduling the
//     fetch's goroutine on a busy machine) at best: one fetch per key per
//     expiry shows here as TTL/(TTL+fetch) ≈ 0.71 or a little less, not 1.
//   - fetches/key/cycle: the same count divided by (100 keys ×
//     elapsed/(TTL + mean fetch duration)): 1 for one fetch per key per
//     expiry, a little less for the scheduling delay, which the mean does not
//     count. With stale=0 it is lower still: once every reader is blocked on
//     some fetch, nobody Gets a newly expired key until one is released.
//   - dup-fetches/fetch: the fraction of fetches that began while another
//     fetch of the same key was running; 0 when the Loader never fetches a
//     key twice at once.
//   - blocked-gets/op: Misses / Gets, the fraction of Gets that waited for a
//     fetch. stale-hits/op: StaleHits / Gets.
func BenchmarkExpiryStampede(b *testing.B) {
	cases := []struct {
		name       string
		ttl, stale time.Duration
	}{
		{"stale=0", stampedeTTL, 0},
		{"stale=1s", stampedeTTL, time.Second},
		{"noexpiry", time.Hour, 0},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			benchmarkExpiryStampede(b, tc.ttl, tc.stale)
		})
	}
}

func benchmarkExpiryStampede(b *testing.B, ttl, stale time.Duration) {
	keys := make([]string, stampedeKeys)
	index := make(map[string]int, stampedeKeys) // read-only once built
	for i := range keys {
		keys[i] = "hot:" + strconv.Itoa(i)
		index[keys[i]] = i
	}
	var (
		fetches, dups atomic.Int64
		running       [stampedeKeys]atomic.Int32 // fetches of each key running now
	)
	fetch := func(ctx context.Context, key string) (int, error) {
		r := &running[index[key]]
		if r.Add(1) > 1 {
			dups.Add(1)
		}
		defer r.Add(-1)
		fetches.Add(1)
		t := time.NewTimer(stampedeFetch)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
		return len(key), nil
	}
	l, err := flightcache.New(fetch, flightcache.Config{
		Mode:       flightcache.ModeCache,
		MaxEntries: 2 * stampedeKeys,
		TTL:        ttl,
		StaleTTL:   stale,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()

	// Warm every key at once, so that warming takes one fetch time.
	var warm sync.WaitGroup
	for _, k := range keys {
		warm.Go(func() {
			if _, err := l.Get(ctx, k); err != nil {
				b.Error(err)
			}
		})
	}
	warm.Wait()

	// Untimed steady-state phase; none for a TTL that never runs out.
	var warmFor time.Duration
	if ttl < time.Minute {
		warmFor = stampedeCycles * (ttl + stampedeFetch)
	}
	warmStart := time.Now()

	hists := make([]*stampedeHist, stampedeReaders)
	for i := range hists {
		hists[i] = new(stampedeHist)
	}
	var (
		claimed atomic.Int64 // Gets handed out to readers
		errs    atomic.Int64
		ready   sync.WaitGroup
		done    sync.WaitGroup
		start   = make(chan struct{})
		n       = int64(b.N)
	)
	for r := range stampedeReaders {
		ready.Add(1)
		done.Add(1)
		go func(h *stampedeHist, rng uint64) {
			defer done.Done()
			for time.Since(warmStart) < warmFor {
				if _, err := l.Get(ctx, keys[stampedeNext(&rng)]); err != nil {
					errs.Add(1)
				}
			}
			ready.Done()
			<-start
			for {
				hi := claimed.Add(stampedeBatch)
				lo := hi - stampedeBatch
				if lo >= n {
					return
				}
				for range min(hi, n) - lo {
					k := keys[stampedeNext(&rng)]
					t0 := time.Now()
					_, err := l.Get(ctx, k)
					h.record(time.Since(t0))
					if err != nil {
						errs.Add(1)
					}
				}
				runtime.Gosched() // untimed: see stampedeBatch
			}
		}(hists[r], 0x9E3779B97F4A7C15*uint64(r+1))
	}
	ready.Wait()

	before := l.Stats()
	fetches0, dups0 := fetches.Load(), dups.Load()
	b.ReportAllocs()
	b.ResetTimer()
	began := time.Now()
	close(start)
	done.Wait()
	elapsed := time.Since(began)
	b.StopTimer()
	after := l.Stats()
	fetched, duplicated := fetches.Load()-fetches0, dups.Load()-dups0

	if e := errs.Load(); e > 0 {
		b.Errorf("%d Gets failed", e)
	}

	var all stampedeHist
	for _, h := range hists {
		all.merge(h)
	}
	b.ReportMetric(float64(all.quantile(0.50)), "p50-ns")
	b.ReportMetric(float64(all.quantile(0.99)), "p99-ns")

	gets := float64((after.Hits + after.Misses) - (before.Hits + before.Misses))
	if gets != float64(b.N) {
		b.Errorf("Stats counted %v Gets (Hits + Misses), want b.N = %d", gets, b.N)
	}
	if after.Misses != after.Loads+after.Shared {
		b.Errorf("Stats: Misses = %d, want Loads + Shared = %d", after.Misses, after.Loads+after.Shared)
	}
	if gets > 0 {
		b.ReportMetric(float64(after.Misses-before.Misses)/gets, "blocked-gets/op")
		b.ReportMetric(float64(after.StaleHits-before.StaleHits)/gets, "stale-hits/op")
	}
	if ttl < time.Minute && elapsed > 0 {
		loads := float64((after.Loads + after.Refreshes) - (before.Loads + before.Refreshes))
		periods := float64(elapsed) / float64(ttl)
		b.ReportMetric(loads/(stampedeKeys*periods), "fetches/key/expiry")
		mean := stampedeFetch
		if c := after.LoadDuration.Count - before.LoadDuration.Count; c > 0 {
			mean = (after.LoadDuration.Sum - before.LoadDuration.Sum) / time.Duration(c)
		}
		cycles := float64(elapsed) / float64(ttl+mean)
		b.ReportMetric(loads/(stampedeKeys*cycles), "fetches/key/cycle")
	}
	if fetched > 0 {
		b.ReportMetric(float64(duplicated)/float64(fetched), "dup-fetches/fetch")
	}
}

// stampedeNext advances the xorshift64 state *rng (never 0) and returns a
// key index in [0, stampedeKeys) by multiply-shift.
func stampedeNext(rng *uint64) int {
	x := *rng
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	*rng = x
	return int((x >> 32) * stampedeKeys >> 32)
}

// stampedeHist is a log-linear latency histogram in nanoseconds: exact below
// 16ns, then 16 buckets per power of two (under 3.2% error). A reader owns
// one, so recording takes neither a lock nor an allocation.
type stampedeHist [61 * 16]uint64

// stampedeBucket returns the bucket of v.
func stampedeBucket(v uint64) int {
	if v < 16 {
		return int(v)
	}
	e := bits.Len64(v) - 1 // 4..63
	return (e-3)*16 + int(v>>(e-4)&15)
}

// stampedeBucketValue returns the middle of bucket i.
func stampedeBucketValue(i int) uint64 {
	if i < 16 {
		return uint64(i)
	}
	e, sub := i/16+3, uint64(i%16)
	return (16+sub)<<(e-4) + (1<<(e-4))/2
}

func (h *stampedeHist) record(d time.Duration) {
	h[stampedeBucket(uint64(max(d, 0)))]++
}

func (h *stampedeHist) merge(o *stampedeHist) {
	for i, c := range o {
		h[i] += c
	}
}

// quantile returns the value below which a fraction q of the observations
// fall (0 for an empty histogram).
func (h *stampedeHist) quantile(q float64) uint64 {
	var total uint64
	for _, c := range h {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := max(uint64(q*float64(total)+0.5), 1)
	var seen uint64
	for i, c := range h {
		seen += c
		if seen >= rank {
			return stampedeBucketValue(i)
		}
	}
	return stampedeBucketValue(len(h) - 1)
}
