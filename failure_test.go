package flightcache_test

// Promise 7, failure is never cached: a cancellation, a deadline, a panic,
// runtime.Goexit, a transient error or an interruption by Close is never
// stored, neither in the local tier nor in the shared one, and is never
// taken for "not found", even when the error also wraps ErrNotFound or the
// Config.NotFound classifier would accept it; a failed refresh keeps the
// old entry; a partial batch failure is never recorded as not-found.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flightcache/flightcache"
)

// relStored returns the shared store's record of key, expired or not.
func relStored(s *sharedStore, key string) (flightcache.RemoteRecord[string], bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[key]
	return r.rec, ok
}

// relFailure is one way a load can fail. fail is the fetch's first call;
// later calls succeed. trigger runs the failing Get (it may cancel, close,
// ...) and checks its error.
type relFailure struct {
	name    string
	cfg     func(*flightcache.Config)
	fail    func(ctx context.Context) (string, error)
	trigger func(t *testing.T, l *flightcache.Loader[string, string]) // nil: a plain Get that must fail
	closes  bool                                                      // trigger closes the Loader
}

func relFailures() []relFailure {
	wrapNotFound := func(ctxErr error) func(ctx context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			return "", fmt.Errorf("lookup: %w: %w", flightcache.ErrNotFound, ctxErr)
		}
	}
	return []relFailure{
		{name: "transient", fail: func(ctx context.Context) (string, error) { return "", errors.New("connection reset") }},
		{name: "panic", fail: func(ctx context.Context) (string, error) { panic("boom") }},
		{name: "goexit", fail: func(ctx context.Context) (string, error) { runtime.Goexit(); return "", nil }},
		{name: "deadline", cfg: func(c *flightcache.Config) { c.FetchTimeout = time.Second },
			fail: func(ctx context.Context) (string, error) { <-ctx.Done(); return "", ctx.Err() }},
		{name: "not-found wrapping a deadline", fail: wrapNotFound(context.DeadlineExceeded)},
		{name: "not-found wrapping a cancellation", fail: wrapNotFound(context.Canceled)},
		{name: "broad classifier", cfg: func(c *flightcache.Config) {
			c.NotFound = func(error) bool { return true } // "everything is not found": still not ctx errors
		}, fail: func(ctx context.Context) (string, error) { return "", context.DeadlineExceeded }},
		{name: "caller left (flight mode)", cfg: func(c *flightcache.Config) { c.Mode = flightcache.ModeFlight },
			fail: func(ctx context.Context) (string, error) { <-ctx.Done(); return "", ctx.Err() },
			trigger: func(t *testing.T, l *flightcache.Loader[string, string]) {
				ctx, cancel := context.WithCancel(context.Background())
				go func() { synctest.Wait(); cancel() }()
				if _, err := l.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
					t.Fatalf("Get = %v, want context.Canceled", err)
				}
				synctest.Wait() // the abandoned fetch has returned
			}},
		{name: "caller left while queued for a slot", cfg: func(c *flightcache.Config) { c.MaxConcurrentFetches = 1 },
			// The fetch of k never runs: its Get leaves while the load is
			// queued. The first fetch of k is the next Get's.
			fail: func(ctx context.Context) (string, error) { return "fresh", nil },
			trigger: func(t *testing.T, l *flightcache.Loader[string, string]) {
				// Another key holds the only slot until the queued Get has left.
				hold := make(chan struct{})
				go func() { _, _ = l.Get(context.WithValue(context.Background(), relHoldKey{}, hold), "slot-holder") }()
				synctest.Wait()
				ctx, cancel := context.WithCancel(context.Background())
				go func() { synctest.Wait(); cancel() }()
				if _, err := l.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
					t.Fatalf("Get = %v, want context.Canceled", err)
				}
				close(hold)
				synctest.Wait()
				l.Invalidate("slot-holder")
			}},
		{name: "interrupted by Close", fail: func(ctx context.Context) (string, error) { <-ctx.Done(); return "", ctx.Err() },
			closes: true,
			trigger: func(t *testing.T, l *flightcache.Loader[string, string]) {
				errs := make(chan error)
				go func() { _, err := l.Get(context.Background(), "k"); errs <- err }()
				synctest.Wait()
				_ = l.Close()
				if err := <-errs; !errors.Is(err, flightcache.ErrClosed) {
					t.Fatalf("Get = %v, want an error wrapping ErrClosed", err)
				}
			}},
	}
}

// relHoldKey marks a Get whose fetch must wait for the channel it holds.
type relHoldKey struct{}

func TestFailuresAreNeverCached(t *testing.T) {
	for _, f := range relFailures() {
		for _, shared := range []bool{false, true} {
			name := f.name
			if shared {
				name += "/shared tier"
			}
			t.Run(name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					var calls atomic.Int64
					fetch := func(ctx context.Context, key string) (string, error) {
						if hold, ok := ctx.Value(relHoldKey{}).(chan struct{}); ok {
							<-hold
							return "held", nil
						}
						if calls.Add(1) == 1 {
							return f.fail(ctx)
						}
						return "fresh", nil
					}
					cfg := flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Hour, NegativeTTL: time.Hour}
					if f.cfg != nil {
						f.cfg(&cfg)
					}
					var opts []flightcache.Option[string, string]
					var store *sharedStore
					if shared {
						store = newSharedStore(newClock())
						opts = append(opts, flightcache.WithRemote[string, string](&fakeRemote{s: store}))
					}
					l, err := flightcache.New(fetch, cfg, opts...)
					if err != nil {
						t.Fatal(err)
					}
					defer l.Close()
					if f.trigger != nil {
						f.trigger(t, l)
					} else if v, err := l.Get(context.Background(), "k"); err == nil {
						t.Fatalf("the failing Get returned %q, nil", v)
					}
					if l.Len() != 0 {
						t.Errorf("Len = %d after the failure, want 0: the failure was stored", l.Len())
					}
					if shared {
						if rec, ok := relStored(store, "k"); ok {
							t.Errorf("the shared tier holds %+v after the failure", rec)
						}
					}
					if f.closes {
						return
					}
					before := calls.Load()
					v, err := l.Get(context.Background(), "k")
					if err != nil || v != "fresh" || calls.Load() != before+1 {
						t.Errorf("the next Get = %q, %v after %d fetches, want a new fetch's value", v, err, calls.Load()-before)
					}
				})
			})
		}
	}
}

// TestFailedRefreshKeepsEntry: a refresh that fails (error, panic, Goexit,
// deadline) leaves the stale entry, locally and in the shared tier, and is
// never taken for not-found.
func TestFailedRefreshKeepsEntry(t *testing.T) {
	fails := map[string]func(ctx context.Context) (string, error){
		"error":    func(ctx context.Context) (string, error) { return "", errors.New("down") },
		"panic":    func(ctx context.Context) (string, error) { panic("boom") },
		"goexit":   func(ctx context.Context) (string, error) { runtime.Goexit(); return "", nil },
		"deadline": func(ctx context.Context) (string, error) { <-ctx.Done(); return "", ctx.Err() },
		"not-found wrapping a deadline": func(ctx context.Context) (string, error) {
			<-ctx.Done()
			return "", fmt.Errorf("%w: %w", flightcache.ErrNotFound, ctx.Err())
		},
	}
	for name, fail := range fails {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := newSharedStore(newClock())
				var calls atomic.Int64
				l, err := flightcache.New(func(ctx context.Context, key string) (string, error) {
					if calls.Add(1) > 1 {
						return fail(ctx)
					}
					return "old", nil
				}, flightcache.Config{
					Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Minute, StaleTTL: time.Hour, NegativeTTL: time.Hour,
					RemoteTTL: 2 * time.Hour, FetchTimeout: time.Second, Clock: store.clock,
				}, flightcache.WithRemote[string, string](&fakeRemote{s: store}))
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				ctx := context.Background()
				if v, err := l.Get(ctx, "k"); err != nil || v != "old" {
					t.Fatalf("Get = %q, %v", v, err)
				}
				// The shared tier lost its copy (Redis evicting under memory
				// pressure), so the refreshes reach the fetch. Wait for the
				// load's shared-tier write first: it runs after the Get has
				// its value.
				synctest.Wait()
				store.mu.Lock()
				delete(store.records, "k")
				store.mu.Unlock()
				store.clock.Advance(time.Minute)
				for range 2 { // the stale hit's refresh, then an explicit one
					if v, err := l.Get(ctx, "k"); err != nil || v != "old" {
						t.Fatalf("stale Get = %q, %v", v, err)
					}
					synctest.Wait()
					<-l.Refresh(ctx, "k")
				}
				if v, err := l.Get(ctx, "k"); err != nil || v != "old" {
					t.Fatalf("after failed refreshes Get = %q, %v, want the stale value", v, err)
				}
				if rec, ok := relStored(store, "k"); ok {
					t.Fatalf("the shared tier holds %+v after failed refreshes, want nothing", rec)
				}
				if s := l.Stats(); s.RefreshErrors < 2 {
					t.Fatalf("RefreshErrors = %d, want the failures counted", s.RefreshErrors)
				}
			})
		})
	}
}

// TestPartialBatchFailureIsNeverNotFound: a batch call that fails (with an
// error, even one wrapping ErrNotFound, alongside a partial map, or by
// panicking) fails only its keys, and none of them is recorded as
// not-found, locally or in the shared tier; keys another call left out are.
func TestPartialBatchFailureIsNeverNotFound(t *testing.T) {
	failures := map[string]func(keys []string) (map[string]string, error){
		"error with a partial map": func(keys []string) (map[string]string, error) {
			return map[string]string{keys[0]: "partial"}, errors.New("replica lost mid-query")
		},
		"error wrapping ErrNotFound": func(keys []string) (map[string]string, error) {
			return nil, fmt.Errorf("batch: %w", flightcache.ErrNotFound)
		},
		"error wrapping a deadline": func(keys []string) (map[string]string, error) {
			return nil, fmt.Errorf("batch: %w", context.DeadlineExceeded)
		},
		"panic": func(keys []string) (map[string]string, error) { panic("batch panics") },
	}
	for name, failure := range failures {
		for _, shared := range []bool{false, true} {
			tn := name
			if shared {
				tn += "/shared tier"
			}
			t.Run(tn, func(t *testing.T) {
				if shared && name == "error wrapping ErrNotFound" {
					relSkipKnown(t, "batch-error-shared-notfound")
				}
				synctest.Test(t, func(t *testing.T) { // synctest.Wait: the shared-tier writes run after GetMany returns
					store := newSharedStore(newClock())
					var singles atomic.Int64
					batch := func(ctx context.Context, keys []string) (map[string]string, error) {
						for _, k := range keys {
							if k == "c" || k == "d" { // the call with c and d fails
								return failure(keys)
							}
						}
						return map[string]string{"a": "v:a"}, nil // b is not found
					}
					var opts []flightcache.Option[string, string]
					opts = append(opts, flightcache.WithBatch(batch))
					if shared {
						opts = append(opts, flightcache.WithRemote[string, string](&fakeRemote{s: store}))
					}
					l, err := flightcache.New(func(ctx context.Context, key string) (string, error) {
						singles.Add(1)
						return "single:" + key, nil
					}, flightcache.Config{
						Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Hour, NegativeTTL: time.Hour, MaxBatchSize: 2, Clock: store.clock,
					}, opts...)
					if err != nil {
						t.Fatal(err)
					}
					defer l.Close()
					ctx := context.Background()
					res := l.GetMany(ctx, []string{"a", "b", "c", "d"})
					if v, err := res.Get("a"); err != nil || v != "v:a" {
						t.Fatalf("a = %q, %v", v, err)
					}
					if _, err := res.Get("b"); !errors.Is(err, flightcache.ErrNotFound) {
						t.Fatalf("b = %v, want ErrNotFound", err)
					}
					for _, k := range []string{"c", "d"} {
						if v, err := res.Get(k); err == nil {
							t.Fatalf("%s = %q from a failed batch call", k, v)
						}
					}
					if l.Len() != 2 {
						t.Fatalf("Len = %d, want 2 (a and b's not-found)", l.Len())
					}
					if shared {
						synctest.Wait()
						if rec, ok := relStored(store, "b"); !ok || !rec.NotFound {
							t.Fatalf("b in the shared tier: %+v, %v, want a not-found record", rec, ok)
						}
						for _, k := range []string{"c", "d"} {
							if rec, ok := relStored(store, k); ok {
								t.Fatalf("%s in the shared tier: %+v, want nothing", k, rec)
							}
						}
					}
					for _, k := range []string{"c", "d"} {
						if v, err := l.Get(ctx, k); err != nil || v != "single:"+k {
							t.Fatalf("Get(%s) after the failed batch = %q, %v, want a fresh fetch", k, v, err)
						}
					}
					if singles.Load() != 2 {
						t.Fatalf("%d single fetches, want 2 (c and d, never cached as not-found)", singles.Load())
					}
				})
			})
		}
	}
}
