package flightcache_test

// Promise 2, thrash: 32 goroutines run random operations over a few
// hundred keys (Get with live, cancelled and expiring contexts, GetMany,
// Set, Invalidate, InvalidateAll, Refresh, clock advances), against fetches
// that return values, not-found, errors, panic, call runtime.Goexit or are
// slow. Every value and error is checked to belong to the key asked for; a
// watchdog fails the test with every goroutine's stack if nothing
// progresses for 30 s; at rest the counter identities hold, Len stays
// within MaxEntries, InFlight is 0 and no goroutine is left.
//
// CI size: 32 x 2,000 operations per configuration. Full size:
//
//	FLIGHTCACHE_STRESS=1 go test -race -run TestThrash -timeout 60m .

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/flightcache/flightcache"
)

// errThrash is the transient error of thrash fetches.
var errThrash = errors.New("thrash: backend hiccup")

// relKeyTag marks a value or error with the key it was made for.
func relKeyTag(key string) string { return "[key=" + key + "]" }

// relCheckKey fails when text carries a key tag of another key.
func relCheckKey(key, text string) error {
	i := strings.Index(text, "[key=")
	if i < 0 {
		return nil
	}
	if !strings.HasPrefix(text[i:], relKeyTag(key)) {
		return fmt.Errorf("got %q for key %q: another key's result", text, key)
	}
	return nil
}

// relCountingHandler is a slog.Handler that counts records; it is safe for
// concurrent use.
type relCountingHandler struct{ n atomic.Int64 }

func (h *relCountingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *relCountingHandler) Handle(context.Context, slog.Record) error {
	h.n.Add(1)
	return nil
}
func (h *relCountingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *relCountingHandler) WithGroup(string) slog.Handler      { return h }

// relAdvancer is a Clock that tests move by hand.
type relAdvancer interface {
	flightcache.Clock
	Advance(time.Duration)
}

// thrashBackend is the fetch and batch fetch of a thrash run.
type thrashBackend struct {
	fetches, batches atomic.Int64
	// noGoexit: fetch never calls runtime.Goexit (with InlineFetch it
	// would end the worker that runs the load).
	noGoexit bool
}

func (b *thrashBackend) slow(ctx context.Context) error {
	t := time.NewTimer(time.Duration(rand.IntN(300)) * time.Microsecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (b *thrashBackend) fetch(ctx context.Context, key string) (string, error) {
	n := b.fetches.Add(1)
	switch r := rand.IntN(100); {
	case r < 8:
		return "", fmt.Errorf("%w %s", flightcache.ErrNotFound, relKeyTag(key))
	case r < 16:
		return "", fmt.Errorf("%w %s", errThrash, relKeyTag(key))
	case r < 20:
		panic("thrash panic " + relKeyTag(key))
	case r < 22:
		if !b.noGoexit {
			runtime.Goexit()
		}
	case r < 32:
		if err := b.slow(ctx); err != nil {
			return "", err
		}
	}
	return key + "|" + strconv.FormatInt(n, 10), nil
}

func (b *thrashBackend) batch(ctx context.Context, keys []string) (map[string]string, error) {
	n := b.batches.Add(1)
	switch r := rand.IntN(100); {
	case r < 5:
		return nil, fmt.Errorf("%w: batch of %d", errThrash, len(keys))
	case r < 7:
		panic("thrash batch panic")
	case r < 8:
		runtime.Goexit()
	case r < 20:
		if err := b.slow(ctx); err != nil {
			return nil, err
		}
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		if rand.IntN(10) != 0 {
			out[k] = k + "|b" + strconv.FormatInt(n, 10)
		}
	}
	return out, nil
}

// thrashConfig is one configuration the thrash runs against.
type thrashConfig struct {
	name    string
	cfg     flightcache.Config
	keys    int
	loaders int  // > 1: instances sharing one fake Remote
	remote  bool // use the shared tier
}

// inline reports whether Gets with a context that cannot be cancelled run
// their loads themselves.
func (tc thrashConfig) inline() bool { return tc.cfg.InlineFetch && tc.cfg.BatchWindow == 0 }

func thrashConfigs() []thrashConfig {
	base := flightcache.Config{
		Mode: flightcache.ModeCache, MaxEntries: 128,
		TTL: 20 * time.Millisecond, StaleTTL: 20 * time.Millisecond, NegativeTTL: 10 * time.Millisecond,
		Jitter: 0.2, EarlyRefresh: true, EarlyRefreshBeta: 2,
		FetchTimeout: 30 * time.Second, MaxConcurrentFetches: 8, MaxBatchSize: 7,
	}
	flight := base
	flight.Mode = flightcache.ModeFlight
	micro := base
	micro.MaxEntries, micro.BatchWindow, micro.MaxBatchSize, micro.MaxConcurrentFetches = 64, 50*time.Microsecond, 16, 0
	shared := base
	shared.RemoteTTL, shared.RemoteLeaseTimeout = 30*time.Millisecond, time.Second
	inlineCache := base
	inlineCache.InlineFetch = true
	// flight mode, inline loads on reused calls: no slot to wait for, no timing.
	inlineFlight := flight
	inlineFlight.InlineFetch, inlineFlight.DisableLoadTiming, inlineFlight.EarlyRefresh = true, true, false
	inlineFlight.MaxConcurrentFetches = 0
	return []thrashConfig{
		{name: "cache-inline", cfg: inlineCache, keys: 300, loaders: 1},
		{name: "flight-inline", cfg: inlineFlight, keys: 300, loaders: 1},
		{name: "cache", cfg: base, keys: 300, loaders: 1},
		{name: "flight", cfg: flight, keys: 300, loaders: 1},
		{name: "microbatch", cfg: micro, keys: 200, loaders: 1},
		{name: "shared", cfg: shared, keys: 300, loaders: 2, remote: true},
	}
}

// thrashLoader is one Loader under thrash and the Gets it was asked.
type thrashLoader struct {
	l    *flightcache.Loader[string, string]
	gets atomic.Uint64 // Get calls, plus each distinct key of a GetMany
}

// thrashWorker runs ops random operations.
// With patient set, callers never give up early (no cancelled or expiring
// contexts).
func thrashWorker(seed uint64, ops int, loaders []*thrashLoader, keys []string, clock relAdvancer, maxEntries int, patient bool, w *relWatchdog, fail func(error)) {
	rng := rand.New(rand.NewPCG(seed, 0x7a3b))
	// check fails a result that is not key's: a value of another key, an
	// unexpected error, or a context error although the caller's context
	// (whose error is ctxErr) had not ended: "your context is yours".
	check := func(key, v string, err, ctxErr error) {
		if err == nil {
			if !strings.HasPrefix(v, key+"|") && v != "set|"+key {
				fail(fmt.Errorf("Get(%q) = %q: another key's value", key, v))
			}
			return
		}
		switch {
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			if ctxErr == nil {
				fail(fmt.Errorf("Get(%q) = %v, but the caller's context had not ended", key, err))
			}
		case errors.Is(err, flightcache.ErrNotFound), errors.Is(err, errThrash),
			errors.Is(err, flightcache.ErrPanic), errors.Is(err, flightcache.ErrGoexit):
			if e := relCheckKey(key, err.Error()); e != nil {
				fail(e)
			}
		default:
			fail(fmt.Errorf("Get(%q): unexpected error %v", key, err))
		}
	}
	ctxFor := func() (context.Context, context.CancelFunc) {
		n := rng.IntN(10)
		if patient {
			n = 9
		}
		switch n {
		case 0:
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		case 1:
			return context.WithTimeout(context.Background(), time.Duration(rng.IntN(200))*time.Microsecond)
		}
		return context.Background(), func() {}
	}
	key := func() string { return keys[rng.IntN(len(keys))] }
	for range ops {
		tl := loaders[rng.IntN(len(loaders))]
		l := tl.l
		switch n := rng.IntN(1000); {
		case n < 100: // GetMany
			ks := make([]string, 1+rng.IntN(8))
			distinct := map[string]bool{}
			for i := range ks {
				ks[i] = key()
				distinct[ks[i]] = true
			}
			ctx, cancel := ctxFor()
			res := l.GetMany(ctx, ks)
			ctxErr := ctx.Err()
			cancel()
			tl.gets.Add(uint64(len(distinct)))
			if res.Len() != len(distinct) {
				fail(fmt.Errorf("GetMany(%q): %d results for %d keys", ks, res.Len(), len(distinct)))
			}
			for k := range distinct {
				v, err := res.Get(k)
				check(k, v, err, ctxErr)
			}
		case n < 150:
			k := key()
			l.Set(k, "set|"+k)
		case n < 200:
			l.Invalidate(key())
		case n < 201:
			l.InvalidateAll()
		case n < 250:
			done := l.Refresh(context.Background(), key())
			if rng.IntN(2) == 0 {
				<-done
			}
		case n < 350:
			clock.Advance(time.Duration(rng.IntN(5_000_000)))
		case n < 400:
			s := l.Stats()
			if s.InFlight < 0 || s.Entries > maxEntries || l.Len() > maxEntries {
				fail(fmt.Errorf("InFlight %d, Entries %d, Len %d with MaxEntries %d", s.InFlight, s.Entries, l.Len(), maxEntries))
			}
		default: // Get
			k := key()
			ctx, cancel := ctxFor()
			v, err := l.Get(ctx, k)
			ctxErr := ctx.Err()
			cancel()
			tl.gets.Add(1)
			check(k, v, err, ctxErr)
		}
		w.tick()
	}
}

func TestThrash(t *testing.T) {
	const workers = 32
	ops := relSize(t, "FLIGHTCACHE_THRASH_OPS", 2000, 50_000)
	for _, tc := range thrashConfigs() {
		t.Run(tc.name, func(t *testing.T) {
			runThrash(t, tc, workers, ops)
		})
	}
}

func runThrash(t *testing.T, tc thrashConfig, workers, ops int) {
	ignore := goleak.IgnoreCurrent()
	start := time.Now()
	backend := &thrashBackend{noGoexit: tc.inline()}
	logs := &relCountingHandler{}
	clock := newClock() // a *fakeClock: the fake shared store reads it too
	cfg := tc.cfg
	cfg.Clock, cfg.Logger, cfg.Name = clock, slog.New(logs), tc.name
	var store *sharedStore
	if tc.remote {
		store = newSharedStore(clock)
	}
	var loaders []*thrashLoader
	for i := range tc.loaders {
		opts := []flightcache.Option[string, string]{flightcache.WithBatch(backend.batch)}
		if store != nil {
			opts = append(opts, flightcache.WithRemote[string, string](&fakeRemote{s: store, id: i}))
		}
		l, err := flightcache.New(backend.fetch, cfg, opts...)
		if err != nil {
			t.Fatal(err)
		}
		loaders = append(loaders, &thrashLoader{l: l})
	}
	keys := make([]string, tc.keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}

	// While the micro-batch defect is unfixed, the micro-batching
	// configuration runs with callers that never give up early.
	patient := cfg.BatchWindow > 0 && relKnown("microbatch-abandoned")
	if patient {
		t.Logf("known defect: %s; callers never give up early here", relKnownDefects["microbatch-abandoned"])
	}
	w := relNewWatchdog(30 * time.Second)
	var failures atomic.Int64
	fail := func(err error) {
		if failures.Add(1) <= 10 {
			t.Error(err)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			thrashWorker(uint64(i)+1, ops, loaders, keys, clock, cfg.MaxEntries, patient, w, fail)
		})
	}
	go func() {
		wg.Wait()
		close(done)
	}()
	relAwait(t, w, done, "thrash")

	// Quiesce: wait for every refresh and load the workers left running.
	for _, tl := range loaders {
		for _, k := range keys {
			select {
			case <-tl.l.Refresh(context.Background(), k):
			case <-w.stalled:
				t.Fatalf("a load never ended; all goroutines:\n%s", relStacks())
			}
			w.tick()
		}
		for tl.l.Stats().InFlight != 0 {
			select {
			case <-w.stalled:
				t.Fatalf("InFlight stays %d; all goroutines:\n%s", tl.l.Stats().InFlight, relStacks())
			default:
				runtime.Gosched()
			}
		}
	}
	w.close()

	var total flightcache.Stats
	var gets uint64
	for i, tl := range loaders {
		s := tl.l.Stats()
		g := tl.gets.Load()
		gets += g
		if s.Hits+s.Misses != g {
			t.Errorf("loader %d: Hits %d + Misses %d = %d, want Gets = %d", i, s.Hits, s.Misses, s.Hits+s.Misses, g)
		}
		if s.Misses != s.Loads+s.Shared {
			t.Errorf("loader %d: Misses %d, want Loads %d + Shared %d = %d", i, s.Misses, s.Loads, s.Shared, s.Loads+s.Shared)
		}
		if s.InFlight != 0 {
			t.Errorf("loader %d: InFlight %d at rest", i, s.InFlight)
		}
		if n := tl.l.Len(); n > cfg.MaxEntries || cfg.Mode == flightcache.ModeFlight && n != 0 {
			t.Errorf("loader %d: Len %d, MaxEntries %d, mode %v", i, n, cfg.MaxEntries, cfg.Mode)
		}
		total.Hits += s.Hits
		total.Misses += s.Misses
		total.Shared += s.Shared
		total.Loads += s.Loads
		total.Panics += s.Panics
		total.Abandoned += s.Abandoned
		total.Evictions += s.Evictions
		total.Refreshes += s.Refreshes
		total.StaleHits += s.StaleHits
		total.BatchLoads += s.BatchLoads
		total.RemoteHits += s.RemoteHits
	}
	for i, tl := range loaders {
		if err := tl.l.Close(); err != nil {
			t.Error(err)
		}
		if s := tl.l.Stats(); s.InFlight != 0 {
			t.Errorf("loader %d: InFlight %d after Close", i, s.InFlight)
		}
	}
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("goroutines left after Close: %v", err)
	}
	t.Logf("thrash %s: %d goroutines x %d ops = %d operations (%d Gets) in %v; hits %d, misses %d, shared %d, loads %d, "+
		"panics+goexits %d, abandoned %d, evictions %d, refreshes %d, stale hits %d, batch fetches %d, remote hits %d, fetches %d, log records %d; goroutines left: 0",
		tc.name, workers, ops, workers*ops, gets, time.Since(start).Round(time.Millisecond), total.Hits, total.Misses, total.Shared, total.Loads,
		total.Panics, total.Abandoned, total.Evictions, total.Refreshes, total.StaleHits, total.BatchLoads, total.RemoteHits,
		backend.fetches.Load(), logs.n.Load())
}
