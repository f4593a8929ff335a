package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
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
	Elapsed    time.Duration // the rounds' total, each from release to the last return
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
	res, err := MissStormRoundRobin([]Library{lib}, cfg)
	if err != nil {
		return StormResult{}, err
	}
	return res[0], nil
}

// MissStormRoundRobin runs a miss storm against each of libs, every library
// with a Cache and workers of its own, one round of each in turn (each
// cycle starting one library further on), so that they all meet the same
// machine: on a shared VM the release time drifts by a factor of two over
// seconds, which one library's rounds run back to back would take for its
// own. It returns the libraries' results in the order of libs.
func MissStormRoundRobin(libs []Library, cfg StormConfig) ([]StormResult, error) {
	runners := make([]*stormRunner, 0, len(libs))
	defer func() {
		for _, r := range runners {
			r.stop()
		}
	}()
	for _, lib := range libs {
		r, err := newStormRunner(lib, cfg)
		if err != nil {
			return nil, err
		}
		runners = append(runners, r)
	}
	for i := range cfg.Rounds {
		for j := range runners {
			runners[(i+j)%len(runners)].round(i)
		}
	}
	out := make([]StormResult, len(runners))
	for i, r := range runners {
		r.stop()
		out[i] = r.res
		if r.res.Failed > 0 {
			return nil, fmt.Errorf("bench: %s: %d Gets failed in the miss storm", r.lib.Name, r.res.Failed)
		}
	}
	return out, nil
}

// stormRunner is one library's part of a miss storm: its Cache, its
// workers, which wait for the next round's start, and what its rounds
// measured so far.
type stormRunner struct {
	lib         Library
	cfg         StormConfig
	c           Cache
	fetches     atomic.Int64
	firstReturn atomic.Int64 // nanotime of this round's first fetch return; 0: none yet
	failed      atomic.Int64
	doneAt      []int64 // each worker's last return, in nanotime
	roundDone   sync.WaitGroup
	workers     sync.WaitGroup
	cur         *stormRound // the next round
	stopped     bool
	res         StormResult
}

// newStormRunner opens lib for a storm and starts its workers.
func newStormRunner(lib Library, cfg StormConfig) (*stormRunner, error) {
	r := &stormRunner{lib: lib, cfg: cfg, doneAt: make([]int64, cfg.Waiters), cur: &stormRound{start: make(chan struct{})}}
	fetch := func(ctx context.Context, key string) (string, error) {
		r.fetches.Add(1)
		if !wait(cfg.FetchTime, ctx.Done()) {
			return "", ctx.Err()
		}
		r.firstReturn.CompareAndSwap(0, nanotime())
		return "v:" + key, nil
	}
	c, err := lib.Open(Setup{Capacity: max(2*cfg.Rounds, 64), TTL: time.Hour, Fetch: fetch})
	if err != nil {
		return nil, err
	}
	r.c = c
	ctx := context.Background()
	for w := range cfg.Waiters {
		rd := r.cur
		r.workers.Go(func() {
			for {
				<-rd.start
				if rd.stop {
					return
				}
				v, err := c.Get(ctx, rd.key)
				r.doneAt[w] = nanotime()
				if err != nil || v != "v:"+rd.key {
					r.failed.Add(1)
				}
				r.roundDone.Done()
				rd = rd.next
			}
		})
	}
	return r, nil
}

// round runs round i: it releases the workers on a new key and waits for
// them all to have their value.
func (r *stormRunner) round(i int) {
	cur := r.cur
	next := &stormRound{start: make(chan struct{})}
	cur.key, cur.next = "storm:"+strconv.Itoa(i), next
	f0 := r.fetches.Load()
	r.firstReturn.Store(0)
	r.roundDone.Add(r.cfg.Waiters)
	began := time.Now()
	close(cur.start)
	r.roundDone.Wait()
	r.res.Elapsed += time.Since(began)
	r.res.Rounds++
	r.cur = next
	r.res.MaxFetches = max(r.res.MaxFetches, r.fetches.Load()-f0)
	var last int64
	for _, t := range r.doneAt {
		last = max(last, t)
	}
	if fr := r.firstReturn.Load(); fr != 0 {
		r.res.Release = append(r.res.Release, time.Duration(last-fr))
	}
}

// stop ends the workers and closes the Cache; it records the totals in
// r.res. Calling it again does nothing.
func (r *stormRunner) stop() {
	if r.stopped {
		return
	}
	r.stopped = true
	r.cur.stop = true
	close(r.cur.start)
	r.workers.Wait()
	r.c.Close()
	r.res.Fetches, r.res.Failed = r.fetches.Load(), r.failed.Load()
}

// WriteStormRounds writes the release time of every round of a round-robin
// storm (res[i] is libs[i]'s) to path as CSV: a header, then one line
// "round,library,release_ns" per round and library. Rounds of one index
// ran in the same cycle, within a second of each other.
func WriteStormRounds(path string, libs []Library, res []StormResult) error {
	var b strings.Builder
	b.WriteString("round,library,release_ns\n")
	for i, r := range res {
		if len(r.Release) != r.Rounds {
			return fmt.Errorf("bench: %s: %d release times for %d rounds", libs[i].Name, len(r.Release), r.Rounds)
		}
		for round, d := range r.Release {
			fmt.Fprintf(&b, "%d,%s,%d\n", round, libs[i].Name, d.Nanoseconds())
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
