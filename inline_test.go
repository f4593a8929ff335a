package flightcache_test

import (
	"context"
	"errors"
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

// Config.InlineFetch: a Get whose context cannot be cancelled runs the load
// it starts on its own goroutine.

var inlineCfg = flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 100, InlineFetch: true}

// TestInlineFetchBurst: 1,000 Gets with context.Background() on a cold key
// share one fetch, run by the first of them, and all get its value.
func TestInlineFetchBurst(t *testing.T) {
	for _, mode := range []flightcache.Mode{flightcache.ModeFlight, flightcache.ModeCache} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const n = 1000
				var fetches atomic.Int64
				release := make(chan struct{})
				cfg := inlineCfg
				cfg.Mode = mode
				l := mustNew(t, func(ctx context.Context, key string) (string, error) {
					fetches.Add(1)
					<-release
					return "v:" + key, nil
				}, cfg)
				var wg sync.WaitGroup
				errs := make(chan error, n)
				for range n {
					wg.Go(func() {
						v, err := l.Get(context.Background(), "k")
						if err == nil && v != "v:k" {
							err = errors.New("wrong value " + v)
						}
						errs <- err
					})
				}
				synctest.Wait() // one Get runs the fetch, 999 wait for it
				require.EqualValues(t, 1, l.Stats().InFlight)
				require.EqualValues(t, n-1, l.Stats().Shared)
				close(release)
				wg.Wait()
				close(errs)
				for err := range errs {
					require.NoError(t, err)
				}
				require.EqualValues(t, 1, fetches.Load())
				requireBalanced(t, l.Stats(), n)
			})
		})
	}
}

// TestInlineFetchGoexit: the fetch runs on the first Get's goroutine, so a
// fetch calling runtime.Goexit ends that goroutine (the Get never returns),
// while a Get that joined gets ErrGoexit; the key is free afterwards.
func TestInlineFetchGoexit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		proceed := make(chan struct{})
		var calls atomic.Int64
		l := mustNew(t, func(ctx context.Context, key string) (string, error) {
			if calls.Add(1) == 1 {
				<-proceed
				runtimeGoexit()
			}
			return "v", nil
		}, inlineCfg)
		var returned atomic.Bool
		exited := make(chan struct{})
		go func() {
			defer close(exited)
			_, _ = l.Get(context.Background(), "k")
			returned.Store(true)
		}()
		synctest.Wait()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		joined := make(chan error, 1)
		go func() {
			_, err := l.Get(ctx, "k")
			joined <- err
		}()
		synctest.Wait()
		require.EqualValues(t, 1, l.Stats().Shared)
		close(proceed)
		<-exited
		require.False(t, returned.Load(), "the Get that ran the fetch returned after runtime.Goexit")
		require.ErrorIs(t, <-joined, flightcache.ErrGoexit)
		s := l.Stats()
		require.EqualValues(t, 1, s.Panics)
		require.Zero(t, s.InFlight)
		v, err := l.Get(context.Background(), "k")
		require.NoError(t, err)
		require.Equal(t, "v", v)
		require.EqualValues(t, 2, calls.Load())
	})
}

// TestInlineFetchPanicValuesTTL: a panic reaches the Get that ran the fetch
// as a *PanicError; the fetch sees the Get's context values, its SetTTL
// choice is honoured, and FetchTimeout bounds it.
func TestInlineFetchPanicValuesTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type ctxKey struct{}
		cfg := inlineCfg
		cfg.TTL = time.Hour
		cfg.FetchTimeout = time.Second
		clock := newClock()
		cfg.Clock = clock
		var calls atomic.Int64
		l := mustNew(t, func(ctx context.Context, key string) (string, error) {
			calls.Add(1)
			switch key {
			case "panic":
				panic("boom")
			case "slow":
				<-ctx.Done()
				return "", ctx.Err()
			}
			flightcache.SetTTL(ctx, time.Minute)
			return ctx.Value(ctxKey{}).(string), nil
		}, cfg)
		_, err := l.Get(context.Background(), "panic")
		var pe *flightcache.PanicError
		require.ErrorAs(t, err, &pe)
		require.Equal(t, "boom", pe.Value)

		ctx := context.WithValue(context.Background(), ctxKey{}, "from ctx")
		v, err := l.Get(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, "from ctx", v)
		clock.Advance(time.Minute - time.Nanosecond)
		_, _ = l.Get(ctx, "k")
		require.EqualValues(t, 2, calls.Load(), "fresh until the TTL SetTTL chose")
		clock.Advance(time.Nanosecond)
		_, _ = l.Get(ctx, "k")
		require.EqualValues(t, 3, calls.Load(), "expired after it")

		start := time.Now()
		_, err = l.Get(context.Background(), "slow")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, time.Second, time.Since(start))
	})
}

// TestInlineFetchClose: Close cancels a load run inline (its context's
// cause is ErrClosed), the Get that runs it returns an error wrapping
// ErrClosed, and Close waits for it.
func TestInlineFetchClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var cause error
		l, err := flightcache.New(func(ctx context.Context, key string) (string, error) {
			<-ctx.Done()
			cause = context.Cause(ctx)
			return "", ctx.Err()
		}, inlineCfg)
		require.NoError(t, err)
		got := make(chan error, 1)
		go func() {
			_, err := l.Get(context.Background(), "k")
			got <- err
		}()
		synctest.Wait()
		require.NoError(t, l.Close())
		require.ErrorIs(t, cause, flightcache.ErrClosed)
		require.ErrorIs(t, <-got, flightcache.ErrClosed)
		require.Zero(t, l.Stats().InFlight)
	})
}

// TestCloseWaitsForInlineFetch: Close waits for a load run inline whose
// fetch ignores its context (two keys, so two shards may be involved),
// and for a goroutine load beside them; InFlight counts all three until
// they settle, and the values they return still reach their Gets.
func TestCloseWaitsForInlineFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		l, err := flightcache.New(func(ctx context.Context, key string) (string, error) {
			<-release // ignores ctx
			return "v:" + key, nil
		}, inlineCfg)
		require.NoError(t, err)
		got := make(chan error, 3)
		for _, k := range []string{"a", "b"} {
			go func() {
				_, err := l.Get(context.Background(), k) // inline: ctx cannot end
				got <- err
			}()
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			_, err := l.Get(ctx, "c") // a goroutine load: ctx can end
			got <- err
		}()
		synctest.Wait()
		require.Equal(t, 3, l.Stats().InFlight)
		closed := make(chan struct{})
		go func() {
			_ = l.Close()
			close(closed)
		}()
		synctest.Wait()
		select {
		case <-closed:
			t.Fatal("Close returned while fetches were running")
		default:
		}
		require.Equal(t, 3, l.Stats().InFlight, "Close counts the loads until they settle")
		close(release)
		<-closed
		require.Zero(t, l.Stats().InFlight)
		for range 3 { // a fetch that ignored Close and returned a value delivers it
			require.NoError(t, <-got)
		}
	})
}

// TestInlineFetchCancelableLeader: with InlineFetch, a Get whose context
// can be cancelled still waits on it: cancelled mid-fetch it returns at
// once, and the Gets that joined get the value.
func TestInlineFetchCancelableLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		l := mustNew(t, func(ctx context.Context, key string) (string, error) {
			<-release
			return "v", nil
		}, inlineCfg)
		ctx, cancel := context.WithCancel(context.Background())
		leader := make(chan error, 1)
		go func() {
			_, err := l.Get(ctx, "k")
			leader <- err
		}()
		synctest.Wait()
		other := make(chan string, 1)
		go func() {
			v, _ := l.Get(context.Background(), "k")
			other <- v
		}()
		synctest.Wait()
		cancel()
		require.ErrorIs(t, <-leader, context.Canceled)
		close(release)
		require.Equal(t, "v", <-other)
	})
}

// runtimeGoexit is runtime.Goexit, named so that the fetch above reads as
// what it tests.
var runtimeGoexit = runtime.Goexit

// leanCfg is flight mode with InlineFetch and DisableLoadTiming: a load run
// inline takes its call from its shard's spares and gives it back after.
var leanCfg = flightcache.Config{InlineFetch: true, DisableLoadTiming: true}

// TestInlineReuseJoinedCall: a call that another Get joined is not reused
// while that Get reads it. The fetch's first load is held until a second
// Get (with a cancelable context, so it waits) has joined; once both have
// their value, later loads of other keys reuse what they can, and the
// joined Get's value is still its own.
func TestInlineReuseJoinedCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		l := mustNew(t, func(ctx context.Context, key string) (string, error) {
			if key == "held" {
				<-release
			}
			return "v:" + key, nil
		}, leanCfg)
		leader := make(chan string, 1)
		go func() {
			v, _ := l.Get(context.Background(), "held")
			leader <- v
		}()
		synctest.Wait()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		joined := make(chan string, 1)
		go func() {
			v, _ := l.Get(ctx, "held")
			joined <- v
		}()
		synctest.Wait()
		require.EqualValues(t, 1, l.Stats().Shared)
		close(release)
		require.Equal(t, "v:held", <-leader)
		require.Equal(t, "v:held", <-joined, "the joined Get read a call that was handed to another load")
		for i := range 100 {
			key := string(rune('a' + i%26))
			v, err := l.Get(context.Background(), key)
			require.NoError(t, err)
			require.Equal(t, "v:"+key, v)
		}
		s := l.Stats()
		require.EqualValues(t, 101, s.Loads)
		require.Zero(t, s.InFlight)
	})
}

// TestInlineReuseOutcomes: loads run one after another on reused calls
// each return their own outcome (value, not-found, error, panic, a context
// value) and nothing of the one before; a fetch that keeps its context and
// uses it after returning (SetTTL, Value) while later loads run is no data
// race (run with -race).
func TestInlineReuseOutcomes(t *testing.T) {
	type ctxKey struct{}
	errBackend := errors.New("backend down")
	kept := make(chan context.Context, 1)
	l := mustNew(t, func(ctx context.Context, key string) (string, error) {
		switch key {
		case "missing":
			return "", flightcache.ErrNotFound
		case "broken":
			return "", errBackend
		case "panics":
			panic("boom")
		case "keeps":
			kept <- ctx
		case "value":
			v, _ := ctx.Value(ctxKey{}).(string)
			return "ctx:" + v, nil
		}
		return "v:" + key, nil
	}, leanCfg)

	_, err := l.Get(context.Background(), "keeps")
	require.NoError(t, err)
	late := <-kept
	var wg sync.WaitGroup
	wg.Go(func() { // uses the kept context while the loads below run
		for range 200 {
			assert.True(t, flightcache.SetTTL(late, time.Minute), "SetTTL on a flight-mode fetch context")
			assert.Nil(t, late.Value(ctxKey{}))
		}
	})
	for i := range 200 {
		v, err := l.Get(context.Background(), "ok")
		require.NoError(t, err)
		require.Equal(t, "v:ok", v)

		_, err = l.Get(context.Background(), "missing")
		require.ErrorIs(t, err, flightcache.ErrNotFound)

		v, err = l.Get(context.Background(), "broken")
		require.ErrorIs(t, err, errBackend)
		require.Empty(t, v)

		_, err = l.Get(context.Background(), "panics")
		require.ErrorIs(t, err, flightcache.ErrPanic)

		ctx := context.WithValue(context.Background(), ctxKey{}, "n"+string(rune('0'+i%10)))
		v, err = l.Get(ctx, "value")
		require.NoError(t, err)
		require.Equal(t, "ctx:n"+string(rune('0'+i%10)), v)
	}
	wg.Wait()
	s := l.Stats()
	require.EqualValues(t, 1+5*200, s.Loads)
	require.EqualValues(t, 200, s.Panics)
	require.Zero(t, s.LoadDuration.Count, "DisableLoadTiming: no fetch is timed")
	require.Zero(t, s.InFlight)
}

// TestDisableLoadTiming: with it, loads are counted but not timed; without
// it, every load is in the histogram with the time its fetch took.
func TestDisableLoadTiming(t *testing.T) {
	for _, off := range []bool{false, true} {
		for _, mode := range []flightcache.Mode{flightcache.ModeFlight, flightcache.ModeCache} {
			clock := newClock()
			cfg := flightcache.Config{Mode: mode, MaxEntries: 10, TTL: time.Hour, Clock: clock, DisableLoadTiming: off, InlineFetch: true}
			l := mustNew(t, func(ctx context.Context, key string) (string, error) {
				clock.Advance(3 * time.Millisecond)
				return key, nil
			}, cfg)
			for _, k := range []string{"a", "b", "c"} {
				_, err := l.Get(context.Background(), k)
				require.NoError(t, err)
			}
			res := l.GetMany(context.Background(), []string{"d", "e"}) // no batch fetch: one load each
			require.NoError(t, res.Err())
			s := l.Stats()
			require.EqualValues(t, 5, s.Loads, "mode %v, DisableLoadTiming %v", mode, off)
			if off {
				require.Zero(t, s.LoadDuration.Count, "mode %v", mode)
				require.Zero(t, s.LoadDuration.Sum, "mode %v", mode)
			} else {
				require.EqualValues(t, 5, s.LoadDuration.Count, "mode %v", mode)
				require.Equal(t, 15*time.Millisecond, s.LoadDuration.Sum, "mode %v", mode)
			}
			if mode == flightcache.ModeCache { // entries still expire by the clock
				clock.Advance(time.Hour)
				_, err := l.Get(context.Background(), "a")
				require.NoError(t, err)
				require.EqualValues(t, 6, l.Stats().Loads, "mode %v, DisableLoadTiming %v: the entry expired", mode, off)
			}
		}
	}
}

// TestInlineFetchJoinedByGetMany: a GetMany that joins a load run inline
// gets its result. (Found by the thrash: the join did not make the channel
// an inline load makes only for its first joiner, and the GetMany waited
// for ever.)
func TestInlineFetchJoinedByGetMany(t *testing.T) {
	for _, cfg := range []flightcache.Config{inlineCfg, leanCfg} {
		t.Run(cfg.Mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				l := mustNew(t, func(ctx context.Context, key string) (string, error) {
					if key == "held" {
						<-release
					}
					return "v:" + key, nil
				}, cfg, flightcache.WithBatch(func(ctx context.Context, keys []string) (map[string]string, error) {
					out := make(map[string]string, len(keys))
					for _, k := range keys {
						out[k] = "v:" + k
					}
					return out, nil
				}))
				leader := make(chan string, 1)
				go func() {
					v, _ := l.Get(context.Background(), "held")
					leader <- v
				}()
				synctest.Wait()
				many := make(chan flightcache.Results[string, string], 1)
				go func() { many <- l.GetMany(context.Background(), []string{"held", "other"}) }()
				synctest.Wait()
				require.EqualValues(t, 1, l.Stats().Shared)
				close(release)
				require.Equal(t, "v:held", <-leader)
				res := <-many
				require.NoError(t, res.Err())
				require.Equal(t, map[string]string{"held": "v:held", "other": "v:other"}, res.Values())
			})
		})
	}
}
