package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flightcache/flightcache"
	"github.com/flightcache/flightcache/examples/internal/userdb"
)

// makeWorkload returns the ids of o.requests lookups, drawn from 1 to
// o.ids uniformly or with a zipf distribution (id 1 hottest). The same
// options give the same workload.
func makeWorkload(o options) []int64 {
	r := rand.New(rand.NewPCG(o.seed, 0x5eed))
	next := func() int64 { return 1 + r.Int64N(int64(o.ids)) }
	if o.keys == "zipf" {
		z := rand.NewZipf(r, o.zipfS, 1, uint64(o.ids-1))
		next = func() int64 { return 1 + int64(z.Uint64()) }
	}
	w := make([]int64, o.requests)
	for i := range w {
		w[i] = next()
	}
	return w
}

// distinct returns the number of different ids in w.
func distinct(w []int64) int {
	seen := make(map[int64]struct{}, len(w))
	for _, id := range w {
		seen[id] = struct{}{}
	}
	return len(seen)
}

// report is what replaying a workload measured.
type report struct {
	requests int
	notFound int // lookups of ids with no user
	elapsed  time.Duration
	p50, p99 time.Duration
}

// progressCounter counts finished requests for the progress line.
type progressCounter struct{ n atomic.Int64 }

// replay runs the lookups of workload with concurrency workers, each taking
// the next request as soon as it is done with one, and measures every
// request's latency. Not-found answers are expected (ids above the seeded
// users); any other error stops the replay and is returned.
func replay(ctx context.Context, get func(context.Context, int64) (userdb.User, error),
	workload []int64, concurrency int, done *progressCounter) (report, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	latencies := make([]time.Duration, len(workload))
	var next, notFound atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range min(concurrency, len(workload)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(workload) || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				u, err := get(ctx, workload[i])
				latencies[i] = time.Since(t0)
				switch {
				case errors.Is(err, flightcache.ErrNotFound):
					notFound.Add(1)
				case err != nil:
					cancel(fmt.Errorf("request %d (id %d): %w", i+1, workload[i], err))
					return
				case u.ID != workload[i]:
					cancel(fmt.Errorf("request %d asked for id %d and got user %d", i+1, workload[i], u.ID))
					return
				}
				done.n.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		if errors.Is(err, context.Canceled) {
			return report{}, errors.New("interrupted")
		}
		return report{}, err
	}
	slices.Sort(latencies)
	return report{
		requests: len(workload),
		notFound: int(notFound.Load()),
		elapsed:  elapsed,
		p50:      percentile(latencies, 0.50),
		p99:      percentile(latencies, 0.99),
	}, nil
}

// percentile returns the p-th quantile of sorted (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// result is one row of the table.
type result struct {
	setup   string
	report  report
	queries int64              // lookups the database received
	stats   *flightcache.Stats // nil for direct
}

// printTable writes the rows side by side.
func printTable(w io.Writer, rows []result) {
	const format = "%-7s %8v %10v %10v %9v %9v %6v %6v %6v %6v\n"
	fmt.Fprintf(w, format, "setup", "requests", "db queries", "req/s", "p50", "p99", "hits", "misses", "shared", "loads")
	for _, r := range rows {
		rate := float64(r.report.requests) / r.report.elapsed.Seconds()
		cells := []any{r.setup, r.report.requests, r.queries, fmt.Sprintf("%.0f", rate),
			roundDuration(r.report.p50), roundDuration(r.report.p99)}
		if s := r.stats; s != nil {
			cells = append(cells, s.Hits, s.Misses, s.Shared, s.Loads)
		} else {
			cells = append(cells, "-", "-", "-", "-")
		}
		fmt.Fprintf(w, format, cells...)
	}
	if len(rows) > 0 && rows[0].report.notFound > 0 { // one workload: the same in every row
		fmt.Fprintf(w, "\n%d of the %d requests asked for an id with no user: answered not found\n",
			rows[0].report.notFound, rows[0].report.requests)
	}
}

// roundDuration keeps three significant digits or so: 1.23ms, 45.6µs.
func roundDuration(d time.Duration) time.Duration {
	for unit := time.Duration(1); unit < time.Hour; unit *= 10 {
		if d < 1000*unit {
			return d.Round(unit)
		}
	}
	return d.Round(time.Second)
}

// startProgress prints, on a terminal, a progress line for a replay that
// is still running after delay, updated a few times a second; it prints
// nothing when terminal is false or the replay ends sooner. The returned
// function stops it, erases the line and waits for it to end.
func startProgress(w io.Writer, terminal bool, label string, total int, done *progressCounter, delay time.Duration) (stop func()) {
	if !terminal {
		return func() {}
	}
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		wait := time.NewTimer(delay)
		defer wait.Stop()
		select {
		case <-wait.C:
		case <-quit:
			return
		}
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			fmt.Fprintf(w, "\r%s: %d/%d requests", label, done.n.Load(), total)
			select {
			case <-tick.C:
			case <-quit:
				fmt.Fprint(w, "\r\033[K") // erase the line for the table
				return
			}
		}
	}()
	return func() {
		close(quit)
		<-finished
	}
}
