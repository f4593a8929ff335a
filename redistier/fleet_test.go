package redistier

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flightcache/flightcache"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Fleet tests: Loaders with separate local tiers, each with its own client
// and Tier, sharing one Redis: simulated replicas of a service.

// newFleet returns n Loaders in cache mode sharing the prefix.
func newFleet(t testing.TB, n int, prefix string, cfg flightcache.Config, opts Options[string],
	fetch flightcache.FetchFunc[string, string], mods ...func(*redis.Options)) []*flightcache.Loader[string, string] {
	t.Helper()
	opts.Prefix = prefix
	loaders := make([]*flightcache.Loader[string, string], n)
	for i := range loaders {
		client := newClient(t, mods...)
		tier := newTier[string](t, client, opts)
		l, err := flightcache.New(fetch, cfg, flightcache.WithRemote[string, string](tier))
		require.NoError(t, err)
		t.Cleanup(func() { _ = l.Close() })
		loaders[i] = l
	}
	return loaders
}

func TestFleetBurstFetchesOnce(t *testing.T) {
	prefix := testPrefix(t, newClient(t))
	var fetches atomic.Int64
	started := make(chan struct{}, 4) // one send per fetch; a second would fail the test below
	release := make(chan struct{})
	cfg := flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Minute, RemoteLeaseTimeout: 30 * time.Second}
	// A generous per-call Timeout: on a loaded CI machine a Redis call that
	// timed out would (rightly) make its instance fetch by itself, which is
	// the fault path, tested in faults_test.go, not this one.
	fleet := newFleet(t, 4, prefix, cfg, Options[string]{Timeout: 5 * time.Second}, func(ctx context.Context, key string) (string, error) {
		fetches.Add(1)
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done(): // so that Close ends it if the test fails early
			return "", ctx.Err()
		}
		return "v:" + key, nil
	})

	const gets = 1000
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for i := range gets {
		wg.Go(func() {
			v, err := fleet[i%4].Get(context.Background(), "cold")
			if err != nil || v != "v:cold" {
				wrong.Add(1)
			}
		})
	}
	// One instance fetches while the three others wait on its lease. The
	// lease is taken before the fetch is called, so the three can be counted
	// waiting before the fetch has begun: wait for both.
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out after 10s waiting for the fetch to start")
	}
	leaseWaits := func() (n uint64) {
		for _, l := range fleet {
			n += l.Stats().LeaseWaits
		}
		return n
	}
	waitUntil(t, 10*time.Second, "three instances wait on the lease", func() bool { return leaseWaits() == 3 })
	require.EqualValues(t, 1, fetches.Load())
	start := time.Now()
	close(release)
	wg.Wait()
	t.Logf("%d Gets answered %v after the fetch returned", gets, time.Since(start))

	assert.Zero(t, wrong.Load())
	assert.EqualValues(t, 1, fetches.Load(), "exactly one fetch across the fleet")
	var remoteHits, remoteErrors uint64
	for _, l := range fleet {
		s := l.Stats()
		remoteHits += s.RemoteHits
		remoteErrors += s.RemoteErrors
	}
	assert.EqualValues(t, 3, remoteHits, "the waiting instances took the record from Redis")
	assert.Zero(t, remoteErrors)
}

func TestFleetInvalidation(t *testing.T) {
	prefix := testPrefix(t, newClient(t))
	var version, fetches atomic.Int64
	version.Store(1)
	cfg := flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Hour}
	fleet := newFleet(t, 4, prefix, cfg, Options[string]{Timeout: 5 * time.Second}, func(ctx context.Context, key string) (string, error) {
		fetches.Add(1)
		return fmt.Sprintf("%s@v%d", key, version.Load()), nil
	})
	ctx := context.Background()
	getAll := func(want string) {
		t.Helper()
		for i, l := range fleet {
			v, err := l.Get(ctx, "k")
			require.NoError(t, err)
			require.Equal(t, want, v, "instance %d", i)
		}
	}
	// received waits for every instance but sender to receive its
	// invalidation: pub/sub delivery crosses processes.
	expected := make([]uint64, len(fleet))
	received := func(sender int) {
		t.Helper()
		for i, l := range fleet {
			if i == sender {
				continue
			}
			expected[i]++
			waitUntil(t, 5*time.Second, fmt.Sprintf("instance %d receives invalidation %d", i, expected[i]),
				func() bool { return l.Stats().InvalidationsReceived >= expected[i] })
			assert.Equal(t, expected[i], l.Stats().InvalidationsReceived, "instance %d: no reset, no duplicate", i)
		}
	}

	getAll("k@v1")
	require.EqualValues(t, 1, fetches.Load(), "one fetch, three Redis hits")

	version.Store(2) // the database changes...
	fleet[0].Invalidate("k")
	received(0)
	getAll("k@v2")
	assert.EqualValues(t, 2, fetches.Load(), "the new value is fetched once for the fleet")

	fleet[2].Set("k", "written")
	received(2)
	getAll("written")
	assert.EqualValues(t, 2, fetches.Load())

	assert.EqualValues(t, 1, fleet[0].Stats().InvalidationsSent)
	assert.EqualValues(t, 1, fleet[2].Stats().InvalidationsSent)
	for _, l := range fleet {
		assert.Zero(t, l.Stats().RemoteErrors)
	}
}

// TestFleetSurvivesRedisCrash runs two instances on a redis-server of the
// test's own and kills it: every Get still succeeds, within the local time
// plus one Redis timeout, the breaker opens, and after a restart nothing
// from before is served.
func TestFleetSurvivesRedisCrash(t *testing.T) {
	srv := startRedisServer(t)
	var version, fetches atomic.Int64
	version.Store(1)
	clock := newFakeClock()
	cfg := flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Hour, RemoteTTL: time.Hour}
	opts := Options[string]{Timeout: faultTimeout, BreakerFailures: 2, BreakerCooldown: faultCooldown, Clock: clock}
	fleet := newFleet(t, 2, "crash", cfg, opts, func(ctx context.Context, key string) (string, error) {
		fetches.Add(1)
		return fmt.Sprintf("%s@v%d", key, version.Load()), nil
	}, func(o *redis.Options) { o.Addr = srv.addr })
	ctx := context.Background()
	get := func(l *flightcache.Loader[string, string], key string) (string, time.Duration) {
		t.Helper()
		start := time.Now()
		v, err := l.Get(ctx, key)
		took := time.Since(start)
		require.NoError(t, err, "a Get never fails because Redis did")
		return v, took
	}

	v, _ := get(fleet[0], "k")
	require.Equal(t, "k@v1", v)
	v, _ = get(fleet[1], "k")
	require.Equal(t, "k@v1", v)
	require.EqualValues(t, 1, fetches.Load())

	srv.kill()
	version.Store(2)
	var slowest time.Duration
	for i := range 6 {
		l := fleet[i%2]
		failed := l.Stats().RemoteErrors
		v, took := get(l, fmt.Sprintf("down%d", i))
		assert.Equal(t, fmt.Sprintf("down%d@v2", i), v)
		assert.Equal(t, failed+1, l.Stats().RemoteErrors, "Get %d: one shared-tier call failed, no second one (at most one Redis timeout)", i)
		slowest = max(slowest, took)
	}
	t.Logf("Gets with Redis down: slowest %v (Timeout %v)", slowest, faultTimeout)
	assert.Less(t, slowest, faultTimeout+faultSlack, "bounded by the Timeout")
	assert.True(t, fleet[0].Stats().RemoteBreakerOpen)
	assert.True(t, fleet[1].Stats().RemoteBreakerOpen)
	fleet[0].Invalidate("k") // cannot reach Redis, nor instance 1
	assert.Positive(t, fleet[0].Stats().RemoteErrors)

	srv.start() // empty
	// Instance 1's Watch re-subscribes and flushes its local tier: its
	// copy of k might have missed invalidations.
	waitUntil(t, 10*time.Second, "instance 1 flushes its local tier", func() bool { return fleet[1].Len() == 0 })
	probeUntilClosed(t, clock, fleet)
	for i, l := range fleet {
		v, _ := get(l, "k")
		assert.Equal(t, "k@v2", v, "instance %d serves nothing from before the crash", i)
	}
}

// probeUntilClosed closes every instance's breaker once Redis answers
// again: each Get of a new key after the cooldown probes Redis.
func probeUntilClosed(t *testing.T, clock *fakeClock, fleet []*flightcache.Loader[string, string]) {
	t.Helper()
	for i, l := range fleet {
		probes := closeBreaker(t, clock, func() bool {
			_, err := l.Get(context.Background(), fmt.Sprintf("probe-%d-%d", i, clock.Now().UnixNano()))
			require.NoError(t, err, "a Get never fails because Redis did")
			return !l.Stats().RemoteBreakerOpen
		})
		t.Logf("instance %d: breaker closed by probe %d", i, probes)
	}
}

// TestFleetNothingStaleAfterPause pauses the shared Redis (SIGSTOP) while
// the source changes and one instance invalidates the key: the other
// instance's local copy and the record in Redis are stale until Redis
// answers again, and then the invalidation that failed is sent again.
func TestFleetNothingStaleAfterPause(t *testing.T) {
	srv := startRedisServer(t)
	var version atomic.Int64
	version.Store(1)
	clock := newFakeClock()
	cfg := flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Hour, RemoteTTL: time.Hour}
	// PingInterval an hour: the pause does not break the subscriptions, so
	// only the invalidation itself can drop instance 1's copy.
	opts := Options[string]{Timeout: faultTimeout, BreakerFailures: 2, BreakerCooldown: faultCooldown, Clock: clock, PingInterval: time.Hour}
	fleet := newFleet(t, 2, "pause", cfg, opts, func(ctx context.Context, key string) (string, error) {
		return fmt.Sprintf("%s@v%d", key, version.Load()), nil
	}, func(o *redis.Options) { o.Addr = srv.addr })
	ctx := context.Background()
	// Watch returns after Timeout (100ms) even if its subscription is not
	// confirmed yet; a late confirmation counts as an invalidation received
	// and drops the local tier. Make sure instance 1 is subscribed before
	// the test begins: either this invalidation reaches it, or the late
	// confirmation is counted. From then on, only an invalidation can drop
	// its copy of k (TTL an hour, PingInterval an hour).
	fleet[0].Invalidate("subscribed?")
	waitUntil(t, 5*time.Second, "instance 1 is subscribed", func() bool { return fleet[1].Stats().InvalidationsReceived > 0 })
	for _, l := range fleet {
		v, err := l.Get(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, "k@v1", v)
	}
	// A load releases its lease after its Get has returned. A release still
	// on its way when Redis pauses times out, and the lease is left to
	// expire by itself (RemoteLeaseTimeout, 5s), holding up the refetch of k
	// after the pause: wait for it first.
	direct := newClient(t, func(o *redis.Options) { o.Addr = srv.addr })
	leaseKey := newKeyspace("pause", 0).key(kindLease, "k")
	waitUntil(t, 5*time.Second, "k's lease is released", func() bool { return direct.Exists(ctx, leaseKey).Val() == 0 })

	srv.pause()
	version.Store(2)
	fleet[0].Invalidate("k") // times out: neither Redis nor instance 1 hears of it
	var slowest time.Duration
	for i := range 4 {
		start := time.Now()
		v, err := fleet[i%2].Get(ctx, fmt.Sprintf("during%d", i))
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("during%d@v2", i), v)
		slowest = max(slowest, time.Since(start))
	}
	assert.Less(t, slowest, faultTimeout+faultSlack)
	v, err := fleet[1].Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "k@v1", v, "stale during the outage: instance 1 could not be told")

	srv.resume()
	probeUntilClosed(t, clock, fleet)
	waitUntil(t, 5*time.Second, "instance 1 receives the invalidation sent again and drops its copy of k",
		func() bool { v, err := fleet[1].Get(ctx, "k"); return err == nil && v == "k@v2" })
	for i, l := range fleet {
		v, err := l.Get(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, "k@v2", v, "instance %d: nothing stale after recovery", i)
		assert.False(t, l.Stats().RemoteBreakerOpen)
	}
}
