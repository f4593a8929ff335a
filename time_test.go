package flightcache_test

// Promise 6, time: tier boundaries are exact to the nanosecond with the
// default clock too; a wall-clock jump (an NTP step, forward or back)
// neither expires every entry nor keeps any forever, because expiry is
// measured on the monotonic clock; and durations near their maximum
// saturate instead of wrapping around.

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/flightcache/flightcache"
)

// TestTierBoundariesDefaultClock walks one entry through every boundary,
// to the nanosecond, with the default clock (time.Now) under synctest:
// fresh, stale with one refresh, the backoff after a failed refresh, and
// the end of the stale window; and a negative entry to its end.
func TestTierBoundariesDefaultClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		var failing atomic.Bool
		l, err := flightcache.New(func(ctx context.Context, key string) (int64, error) {
			n := calls.Add(1)
			if key == "ghost" {
				return 0, flightcache.ErrNotFound
			}
			if failing.Load() {
				return 0, errors.New("down")
			}
			return n, nil
		}, flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: 10 * time.Second, StaleTTL: 20 * time.Second, NegativeTTL: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ctx := context.Background()
		advance := func(d time.Duration) { <-time.After(d) } // fake time: at once
		get := func(key string, want int64, wantCalls int64, what string) {
			t.Helper()
			v, err := l.Get(ctx, key)
			synctest.Wait()
			if key == "ghost" {
				if !errors.Is(err, flightcache.ErrNotFound) {
					t.Fatalf("%s: Get(ghost) = %v, want ErrNotFound", what, err)
				}
			} else if err != nil || v != want {
				t.Fatalf("%s: Get = %d, %v, want %d", what, v, err, want)
			}
			if calls.Load() != wantCalls {
				t.Fatalf("%s: %d fetches, want %d", what, calls.Load(), wantCalls)
			}
		}
		get("k", 1, 1, "first Get")
		advance(10*time.Second - 1)
		get("k", 1, 1, "fresh at TTL-1ns")
		advance(1)
		failing.Store(true)
		get("k", 1, 2, "stale at TTL: served, one refresh (which fails)")
		advance(time.Second - 1)
		get("k", 1, 2, "backoff: no refresh 1s-1ns after the failure")
		advance(1)
		get("k", 1, 3, "backoff: a refresh exactly 1s after the failure")
		advance(2*time.Second - 1)
		get("k", 1, 3, "backoff doubles: none at 2s-1ns")
		advance(1)
		get("k", 1, 4, "backoff doubles: one at 2s")
		advance(4*time.Second - 1)
		get("k", 1, 4, "backoff doubles again: none at 4s-1ns")
		advance(30*time.Second - 17*time.Second) // 30s-1ns after the write
		get("k", 1, 5, "still served at TTL+StaleTTL-1ns; its refresh fails too")
		advance(1)
		failing.Store(false)
		get("k", 6, 6, "expired at exactly TTL+StaleTTL: a blocking miss")

		get("ghost", 0, 7, "not found")
		advance(3*time.Second - 1)
		get("ghost", 0, 7, "negative at NegativeTTL-1ns")
		advance(1)
		get("ghost", 0, 8, "negative entry ends at exactly NegativeTTL")
	})
}

// relTime mirrors the layout of time.Time, to build readings whose wall
// and monotonic clocks disagree, as they do after an NTP step. The layout
// has been stable since Go 1.9; relNewJumpClock checks that it still is.
type relTime struct {
	wall uint64
	ext  int64 // the monotonic reading, when wall has its hasMonotonic bit
	loc  *time.Location
}

// relJumpClock is a Clock whose readings carry a monotonic reading, like
// time.Now's: both advance with Advance, but Jump moves only the wall
// clock. (time.Now().Add(d) would not do: Add moves the monotonic reading
// by d too.)
type relJumpClock struct {
	base    time.Time // a real time.Now() reading, with a monotonic reading
	elapsed atomic.Int64
	jump    atomic.Int64
}

func relNewJumpClock(t *testing.T) *relJumpClock {
	c := &relJumpClock{base: time.Now()}
	// Check the construction: a 24h jump must show on the wall clock and
	// not in Sub, which uses the monotonic readings.
	a := c.Now()
	c.Jump(24 * time.Hour)
	b := c.Now()
	c.jump.Store(0)
	if b.Sub(a) != 0 || b.Round(0).Sub(a.Round(0)) != 24*time.Hour {
		t.Fatalf("cannot simulate a wall-clock jump (time.Time's layout changed?): Sub %v, wall difference %v", b.Sub(a), b.Round(0).Sub(a.Round(0)))
	}
	return c
}

func (c *relJumpClock) Advance(d time.Duration) { c.elapsed.Add(int64(d)) }
func (c *relJumpClock) Jump(d time.Duration)    { c.jump.Add(int64(d)) }

func (c *relJumpClock) Now() time.Time {
	elapsed := time.Duration(c.elapsed.Load())
	t := c.base.Add(elapsed + time.Duration(c.jump.Load())) // wall: elapsed + jump
	(*relTime)(unsafe.Pointer(&t)).ext = (*relTime)(unsafe.Pointer(&c.base)).ext + int64(elapsed)
	return t
}

func TestWallClockJumps(t *testing.T) {
	clock := relNewJumpClock(t) // outside the bubble: a real monotonic reading
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		var failing atomic.Bool
		l, err := flightcache.New(func(ctx context.Context, key string) (int64, error) {
			n := calls.Add(1)
			switch {
			case key == "ghost":
				return 0, flightcache.ErrNotFound
			case failing.Load():
				return 0, errors.New("down")
			}
			return n, nil
		}, flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Minute, StaleTTL: time.Minute, NegativeTTL: 30 * time.Second, Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ctx := context.Background()
		get := func(want, wantCalls int64, what string) {
			t.Helper()
			v, err := l.Get(ctx, "k")
			synctest.Wait() // a refresh the Get started has ended
			if err != nil || v != want || calls.Load() != wantCalls {
				t.Fatalf("%s: Get = %d, %v after %d fetches, want %d after %d", what, v, err, calls.Load(), want, wantCalls)
			}
		}
		ghost := func(wantCalls int64, what string) {
			t.Helper()
			if _, err := l.Get(ctx, "ghost"); !errors.Is(err, flightcache.ErrNotFound) || calls.Load() != wantCalls {
				t.Fatalf("%s: Get(ghost) = %v after %d fetches, want ErrNotFound after %d", what, err, calls.Load(), wantCalls)
			}
		}
		get(1, 1, "first")
		ghost(2, "first")
		clock.Jump(365 * 24 * time.Hour) // the wall clock leaps a year ahead
		get(1, 2, "after a 1-year forward jump: still fresh")
		clock.Jump(-2 * 365 * 24 * time.Hour) // then a year behind where it was
		get(1, 2, "after a 2-year backward jump: still fresh")
		ghost(2, "the negative entry survived both jumps")
		clock.Advance(30 * time.Second)
		ghost(3, "the negative entry ended after NegativeTTL of monotonic time")
		clock.Advance(30*time.Second - 1)
		clock.Jump(-time.Hour)
		get(1, 3, "fresh at TTL-1ns of monotonic time, whatever the wall clock says")
		clock.Advance(1)
		get(1, 4, "stale at exactly TTL of monotonic time: served, one refresh")
		get(4, 4, "refreshed")
		failing.Store(true)
		clock.Jump(10 * 365 * 24 * time.Hour)
		clock.Advance(2*time.Minute - 1)
		get(4, 5, "stale-served at TTL+StaleTTL-1ns despite a 10-year jump (the refresh fails)")
		clock.Advance(1)
		if _, err := l.Get(ctx, "k"); err == nil || err.Error() != "down" || calls.Load() != 6 {
			t.Fatalf("at TTL+StaleTTL of monotonic time the entry must be gone: %v after %d fetches", err, calls.Load())
		}
	})
}

// TestWallOnlyClockJumps documents a Clock without monotonic readings
// (Config.Clock says a Clock should not go backwards): a backward jump
// extends lives by at most the jump, a forward one ends them early; neither
// makes an entry immortal or breaks the Loader.
func TestWallOnlyClockJumps(t *testing.T) {
	clock := relNewClock() // time.Unix readings: wall only
	var calls atomic.Int64
	l, err := flightcache.New(func(ctx context.Context, key string) (int64, error) {
		return calls.Add(1), nil
	}, flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Minute, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	get := func(want int64, what string) {
		t.Helper()
		if v, err := l.Get(ctx, "k"); err != nil || v != want {
			t.Fatalf("%s: Get = %d, %v, want %d", what, v, err, want)
		}
	}
	get(1, "first")
	clock.Advance(-100 * 365 * 24 * time.Hour) // far before the Loader was made
	get(1, "a backward jump: still served")
	clock.Advance(100*365*24*time.Hour + time.Minute - 1)
	get(1, "served until the clock is back at TTL-1ns")
	clock.Advance(1)
	get(2, "expired at TTL once the clock is back: not immortal")
	clock.Advance(time.Hour)
	get(3, "a forward jump past TTL ends the entry")
}

// TestDurationsSaturate uses durations near math.MaxInt64 everywhere a
// Config or a fetch can set one: the entry is served (never expired by an
// overflow into the past) for centuries of fake time, and nothing panics.
func TestDurationsSaturate(t *testing.T) {
	const forever = time.Duration(math.MaxInt64)
	const centuries = 250 * 365 * 24 * time.Hour
	cases := []struct {
		name string
		cfg  flightcache.Config
		ttl  time.Duration // > 0: the fetch calls SetTTL(ttl)
		tl   bool          // also SetStaleTTL(forever)
		miss bool          // the fetch says not found
	}{
		{name: "TTL", cfg: flightcache.Config{TTL: forever}},
		{name: "TTL+StaleTTL", cfg: flightcache.Config{TTL: forever, StaleTTL: forever}},
		{name: "StaleTTL", cfg: flightcache.Config{TTL: 1, StaleTTL: forever}},
		{name: "Jitter", cfg: flightcache.Config{TTL: forever, Jitter: 1, Rand: func() float64 { return 0.999999 }}},
		{name: "NegativeTTL", cfg: flightcache.Config{NegativeTTL: forever}, miss: true},
		{name: "SetTTL", cfg: flightcache.Config{TTL: time.Second}, ttl: forever},
		{name: "SetTTL+SetStaleTTL", cfg: flightcache.Config{TTL: time.Second}, ttl: time.Second, tl: true},
		{name: "SetTTL not-found", cfg: flightcache.Config{NegativeTTL: time.Second}, ttl: forever, miss: true},
		{name: "FetchTimeout", cfg: flightcache.Config{TTL: forever, FetchTimeout: forever}},
		{name: "limits", cfg: flightcache.Config{TTL: forever, MaxConcurrentFetches: math.MaxInt, MaxBatchSize: math.MaxInt}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { // the refreshes of stale hits end before each check
				clock := relNewClock()
				var calls atomic.Int64
				cfg := tc.cfg
				cfg.Mode, cfg.MaxEntries, cfg.Clock = flightcache.ModeCache, 10, clock
				l, err := flightcache.New(func(ctx context.Context, key string) (int64, error) {
					n := calls.Add(1)
					if n > 1 { // a refetch: the entry expired, or a refresh (which fails)
						return 0, errors.New("fetched again")
					}
					if tc.ttl > 0 {
						flightcache.SetTTL(ctx, tc.ttl)
					}
					if tc.tl {
						flightcache.SetStaleTTL(ctx, forever)
					}
					if tc.miss {
						return 0, flightcache.ErrNotFound
					}
					return n, nil
				}, cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				ctx := context.Background()
				check := func(when string) {
					t.Helper()
					v, err := l.Get(ctx, "k")
					synctest.Wait()
					if tc.miss {
						if !errors.Is(err, flightcache.ErrNotFound) {
							t.Fatalf("%s: %v, want the first, cached ErrNotFound", when, err)
						}
					} else if err != nil || v != 1 {
						t.Fatalf("%s: Get = %d, %v, want the first value", when, v, err)
					}
				}
				check("first Get")
				clock.Advance(2 * time.Second)
				check("after 2s")
				clock.Advance(centuries)
				check("after 250 years")
				if l.Len() != 1 {
					t.Fatalf("Len = %d, want 1", l.Len())
				}
			})
		})
	}

	t.Run("Set", func(t *testing.T) {
		clock := relNewClock()
		l, err := flightcache.New(func(ctx context.Context, key string) (int64, error) { return 0, errors.New("no fetch expected") },
			flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 1, TTL: forever, StaleTTL: forever, Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		l.Set("k", 7)
		clock.Advance(centuries)
		if v, err := l.Get(context.Background(), "k"); err != nil || v != 7 {
			t.Fatalf("Get = %d, %v, want the value Set 250 years ago", v, err)
		}
	})

	t.Run("RemoteTTL", func(t *testing.T) {
		store := newSharedStore(newClock())
		var calls atomic.Int64
		fetch := func(ctx context.Context, key string) (string, error) {
			calls.Add(1)
			return "v", nil
		}
		cfg := flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 1, TTL: forever, RemoteTTL: forever, Clock: store.clock}
		var ls []*flightcache.Loader[string, string]
		for id := range 2 {
			l, err := flightcache.New(fetch, cfg, flightcache.WithRemote[string, string](&fakeRemote{s: store, id: id}))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			ls = append(ls, l)
		}
		for _, l := range ls {
			if v, err := l.Get(context.Background(), "k"); err != nil || v != "v" {
				t.Fatalf("Get = %q, %v", v, err)
			}
		}
		store.clock.Advance(centuries)
		for _, l := range ls {
			if v, err := l.Get(context.Background(), "k"); err != nil || v != "v" {
				t.Fatalf("Get = %q, %v", v, err)
			}
		}
		if calls.Load() != 1 {
			t.Fatalf("%d fetches, want 1", calls.Load())
		}
	})

	t.Run("BatchWindow", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l, err := flightcache.New(func(ctx context.Context, key string) (string, error) { return "", errors.New("single fetch") },
				flightcache.Config{BatchWindow: forever, MaxBatchSize: 2},
				flightcache.WithBatch(func(ctx context.Context, keys []string) (map[string]string, error) {
					out := map[string]string{}
					for _, k := range keys {
						out[k] = "v:" + k
					}
					return out, nil
				}))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			done := make(chan string, 2)
			for _, k := range []string{"a", "b"} {
				go func() {
					v, _ := l.Get(context.Background(), k)
					done <- v
				}()
			}
			got := map[string]bool{<-done: true, <-done: true}
			if !got["v:a"] || !got["v:b"] {
				t.Fatalf("a full micro-batch with a huge window: got %v", got)
			}
		})
	})
}
