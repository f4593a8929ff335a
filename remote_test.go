package flightcache_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/flightcache/flightcache"
)

// sharedStore is an in-memory stand-in for Redis, shared by the fakeRemote
// views of several simulated instances. Time comes from a fakeClock.
type sharedStore struct {
	clock *fakeClock

	mu       sync.Mutex
	records  map[string]storedRecord
	leases   map[string]int           // key → holder instance
	changed  map[string]chan struct{} // closed on every change of a key
	watchers map[int]watcher
	calls    atomic.Int64 // every call to the store
	down     atomic.Bool  // every call fails
}

// counts returns how many leases and watchers the store holds; tests
// assert on them outside the lock (a failed assertion must not exit with
// it held: the Loader's cleanup needs it).
func (s *sharedStore) counts() (leases, watchers int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.leases), len(s.watchers)
}

type storedRecord struct {
	rec     flightcache.RemoteRecord[string]
	expires time.Time
}

type watcher struct {
	onInvalidate func(string)
	onReset      func()
}

func newSharedStore(clock *fakeClock) *sharedStore {
	return &sharedStore{
		clock: clock, records: map[string]storedRecord{}, leases: map[string]int{},
		changed: map[string]chan struct{}{}, watchers: map[int]watcher{},
	}
}

var errStoreDown = errors.New("store down")

// notifyLocked wakes the Await calls waiting on key. s.mu must be held.
func (s *sharedStore) notifyLocked(key string) {
	if ch, ok := s.changed[key]; ok {
		close(ch)
		delete(s.changed, key)
	}
}

// reset tells every instance that invalidations may have been lost.
func (s *sharedStore) reset() {
	s.mu.Lock()
	ws := make([]watcher, 0, len(s.watchers))
	for _, w := range s.watchers {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	for _, w := range ws {
		w.onReset()
	}
}

// fakeRemote is one instance's view of a sharedStore.
type fakeRemote struct {
	s  *sharedStore
	id int
}

var _ flightcache.Remote[string, string] = (*fakeRemote)(nil)

func (r *fakeRemote) enter() error {
	r.s.calls.Add(1)
	if r.s.down.Load() {
		return errStoreDown
	}
	return nil
}

func (r *fakeRemote) lookupLocked(key string) (flightcache.RemoteRecord[string], bool) {
	sr, ok := r.s.records[key]
	if !ok {
		return flightcache.RemoteRecord[string]{}, false
	}
	left := sr.expires.Sub(r.s.clock.Now())
	if left <= 0 {
		delete(r.s.records, key)
		return flightcache.RemoteRecord[string]{}, false
	}
	rec := sr.rec
	rec.TTL = left
	return rec, true
}

func (r *fakeRemote) Get(ctx context.Context, key string) (flightcache.RemoteRecord[string], bool, error) {
	if err := r.enter(); err != nil {
		return flightcache.RemoteRecord[string]{}, false, err
	}
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	rec, ok := r.lookupLocked(key)
	return rec, ok, nil
}

func (r *fakeRemote) Set(ctx context.Context, key string, rec flightcache.RemoteRecord[string]) error {
	if err := r.enter(); err != nil {
		return err
	}
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.s.records[key] = storedRecord{rec: rec, expires: r.s.clock.Now().Add(rec.TTL)}
	r.s.notifyLocked(key)
	return nil
}

func (r *fakeRemote) Invalidate(ctx context.Context, key string) error {
	if err := r.enter(); err != nil {
		return err
	}
	r.s.mu.Lock()
	delete(r.s.records, key)
	var others []watcher
	for id, w := range r.s.watchers {
		if id != r.id {
			others = append(others, w)
		}
	}
	r.s.mu.Unlock()
	for _, w := range others {
		w.onInvalidate(key)
	}
	return nil
}

func (r *fakeRemote) Lease(ctx context.Context, key string, ttl time.Duration) (func(), bool, error) {
	if err := r.enter(); err != nil {
		return nil, false, err
	}
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if _, held := r.s.leases[key]; held {
		return nil, false, nil
	}
	r.s.leases[key] = r.id
	return func() {
		r.s.mu.Lock()
		defer r.s.mu.Unlock()
		if r.s.leases[key] == r.id {
			delete(r.s.leases, key)
			r.s.notifyLocked(key)
		}
	}, true, nil
}

func (r *fakeRemote) Await(ctx context.Context, key string) (flightcache.RemoteRecord[string], bool, error) {
	if err := r.enter(); err != nil {
		return flightcache.RemoteRecord[string]{}, false, err
	}
	for {
		r.s.mu.Lock()
		if rec, ok := r.lookupLocked(key); ok {
			r.s.mu.Unlock()
			return rec, true, nil
		}
		if _, held := r.s.leases[key]; !held {
			r.s.mu.Unlock()
			return flightcache.RemoteRecord[string]{}, false, nil
		}
		ch, ok := r.s.changed[key]
		if !ok {
			ch = make(chan struct{})
			r.s.changed[key] = ch
		}
		r.s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return flightcache.RemoteRecord[string]{}, false, ctx.Err()
		}
	}
}

func (r *fakeRemote) Watch(onInvalidate func(string), onReset func()) func() {
	r.s.mu.Lock()
	r.s.watchers[r.id] = watcher{onInvalidate, onReset}
	r.s.mu.Unlock()
	return func() {
		r.s.mu.Lock()
		delete(r.s.watchers, r.id)
		r.s.mu.Unlock()
	}
}

func (r *fakeRemote) Stats() flightcache.RemoteStats {
	return flightcache.RemoteStats{BreakerOpen: r.s.down.Load()}
}

// fleet is n Loaders, each with its own local tier, sharing one store and
// one fetch function (the database).
type fleet struct {
	store   *sharedStore
	loaders []*flightcache.Loader[string, string]
}

func newFleet(t *testing.T, n int, cfg flightcache.Config, fetch flightcache.FetchFunc[string, string]) *fleet {
	t.Helper()
	clock, _ := cfg.Clock.(*fakeClock)
	if clock == nil {
		clock = newClock()
		cfg.Clock = clock
	}
	f := &fleet{store: newSharedStore(clock)}
	for i := range n {
		r := &fakeRemote{s: f.store, id: i}
		f.loaders = append(f.loaders, mustNew(t, fetch, cfg, flightcache.WithRemote[string, string](r)))
	}
	return f
}

func TestFleetBurstFetchesOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fetches atomic.Int64
		release := make(chan struct{})
		cfg := flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Minute}
		f := newFleet(t, 4, cfg, func(ctx context.Context, key string) (string, error) {
			fetches.Add(1)
			<-release
			return "v:" + key, nil
		})
		const gets = 1000
		var wg sync.WaitGroup
		var wrong atomic.Int64
		for i := range gets {
			wg.Go(func() {
				v, err := f.loaders[i%4].Get(context.Background(), "cold")
				if err != nil || v != "v:cold" {
					wrong.Add(1)
				}
			})
		}
		synctest.Wait() // one instance fetches, three wait on its lease
		require.EqualValues(t, 1, fetches.Load())
		close(release)
		wg.Wait()
		require.Zero(t, wrong.Load())
		require.EqualValues(t, 1, fetches.Load(), "exactly one fetch across the fleet")
		var waits, remoteHits uint64
		for _, l := range f.loaders {
			s := l.Stats()
			requireBalanced(t, s, gets/4)
			waits += s.LeaseWaits
			remoteHits += s.RemoteHits
		}
		require.EqualValues(t, 3, waits, "the other three instances waited on the lease")
		require.EqualValues(t, 3, remoteHits)
	})
}

func TestRemoteLookupOrderAndLifetime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := newClock()
		var fetches atomic.Int64
		cfg := flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Minute, RemoteTTL: 10 * time.Second, Clock: clock}
		f := newFleet(t, 2, cfg, func(ctx context.Context, key string) (string, error) {
			return fmt.Sprintf("%s#%d", key, fetches.Add(1)), nil
		})
		a, b := f.loaders[0], f.loaders[1]
		ctx := context.Background()

		v, err := a.Get(ctx, "k") // local miss → remote miss → fetch, stored in both tiers
		require.NoError(t, err)
		require.Equal(t, "k#1", v)
		synctest.Wait() // a's load writes the shared tier, then releases its lease, after a has its value
		clock.Advance(4 * time.Second)
		v, _ = b.Get(ctx, "k") // remote hit, 6s left there
		require.Equal(t, "k#1", v)
		calls := f.store.calls.Load()
		v, _ = b.Get(ctx, "k") // local hit: the store is not asked
		require.Equal(t, "k#1", v)
		require.Equal(t, calls, f.store.calls.Load())
		require.EqualValues(t, 1, fetches.Load())

		clock.Advance(6*time.Second - 1)
		v, _ = b.Get(ctx, "k")
		require.Equal(t, "k#1", v, "b's copy lives until the shared one ends")
		v, _ = a.Get(ctx, "k")
		require.Equal(t, "k#1", v, "a's own copy too, though its TTL is a minute")
		clock.Advance(1)
		v, _ = b.Get(ctx, "k")
		require.Equal(t, "k#2", v, "never outlives the shared copy")
		sb := b.Stats()
		require.EqualValues(t, 1, sb.RemoteHits)
		require.EqualValues(t, 1, sb.RemoteMisses)
	})
}

func TestRemoteNegativeEntriesTravel(t *testing.T) {
	var fetches atomic.Int64
	cfg := flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Minute, NegativeTTL: 5 * time.Second}
	f := newFleet(t, 2, cfg, func(ctx context.Context, key string) (string, error) {
		fetches.Add(1)
		return "", flightcache.ErrNotFound
	})
	_, err := f.loaders[0].Get(context.Background(), "ghost")
	require.ErrorIs(t, err, flightcache.ErrNotFound)
	_, err = f.loaders[1].Get(context.Background(), "ghost")
	require.ErrorIs(t, err, flightcache.ErrNotFound)
	require.ErrorContains(t, err, "shared tier")
	require.EqualValues(t, 1, fetches.Load())
	_, err = f.loaders[1].Get(context.Background(), "ghost")
	require.ErrorIs(t, err, flightcache.ErrNotFound)
	require.EqualValues(t, 1, f.loaders[1].Stats().NegativeHits, "kept locally too")
}

func TestRemoteErrorsAreNeverShared(t *testing.T) {
	var fetches atomic.Int64
	cfg := flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Minute, NegativeTTL: time.Minute}
	f := newFleet(t, 2, cfg, func(ctx context.Context, key string) (string, error) {
		if fetches.Add(1) == 1 {
			return "", errors.New("db timeout")
		}
		return "ok", nil
	})
	_, err := f.loaders[0].Get(context.Background(), "k")
	require.EqualError(t, err, "db timeout")
	v, err := f.loaders[1].Get(context.Background(), "k")
	require.NoError(t, err)
	require.Equal(t, "ok", v)
}

func TestLeaseHolderFailureReleasesWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fetches atomic.Int64
		release := make(chan struct{})
		cfg := flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Minute, RemoteLeaseTimeout: time.Hour}
		f := newFleet(t, 2, cfg, func(ctx context.Context, key string) (string, error) {
			if fetches.Add(1) == 1 {
				<-release
				return "", errors.New("holder failed")
			}
			return "second", nil
		})
		res := make(chan result, 2)
		for _, l := range f.loaders {
			go func() {
				v, err := l.Get(context.Background(), "k")
				res <- result{v, err}
			}()
			synctest.Wait()
		}
		start := time.Now()
		close(release)
		got := []result{<-res, <-res}
		require.ElementsMatch(t, []result{{err: errors.New("holder failed")}, {v: "second"}},
			[]result{{v: got[0].v, err: errText(got[0].err)}, {v: got[1].v, err: errText(got[1].err)}})
		require.Zero(t, time.Since(start), "the waiter did not sit out the lease timeout")
	})
}

func errText(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(err.Error())
}

func TestRemoteDownNeverFailsAGet(t *testing.T) {
	var fetches atomic.Int64
	cfg := flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Minute}
	f := newFleet(t, 1, cfg, func(ctx context.Context, key string) (string, error) {
		return fmt.Sprintf("%s#%d", key, fetches.Add(1)), nil
	})
	l := f.loaders[0]
	f.store.down.Store(true)
	v, err := l.Get(context.Background(), "k")
	require.NoError(t, err)
	require.Equal(t, "k#1", v)
	require.EqualValues(t, 1, f.store.calls.Load(), "after one failure the load skips the shared tier")
	s := l.Stats()
	require.EqualValues(t, 1, s.RemoteErrors)
	require.True(t, s.RemoteBreakerOpen, "the Remote's own stats are included")

	l.Invalidate("k") // cannot reach the store: counted, local copy still dropped
	require.Zero(t, l.Len())
	require.EqualValues(t, 2, l.Stats().RemoteErrors)
	v, err = l.Get(context.Background(), "k")
	require.NoError(t, err)
	require.Equal(t, "k#2", v)
}

func TestFleetInvalidation(t *testing.T) {
	var version atomic.Int64
	version.Store(1)
	cfg := flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Hour}
	f := newFleet(t, 4, cfg, func(ctx context.Context, key string) (string, error) {
		return fmt.Sprintf("%s@v%d", key, version.Load()), nil
	})
	ctx := context.Background()
	for _, l := range f.loaders {
		v, err := l.Get(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, "k@v1", v)
	}
	version.Store(2) // the database changes...
	f.loaders[0].Invalidate("k")
	for i, l := range f.loaders {
		v, err := l.Get(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, "k@v2", v, "instance %d sees the new value", i)
	}
	require.EqualValues(t, 1, f.loaders[0].Stats().InvalidationsSent)
	for _, l := range f.loaders[1:] {
		require.EqualValues(t, 1, l.Stats().InvalidationsReceived)
	}

	f.loaders[2].Set("k", "written")
	for i, l := range f.loaders {
		v, _ := l.Get(ctx, "k")
		require.Equal(t, "written", v, "instance %d sees the Set", i)
	}
}

func TestRemoteResetFlushesLocalTier(t *testing.T) {
	cfg := flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Hour}
	f := newFleet(t, 2, cfg, func(ctx context.Context, key string) (string, error) { return key, nil })
	for _, k := range []string{"a", "b"} {
		_, err := f.loaders[1].Get(context.Background(), k)
		require.NoError(t, err)
	}
	require.Equal(t, 2, f.loaders[1].Len())
	f.store.reset()
	require.Zero(t, f.loaders[1].Len(), "a broken feed flushes the local tier")
}

func TestRemoteInFlightModeAndDisabled(t *testing.T) {
	var fetches atomic.Int64
	fetch := func(ctx context.Context, key string) (string, error) {
		return fmt.Sprint(fetches.Add(1)), nil
	}
	f := newFleet(t, 2, flightcache.Config{RemoteTTL: time.Minute}, fetch)
	_, err := f.loaders[0].Get(context.Background(), "k")
	require.NoError(t, err)
	v, err := f.loaders[1].Get(context.Background(), "k")
	require.NoError(t, err)
	require.Equal(t, "1", v, "flight mode with a shared tier: the other instance's result")
	require.Zero(t, f.loaders[1].Len(), "no local memo in flight mode")

	store := newSharedStore(newClock())
	l := mustNew(t, fetch, flightcache.Config{DisableRemote: true},
		flightcache.WithRemote[string, string](&fakeRemote{s: store}))
	_, err = l.Get(context.Background(), "k")
	require.NoError(t, err)
	require.Zero(t, store.calls.Load(), "DisableRemote switches the shared tier off")

	_, err = flightcache.New(fetch, flightcache.Config{}, flightcache.WithRemote[string, string](&fakeRemote{s: store}))
	require.ErrorIs(t, err, flightcache.ErrInvalidConfig)
	require.ErrorContains(t, err, "RemoteTTL (or TTL) must be > 0 when a Remote is used")
}

func TestCloseStopsRemoteWatch(t *testing.T) {
	store := newSharedStore(newClock())
	l, err := flightcache.New(func(ctx context.Context, key string) (string, error) { return key, nil },
		flightcache.Config{TTL: time.Minute}, flightcache.WithRemote[string, string](&fakeRemote{s: store, id: 7}))
	require.NoError(t, err)
	_, watchers := store.counts()
	require.Equal(t, 1, watchers)
	require.NoError(t, l.Close())
	_, watchers = store.counts()
	require.Zero(t, watchers)
}

func TestRemoteMetricsExported(t *testing.T) {
	cfg := flightcache.Config{Name: "users", Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Minute}
	f := newFleet(t, 1, cfg, func(ctx context.Context, key string) (string, error) { return key, nil })
	f.store.down.Store(true)
	_, err := f.loaders[0].Get(context.Background(), "k")
	require.NoError(t, err)
	require.NoError(t, testutil.CollectAndCompare(flightcache.NewCollector(f.loaders[0]), strings.NewReader(`
# HELP flightcache_remote_breaker_open 1 while the shared tier's circuit breaker is open.
# TYPE flightcache_remote_breaker_open gauge
flightcache_remote_breaker_open{loader="users"} 1
# HELP flightcache_remote_errors_total Shared-tier calls that failed.
# TYPE flightcache_remote_errors_total counter
flightcache_remote_errors_total{loader="users"} 1
`), "flightcache_remote_breaker_open", "flightcache_remote_errors_total"))
}

// panickyRemote is a fakeRemote whose Get panics.
type panickyRemote struct{ *fakeRemote }

func (p panickyRemote) Get(ctx context.Context, key string) (flightcache.RemoteRecord[string], bool, error) {
	panic("remote bug")
}

func TestRemotePanicDuringLoadFallsBack(t *testing.T) {
	store := newSharedStore(newClock())
	l := mustNew(t, func(ctx context.Context, key string) (string, error) { return "fetched", nil },
		flightcache.Config{TTL: time.Minute}, flightcache.WithRemote[string, string](panickyRemote{&fakeRemote{s: store}}))
	v, err := l.Get(context.Background(), "k")
	require.NoError(t, err, "a panicking shared tier is treated as an unreachable one")
	require.Equal(t, "fetched", v)
	require.EqualValues(t, 1, l.Stats().RemoteErrors)
}

func TestStaleRefreshWithSharedTier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := newClock()
		var fetches atomic.Int64
		cfg := flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, Clock: clock,
			TTL: 10 * time.Second, StaleTTL: 5 * time.Second, RemoteTTL: 10 * time.Second}
		f := newFleet(t, 2, cfg, func(ctx context.Context, key string) (string, error) {
			return fmt.Sprintf("v%d", fetches.Add(1)), nil
		})
		a, b := f.loaders[0], f.loaders[1]
		ctx := context.Background()
		v, _ := a.Get(ctx, "k")
		require.Equal(t, "v1", v)
		clock.Advance(10 * time.Second) // stale locally, gone from the shared tier
		v, err := a.Get(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, "v1", v, "the stale copy is served at once")
		synctest.Wait()
		require.EqualValues(t, 2, fetches.Load(), "the refresh fetched instead of reading the shared copy back")
		v, _ = a.Get(ctx, "k")
		require.Equal(t, "v2", v)
		v, _ = b.Get(ctx, "k")
		require.Equal(t, "v2", v, "the refreshed value was shared with the fleet")
		require.EqualValues(t, 2, fetches.Load())
	})
}

// raceRemote is a fakeRemote in which another instance stores the key just
// before this one takes the lease.
type raceRemote struct{ *fakeRemote }

func (r raceRemote) Lease(ctx context.Context, key string, ttl time.Duration) (func(), bool, error) {
	other := &fakeRemote{s: r.s, id: 99}
	_ = other.Set(ctx, key, flightcache.RemoteRecord[string]{Value: "stored by another instance", TTL: time.Minute})
	return r.fakeRemote.Lease(ctx, key, ttl)
}

func TestLeaseRechecksTheSharedTier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fetches atomic.Int64
		store := newSharedStore(newClock())
		l := mustNew(t, func(ctx context.Context, key string) (string, error) {
			fetches.Add(1)
			return "fetched", nil
		}, flightcache.Config{TTL: time.Minute}, flightcache.WithRemote[string, string](raceRemote{&fakeRemote{s: store}}))
		v, err := l.Get(context.Background(), "k")
		require.NoError(t, err)
		require.Equal(t, "stored by another instance", v)
		require.Zero(t, fetches.Load(), "the record that appeared before the lease was used, not fetched again")
		synctest.Wait() // the lease goes after the callers have their value
		leases, _ := store.counts()
		require.Zero(t, leases, "the lease was released")
	})
}

// slowSetRemote is a fakeRemote whose Set waits until released.
type slowSetRemote struct {
	*fakeRemote
	release chan struct{}
}

func (r slowSetRemote) Set(ctx context.Context, key string, rec flightcache.RemoteRecord[string]) error {
	<-r.release
	return r.fakeRemote.Set(ctx, key, rec)
}

func TestSlowSharedWriteDoesNotDelayCallers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newSharedStore(newClock())
		r := slowSetRemote{&fakeRemote{s: store}, make(chan struct{})}
		l := mustNew(t, func(ctx context.Context, key string) (string, error) { return "v", nil },
			flightcache.Config{TTL: time.Minute}, flightcache.WithRemote[string, string](r))
		v, err := l.Get(context.Background(), "k") // returns while the shared write still waits
		require.NoError(t, err)
		require.Equal(t, "v", v)
		synctest.Wait()
		store.mu.Lock()
		_, leased := store.leases["k"]
		store.mu.Unlock()
		require.True(t, leased, "the lease is held until the record is written")
		close(r.release)
		synctest.Wait()
		store.mu.Lock()
		defer store.mu.Unlock()
		require.Contains(t, store.records, "k")
		require.Empty(t, store.leases)
	})
}

// slowRemote is a fakeRemote whose every call takes 60ms (or until ctx ends).
type slowRemote struct{ *fakeRemote }

func (r slowRemote) wait(ctx context.Context) error {
	select {
	case <-time.After(60 * time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r slowRemote) Get(ctx context.Context, key string) (flightcache.RemoteRecord[string], bool, error) {
	if err := r.wait(ctx); err != nil {
		return flightcache.RemoteRecord[string]{}, false, err
	}
	return r.fakeRemote.Get(ctx, key)
}

func (r slowRemote) Lease(ctx context.Context, key string, ttl time.Duration) (func(), bool, error) {
	if err := r.wait(ctx); err != nil {
		return nil, false, err
	}
	return r.fakeRemote.Lease(ctx, key, ttl)
}

func TestRemoteTimeoutBoundsTheSharedPhase(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newSharedStore(newClock())
		l := mustNew(t, func(ctx context.Context, key string) (string, error) { return "v", nil },
			flightcache.Config{TTL: time.Minute, RemoteTimeout: 100 * time.Millisecond},
			flightcache.WithRemote[string, string](slowRemote{&fakeRemote{s: store}}))
		start := time.Now()
		v, err := l.Get(context.Background(), "k")
		require.NoError(t, err)
		require.Equal(t, "v", v)
		require.Equal(t, 100*time.Millisecond, time.Since(start),
			"look-up (60ms) + lease (cut at 40ms): the shared tier added exactly RemoteTimeout")
		require.EqualValues(t, 1, l.Stats().RemoteErrors)
	})
}
