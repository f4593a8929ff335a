package flightcache_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flightcache/flightcache"
)

// gate is a fetch function whose calls block until released, counting how
// many started and reporting each start on a channel.
type gate struct {
	calls   atomic.Int64
	release chan struct{}
	started chan string // receives the key of each fetch as it starts; may be nil
}

func newGate() *gate { return &gate{release: make(chan struct{})} }

func (g *gate) fetch(ctx context.Context, key string) (string, error) {
	n := g.calls.Add(1)
	if g.started != nil {
		g.started <- key
	}
	select {
	case <-g.release:
		return fmt.Sprintf("%s#%d", key, n), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func mustNew[K comparable, V any](t *testing.T, fetch flightcache.FetchFunc[K, V], cfg flightcache.Config, opts ...flightcache.Option[K, V]) *flightcache.Loader[K, V] {
	t.Helper()
	l, err := flightcache.New(fetch, cfg, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

var cacheCfg = flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 100}

// requireBalanced checks the counter identities that hold at rest.
func requireBalanced(t *testing.T, s flightcache.Stats, gets uint64) {
	t.Helper()
	require.Equal(t, gets, s.Hits+s.Misses, "Hits+Misses must equal Gets: %+v", s)
	require.Equal(t, s.Misses, s.Loads+s.Shared, "Misses must equal Loads+Shared: %+v", s)
	require.Zero(t, s.InFlight, "InFlight at rest: %+v", s)
}

type result struct {
	v   string
	err error
}

// burst runs n Gets of key at once and returns their results once all have
// returned. While they wait, synctest.Wait lets the caller inspect state:
// it is called with every Get blocked in the loader.
func burst(t *testing.T, l *flightcache.Loader[string, string], key string, n int, whileBlocked func()) []result {
	t.Helper()
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			v, err := l.Get(context.Background(), key)
			results[i] = result{v, err}
		})
	}
	synctest.Wait()
	whileBlocked()
	wg.Wait()
	return results
}

// leaveWhileWaiting starts a Get of key on a context of its own, waits
// (inside a synctest bubble) until it blocks in the Loader, cancels that
// context and checks the Get returned context.Canceled at once.
func leaveWhileWaiting[V any](t *testing.T, l *flightcache.Loader[string, V], key string, msgAndArgs ...any) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := l.Get(ctx, key)
		errc <- err
	}()
	synctest.Wait()
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled, msgAndArgs...)
}

func TestBurstSharesOneFetch(t *testing.T) {
	for _, mode := range []flightcache.Mode{flightcache.ModeFlight, flightcache.ModeCache} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// Each fetch blocks until it is handed one token.
				var calls atomic.Int64
				tokens := make(chan struct{})
				l := mustNew(t, func(ctx context.Context, key string) (string, error) {
					n := calls.Add(1)
					<-tokens
					return fmt.Sprintf("%s#%d", key, n), nil
				}, flightcache.Config{Mode: mode, MaxEntries: 10})
				g := struct{ calls *atomic.Int64 }{&calls}
				const n = 1000
				results := burst(t, l, "k", n, func() {
					s := l.Stats()
					assert.EqualValues(t, 1, g.calls.Load(), "one fetch while all wait")
					assert.EqualValues(t, 1, s.InFlight)
					assert.EqualValues(t, n-1, s.Shared)
					tokens <- struct{}{}
				})
				for i, r := range results {
					require.NoError(t, r.err, "caller %d", i)
					require.Equal(t, "k#1", r.v, "caller %d", i)
				}
				s := l.Stats()
				require.EqualValues(t, 1, g.calls.Load())
				require.EqualValues(t, 1, s.Loads)
				require.EqualValues(t, n, s.Misses)
				require.EqualValues(t, n-1, s.Shared)
				requireBalanced(t, s, n)

				// A second burst: flight mode fetches again, cache mode hits.
				results = burst(t, l, "k", n, func() {
					if mode == flightcache.ModeFlight {
						tokens <- struct{}{}
					}
				})
				for _, r := range results {
					require.NoError(t, r.err)
				}
				s = l.Stats()
				if mode == flightcache.ModeFlight {
					require.EqualValues(t, 2, g.calls.Load(), "flight mode keeps nothing")
					require.Equal(t, "k#2", results[0].v)
					require.Zero(t, s.Hits)
					require.Zero(t, l.Len())
				} else {
					require.EqualValues(t, 1, g.calls.Load(), "cache mode serves the kept value")
					require.Equal(t, "k#1", results[0].v)
					require.EqualValues(t, n, s.Hits)
					require.Equal(t, 1, l.Len())
				}
				requireBalanced(t, s, 2*n)
			})
		})
	}
}

func TestLeaderCancelledOthersGetValue(t *testing.T) {
	for _, mode := range []flightcache.Mode{flightcache.ModeFlight, flightcache.ModeCache} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var fetchCtx context.Context
				g := newGate()
				l := mustNew(t, func(ctx context.Context, key string) (string, error) {
					fetchCtx = ctx
					return g.fetch(ctx, key)
				}, flightcache.Config{Mode: mode, MaxEntries: 10})

				leaderCtx, cancelLeader := context.WithCancel(context.Background())
				leaderErr := make(chan error, 1)
				go func() {
					_, err := l.Get(leaderCtx, "k")
					leaderErr <- err
				}()
				synctest.Wait() // the leader's fetch is running
				require.EqualValues(t, 1, g.calls.Load())

				results := burst(t, l, "k", 99, func() {
					cancelLeader()
					require.ErrorIs(t, <-leaderErr, context.Canceled, "the leader leaves at once")
					synctest.Wait()
					require.NoError(t, fetchCtx.Err(), "the fetch is not cancelled while others wait")
					close(g.release)
				})
				for _, r := range results {
					require.NoError(t, r.err, "a leader's cancellation is never shared")
					require.Equal(t, "k#1", r.v)
				}
				s := l.Stats()
				require.EqualValues(t, 1, s.Abandoned)
				require.EqualValues(t, 1, g.calls.Load())
				requireBalanced(t, s, 100)
			})
		})
	}
}

func TestFlightAllWaitersLeaveCancelsFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var first atomic.Bool
		firstCancelled := make(chan error, 1)
		l := mustNew(t, func(ctx context.Context, key string) (string, error) {
			if first.CompareAndSwap(false, true) {
				<-ctx.Done()
				firstCancelled <- ctx.Err()
				return "stale", nil // ignores its cancellation on purpose
			}
			return "fresh", nil
		}, flightcache.Config{})

		ctx, cancel := context.WithCancel(context.Background())
		errs := make(chan error, 3)
		for range 3 {
			go func() {
				_, err := l.Get(ctx, "k")
				errs <- err
			}()
		}
		synctest.Wait()
		cancel()
		for range 3 {
			require.ErrorIs(t, <-errs, context.Canceled)
		}
		require.ErrorIs(t, <-firstCancelled, context.Canceled, "the fetch's context ends once every waiter left")

		v, err := l.Get(context.Background(), "k")
		require.NoError(t, err)
		require.Equal(t, "fresh", v, "a new Get never joins a cancelled flight")
		s := l.Stats()
		require.EqualValues(t, 2, s.Loads)
		require.EqualValues(t, 3, s.Abandoned)
		requireBalanced(t, s, 4)
	})
}

func TestCacheAbandonedLoadStillStores(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate()
		l := mustNew(t, g.fetch, cacheCfg)
		leaveWhileWaiting(t, l, "k")
		close(g.release)
		synctest.Wait() // the load finishes and stores
		require.Zero(t, l.Stats().InFlight)

		v, err := l.Get(context.Background(), "k")
		require.NoError(t, err)
		require.Equal(t, "k#1", v, "the abandoned load's result was kept")
		require.EqualValues(t, 1, g.calls.Load())
		s := l.Stats()
		require.EqualValues(t, 1, s.Hits)
		requireBalanced(t, s, 2)
	})
}

func TestFetchContextKeepsValues(t *testing.T) {
	type ctxKey struct{}
	seen := make(chan any, 1)
	l := mustNew(t, func(ctx context.Context, key string) (string, error) {
		seen <- ctx.Value(ctxKey{})
		return key, nil
	}, flightcache.Config{})
	ctx := context.WithValue(context.Background(), ctxKey{}, "trace-42")
	_, err := l.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "trace-42", <-seen)
}

// TestFetchContextDetached: a load in its own goroutine (the default)
// runs on a context with the first Get's values but neither its deadline
// nor its cancellation: cancelled with a cause, that Get returns, the
// fetch goes on for the Get that joined, and context.Cause never reports
// the Get's cause. Once every caller has left (flight mode), the fetch's
// context ends, with a cause of flightcache's own.
func TestFetchContextDetached(t *testing.T) {
	type ctxKey struct{}
	getCause := errors.New("the request was cancelled")
	synctest.Test(t, func(t *testing.T) {
		type seen struct {
			val             any
			hasDeadline     bool
			errAtStart      error
			causeAfterLeave error
			causeAtEnd      error
		}
		started, leftOne, leftAll := make(chan struct{}), make(chan struct{}), make(chan struct{})
		seenc := make(chan seen, 1)
		l := mustNew(t, func(ctx context.Context, key string) (string, error) {
			var s seen
			s.val = ctx.Value(ctxKey{})
			_, s.hasDeadline = ctx.Deadline()
			s.errAtStart = ctx.Err()
			close(started)
			<-leftOne
			s.causeAfterLeave = context.Cause(ctx)
			<-leftAll
			<-ctx.Done()
			s.causeAtEnd = context.Cause(ctx)
			seenc <- s
			return "v", ctx.Err()
		}, flightcache.Config{})
		base := context.WithValue(context.Background(), ctxKey{}, "trace-7")
		ctx1, cancel1 := context.WithCancelCause(base)
		ctx1, cancel1t := context.WithTimeout(ctx1, time.Hour)
		defer cancel1t()
		ctx2, cancel2 := context.WithCancel(context.Background())
		errs := make(chan error, 2)
		go func() { _, err := l.Get(ctx1, "k"); errs <- err }()
		<-started
		go func() { _, err := l.Get(ctx2, "k"); errs <- err }()
		synctest.Wait() // the second Get has joined
		cancel1(getCause)
		require.ErrorIs(t, <-errs, context.Canceled, "the first Get leaves at once")
		close(leftOne)
		synctest.Wait()
		cancel2()
		require.ErrorIs(t, <-errs, context.Canceled)
		close(leftAll)
		s := <-seenc
		require.Equal(t, "trace-7", s.val)
		require.False(t, s.hasDeadline, "the fetch got the Get's deadline")
		require.NoError(t, s.errAtStart)
		require.NoError(t, s.causeAfterLeave, "the fetch saw the first Get's cancellation")
		require.Error(t, s.causeAtEnd)
		require.NotErrorIs(t, s.causeAtEnd, getCause)
		require.Contains(t, s.causeAtEnd.Error(), "flightcache:")
	})
}

func TestFetchTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := mustNew(t, func(ctx context.Context, key string) (string, error) {
			<-ctx.Done()
			return "", ctx.Err()
		}, flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, FetchTimeout: 2 * time.Second})
		start := time.Now()
		_, err := l.Get(context.Background(), "k")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, 2*time.Second, time.Since(start))
		require.Zero(t, l.Len(), "errors are not cached")
		s := l.Stats()
		require.EqualValues(t, 1, s.LoadErrors)
	})
}

func TestPanicReachesEveryWaiter(t *testing.T) {
	for _, mode := range []flightcache.Mode{flightcache.ModeFlight, flightcache.ModeCache} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				var calls atomic.Int64
				l := mustNew(t, func(ctx context.Context, key string) (string, error) {
					if calls.Add(1) == 1 {
						<-release
						panic(fmt.Errorf("boom: %w", io.ErrUnexpectedEOF))
					}
					return "ok", nil
				}, flightcache.Config{Mode: mode, MaxEntries: 10})

				results := burst(t, l, "k", 10, func() { close(release) })
				for _, r := range results {
					require.ErrorIs(t, r.err, flightcache.ErrPanic)
					require.ErrorIs(t, r.err, io.ErrUnexpectedEOF, "unwraps to the panic value")
					var pe *flightcache.PanicError
					require.ErrorAs(t, r.err, &pe)
					require.Contains(t, string(pe.Stack), "loader_test.go", "the stack of the fetch")
					require.Contains(t, r.err.Error(), "boom")
				}
				v, err := l.Get(context.Background(), "k")
				require.NoError(t, err, "nothing was stored and the key is free")
				require.Equal(t, "ok", v)
				s := l.Stats()
				require.EqualValues(t, 1, s.Panics)
				require.EqualValues(t, 1, s.LoadErrors)
				requireBalanced(t, s, 11)
			})
		})
	}
}

func TestPanicWithNonError(t *testing.T) {
	l := mustNew(t, func(ctx context.Context, key string) (int, error) { panic("plain string") }, flightcache.Config{})
	_, err := l.Get(context.Background(), "k")
	var pe *flightcache.PanicError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "plain string", pe.Value)
	require.ErrorIs(t, err, flightcache.ErrPanic)
}

func TestGoexitReleasesWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var calls atomic.Int64
		l := mustNew(t, func(ctx context.Context, key string) (string, error) {
			if calls.Add(1) == 1 {
				<-release
				runtime.Goexit()
			}
			return "ok", nil
		}, cacheCfg)
		results := burst(t, l, "k", 5, func() { close(release) })
		for _, r := range results {
			require.ErrorIs(t, r.err, flightcache.ErrGoexit)
		}
		v, err := l.Get(context.Background(), "k")
		require.NoError(t, err)
		require.Equal(t, "ok", v)
		require.EqualValues(t, 1, l.Stats().Panics)
	})
}

func TestInvalidateDuringFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate()
		l := mustNew(t, g.fetch, cacheCfg)
		results := burst(t, l, "k", 3, func() {
			l.Invalidate("k")
			close(g.release)
		})
		for _, r := range results {
			require.NoError(t, r.err)
			require.Equal(t, "k#1", r.v, "callers of the running fetch get its value")
		}
		require.Zero(t, l.Len(), "the value read before the Invalidate is not stored")
		v, err := l.Get(context.Background(), "k")
		require.NoError(t, err)
		require.Equal(t, "k#2", v, "the next Get fetches again")
	})
}

func TestGetAfterInvalidateDoesNotJoinOldFetch(t *testing.T) {
	for _, mode := range []flightcache.Mode{flightcache.ModeFlight, flightcache.ModeCache} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				releases := []chan struct{}{make(chan struct{}), make(chan struct{})}
				var calls atomic.Int64
				l := mustNew(t, func(ctx context.Context, key string) (string, error) {
					n := calls.Add(1)
					<-releases[n-1]
					return fmt.Sprintf("v%d", n), nil
				}, flightcache.Config{Mode: mode, MaxEntries: 10})
				get := func() chan result {
					ch := make(chan result, 1)
					go func() {
						v, err := l.Get(context.Background(), "k")
						ch <- result{v, err}
					}()
					synctest.Wait()
					return ch
				}
				a := get()
				l.Invalidate("k")
				b := get() // starts fetch 2
				close(releases[0])
				require.Equal(t, result{v: "v1"}, <-a)
				c := get() // the finished fetch 1 must not have freed fetch 2's slot
				require.EqualValues(t, 2, calls.Load())
				close(releases[1])
				require.Equal(t, result{v: "v2"}, <-b)
				require.Equal(t, result{v: "v2"}, <-c)
				s := l.Stats()
				require.EqualValues(t, 2, s.Loads)
				requireBalanced(t, s, 3)
			})
		})
	}
}

func TestSetDuringFetchWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate()
		l := mustNew(t, g.fetch, cacheCfg)
		results := burst(t, l, "k", 2, func() {
			l.Set("k", "written")
			close(g.release)
		})
		for _, r := range results {
			require.Equal(t, "k#1", r.v)
		}
		v, err := l.Get(context.Background(), "k")
		require.NoError(t, err)
		require.Equal(t, "written", v, "the running fetch does not store over a newer Set")
		require.EqualValues(t, 1, g.calls.Load())
	})
}

func TestInvalidateAll(t *testing.T) {
	var calls atomic.Int64
	l := mustNew(t, func(ctx context.Context, key string) (string, error) {
		calls.Add(1)
		return key, nil
	}, cacheCfg)
	for _, k := range []string{"a", "b", "c"} {
		_, err := l.Get(context.Background(), k)
		require.NoError(t, err)
	}
	require.Equal(t, 3, l.Len())
	l.InvalidateAll()
	require.Zero(t, l.Len())
	_, err := l.Get(context.Background(), "a")
	require.NoError(t, err)
	require.EqualValues(t, 4, calls.Load())
}

func TestLRUEvictionOrder(t *testing.T) {
	var calls atomic.Int64
	l := mustNew(t, func(ctx context.Context, key string) (string, error) {
		calls.Add(1)
		return key, nil
	}, flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 2, Policy: flightcache.PolicyLRU})
	get := func(k string) {
		t.Helper()
		v, err := l.Get(context.Background(), k)
		require.NoError(t, err)
		require.Equal(t, k, v)
	}
	get("a")
	get("b")
	get("a") // a is now the most recently used
	get("c") // evicts b
	require.Equal(t, 2, l.Len())
	require.EqualValues(t, 1, l.Stats().Evictions)
	require.EqualValues(t, 3, calls.Load())
	get("a")
	require.EqualValues(t, 3, calls.Load(), "a was kept")
	get("b")
	require.EqualValues(t, 4, calls.Load(), "b was evicted")
	require.EqualValues(t, 2, l.Stats().Evictions, "b's return evicted c")
	s := l.Stats()
	require.Equal(t, 2, s.Entries)
	requireBalanced(t, s, 6)
}

// fakeClock is a Clock moved by hand.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestTTLExactToTheNanosecond(t *testing.T) {
	clock := &fakeClock{}
	clock.ns.Store(1_700_000_000_000_000_000)
	var calls atomic.Int64
	l := mustNew(t, func(ctx context.Context, key string) (int64, error) {
		return calls.Add(1), nil
	}, flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: 10 * time.Second, Clock: clock})

	get := func() int64 {
		t.Helper()
		v, err := l.Get(context.Background(), "k")
		require.NoError(t, err)
		return v
	}
	require.EqualValues(t, 1, get())
	clock.Advance(10*time.Second - 1)
	require.EqualValues(t, 1, get(), "fresh at TTL-1ns")
	clock.Advance(1)
	require.EqualValues(t, 2, get(), "expired at exactly TTL")
	clock.Advance(10*time.Second - 1)
	require.EqualValues(t, 2, get())

	l.Set("k", 100)
	clock.Advance(10*time.Second - 1)
	require.EqualValues(t, 100, get(), "Set values live for TTL too")
	clock.Advance(1)
	require.EqualValues(t, 3, get())
}

func TestTTLZeroNeverExpires(t *testing.T) {
	clock := &fakeClock{}
	var calls atomic.Int64
	l := mustNew(t, func(ctx context.Context, key string) (int64, error) {
		return calls.Add(1), nil
	}, flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, Clock: clock})
	_, err := l.Get(context.Background(), "k")
	require.NoError(t, err)
	clock.Advance(100 * 365 * 24 * time.Hour)
	v, err := l.Get(context.Background(), "k")
	require.NoError(t, err)
	require.EqualValues(t, 1, v)
}

func TestTTLWithDefaultClockUnderSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		l := mustNew(t, func(ctx context.Context, key string) (int64, error) {
			return calls.Add(1), nil
		}, flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Minute})
		_, err := l.Get(context.Background(), "k")
		require.NoError(t, err)
		<-time.After(time.Minute - time.Nanosecond) // fake time: advances at once
		v, _ := l.Get(context.Background(), "k")
		require.EqualValues(t, 1, v)
		<-time.After(time.Nanosecond)
		v, _ = l.Get(context.Background(), "k")
		require.EqualValues(t, 2, v, "the default clock is read at each check")
	})
}

func TestFetchErrorsAreNotCached(t *testing.T) {
	var calls atomic.Int64
	l := mustNew(t, func(ctx context.Context, key string) (string, error) {
		if calls.Add(1) == 1 {
			return "", flightcache.ErrNotFound
		}
		return "found", nil
	}, cacheCfg)
	_, err := l.Get(context.Background(), "k")
	require.ErrorIs(t, err, flightcache.ErrNotFound)
	require.Zero(t, l.Len())
	v, err := l.Get(context.Background(), "k")
	require.NoError(t, err)
	require.Equal(t, "found", v)
}

func TestMaxConcurrentFetches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var running, peak atomic.Int64
		release := make(chan struct{})
		l := mustNew(t, func(ctx context.Context, key string) (string, error) {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			<-release
			running.Add(-1)
			return key, nil
		}, flightcache.Config{MaxConcurrentFetches: 2})

		var wg sync.WaitGroup
		for i := range 6 {
			wg.Go(func() {
				v, err := l.Get(context.Background(), fmt.Sprint(i))
				assert.NoError(t, err)
				assert.Equal(t, fmt.Sprint(i), v)
			})
		}
		synctest.Wait()
		require.EqualValues(t, 2, running.Load(), "two fetches run, four wait for a slot")
		require.EqualValues(t, 6, l.Stats().InFlight)
		close(release)
		wg.Wait()
		require.EqualValues(t, 2, peak.Load())
	})
}

func TestWaitingForSlotHonoursContext(t *testing.T) {
	for _, mode := range []flightcache.Mode{flightcache.ModeFlight, flightcache.ModeCache} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := newGate()
				g.started = make(chan string, 10)
				l := mustNew(t, g.fetch, flightcache.Config{Mode: mode, MaxEntries: 10, MaxConcurrentFetches: 1})
				first := make(chan result, 1)
				go func() {
					v, err := l.Get(context.Background(), "a")
					first <- result{v, err}
				}()
				require.Equal(t, "a", <-g.started)

				leaveWhileWaiting(t, l, "b", "the caller leaves while its load waits for a slot")
				synctest.Wait()
				require.EqualValues(t, 1, l.Stats().InFlight, "the queued load of b was dropped")
				close(g.release)
				require.Equal(t, result{v: "a#1"}, <-first)
				synctest.Wait()
				require.EqualValues(t, 1, g.calls.Load(), "b was never fetched")
				require.Zero(t, l.Stats().InFlight)
			})
		})
	}
}

func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate()
		l, err := flightcache.New(g.fetch, cacheCfg)
		require.NoError(t, err)
		l.Set("kept", "x")

		errc := make(chan error, 1)
		go func() {
			_, err := l.Get(context.Background(), "k")
			errc <- err
		}()
		synctest.Wait()
		require.NoError(t, l.Close(), "Close cancels the running fetch and waits for it")
		err = <-errc
		require.ErrorIs(t, err, flightcache.ErrClosed, "a waiter of an interrupted load learns why")
		require.ErrorIs(t, err, context.Canceled)

		_, err = l.Get(context.Background(), "kept")
		require.ErrorIs(t, err, flightcache.ErrClosed)
		require.Zero(t, l.Len())
		require.Zero(t, l.Stats().InFlight)
		require.NoError(t, l.Close(), "Close twice is fine")
	})
}

func TestConcurrentMixedWorkloadCountersAddUp(t *testing.T) {
	clock := &fakeClock{}
	var calls atomic.Int64
	l := mustNew(t, func(ctx context.Context, key int) (int, error) {
		n := calls.Add(1)
		switch {
		case key%17 == 0:
			return 0, errors.New("transient")
		case key%29 == 0 && n%2 == 0:
			panic("sometimes")
		}
		return key * 2, nil
	}, flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 50, TTL: time.Second, Clock: clock})

	const workers, ops = 8, 2000
	var gets atomic.Uint64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range ops {
				key := (i*7 + w*13) % 120
				switch i % 50 {
				case 0:
					l.Invalidate(key)
				case 1:
					clock.Advance(100 * time.Millisecond)
				case 2:
					l.Set(key, key*2)
				}
				ctx := context.Background()
				if i%23 == 0 {
					c, cancel := context.WithCancel(ctx)
					cancel()
					ctx = c
				}
				v, err := l.Get(ctx, key)
				gets.Add(1)
				if err == nil && v != key*2 {
					t.Errorf("Get(%d) = %d", key, v)
				}
			}
		})
	}
	wg.Wait()
	require.LessOrEqual(t, l.Len(), 50)
	// Abandoned cache-mode loads may still be running: Close waits for them.
	require.NoError(t, l.Close())
	s := l.Stats()
	requireBalanced(t, s, gets.Load())
	require.LessOrEqual(t, uint64(calls.Load()), s.Loads, "no load called fetch twice (abandoned ones may not have called it)")
	require.NotZero(t, s.Hits)
	require.NotZero(t, s.Panics)
	require.NotZero(t, s.Abandoned)
}
