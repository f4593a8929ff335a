package flightcache_test

// Promise 3, no crash, ever: a panic in user code that the Loader runs (a
// fetch, a background refresh, a batch fetch, a slog handler, a Remote
// implementation, the Config.NotFound classifier) must not bring the
// process down. Each scenario runs in a fresh copy of the test binary (as
// x/sync's singleflight tests do), so that a crash is seen as an exit
// status instead of killing the test run; the child prints what it
// survived and the parent checks the exit status and that output.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/flightcache/flightcache"
)

const relCrashEnv = "FLIGHTCACHE_CRASH_CHILD"

// relCrashScenario is one thing that must not crash the process. run
// returns a line that the parent expects in the output.
type relCrashScenario struct {
	name   string
	run    func() (string, error)
	defect string // a known defect id (relKnownDefects) the scenario shows
}

// relPanickyHandler is a slog.Handler that panics in Handle (or, with
// inEnabled, already in Enabled).
type relPanickyHandler struct{ inEnabled bool }

func (h relPanickyHandler) Enabled(context.Context, slog.Level) bool {
	if h.inEnabled {
		panic("slog handler panics in Enabled")
	}
	return true
}
func (h relPanickyHandler) Handle(context.Context, slog.Record) error {
	panic("slog handler panics in Handle")
}
func (h relPanickyHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h relPanickyHandler) WithGroup(string) slog.Handler      { return h }

// relPanickyRemote is a fake shared tier whose chosen methods panic, as a
// buggy codec or client would.
type relPanickyRemote struct {
	*fakeRemote
	panicIn map[string]bool
}

func (r *relPanickyRemote) maybe(method string) {
	if r.panicIn[method] {
		panic("remote panics in " + method)
	}
}

func (r *relPanickyRemote) Get(ctx context.Context, key string) (flightcache.RemoteRecord[string], bool, error) {
	r.maybe("Get")
	return r.fakeRemote.Get(ctx, key)
}

func (r *relPanickyRemote) Set(ctx context.Context, key string, rec flightcache.RemoteRecord[string]) error {
	r.maybe("Set")
	return r.fakeRemote.Set(ctx, key, rec)
}

func (r *relPanickyRemote) Invalidate(ctx context.Context, key string) error {
	r.maybe("Invalidate")
	return r.fakeRemote.Invalidate(ctx, key)
}

func (r *relPanickyRemote) Lease(ctx context.Context, key string, ttl time.Duration) (func(), bool, error) {
	r.maybe("Lease")
	release, ok, err := r.fakeRemote.Lease(ctx, key, ttl)
	if ok && r.panicIn["release"] {
		return func() { release(); panic("remote panics in release") }, ok, err
	}
	return release, ok, err
}

func (r *relPanickyRemote) Await(ctx context.Context, key string) (flightcache.RemoteRecord[string], bool, error) {
	r.maybe("Await")
	return r.fakeRemote.Await(ctx, key)
}

func relNewPanickyRemote(methods ...string) *relPanickyRemote {
	r := &relPanickyRemote{fakeRemote: &fakeRemote{s: newSharedStore(newClock())}, panicIn: map[string]bool{}}
	for _, m := range methods {
		r.panicIn[m] = true
	}
	return r
}

// relErrOf returns the error of a (value, error) pair.
func relErrOf[V any](_ V, err error) error { return err }

// relExpect returns an error unless err matches target.
func relExpect(what string, err error, target error) error {
	if !errors.Is(err, target) {
		return fmt.Errorf("%s: got %v, want an error matching %v", what, err, target)
	}
	return nil
}

// relPgError stands for a database driver's error type.
type relPgError struct{ Code string }

func (e *relPgError) Error() string { return "pg: " + e.Code }

func relCrashScenarios() []relCrashScenario {
	ctx := context.Background()
	panicking := func(ctx context.Context, key string) (string, error) { panic("fetch panics for " + key) }
	return []relCrashScenario{
		{"fetch", func() (string, error) {
			for _, mode := range []flightcache.Mode{flightcache.ModeFlight, flightcache.ModeCache} {
				l, err := flightcache.New(panicking, flightcache.Config{Mode: mode, MaxEntries: 10})
				if err != nil {
					return "", err
				}
				defer l.Close()
				for range 3 {
					if err := relExpect("Get", relErrOf(l.Get(ctx, "k")), flightcache.ErrPanic); err != nil {
						return "", err
					}
				}
				res := l.GetMany(ctx, []string{"a", "b"}) // no batch fetch: single fetches
				if err := relExpect("GetMany", res.Err(), flightcache.ErrPanic); err != nil {
					return "", err
				}
				goexit, _ := flightcache.New(func(ctx context.Context, key string) (string, error) {
					runtime.Goexit()
					return "", nil
				}, flightcache.Config{Mode: mode, MaxEntries: 10})
				defer goexit.Close()
				if err := relExpect("Get", relErrOf(goexit.Get(ctx, "k")), flightcache.ErrGoexit); err != nil {
					return "", err
				}
			}
			return "fetch panics and Goexit became errors", nil
		}, ""},
		{"refresh", func() (string, error) {
			clock := relNewClock()
			var fail bool
			hold := make(chan struct{})
			l, err := flightcache.New(func(ctx context.Context, key string) (string, error) {
				if fail {
					<-hold
					panic("refresh panics")
				}
				return "v", nil
			}, flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Second, StaleTTL: time.Hour, Clock: clock})
			if err != nil {
				return "", err
			}
			defer l.Close()
			if _, err := l.Get(ctx, "k"); err != nil {
				return "", err
			}
			fail = true // written before the refresh goroutine starts
			clock.Advance(time.Second)
			v, err := l.Get(ctx, "k") // stale: served, and one refresh starts
			if err != nil || v != "v" {
				return "", fmt.Errorf("stale Get = %q, %v", v, err)
			}
			running := l.Refresh(ctx, "k") // the running refresh's channel
			close(hold)
			<-running
			<-l.Refresh(ctx, "k") // an explicit refresh that panics too
			s := l.Stats()
			if s.RefreshErrors != 2 || s.Panics != 2 {
				return "", fmt.Errorf("RefreshErrors %d, Panics %d, want 2 and 2", s.RefreshErrors, s.Panics)
			}
			if v, err := l.Get(ctx, "k"); err != nil || v != "v" {
				return "", fmt.Errorf("after failed refreshes Get = %q, %v, want the stale value", v, err)
			}
			return "refresh panics were counted and the stale value kept", nil
		}, ""},
		{"batch", func() (string, error) {
			for _, goexit := range []bool{false, true} {
				batch := func(ctx context.Context, keys []string) (map[string]string, error) {
					if goexit {
						runtime.Goexit()
					}
					panic("batch panics")
				}
				want := flightcache.ErrPanic
				if goexit {
					want = flightcache.ErrGoexit
				}
				l, err := flightcache.New(panicking, flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, NegativeTTL: time.Hour},
					flightcache.WithBatch(batch))
				if err != nil {
					return "", err
				}
				defer l.Close()
				res := l.GetMany(ctx, []string{"a", "b", "c"})
				for _, k := range []string{"a", "b", "c"} {
					if err := relExpect("GetMany "+k, relErrOf(res.Get(k)), want); err != nil {
						return "", err
					}
				}
				micro, err := flightcache.New(panicking, flightcache.Config{BatchWindow: time.Millisecond}, flightcache.WithBatch(batch))
				if err != nil {
					return "", err
				}
				defer micro.Close()
				if err := relExpect("micro-batched Get", relErrOf(micro.Get(ctx, "k")), want); err != nil {
					return "", err
				}
			}
			return "batch panics and Goexit became errors for every key", nil
		}, ""},
		{"logger", func() (string, error) {
			for _, inEnabled := range []bool{false, true} {
				clock := relNewClock()
				calls := 0
				store := newSharedStore(newClock())
				store.down.Store(true) // every shared-tier call fails: logged
				l, err := flightcache.New(func(ctx context.Context, key string) (string, error) {
					calls++
					if calls > 1 {
						return "", errors.New("refresh fails")
					}
					return "v", nil
				}, flightcache.Config{
					Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Second, StaleTTL: time.Hour, Clock: clock,
					Logger: slog.New(relPanickyHandler{inEnabled: inEnabled}),
				}, flightcache.WithRemote[string, string](&fakeRemote{s: store}))
				if err != nil {
					return "", err
				}
				defer l.Close()
				if _, err := l.Get(ctx, "k"); err != nil { // the shared tier's failure is logged
					return "", err
				}
				clock.Advance(time.Second)
				if _, err := l.Get(ctx, "k"); err != nil {
					return "", err
				}
				<-l.Refresh(ctx, "k") // the failed refresh is logged
				panics, err := flightcache.New(panicking, flightcache.Config{Logger: slog.New(relPanickyHandler{inEnabled: inEnabled})})
				if err != nil {
					return "", err
				}
				defer panics.Close()
				if err := relExpect("Get", relErrOf(panics.Get(ctx, "k")), flightcache.ErrPanic); err != nil { // the panic is logged
					return "", err
				}
			}
			return "panicking slog handlers were contained", nil
		}, ""},
		{"remote-load", func() (string, error) {
			for _, method := range []string{"Get", "Lease", "Await", "Set", "release"} {
				r := relNewPanickyRemote(method)
				if method == "Await" { // someone else holds the lease: this instance awaits
					if _, ok, _ := r.fakeRemote.Lease(ctx, "k", time.Hour); !ok {
						return "", errors.New("could not take the lease")
					}
				}
				l, err := flightcache.New(func(ctx context.Context, key string) (string, error) { return "v:" + key, nil },
					flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Minute},
					flightcache.WithRemote[string, string](r), flightcache.WithBatch(func(ctx context.Context, keys []string) (map[string]string, error) {
						out := map[string]string{}
						for _, k := range keys {
							out[k] = "v:" + k
						}
						return out, nil
					}))
				if err != nil {
					return "", err
				}
				defer l.Close()
				if v, err := l.Get(ctx, "k"); err != nil && !errors.Is(err, flightcache.ErrPanic) || err == nil && v != "v:k" {
					return "", fmt.Errorf("Remote.%s panics: Get = %q, %v", method, v, err)
				}
				res := l.GetMany(ctx, []string{"x", "y"})
				for _, k := range []string{"x", "y"} {
					if v, err := res.Get(k); err != nil && !errors.Is(err, flightcache.ErrPanic) || err == nil && v != "v:"+k {
						return "", fmt.Errorf("Remote.%s panics: GetMany %s = %q, %v", method, k, v, err)
					}
				}
			}
			return "Remote panics during loads were contained", nil
		}, ""},
		{"remote-write", func() (string, error) {
			for _, method := range []string{"Set", "Invalidate"} {
				l, err := flightcache.New(func(ctx context.Context, key string) (string, error) { return "v", nil },
					flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Minute},
					flightcache.WithRemote[string, string](relNewPanickyRemote(method)))
				if err != nil {
					return "", err
				}
				defer l.Close()
				l.Set("k", "written") // Set calls Remote.Invalidate, then Remote.Set
				l.Invalidate("k")     // Remote.Invalidate
				if v, err := l.Get(ctx, "k"); err != nil || v != "v" {
					return "", fmt.Errorf("Remote.%s panics: Get after Set and Invalidate = %q, %v", method, v, err)
				}
			}
			return "Remote panics during Set and Invalidate were contained", nil
		}, "remote-write-panic"},
		{"notfound-classifier", func() (string, error) {
			for _, mode := range []flightcache.Mode{flightcache.ModeFlight, flightcache.ModeCache} {
				l, err := flightcache.New(func(ctx context.Context, key string) (string, error) {
					return "", errors.New("connection refused") // not a *relPgError
				}, flightcache.Config{
					Mode: mode, MaxEntries: 10, NegativeTTL: time.Minute,
					// A classifier with a bug: it assumes every error is a *relPgError.
					NotFound: func(err error) bool { return err.(*relPgError).Code == "P0002" },
				})
				if err != nil {
					return "", err
				}
				defer l.Close()
				if _, err := l.Get(ctx, "k"); err == nil {
					return "", errors.New("Get succeeded")
				}
			}
			return "a panicking NotFound classifier was contained", nil
		}, "notfound-panic"},
	}
}

func TestNoCrash(t *testing.T) {
	if name := os.Getenv(relCrashEnv); name != "" {
		for _, sc := range relCrashScenarios() {
			if sc.name == name {
				line, err := sc.run()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				fmt.Printf("survived %s: %s\n", name, line)
				return
			}
		}
		t.Fatalf("unknown scenario %q", name)
	}
	for _, sc := range relCrashScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			if sc.defect != "" {
				relSkipKnown(t, sc.defect)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestNoCrash$", "-test.count=1", "-test.timeout=2m")
			// atexit_sleep_ms=0: a race-enabled child exits at once.
			cmd.Env = append(os.Environ(), relCrashEnv+"="+sc.name, "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("the process did not survive a panic in %s: %v\n%s", sc.name, err, out)
			}
			if !strings.Contains(string(out), "survived "+sc.name+": ") || !strings.Contains(string(out), "\nPASS") {
				t.Fatalf("exit status 0 but unexpected output:\n%s", out)
			}
			for line := range strings.Lines(string(out)) {
				if strings.HasPrefix(line, "survived ") {
					t.Log(strings.TrimSpace(line))
				}
			}
		})
	}
}
