package flightcache_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flightcache/flightcache"
)

// scripted is a fetch whose answers are set by the test: each call takes
// the next outcome of the key's script, or the default.
type scripted struct {
	mu      sync.Mutex
	calls   map[string]int
	outcome func(key string, n int) (string, error) // n counts from 1 per key
	hold    chan struct{}                           // when non-nil, each call waits for it
	clock   *fakeClock                              // when non-nil, each call advances it by took
	took    time.Duration
	total   atomic.Int64
}

func (s *scripted) fetch(ctx context.Context, key string) (string, error) {
	s.mu.Lock()
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls[key]++
	n := s.calls[key]
	s.mu.Unlock()
	s.total.Add(1)
	if s.hold != nil {
		select {
		case <-s.hold:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if s.clock != nil {
		s.clock.Advance(s.took)
	}
	if s.outcome != nil {
		return s.outcome(key, n)
	}
	return fmt.Sprintf("%s#%d", key, n), nil
}

func (s *scripted) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[key]
}

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(1_800_000_000_000_000_000)
	return c
}

func tierCfg(clock *fakeClock) flightcache.Config {
	return flightcache.Config{
		Mode: flightcache.ModeCache, MaxEntries: 100, Clock: clock,
		TTL: 10 * time.Second, StaleTTL: 5 * time.Second,
	}
}

// cachedThenStale loads "k" through l and moves clock 10s on: past
// tierCfg's TTL, into its stale window.
func cachedThenStale(t *testing.T, l *flightcache.Loader[string, string], clock *fakeClock) {
	t.Helper()
	_, err := get(t, l, "k")
	require.NoError(t, err)
	clock.Advance(10 * time.Second)
}

func get(t *testing.T, l *flightcache.Loader[string, string], key string) (string, error) {
	t.Helper()
	return l.Get(context.Background(), key)
}

func TestTierBoundariesExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := newClock()
		f := &scripted{}
		l := mustNew(t, f.fetch, tierCfg(clock))

		v, _ := get(t, l, "k")
		require.Equal(t, "k#1", v)
		clock.Advance(10*time.Second - 1)
		v, _ = get(t, l, "k")
		require.Equal(t, "k#1", v, "fresh at TTL-1ns")
		synctest.Wait()
		require.Equal(t, 1, f.count("k"), "a fresh hit starts no refresh")
		require.Zero(t, l.Stats().StaleHits)

		clock.Advance(1)
		v, _ = get(t, l, "k")
		require.Equal(t, "k#1", v, "stale at exactly TTL: the old value at once")
		synctest.Wait()
		require.Equal(t, 2, f.count("k"), "the stale hit started one refresh")
		s := l.Stats()
		require.EqualValues(t, 1, s.StaleHits)
		require.EqualValues(t, 1, s.Refreshes)
		require.EqualValues(t, 1, s.Loads, "a refresh is not a load")

		v, _ = get(t, l, "k")
		require.Equal(t, "k#2", v, "the refresh replaced the entry, fresh again")

		// Let the refreshed entry go through its whole life untouched.
		clock.Advance(15*time.Second - 1)
		v, _ = get(t, l, "k")
		require.Equal(t, "k#2", v, "still stale at TTL+StaleTTL-1ns")
		synctest.Wait()
		l.Invalidate("k") // drop it, then write one whose refresh cannot run
		l.Set("k", "set")
		f.outcome = func(key string, n int) (string, error) { return "", errors.New("down") }
		clock.Advance(15*time.Second - 1)
		v, _ = get(t, l, "k")
		require.Equal(t, "set", v, "Set values have the stale window too")
		synctest.Wait()
		clock.Advance(1)
		_, err := get(t, l, "k")
		require.EqualError(t, err, "down", "expired at exactly TTL+StaleTTL: a blocking miss")
		s = l.Stats()
		requireBalanced(t, s, 7)
	})
}

func TestStaleBurstStartsOneRefreshAndNobodyWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := newClock()
		f := &scripted{}
		l := mustNew(t, f.fetch, tierCfg(clock))
		cachedThenStale(t, l, clock)
		f.hold = make(chan struct{}) // the refresh will block

		const n = 1000
		var wg sync.WaitGroup
		var stale atomic.Int64
		for range n {
			wg.Go(func() {
				if v, err := l.Get(context.Background(), "k"); err == nil && v == "k#1" {
					stale.Add(1)
				}
			})
		}
		wg.Wait() // every Get returned while the refresh is still blocked
		require.EqualValues(t, n, stale.Load(), "all got the stale value without waiting")
		s := l.Stats()
		require.EqualValues(t, 1, s.Refreshes, "exactly one refresh")
		require.EqualValues(t, n, s.StaleHits)
		require.EqualValues(t, 1, s.InFlight)
		require.Equal(t, 2, f.count("k"))

		close(f.hold)
		synctest.Wait()
		v, _ := get(t, l, "k")
		require.Equal(t, "k#2", v)
		requireBalanced(t, l.Stats(), n+2)
	})
}

// recordHandler is a slog.Handler that keeps the records it receives.
type recordHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r.Clone())
	h.mu.Unlock()
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordHandler) messages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.records {
		out = append(out, r.Level.String()+" "+r.Message)
	}
	return out
}

func TestRefreshFailureServesStaleWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := newClock()
		var down atomic.Bool
		f := &scripted{outcome: func(key string, n int) (string, error) {
			if down.Load() {
				return "", errors.New("backend down")
			}
			return fmt.Sprintf("%s#%d", key, n), nil
		}}
		logs := &recordHandler{}
		cfg := tierCfg(clock)
		cfg.StaleTTL = 20 * time.Second
		cfg.Logger = slog.New(logs)
		l := mustNew(t, f.fetch, cfg)
		_, err := get(t, l, "k")
		require.NoError(t, err)
		down.Store(true)
		clock.Advance(10 * time.Second) // stale from here until +20s

		// Hammer the stale key; record when refreshes happen.
		var attempts []time.Duration
		start := clock.Now()
		for range 200 { // 200 Gets, 100ms apart: 20s, the whole window
			v, err := get(t, l, "k")
			require.NoError(t, err, "stale-if-error: failures are not returned")
			require.Equal(t, "k#1", v)
			synctest.Wait()
			if c := f.count("k") - 1; c > len(attempts) {
				attempts = append(attempts, clock.Now().Sub(start))
			}
			clock.Advance(100 * time.Millisecond)
		}
		// Refreshes at 0, then backoffs of 1s, 2s, 4s, 8s: at 0, 1, 3, 7, 15s.
		require.Equal(t, []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second}, attempts)
		s := l.Stats()
		require.EqualValues(t, 5, s.RefreshErrors, "each failed attempt counts once")
		require.EqualValues(t, 5, s.Refreshes)
		require.Zero(t, s.LoadErrors)
		require.Len(t, logs.messages(), 5)
		require.Contains(t, logs.messages()[0], "WARN flightcache: background refresh failed")

		// The hard expiry still applies: past TTL+StaleTTL the error shows.
		_, err = get(t, l, "k")
		require.EqualError(t, err, "backend down")

		// Once the backend is back, a load restores the key and backoff is gone.
		down.Store(false)
		v, err := get(t, l, "k")
		require.NoError(t, err)
		require.Equal(t, "k#8", v)
	})
}

func TestBackoffIsCappedAtMinutes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := newClock()
		f := &scripted{outcome: func(key string, n int) (string, error) {
			if n > 1 {
				return "", errors.New("down")
			}
			return "v", nil
		}}
		cfg := tierCfg(clock)
		cfg.StaleTTL = 24 * time.Hour
		l := mustNew(t, f.fetch, cfg)
		cachedThenStale(t, l, clock)
		var gaps []time.Duration
		last := clock.Now()
		for range 20 * 60 { // 20 hours in 1-minute steps
			_, err := get(t, l, "k")
			require.NoError(t, err)
			synctest.Wait()
			if n := f.count("k") - 1; n > len(gaps) {
				gaps = append(gaps, clock.Now().Sub(last))
				last = clock.Now()
			}
			clock.Advance(time.Minute)
		}
		require.Greater(t, len(gaps), 200)
		for _, g := range gaps[10:] {
			require.Equal(t, 5*time.Minute, g, "backoff is capped at 5 minutes")
		}
	})
}

func TestNegativeCaching(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := newClock()
		notFound := fmt.Errorf("user 7: %w", flightcache.ErrNotFound)
		f := &scripted{outcome: func(key string, n int) (string, error) {
			switch key {
			case "missing":
				return "", notFound
			case "norows":
				return "", errNoRows
			case "flaky":
				return "", errors.New("connection reset")
			case "ctx":
				return "", fmt.Errorf("%w and %w", context.DeadlineExceeded, flightcache.ErrNotFound)
			}
			return key, nil
		}}
		cfg := tierCfg(clock)
		cfg.NegativeTTL = 3 * time.Second
		cfg.NotFound = func(err error) bool { return errors.Is(err, errNoRows) }
		l := mustNew(t, f.fetch, cfg)

		_, err := get(t, l, "missing")
		require.ErrorIs(t, err, flightcache.ErrNotFound)
		clock.Advance(3*time.Second - 1)
		_, err = get(t, l, "missing")
		require.Same(t, notFound, err, "the stored not-found error is returned as the fetch returned it")
		require.Equal(t, 1, f.count("missing"), "kept for NegativeTTL")
		clock.Advance(1)
		_, err = get(t, l, "missing")
		require.ErrorIs(t, err, flightcache.ErrNotFound)
		require.Equal(t, 2, f.count("missing"), "fetched again at exactly NegativeTTL, no stale window")

		for range 2 {
			_, err = get(t, l, "norows")
			require.ErrorIs(t, err, errNoRows)
		}
		require.Equal(t, 1, f.count("norows"), "the NotFound classifier is honoured")

		for range 2 {
			_, err = get(t, l, "flaky")
			require.Error(t, err)
			_, err = get(t, l, "ctx")
			require.ErrorIs(t, err, context.DeadlineExceeded)
		}
		require.Equal(t, 2, f.count("flaky"), "other errors are never cached")
		require.Equal(t, 2, f.count("ctx"), "context errors are never cached, whatever they wrap")

		s := l.Stats()
		require.EqualValues(t, 2, s.NegativeHits)
		requireBalanced(t, s, 9)
	})
}

var errNoRows = errors.New("sql: no rows in result set")

func TestCancelledCallerIsNeverCached(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := newClock()
		f := &scripted{hold: make(chan struct{})}
		cfg := tierCfg(clock)
		cfg.NegativeTTL = time.Minute
		l := mustNew(t, f.fetch, cfg)
		leaveWhileWaiting(t, l, "k")
		close(f.hold)
		synctest.Wait()
		v, err := get(t, l, "k")
		require.NoError(t, err, "the caller's cancellation was not stored")
		require.Equal(t, "k#1", v, "the load it started finished and was kept")
	})
}

func TestNegativeEntriesCountTowardMaxEntries(t *testing.T) {
	f := &scripted{outcome: func(key string, n int) (string, error) { return "", flightcache.ErrNotFound }}
	cfg := tierCfg(newClock())
	cfg.MaxEntries, cfg.NegativeTTL = 2, time.Minute
	l := mustNew(t, f.fetch, cfg)
	for _, k := range []string{"a", "b", "c"} {
		_, err := get(t, l, k)
		require.ErrorIs(t, err, flightcache.ErrNotFound)
	}
	require.Equal(t, 2, l.Len())
	require.EqualValues(t, 1, l.Stats().Evictions)
}

func TestPerEntryTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := newClock()
		ttls := map[string]time.Duration{"short": time.Second, "zero": 0, "negative": -time.Second}
		l := mustNew(t, func(ctx context.Context, key string) (string, error) {
			if ttl, ok := ttls[key]; ok {
				require.True(t, flightcache.SetTTL(ctx, ttl))
			}
			if key == "nostale" {
				flightcache.SetTTL(ctx, 2*time.Second)
				flightcache.SetStaleTTL(ctx, 0)
			}
			if key == "gone" {
				flightcache.SetTTL(ctx, 4*time.Second)
				return "", flightcache.ErrNotFound
			}
			return key + "@" + clock.Now().Format("05.000"), nil
		}, tierCfg(clock)) // TTL 10s, StaleTTL 5s, NegativeTTL 0

		first := map[string]string{}
		for _, k := range []string{"short", "zero", "negative", "nostale", "gone", "plain"} {
			v, err := get(t, l, k)
			if k == "gone" {
				require.ErrorIs(t, err, flightcache.ErrNotFound)
			} else {
				require.NoError(t, err)
			}
			first[k] = v
		}
		require.Equal(t, 4, l.Len(), "zero and negative TTLs are served but not kept")

		clock.Advance(time.Second - 1)
		for _, k := range []string{"short", "nostale", "plain"} {
			v, _ := get(t, l, k)
			require.Equal(t, first[k], v, k)
		}
		_, err := get(t, l, "gone")
		require.ErrorIs(t, err, flightcache.ErrNotFound, "a chosen TTL applies to not-found too, even with NegativeTTL 0")
		require.EqualValues(t, 0, l.Stats().Refreshes)

		clock.Advance(1) // "short" is stale now: its own TTL, the config's stale window
		v, _ := get(t, l, "short")
		require.Equal(t, first["short"], v)
		synctest.Wait()
		require.EqualValues(t, 1, l.Stats().Refreshes)

		clock.Advance(time.Second) // 2s: "nostale" has no stale window
		before := l.Stats().Loads
		v, _ = get(t, l, "nostale")
		require.NotEqual(t, first["nostale"], v, "expired with no stale window: fetched again")
		require.Equal(t, before+1, l.Stats().Loads)

		require.False(t, flightcache.SetTTL(context.Background(), time.Second), "outside a fetch")
		require.False(t, flightcache.SetStaleTTL(context.Background(), time.Second))
	})
}

func TestPerEntryTTLZeroDropsOnRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := newClock()
		var dontKeep atomic.Bool
		l := mustNew(t, func(ctx context.Context, key string) (string, error) {
			if dontKeep.Load() {
				flightcache.SetTTL(ctx, 0)
			}
			return "v", nil
		}, tierCfg(clock))
		_, err := get(t, l, "k")
		require.NoError(t, err)
		dontKeep.Store(true)
		clock.Advance(10 * time.Second)
		_, err = get(t, l, "k") // stale: refresh, whose result says "don't keep"
		require.NoError(t, err)
		synctest.Wait()
		require.Zero(t, l.Len(), "the stale entry is dropped, not served on")
	})
}

// lockedRand is a seeded, concurrency-safe Config.Rand.
func lockedRand(seed uint64) func() float64 {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		return r.Float64()
	}
}

func TestJitterStaysWithinBounds(t *testing.T) {
	clock := newClock()
	f := &scripted{}
	cfg := tierCfg(clock)
	cfg.TTL, cfg.StaleTTL, cfg.Jitter, cfg.MaxEntries = 100*time.Second, 0, 0.2, 2000
	cfg.Rand = lockedRand(42)
	l := mustNew(t, f.fetch, cfg)
	const n = 1000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprint(i)
		_, err := get(t, l, keys[i])
		require.NoError(t, err)
	}
	// Probe every key at a series of instants; a key fetched again has
	// expired. Probing refetches, so count expiries per probe window.
	expiredBy := func(d time.Duration) int {
		count := 0
		for _, k := range keys {
			if f.count(k) > 1 {
				count++
			}
		}
		return count
	}
	step := func(to time.Duration, at *time.Duration) {
		clock.Advance(to - *at)
		*at = to
		for _, k := range keys {
			if f.count(k) == 1 {
				_, _ = get(t, l, k)
			}
		}
	}
	var at time.Duration
	step(80*time.Second-1, &at)
	require.Zero(t, expiredBy(at), "nothing expires before TTL·(1−Jitter)")
	step(100*time.Second, &at)
	half := expiredBy(at)
	require.InDelta(t, n/2, half, n/10, "about half expire by TTL")
	step(119*time.Second, &at)
	require.Less(t, expiredBy(at), n, "some live on towards TTL·(1+Jitter)")
	step(120*time.Second, &at)
	require.Equal(t, n, expiredBy(at), "everything expired by TTL·(1+Jitter)")
}

func TestJitterExtremes(t *testing.T) {
	for _, tc := range []struct {
		u        float64
		lifetime time.Duration
	}{{0, 50 * time.Second}, {0.5, 100 * time.Second}, {math.Nextafter(1, 0), 150 * time.Second}} {
		clock := newClock()
		f := &scripted{}
		cfg := tierCfg(clock)
		cfg.TTL, cfg.StaleTTL, cfg.Jitter = 100*time.Second, 0, 0.5
		cfg.Rand = func() float64 { return tc.u }
		l := mustNew(t, f.fetch, cfg)
		_, _ = get(t, l, "k")
		clock.Advance(tc.lifetime - time.Millisecond)
		_, _ = get(t, l, "k")
		require.Equal(t, 1, f.count("k"), "u=%v", tc.u)
		clock.Advance(time.Millisecond)
		_, _ = get(t, l, "k")
		require.Equal(t, 2, f.count("k"), "u=%v", tc.u)
	}
}

func TestJitterOneNeverMeansForever(t *testing.T) {
	clock := newClock()
	f := &scripted{}
	cfg := tierCfg(clock)
	cfg.StaleTTL, cfg.Jitter = 0, 1
	cfg.Rand = func() float64 { return 0 } // TTL·(1−1) = 0 must not mean "never"
	l := mustNew(t, f.fetch, cfg)
	_, _ = get(t, l, "k")
	clock.Advance(time.Nanosecond)
	_, _ = get(t, l, "k")
	require.Equal(t, 2, f.count("k"))
}

func TestEarlyRefreshProbability(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := newClock()
		f := &scripted{clock: clock, took: time.Second} // each fetch "takes" 1s
		cfg := tierCfg(clock)
		cfg.TTL, cfg.StaleTTL, cfg.MaxEntries = time.Minute, 0, 10_000
		cfg.EarlyRefresh, cfg.EarlyRefreshBeta = true, 1
		cfg.Rand = lockedRand(7)
		l := mustNew(t, f.fetch, cfg)

		// XFetch fires when δ·β·(−ln u) ≥ time left, so with δ=1s, β=1 the
		// chance at r seconds before expiry is e^(−r).
		for _, r := range []time.Duration{3 * time.Second, time.Second, 200 * time.Millisecond} {
			const trials = 2000
			fired := 0
			for i := range trials {
				key := fmt.Sprintf("%v/%d", r, i)
				_, err := get(t, l, key) // loads; the entry expires 1 minute after the fetch
				require.NoError(t, err)
				clock.Advance(time.Minute - r)
				before := l.Stats().Refreshes
				_, err = get(t, l, key)
				require.NoError(t, err)
				synctest.Wait()
				if l.Stats().Refreshes > before {
					fired++
				}
			}
			want := math.Exp(-r.Seconds())
			assert.InDelta(t, want, float64(fired)/trials, 0.04, "r=%v", r)
		}
	})
}

func TestEarlyRefreshNeverRightAfterWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := newClock()
		f := &scripted{clock: clock, took: time.Second}
		cfg := tierCfg(clock)
		cfg.TTL, cfg.StaleTTL = time.Hour, 0
		cfg.EarlyRefresh, cfg.EarlyRefreshBeta = true, 10
		cfg.Rand = lockedRand(9)
		l := mustNew(t, f.fetch, cfg)
		_, err := get(t, l, "fetched")
		require.NoError(t, err)
		l.Set("set", "v")
		for range 10_000 {
			_, _ = get(t, l, "fetched")
		}
		synctest.Wait()
		require.Zero(t, l.Stats().Refreshes, "an hour from expiry, a 1s fetch is never refreshed early")

		clock.Advance(time.Hour - time.Millisecond)
		for range 1000 {
			_, _ = get(t, l, "set")
		}
		synctest.Wait()
		require.Zero(t, l.Stats().Refreshes, "a Set entry has no fetch duration: never early")
		_, _ = get(t, l, "fetched")
		synctest.Wait()
		require.EqualValues(t, 1, l.Stats().Refreshes, "a millisecond from expiry it fires (P≈0.999)")
		clock.Advance(time.Millisecond)
		_, _ = get(t, l, "fetched")
		require.EqualValues(t, 1, l.Stats().Loads, "refreshed before expiry: no blocking miss")
	})
}

func TestExplicitRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := newClock()
		f := &scripted{}
		l := mustNew(t, f.fetch, tierCfg(clock))
		_, err := get(t, l, "k")
		require.NoError(t, err)
		f.hold = make(chan struct{})
		done := l.Refresh(context.Background(), "k")
		synctest.Wait()
		v, _ := get(t, l, "k")
		require.Equal(t, "k#1", v, "the old value is served during the refresh")
		require.Equal(t, done, l.Refresh(context.Background(), "k"), "a second Refresh joins the first")
		close(f.hold)
		<-done
		v, _ = get(t, l, "k")
		require.Equal(t, "k#2", v)
		require.EqualValues(t, 1, l.Stats().Refreshes)

		flight := mustNew(t, f.fetch, flightcache.Config{})
		<-flight.Refresh(context.Background(), "k") // closed at once
		require.Equal(t, 2, f.count("k"), "no-op in flight mode")
	})
}

func TestWritesDuringRefreshWin(t *testing.T) {
	for _, write := range []string{"Set", "Invalidate"} {
		t.Run(write, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clock := newClock()
				f := &scripted{}
				l := mustNew(t, f.fetch, tierCfg(clock))
				cachedThenStale(t, l, clock)
				f.hold = make(chan struct{})
				v, _ := get(t, l, "k") // stale: starts the refresh
				require.Equal(t, "k#1", v)
				synctest.Wait()
				if write == "Set" {
					l.Set("k", "written")
				} else {
					l.Invalidate("k")
				}
				close(f.hold)
				synctest.Wait()
				v, _ = get(t, l, "k")
				if write == "Set" {
					require.Equal(t, "written", v, "the refresh did not store over the Set")
				} else {
					require.Equal(t, "k#3", v, "after Invalidate the next Get fetches afresh")
				}
			})
		})
	}
}

func TestMissDuringRefreshJoinsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := newClock()
		f := &scripted{}
		l := mustNew(t, f.fetch, tierCfg(clock))
		cachedThenStale(t, l, clock)
		f.hold = make(chan struct{})
		_, _ = get(t, l, "k") // stale hit: the refresh starts and blocks
		synctest.Wait()
		clock.Advance(5 * time.Second) // the stale window ends during the refresh
		res := make(chan result, 1)
		go func() {
			v, err := l.Get(context.Background(), "k")
			res <- result{v, err}
		}()
		synctest.Wait()
		close(f.hold)
		require.Equal(t, result{v: "k#2"}, <-res, "the missing Get joined the refresh")
		require.Equal(t, 2, f.count("k"))
		s := l.Stats()
		require.EqualValues(t, 1, s.Shared)
		requireBalanced(t, s, 3)
	})
}

func TestRefreshContextKeepsValuesNotCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type ctxKey struct{}
		clock := newClock()
		release := make(chan struct{})
		type seen struct {
			val any
			err error
		}
		seenc := make(chan seen, 1)
		var calls atomic.Int64
		l := mustNew(t, func(ctx context.Context, key string) (string, error) {
			if calls.Add(1) == 2 {
				<-release
				seenc <- seen{ctx.Value(ctxKey{}), ctx.Err()}
			}
			return "v", nil
		}, tierCfg(clock))
		cachedThenStale(t, l, clock)
		ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "req-9"))
		_, err := l.Get(ctx, "k")
		require.NoError(t, err)
		cancel() // the request that triggered the refresh is over
		close(release)
		got := <-seenc
		require.Equal(t, "req-9", got.val)
		require.NoError(t, got.err)
	})
}

func TestRefreshBoundedByFetchTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := newClock()
		var calls atomic.Int64
		ended := make(chan struct{})
		l := mustNew(t, func(ctx context.Context, key string) (string, error) {
			if calls.Add(1) > 1 {
				<-ctx.Done()
				close(ended)
				return "", ctx.Err()
			}
			return "v", nil
		}, func() flightcache.Config {
			c := tierCfg(clock)
			c.FetchTimeout = 3 * time.Second
			return c
		}())
		cachedThenStale(t, l, clock)
		start := time.Now()
		v, err := get(t, l, "k")
		require.NoError(t, err)
		require.Equal(t, "v", v)
		<-ended
		require.Equal(t, 3*time.Second, time.Since(start), "the refresh ran until FetchTimeout")
		synctest.Wait()
		require.EqualValues(t, 1, l.Stats().RefreshErrors)
		v, err = get(t, l, "k")
		require.NoError(t, err)
		require.Equal(t, "v", v, "a timed-out refresh is not cached; stale is served on")
	})
}

func TestCloseWithRefreshInFlight(t *testing.T) {
	clock := newClock()
	started := make(chan struct{})
	var calls atomic.Int64
	l, err := flightcache.New(func(ctx context.Context, key string) (string, error) {
		if calls.Add(1) > 1 {
			close(started)
			<-ctx.Done()
			return "", ctx.Err()
		}
		return "v", nil
	}, tierCfg(clock))
	require.NoError(t, err)
	_, err = l.Get(context.Background(), "k")
	require.NoError(t, err)
	clock.Advance(10 * time.Second)
	_, err = l.Get(context.Background(), "k")
	require.NoError(t, err)
	<-started
	require.EqualValues(t, 1, l.Stats().InFlight)
	require.NoError(t, l.Close())
	require.Zero(t, l.Stats().InFlight, "Close waited for the refresh")
}

func TestTiersAreNoOpsInFlightMode(t *testing.T) {
	clock := newClock()
	f := &scripted{outcome: func(key string, n int) (string, error) {
		if key == "missing" {
			return "", flightcache.ErrNotFound
		}
		return key, nil
	}}
	l := mustNew(t, f.fetch, flightcache.Config{
		Clock: clock, TTL: time.Minute, StaleTTL: time.Minute, NegativeTTL: time.Minute,
		Jitter: 0.5, EarlyRefresh: true,
	})
	for range 2 {
		_, _ = get(t, l, "k")
		_, _ = get(t, l, "missing")
	}
	require.Equal(t, 2, f.count("k"))
	require.Equal(t, 2, f.count("missing"))
	require.Zero(t, l.Len())
	s := l.Stats()
	require.Zero(t, s.Hits+s.NegativeHits+s.StaleHits+s.Refreshes)
}

func TestQueuedRefreshSurvivesAJoinerLeaving(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := newClock()
		f := &scripted{}
		cfg := tierCfg(clock)
		cfg.MaxConcurrentFetches = 1
		l := mustNew(t, f.fetch, cfg)
		cachedThenStale(t, l, clock)

		f.hold = make(chan struct{}) // "busy" takes the only fetch slot
		busy := make(chan result, 1)
		go func() {
			v, err := l.Get(context.Background(), "busy")
			busy <- result{v, err}
		}()
		synctest.Wait()
		_, err := get(t, l, "k") // stale: its refresh queues for the slot
		require.NoError(t, err)
		clock.Advance(5 * time.Second) // k expires; a Get joins the queued refresh
		leaveWhileWaiting(t, l, "k")
		close(f.hold)
		require.Equal(t, result{v: "busy#1"}, <-busy)
		synctest.Wait()
		require.Equal(t, 2, f.count("k"), "the refresh still ran once the slot was free")
		v, err := get(t, l, "k")
		require.NoError(t, err)
		require.Equal(t, "k#2", v)
	})
}
