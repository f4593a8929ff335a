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
