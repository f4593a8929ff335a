package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// CancelConfig is the cancellation scenario: a first caller starts the
// fetch of a cold key, which takes FetchTime and honours its context; the
// first caller's context is cancelled CancelAfter into the fetch, while
// Waiters other callers, with contexts that never end, wait for the key.
type CancelConfig struct {
	Waiters     int
	FetchTime   time.Duration
	CancelAfter time.Duration
}

// DefaultCancel is the scenario: 99 waiters, a 50ms fetch, the
// first caller cancelled 10ms in.
var DefaultCancel = CancelConfig{Waiters: 99, FetchTime: 50 * time.Millisecond, CancelAfter: 10 * time.Millisecond}

// CancelResult is what happened. Times are from the start of the first
// fetch.
type CancelResult struct {
	// FirstErr is the first caller's error (nil: it got the value) and
	// FirstReturned when it returned.
	FirstErr      error
	FirstReturned time.Duration
	// Fetches counts fetches started; FetchCancelled reports whether one of
	// them saw its context end.
	Fetches        int64
	FetchCancelled bool
	// Failed counts the waiters that did not get the value; WaiterErr is
	// one of their errors.
	Failed    int
	WaiterErr error
	// LastReturned is when the last waiter returned.
	LastReturned time.Duration
}

// cancelLimit bounds the whole scenario: a library that never returns
// fails it instead of hanging the run.
const cancelLimit = 10 * time.Second

// Cancellation runs the cancellation scenario against lib.
func Cancellation(lib Library, cfg CancelConfig) (CancelResult, error) {
	var (
		fetches   atomic.Int64
		cancelled atomic.Bool
		startOnce sync.Once
		started   = make(chan struct{})
		startedAt atomic.Int64
	)
	fetch := func(ctx context.Context, key string) (string, error) {
		fetches.Add(1)
		startOnce.Do(func() {
			startedAt.Store(nanotime())
			close(started)
		})
		if !wait(cfg.FetchTime, ctx.Done()) {
			cancelled.Store(true)
			return "", ctx.Err()
		}
		return "v:" + key, nil
	}
	c, err := lib.Open(Setup{Capacity: 64, TTL: time.Hour, Fetch: fetch})
	if err != nil {
		return CancelResult{}, err
	}
	defer c.Close()

	const key = "cancel:1"
	var res CancelResult
	firstCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	firstDone := make(chan struct{})
	go func() {
		defer close(firstDone)
		v, err := c.Get(firstCtx, key)
		if err == nil && v != "v:"+key {
			err = fmt.Errorf("wrong value %q", v)
		}
		res.FirstErr, res.FirstReturned = err, time.Duration(nanotime()-startedAt.Load())
	}()
	select {
	case <-started:
	case <-time.After(cancelLimit):
		return CancelResult{}, fmt.Errorf("bench: %s: the first caller's fetch never started", lib.Name)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex // guards failed, werr, last
		failed int
		werr   error
		last   int64
	)
	for range cfg.Waiters {
		wg.Go(func() {
			v, err := c.Get(context.Background(), key)
			if err == nil && v != "v:"+key {
				err = fmt.Errorf("wrong value %q", v)
			}
			now := nanotime()
			mu.Lock()
			defer mu.Unlock()
			last = max(last, now)
			if err != nil {
				failed++
				if werr == nil {
					werr = err
				}
			}
		})
	}
	// The first caller is cancelled CancelAfter into the fetch, and not
	// before every waiter has joined it where the library counts joins: on
	// a loaded machine a waiter can take longer than CancelAfter to be
	// scheduled, and a flight with no caller left is rightly cancelled.
	waitJoined(c, uint64(cfg.Waiters), cancelLimit)
	t0 := startedAt.Load()
	stopCancel := time.AfterFunc(time.Duration(t0+int64(cfg.CancelAfter)-nanotime()), cancel)
	defer stopCancel.Stop()
	all := make(chan struct{})
	go func() { wg.Wait(); <-firstDone; close(all) }()
	select {
	case <-all:
	case <-time.After(cancelLimit):
		return CancelResult{}, fmt.Errorf("bench: %s: callers still waiting after %v", lib.Name, cancelLimit)
	}
	res.Fetches, res.FetchCancelled = fetches.Load(), cancelled.Load()
	res.Failed, res.WaiterErr, res.LastReturned = failed, werr, time.Duration(last-t0)
	return res, nil
}

// ErrorKind names err for the behaviour table.
func ErrorKind(err error) string {
	switch {
	case err == nil:
		return "none"
	case errors.Is(err, context.Canceled):
		return "context.Canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "context.DeadlineExceeded"
	case errors.Is(err, errNotLoaded):
		return "no item (loader failed)"
	}
	return err.Error()
}
