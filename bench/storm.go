package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// StormConfig is a miss storm: Waiters goroutines released together on a
// cold key whose fetch takes FetchTime, Rounds times with a new key each.
type StormConfig struct {
	Waiters   int
	Rounds    int
	FetchTime time.Duration
}

// StormResult is what a miss storm measured.
type StormResult struct {
	Rounds     int
	Fetches    int64         // fetches over all rounds
	MaxFetches int64         // most fetches in one round
	Failed     int64         // Gets that returned an error or a wrong value
	Elapsed    time.Duration // all rounds, from release to the last return
	// Release is, per round, the time from the return of the round's first
	// fetch until the last waiter had its value.
	Release []time.Duration
}

// MedianRelease returns the median of r.Release: robust to the odd round
// in which the scheduler ran something else first.
func (r StormResult) MedianRelease() time.Duration {
	if len(r.Release) == 0 {
		return 0
	}
	s := slices.Clone(r.Release)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// MaxRelease returns the largest of r.Release.
func (r StormResult) MaxRelease() time.Duration {
	var m time.Duration
	for _, d := range r.Release {
		m = max(m, d)
	}
	return m
}

// stormRound is one round: the workers wait for start to be closed, then
// all ask for key; next is the following round, set before start is closed.
type stormRound struct {
	start chan struct{}
	key   string
	stop  bool
	next  *stormRound
}

// MissStorm runs a miss storm against lib. Its workers live across rounds,
// so that goroutine creation is not timed.
func MissStorm(lib Library, cfg StormConfig) (StormResult, error) {
	var (
		fetches     atomic.Int64
		firstReturn atomic.Int64 // nanotime of this round's first fetch return; 0: none yet
	)
	fetch := func(ctx context.Context, key string) (string, error) {
		fetches.Add(1)
		if !wait(cfg.FetchTime, ctx.Done()) {
			return "", ctx.Err()
		}
		firstReturn.CompareAndSwap(0, nanotime())
		return "v:" + key, nil
	}
	c, err := lib.Open(Setup{Capacity: max(2*cfg.Rounds, 64), TTL: time.Hour, Fetch: fetch})
	if err != nil {
		return StormResult{}, err
	}
	defer c.Close()

	doneAt := make([]int64, cfg.Waiters) // each worker's last return, in nanotime
	var failed atomic.Int64
	var roundDone, workers sync.WaitGroup
	cur := &stormRound{start: make(chan struct{})}
	ctx := context.Background()
	for w := range cfg.Waiters {
		r := cur
		workers.Go(func() {
			for {
				<-r.start
				if r.stop {
					return
				}
				v, err := c.Get(ctx, r.key)
				doneAt[w] = nanotime()
				if err != nil || v != "v:"+r.key {
					failed.Add(1)
				}
				roundDone.Done()
				r = r.next
			}
		})
	}
	res := StormResult{Rounds: cfg.Rounds}
	began := time.Now()
	for i := range cfg.Rounds {
		next := &stormRound{start: make(chan struct{})}
		cur.key, cur.next = "storm:"+strconv.Itoa(i), next
		f0 := fetches.Load()
		firstReturn.Store(0)
		roundDone.Add(cfg.Waiters)
		close(cur.start)
		roundDone.Wait()
		cur = next
		res.MaxFetches = max(res.MaxFetches, fetches.Load()-f0)
		var last int64
		for _, t := range doneAt {
			last = max(last, t)
		}
		if fr := firstReturn.Load(); fr != 0 {
			res.Release = append(res.Release, time.Duration(last-fr))
		}
	}
	res.Elapsed = time.Since(began)
	cur.stop = true
	close(cur.start)
	workers.Wait()
	res.Fetches, res.Failed = fetches.Load(), failed.Load()
	if res.Failed > 0 {
		return res, fmt.Errorf("bench: %s: %d Gets failed in the miss storm", lib.Name, res.Failed)
	}
	return res, nil
}
