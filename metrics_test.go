package flightcache_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flightcache/flightcache"
)

// metricsTestCounterNames are every metric a Collector exports except the
// histogram, whose values depend on timing unless a fake clock is used.
var metricsTestCounterNames = []string{
	"flightcache_hits_total",
	"flightcache_misses_total",
	"flightcache_shared_total",
	"flightcache_loads_total",
	"flightcache_load_errors_total",
	"flightcache_panics_total",
	"flightcache_abandoned_total",
	"flightcache_evictions_total",
	"flightcache_stale_hits_total",
	"flightcache_negative_hits_total",
	"flightcache_refreshes_total",
	"flightcache_refresh_errors_total",
	"flightcache_remote_hits_total",
	"flightcache_remote_misses_total",
	"flightcache_remote_errors_total",
	"flightcache_lease_waits_total",
	"flightcache_invalidations_sent_total",
	"flightcache_invalidations_received_total",
	"flightcache_remote_writes_dropped_total",
	"flightcache_remote_corrupt_total",
	"flightcache_remote_breaker_open",
	"flightcache_batch_loads_total",
	"flightcache_entries",
	"flightcache_in_flight",
}

const metricsTestDurationName = "flightcache_load_duration_seconds"

// metricsTestClock is a fake Clock that moves only when told to.
type metricsTestClock struct {
	mu  sync.Mutex
	now time.Time
}

func newMetricsTestClock() *metricsTestClock {
	return &metricsTestClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *metricsTestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *metricsTestClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// metricsTestSource is a Source that is not a Loader.
type metricsTestSource struct {
	name  string
	stats flightcache.Stats
}

func (s metricsTestSource) Name() string             { return s.name }
func (s metricsTestSource) Stats() flightcache.Stats { return s.stats }

var errMetricsTestBackend = errors.New("backend down")

// metricsTestFetch fails for the key "bad" and returns the key's length
// otherwise.
func metricsTestFetch(_ context.Context, key string) (int, error) {
	if key == "bad" {
		return 0, errMetricsTestBackend
	}
	return len(key), nil
}

func newMetricsTestLoader(t *testing.T, cfg flightcache.Config) *flightcache.Loader[string, int] {
	t.Helper()
	l, err := flightcache.New(metricsTestFetch, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// metricsTestGets runs Get for each key in turn; keys "bad" must fail and
// the others succeed.
func metricsTestGets(t *testing.T, l *flightcache.Loader[string, int], keys ...string) {
	t.Helper()
	for _, k := range keys {
		v, err := l.Get(t.Context(), k)
		if k == "bad" {
			require.ErrorIs(t, err, errMetricsTestBackend)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, len(k), v)
	}
}

// metricsTestUsersLoader returns a cache-mode loader named "users" after a
// known sequence of Gets:
//
//	k1   miss, load
//	k1   hit
//	k2   miss, load
//	bad  miss, load, error (not cached)
//	bad  miss, load, error
//	k1   hit
//	k3   miss, load; evicts k2 (k1 was used more recently)
//	k1   hit
//
// hits 3, misses 5, loads 5, load errors 2, evictions 1, entries 2.
func metricsTestUsersLoader(t *testing.T) *flightcache.Loader[string, int] {
	t.Helper()
	l := newMetricsTestLoader(t, flightcache.Config{Name: "users", Mode: flightcache.ModeCache, MaxEntries: 2})
	metricsTestGets(t, l, "k1", "k1", "k2", "bad", "bad", "k1", "k3", "k1")
	return l
}

// metricsTestSessionsLoader returns a flight-mode loader named "sessions"
// after Gets of a, a, bad: misses 3, loads 3, load errors 1, nothing kept.
func metricsTestSessionsLoader(t *testing.T) *flightcache.Loader[string, int] {
	t.Helper()
	l := newMetricsTestLoader(t, flightcache.Config{Name: "sessions"})
	metricsTestGets(t, l, "a", "a", "bad")
	return l
}

const metricsTestUsersExposition = `
# HELP flightcache_hits_total Gets answered from the cache.
# TYPE flightcache_hits_total counter
flightcache_hits_total{loader="users"} 3
# HELP flightcache_misses_total Gets that started or joined a load.
# TYPE flightcache_misses_total counter
flightcache_misses_total{loader="users"} 5
# HELP flightcache_shared_total Gets that joined a load another Get started.
# TYPE flightcache_shared_total counter
flightcache_shared_total{loader="users"} 0
# HELP flightcache_loads_total Loads started.
# TYPE flightcache_loads_total counter
flightcache_loads_total{loader="users"} 5
# HELP flightcache_load_errors_total Loads that ended in an error.
# TYPE flightcache_load_errors_total counter
flightcache_load_errors_total{loader="users"} 2
# HELP flightcache_panics_total Loads whose fetch panicked or called runtime.Goexit.
# TYPE flightcache_panics_total counter
flightcache_panics_total{loader="users"} 0
# HELP flightcache_abandoned_total Gets that returned early because their context ended.
# TYPE flightcache_abandoned_total counter
flightcache_abandoned_total{loader="users"} 0
# HELP flightcache_evictions_total Entries evicted to make room.
# TYPE flightcache_evictions_total counter
flightcache_evictions_total{loader="users"} 1
# HELP flightcache_stale_hits_total Hits on stale entries, served while a refresh runs.
# TYPE flightcache_stale_hits_total counter
flightcache_stale_hits_total{loader="users"} 0
# HELP flightcache_negative_hits_total Hits on cached not-found results.
# TYPE flightcache_negative_hits_total counter
flightcache_negative_hits_total{loader="users"} 0
# HELP flightcache_refreshes_total Background refreshes started.
# TYPE flightcache_refreshes_total counter
flightcache_refreshes_total{loader="users"} 0
# HELP flightcache_refresh_errors_total Background refreshes that failed.
# TYPE flightcache_refresh_errors_total counter
flightcache_refresh_errors_total{loader="users"} 0
# HELP flightcache_remote_hits_total Loads answered by the shared tier.
# TYPE flightcache_remote_hits_total counter
flightcache_remote_hits_total{loader="users"} 0
# HELP flightcache_remote_misses_total Loads that found nothing in the shared tier.
# TYPE flightcache_remote_misses_total counter
flightcache_remote_misses_total{loader="users"} 0
# HELP flightcache_remote_errors_total Shared-tier calls that failed.
# TYPE flightcache_remote_errors_total counter
flightcache_remote_errors_total{loader="users"} 0
# HELP flightcache_lease_waits_total Loads that waited for another instance's fetch.
# TYPE flightcache_lease_waits_total counter
flightcache_lease_waits_total{loader="users"} 0
# HELP flightcache_invalidations_sent_total Invalidations published to other instances.
# TYPE flightcache_invalidations_sent_total counter
flightcache_invalidations_sent_total{loader="users"} 0
# HELP flightcache_invalidations_received_total Invalidations received from other instances.
# TYPE flightcache_invalidations_received_total counter
flightcache_invalidations_received_total{loader="users"} 0
# HELP flightcache_remote_writes_dropped_total Shared-tier writes that failed or were skipped.
# TYPE flightcache_remote_writes_dropped_total counter
flightcache_remote_writes_dropped_total{loader="users"} 0
# HELP flightcache_remote_corrupt_total Shared-tier records that did not decode.
# TYPE flightcache_remote_corrupt_total counter
flightcache_remote_corrupt_total{loader="users"} 0
# HELP flightcache_remote_breaker_open 1 while the shared tier's circuit breaker is open.
# TYPE flightcache_remote_breaker_open gauge
flightcache_remote_breaker_open{loader="users"} 0
# HELP flightcache_batch_loads_total Batch fetches.
# TYPE flightcache_batch_loads_total counter
flightcache_batch_loads_total{loader="users"} 0
# HELP flightcache_entries Entries held in the cache.
# TYPE flightcache_entries gauge
flightcache_entries{loader="users"} 2
# HELP flightcache_in_flight Loads running now.
# TYPE flightcache_in_flight gauge
flightcache_in_flight{loader="users"} 0
`

func TestCollectorTwoLoadersOneRegistry(t *testing.T) {
	users := metricsTestUsersLoader(t)
	sessions := metricsTestSessionsLoader(t)

	check := func(t *testing.T, reg *prometheus.Registry) {
		t.Helper()
		mfs, err := reg.Gather()
		require.NoError(t, err)
		names := make([]string, 0, len(mfs))
		for _, mf := range mfs {
			names = append(names, mf.GetName())
			require.Len(t, mf.GetMetric(), 2, mf.GetName())
			var loaders []string
			for _, m := range mf.GetMetric() {
				require.Len(t, m.GetLabel(), 1)
				assert.Equal(t, "loader", m.GetLabel()[0].GetName())
				loaders = append(loaders, m.GetLabel()[0].GetValue())
			}
			assert.ElementsMatch(t, []string{"users", "sessions"}, loaders, mf.GetName())
		}
		assert.ElementsMatch(t, append([]string{metricsTestDurationName, "flightcache_batch_size"}, metricsTestCounterNames...), names)
	}

	t.Run("a Collector each", func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		require.NoError(t, reg.Register(flightcache.NewCollector(users)))
		require.NoError(t, reg.Register(flightcache.NewCollector(sessions)))
		check(t, reg)
	})
	t.Run("one Collector for both", func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		require.NoError(t, reg.Register(flightcache.NewCollector(users, sessions)))
		check(t, reg)
	})
	t.Run("extra constant labels", func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		wrapped := prometheus.WrapRegistererWith(prometheus.Labels{"service": "api"}, reg)
		require.NoError(t, wrapped.Register(flightcache.NewCollector(users, sessions)))
		mfs, err := reg.Gather()
		require.NoError(t, err)
		require.NotEmpty(t, mfs)
		for _, m := range mfs[0].GetMetric() {
			assert.Len(t, m.GetLabel(), 2)
		}
	})
}

func TestCollectorLint(t *testing.T) {
	users := metricsTestUsersLoader(t)
	sessions := metricsTestSessionsLoader(t)
	for _, c := range []*flightcache.Collector{
		flightcache.NewCollector(users),
		flightcache.NewCollector(sessions),
		flightcache.NewCollector(users, sessions),
	} {
		problems, err := testutil.CollectAndLint(c)
		require.NoError(t, err)
		assert.Empty(t, problems)
	}
}

func TestCollectorCompareCacheMode(t *testing.T) {
	users := metricsTestUsersLoader(t)

	s := users.Stats()
	assert.Equal(t, uint64(3), s.Hits)
	assert.Equal(t, uint64(5), s.Misses)
	assert.Equal(t, uint64(5), s.Loads)
	assert.Equal(t, uint64(2), s.LoadErrors)
	assert.Equal(t, uint64(1), s.Evictions)
	assert.Equal(t, 2, s.Entries)

	require.NoError(t, testutil.CollectAndCompare(flightcache.NewCollector(users),
		strings.NewReader(metricsTestUsersExposition), metricsTestCounterNames...))
}

func TestCollectorCompareFlightMode(t *testing.T) {
	sessions := metricsTestSessionsLoader(t)
	const want = `
# HELP flightcache_hits_total Gets answered from the cache.
# TYPE flightcache_hits_total counter
flightcache_hits_total{loader="sessions"} 0
# HELP flightcache_misses_total Gets that started or joined a load.
# TYPE flightcache_misses_total counter
flightcache_misses_total{loader="sessions"} 3
# HELP flightcache_loads_total Loads started.
# TYPE flightcache_loads_total counter
flightcache_loads_total{loader="sessions"} 3
# HELP flightcache_load_errors_total Loads that ended in an error.
# TYPE flightcache_load_errors_total counter
flightcache_load_errors_total{loader="sessions"} 1
# HELP flightcache_entries Entries held in the cache.
# TYPE flightcache_entries gauge
flightcache_entries{loader="sessions"} 0
# HELP flightcache_in_flight Loads running now.
# TYPE flightcache_in_flight gauge
flightcache_in_flight{loader="sessions"} 0
`
	require.NoError(t, testutil.CollectAndCompare(flightcache.NewCollector(sessions), strings.NewReader(want),
		"flightcache_hits_total", "flightcache_misses_total", "flightcache_loads_total",
		"flightcache_load_errors_total", "flightcache_entries", "flightcache_in_flight"))
}

func TestCollectorCompareTwoLoaders(t *testing.T) {
	users := metricsTestUsersLoader(t)
	sessions := metricsTestSessionsLoader(t)
	const want = `
# HELP flightcache_hits_total Gets answered from the cache.
# TYPE flightcache_hits_total counter
flightcache_hits_total{loader="sessions"} 0
flightcache_hits_total{loader="users"} 3
# HELP flightcache_load_errors_total Loads that ended in an error.
# TYPE flightcache_load_errors_total counter
flightcache_load_errors_total{loader="sessions"} 1
flightcache_load_errors_total{loader="users"} 2
# HELP flightcache_entries Entries held in the cache.
# TYPE flightcache_entries gauge
flightcache_entries{loader="sessions"} 0
flightcache_entries{loader="users"} 2
`
	require.NoError(t, testutil.CollectAndCompare(flightcache.NewCollector(users, sessions), strings.NewReader(want),
		"flightcache_hits_total", "flightcache_load_errors_total", "flightcache_entries"))
}

func TestCollectorInFlightGauge(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	l, err := flightcache.New(func(ctx context.Context, key string) (int, error) {
		close(started)
		select {
		case <-release:
			return 1, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}, flightcache.Config{Name: "slow"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })

	type result struct {
		v   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := l.Get(context.Background(), "k")
		done <- result{v, err}
	}()
	<-started

	c := flightcache.NewCollector(l)
	const during = `
# HELP flightcache_in_flight Loads running now.
# TYPE flightcache_in_flight gauge
flightcache_in_flight{loader="slow"} 1
# HELP flightcache_loads_total Loads started.
# TYPE flightcache_loads_total counter
flightcache_loads_total{loader="slow"} 1
`
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(during),
		"flightcache_in_flight", "flightcache_loads_total"))

	close(release)
	r := <-done
	require.NoError(t, r.err)
	assert.Equal(t, 1, r.v)

	const after = `
# HELP flightcache_in_flight Loads running now.
# TYPE flightcache_in_flight gauge
flightcache_in_flight{loader="slow"} 0
`
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(after), "flightcache_in_flight"))
}

// metricsTestHistogram gathers reg and returns the load-duration histogram
// of the named loader.
func metricsTestHistogram(t *testing.T, reg prometheus.Gatherer, loader string) *dto.Histogram {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != metricsTestDurationName {
			continue
		}
		require.Equal(t, dto.MetricType_HISTOGRAM, mf.GetType())
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "loader" && lp.GetValue() == loader {
					require.NotNil(t, m.GetHistogram())
					return m.GetHistogram()
				}
			}
		}
	}
	require.FailNow(t, "histogram not found", "loader %q", loader)
	return nil
}

// metricsTestBuckets maps each bucket's upper bound to its cumulative count.
func metricsTestBuckets(h *dto.Histogram) map[float64]uint64 {
	out := make(map[float64]uint64, len(h.GetBucket()))
	for _, b := range h.GetBucket() {
		out[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	return out
}

func TestCollectorLoadDurationHistogram(t *testing.T) {
	clock := newMetricsTestClock()
	// Each key's fetch takes the time its entry says on the fake clock.
	took := map[string]time.Duration{
		"k1":   3 * time.Millisecond,
		"fast": 100 * time.Microsecond,  // exactly the first bound
		"edge": 2500 * time.Microsecond, // exactly the bound le=0.0025
		"slow": 20 * time.Second,        // above every bound
		"bad":  time.Millisecond,        // an error is timed too
	}
	l, err := flightcache.New(func(_ context.Context, key string) (int, error) {
		clock.Advance(took[key])
		if key == "bad" {
			return 0, errMetricsTestBackend
		}
		if key == "panic" {
			clock.Advance(time.Hour)
			panic("boom")
		}
		return len(key), nil
	}, flightcache.Config{Name: "timed", Mode: flightcache.ModeCache, MaxEntries: 10, Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })

	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(flightcache.NewCollector(l)))

	// Before any load the histogram is empty.
	h := metricsTestHistogram(t, reg, "timed")
	assert.Equal(t, uint64(0), h.GetSampleCount())
	assert.Zero(t, h.GetSampleSum())
	assert.Equal(t, flightcache.Histogram{}, l.Stats().LoadDuration)

	// One fetch of 3ms.
	v, err := l.Get(t.Context(), "k1")
	require.NoError(t, err)
	assert.Equal(t, 2, v)

	h = metricsTestHistogram(t, reg, "timed")
	assert.Equal(t, uint64(1), h.GetSampleCount())
	assert.InDelta(t, 0.003, h.GetSampleSum(), 1e-12)
	buckets := metricsTestBuckets(h)
	require.Len(t, buckets, len(flightcache.Histogram{}.Bounds()))
	require.Contains(t, buckets, 0.0025)
	require.Contains(t, buckets, 0.005)
	assert.Equal(t, uint64(0), buckets[0.001])
	assert.Equal(t, uint64(0), buckets[0.0025])
	assert.Equal(t, uint64(1), buckets[0.005])
	assert.Equal(t, uint64(1), buckets[0.01])
	assert.Equal(t, uint64(1), buckets[10])

	ld := l.Stats().LoadDuration
	assert.Equal(t, uint64(1), ld.Count)
	assert.Equal(t, 3*time.Millisecond, ld.Sum)
	bounds := ld.Bounds()
	require.Equal(t, 2500*time.Microsecond, bounds[4])
	require.Equal(t, 5*time.Millisecond, bounds[5])
	var wantCounts [len(flightcache.Histogram{}.Counts)]uint64
	wantCounts[5] = 1 // 2.5ms < 3ms <= 5ms
	assert.Equal(t, wantCounts, ld.Counts)

	// A hit fetches nothing and observes nothing.
	_, err = l.Get(t.Context(), "k1")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), l.Stats().LoadDuration.Count)

	// Durations on a bound fall in that bound's bucket; a failed fetch is
	// timed; one above every bound lands in the last Counts element.
	for _, k := range []string{"fast", "edge", "slow"} {
		_, err := l.Get(t.Context(), k)
		require.NoError(t, err)
	}
	_, err = l.Get(t.Context(), "bad")
	require.ErrorIs(t, err, errMetricsTestBackend)

	// A fetch that panics is not timed.
	_, err = l.Get(t.Context(), "panic")
	require.ErrorIs(t, err, flightcache.ErrPanic)

	ld = l.Stats().LoadDuration
	wantSum := 3*time.Millisecond + 100*time.Microsecond + 2500*time.Microsecond + 20*time.Second + time.Millisecond
	assert.Equal(t, uint64(5), ld.Count)
	assert.Equal(t, wantSum, ld.Sum)
	wantCounts = [len(flightcache.Histogram{}.Counts)]uint64{}
	wantCounts[0] = 1                 // fast: 100µs
	wantCounts[3] = 1                 // bad: 1ms
	wantCounts[4] = 1                 // edge: 2.5ms
	wantCounts[5] = 1                 // k1: 3ms
	wantCounts[len(wantCounts)-1] = 1 // slow: 20s
	assert.Equal(t, wantCounts, ld.Counts)

	h = metricsTestHistogram(t, reg, "timed")
	assert.Equal(t, uint64(5), h.GetSampleCount())
	assert.InDelta(t, wantSum.Seconds(), h.GetSampleSum(), 1e-9)
	buckets = metricsTestBuckets(h)
	assert.Equal(t, uint64(1), buckets[0.0001])
	assert.Equal(t, uint64(1), buckets[0.0005])
	assert.Equal(t, uint64(2), buckets[0.001])
	assert.Equal(t, uint64(3), buckets[0.0025])
	assert.Equal(t, uint64(4), buckets[0.005])
	assert.Equal(t, uint64(4), buckets[10])
}

func TestCollectorHistogramFromSource(t *testing.T) {
	// A Source that is not a Loader: Counts (per bucket) become cumulative
	// Prometheus buckets, and the overflow element only counts toward the
	// total.
	var st flightcache.Stats
	st.Hits = 7
	st.LoadDuration.Counts[0] = 1
	st.LoadDuration.Counts[5] = 2
	st.LoadDuration.Counts[len(st.LoadDuration.Counts)-1] = 1
	st.LoadDuration.Count = 4
	st.LoadDuration.Sum = 30 * time.Second
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(flightcache.NewCollector(metricsTestSource{name: "static", stats: st})))

	h := metricsTestHistogram(t, reg, "static")
	assert.Equal(t, uint64(4), h.GetSampleCount())
	assert.InDelta(t, 30.0, h.GetSampleSum(), 1e-9)
	buckets := metricsTestBuckets(h)
	assert.Equal(t, uint64(1), buckets[0.0001])
	assert.Equal(t, uint64(1), buckets[0.0025])
	assert.Equal(t, uint64(3), buckets[0.005])
	assert.Equal(t, uint64(3), buckets[10])

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP flightcache_hits_total Gets answered from the cache.
# TYPE flightcache_hits_total counter
flightcache_hits_total{loader="static"} 7
`), "flightcache_hits_total"))
}

func TestCollectorDuplicateLoaderNames(t *testing.T) {
	t.Run("two Collectors", func(t *testing.T) {
		a := newMetricsTestLoader(t, flightcache.Config{Name: "dup"})
		b := newMetricsTestLoader(t, flightcache.Config{Name: "dup", Mode: flightcache.ModeCache, MaxEntries: 1})
		reg := prometheus.NewPedanticRegistry()
		require.NoError(t, reg.Register(flightcache.NewCollector(a)))
		assert.Error(t, reg.Register(flightcache.NewCollector(b)))

		// The first registration still works.
		_, err := reg.Gather()
		require.NoError(t, err)
	})
	t.Run("both unnamed", func(t *testing.T) {
		a := newMetricsTestLoader(t, flightcache.Config{})
		b := newMetricsTestLoader(t, flightcache.Config{})
		require.Equal(t, "default", a.Name())
		reg := prometheus.NewPedanticRegistry()
		require.NoError(t, reg.Register(flightcache.NewCollector(a)))
		assert.Error(t, reg.Register(flightcache.NewCollector(b)))
	})
	t.Run("one Collector", func(t *testing.T) {
		a := newMetricsTestLoader(t, flightcache.Config{Name: "dup"})
		b := newMetricsTestLoader(t, flightcache.Config{Name: "dup"})
		reg := prometheus.NewPedanticRegistry()
		err := reg.Register(flightcache.NewCollector(a, b))
		require.Error(t, err, "the clash is caught at registration, not at every scrape")
		assert.Contains(t, err.Error(), `two sources named "dup"`)
	})
}

func TestCollectorNoSources(t *testing.T) {
	for name, c := range map[string]*flightcache.Collector{
		"NewCollector()": flightcache.NewCollector(),
		"zero value":     {},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, 0, testutil.CollectAndCount(c))

			reg := prometheus.NewPedanticRegistry()
			require.NoError(t, reg.Register(c))
			mfs, err := reg.Gather()
			require.NoError(t, err)
			assert.Empty(t, mfs)

			problems, err := testutil.CollectAndLint(c)
			require.NoError(t, err)
			assert.Empty(t, problems)
		})
	}
}
