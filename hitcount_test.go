package flightcache_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/flightcache/flightcache"
)

// TestDisableHitCounting: with Config.DisableHitCounting, no kind of hit
// (fresh, stale, negative) is counted in Hits, on every look-up path (the
// lock-free SIEVE one, LRU and 2Q, early refresh), while StaleHits,
// NegativeHits and the miss-side counters still count; without it, every
// hit is counted and Hits + Misses = Gets.
func TestDisableHitCounting(t *testing.T) {
	for _, policy := range []struct {
		name string
		cfg  flightcache.Config
	}{
		{"sieve", flightcache.Config{}},
		{"lru", flightcache.Config{Policy: flightcache.PolicyLRU}},
		{"2q", flightcache.Config{Policy: flightcache.Policy2Q}},
		{"early-refresh", flightcache.Config{EarlyRefresh: true, Rand: func() float64 { return 0 }}}, // u→1: never early
	} {
		for _, off := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/disabled=%v", policy.name, off), func(t *testing.T) {
				clock := newClock()
				cfg := policy.cfg
				cfg.Mode, cfg.MaxEntries, cfg.Clock = flightcache.ModeCache, 100, clock
				cfg.TTL, cfg.StaleTTL, cfg.NegativeTTL = time.Minute, time.Hour, time.Minute
				cfg.DisableHitCounting = off
				refreshed := make(chan struct{}, 1)
				fetchesOfA := 0 // fetches of "a" never overlap: one load per key at a time
				l := mustNew(t, func(ctx context.Context, key string) (string, error) {
					if key == "gone" {
						return "", flightcache.ErrNotFound
					}
					if fetchesOfA++; fetchesOfA == 2 { // the refresh
						defer func() { refreshed <- struct{}{} }()
					}
					return "v:" + key, nil
				}, cfg)
				ctx := context.Background()
				get := func(key string) {
					t.Helper()
					v, err := l.Get(ctx, key)
					if key == "gone" {
						require.ErrorIs(t, err, flightcache.ErrNotFound)
						return
					}
					require.NoError(t, err)
					require.Equal(t, "v:"+key, v)
				}
				get("a")    // miss
				get("gone") // miss, kept as not-found
				for range 3 {
					get("a")    // fresh hit
					get("gone") // negative hit
				}
				clock.Advance(2 * time.Minute)
				get("a") // stale hit: served, and a refresh starts
				<-refreshed
				s := l.Stats()
				require.EqualValues(t, 1, s.Refreshes)
				require.EqualValues(t, 2, s.Misses)
				require.EqualValues(t, 2, s.Loads)
				require.EqualValues(t, 3, s.NegativeHits)
				require.EqualValues(t, 1, s.StaleHits)
				if off {
					require.Zero(t, s.Hits, "DisableHitCounting: no hit is counted")
				} else {
					require.EqualValues(t, 7, s.Hits)
					require.EqualValues(t, 9, s.Hits+s.Misses, "Hits + Misses = Gets")
				}
			})
		}
	}
}

// TestDisableHitCountingMetrics: a Loader that does not count hits (or
// time loads) exports no hits series (or load-duration histogram), rather
// than a zero a dashboard would take for a measurement; the other
// series, and the other Loaders of the same Collector, are as usual. In
// flight mode, which has no hits, the hits series stays (an exact 0). The
// registry is pedantic: what Describe announces matches what Collect sends.
func TestDisableHitCountingMetrics(t *testing.T) {
	fetch := func(ctx context.Context, key string) (string, error) { return key, nil }
	uncounted := mustNew(t, fetch, flightcache.Config{Name: "uncounted", Mode: flightcache.ModeCache, MaxEntries: 10,
		DisableHitCounting: true, DisableLoadTiming: true})
	counted := mustNew(t, fetch, flightcache.Config{Name: "counted", Mode: flightcache.ModeCache, MaxEntries: 10})
	flight := mustNew(t, fetch, flightcache.Config{Name: "flight", DisableHitCounting: true})
	for _, l := range []*flightcache.Loader[string, string]{uncounted, counted, flight} {
		for range 3 {
			_, err := l.Get(context.Background(), "k")
			require.NoError(t, err)
		}
	}
	want := `
# HELP flightcache_hits_total Gets answered from the cache.
# TYPE flightcache_hits_total counter
flightcache_hits_total{loader="counted"} 2
flightcache_hits_total{loader="flight"} 0
# HELP flightcache_misses_total Gets that started or joined a load.
# TYPE flightcache_misses_total counter
flightcache_misses_total{loader="counted"} 1
flightcache_misses_total{loader="flight"} 3
flightcache_misses_total{loader="uncounted"} 1
`
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(flightcache.NewCollector(uncounted, counted, flight)))
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want), "flightcache_hits_total", "flightcache_misses_total"))
	families, err := reg.Gather()
	require.NoError(t, err)
	timed := map[string]bool{}
	for _, f := range families {
		if f.GetName() != "flightcache_load_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			timed[m.GetLabel()[0].GetValue()] = true
			require.NotZero(t, m.GetHistogram().GetSampleCount())
		}
	}
	require.Equal(t, map[string]bool{"counted": true, "flight": true}, timed, "load-duration series, by loader")
}
