package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// StampedeConfig is an expiry stampede: Readers goroutines read Keys hot
// keys uniformly from a cache whose entries live TTL and whose fetch takes
// FetchTime, for Duration.
type StampedeConfig struct {
	Readers   int
	Keys      int
	TTL       time.Duration
	StaleTTL  time.Duration // for the Stale libraries; 0: DefaultStaleTTL
	FetchTime time.Duration
	Duration  time.Duration
	// WarmCycles is the number of TTL+FetchTime periods the readers run
	// untimed first, so that the keys' expiries, which start out together,
	// have spread out and the timed run starts in the steady state.
	WarmCycles int
	// Batch is the number of Gets a reader makes between two yields of the
	// processor (runtime.Gosched, untimed), standing in for the rest of a
	// request handler's work. Without it 64 readers that never block keep
	// the scheduler from running the fetches' timer wake-ups for long
	// stretches, which measures the scheduler rather than the cache.
	Batch int
}

// DefaultStampede is the stampede: 64 readers on 100 hot keys,
// TTL 50ms, a 20ms fetch, for 3s.
var DefaultStampede = StampedeConfig{
	Readers: 64, Keys: 100, TTL: 50 * time.Millisecond, FetchTime: 20 * time.Millisecond,
	Duration: 3 * time.Second, WarmCycles: 3, Batch: 64,
}

// StampedeResult is what a stampede measured in its timed window.
type StampedeResult struct {
	Gets    uint64
	Elapsed time.Duration
	// Fetches counts fetches started; Overlaps those that started while
	// another fetch of the same key was running; Early those that started
	// while the value the key's previous fetch returned was still fresh
	// (less than TTL−EarlySlack after that fetch returned): more than one
	// fetch per expiry.
	Fetches, Overlaps, Early int64
	// MeanFetch is the mean duration of the fetches that ended.
	MeanFetch time.Duration
	// Latency of each Get.
	P50, P99, Max time.Duration
	// Slow counts Gets that took at least SlowGet: those that waited for a
	// fetch.
	Slow   uint64
	Errors int64
}

// EarlySlack is the tolerance of StampedeResult.Early for a library whose
// clock is coarser than the runtime's.
const EarlySlack = time.Millisecond

// SlowGet is the latency from which a Get counts as having waited for a
// fetch.
const SlowGet = time.Millisecond

// FetchesPerCycle returns fetches per key per TTL+fetch cycle: 1 when each
// key is fetched once each time it expires (an entry's TTL starts when its
// fetch ends, so a key's cycle is TTL + fetch time).
func (r StampedeResult) FetchesPerCycle(cfg StampedeConfig) float64 {
	mean := r.MeanFetch
	if mean == 0 {
		mean = cfg.FetchTime
	}
	cycles := float64(r.Elapsed) / float64(cfg.TTL+mean)
	if cycles == 0 {
		return 0
	}
	return float64(r.Fetches) / (float64(cfg.Keys) * cycles)
}

// Stampede runs an expiry stampede against lib.
func Stampede(lib Library, cfg StampedeConfig) (StampedeResult, error) {
	keys := Keys("hot:", cfg.Keys)
	var (
		fetches, overlaps, early, fetchNanos, fetchesEnded atomic.Int64
		running                                            = make([]atomic.Int32, cfg.Keys)
		lastEnd                                            = make([]atomic.Int64, cfg.Keys) // nanotime of each key's last fetch return
	)
	fetch := func(ctx context.Context, key string) (string, error) {
		i := KeyIndex(key, len("hot:"))
		t0 := nanotime()
		if end := lastEnd[i].Load(); end != 0 && t0 < end+int64(cfg.TTL-EarlySlack) {
			early.Add(1)
		}
		if running[i].Add(1) > 1 {
			overlaps.Add(1)
		}
		defer running[i].Add(-1)
		fetches.Add(1)
		if !wait(cfg.FetchTime, ctx.Done()) {
			return "", ctx.Err()
		}
		end := nanotime()
		lastEnd[i].Store(end)
		fetchNanos.Add(end - t0)
		fetchesEnded.Add(1)
		return key, nil
	}
	c, err := lib.Open(Setup{Capacity: 2 * cfg.Keys, TTL: cfg.TTL, StaleTTL: cfg.StaleTTL, Fetch: fetch})
	if err != nil {
		return StampedeResult{}, err
	}
	defer c.Close()
	ctx := context.Background()

	// Warm every key at once, so that warming takes one fetch time.
	var warm sync.WaitGroup
	var errs atomic.Int64
	for _, k := range keys {
		warm.Go(func() {
			if _, err := c.Get(ctx, k); err != nil {
				errs.Add(1)
			}
		})
	}
	warm.Wait()
	if e := errs.Load(); e > 0 {
		return StampedeResult{}, fmt.Errorf("bench: %s: %d Gets failed while warming", lib.Name, e)
	}

	var warmFor time.Duration // none for a TTL that never runs out here
	if cfg.TTL < time.Minute {
		warmFor = time.Duration(cfg.WarmCycles) * (cfg.TTL + cfg.FetchTime)
	}
	warmStart := time.Now()
	hists := make([]Hist, cfg.Readers)
	var (
		gets        atomic.Uint64
		stop        atomic.Bool
		ready, done sync.WaitGroup
		start       = make(chan struct{})
	)
	for r := range cfg.Readers {
		ready.Add(1)
		done.Add(1)
		go func(h *Hist, rng uint64) {
			defer done.Done()
			for time.Since(warmStart) < warmFor {
				if _, err := c.Get(ctx, keys[nextIndex(&rng, cfg.Keys)]); err != nil {
					errs.Add(1)
				}
			}
			ready.Done()
			<-start
			var n uint64
			for !stop.Load() {
				for range cfg.Batch {
					k := keys[nextIndex(&rng, cfg.Keys)]
					t0 := time.Now()
					v, err := c.Get(ctx, k)
					h.Record(time.Since(t0))
					if err != nil || v != k {
						errs.Add(1)
					}
				}
				n += uint64(cfg.Batch)
				runtime.Gosched()
			}
			gets.Add(n)
		}(&hists[r], 0x9E3779B97F4A7C15*uint64(r+1))
	}
	ready.Wait()
	errs.Store(0) // errors while warming are not the timed run's
	f0, o0, y0, n0, e0 := fetches.Load(), overlaps.Load(), early.Load(), fetchNanos.Load(), fetchesEnded.Load()
	began := time.Now()
	close(start)
	stopTimer := time.AfterFunc(cfg.Duration, func() { stop.Store(true) })
	defer stopTimer.Stop()
	done.Wait()
	res := StampedeResult{
		Gets:     gets.Load(),
		Elapsed:  time.Since(began),
		Fetches:  fetches.Load() - f0,
		Overlaps: overlaps.Load() - o0,
		Early:    early.Load() - y0,
		Errors:   errs.Load(),
	}
	if ended := fetchesEnded.Load() - e0; ended > 0 {
		res.MeanFetch = time.Duration((fetchNanos.Load() - n0) / ended)
	}
	var all Hist
	for i := range hists {
		all.Merge(&hists[i])
	}
	res.P50, res.P99, res.Max = all.Quantile(0.5), all.Quantile(0.99), all.Max()
	res.Slow = all.Above(SlowGet)
	if res.Errors > 0 {
		return res, fmt.Errorf("bench: %s: %d Gets failed in the stampede", lib.Name, res.Errors)
	}
	return res, nil
}

// nextIndex advances the xorshift64 state *rng (never 0) and returns an
// index in [0, n) by multiply-shift.
func nextIndex(rng *uint64, n int) int {
	x := *rng
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	*rng = x
	return int((x >> 32) * uint64(n) >> 32)
}
