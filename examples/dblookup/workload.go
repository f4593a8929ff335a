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

// makeWorkload returns the ids of o.requests requests of o.batch ids each,
// one request after the other, drawn from 1 to o.ids uniformly or with a
// zipf distribution (id 1 hottest). The same options give the same
// workload.
func makeWorkload(o options) []int64 {
	r := rand.New(rand.NewPCG(o.seed, 0x5eed))
	next := func() int64 { return 1 + r.Int64N(int64(o.ids)) }
	if o.keys == "zipf" {
		z := rand.NewZipf(r, o.zipfS, 1, uint64(o.ids-1))
		next = func() int64 { return 1 + int64(z.Uint64()) }
	}
	w := make([]int64, o.requests*o.batch)
	for i := range w {
		w[i] = next()
	}
	return w
}

// unique returns ids without repeats, in their order: the ids one request
// asks for.
func unique(ids []int64) []int64 {
	if len(ids) == 1 {
		return ids
	}
	seen := make(map[int64]bool, len(ids))
	out := make([]int64, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
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
	lookups  int // ids looked up: the distinct ids of each request, added up
	notFound int // lookups of ids with no user
	elapsed  time.Duration
	p50, p99 time.Duration
}

// request answers one request of the replay: it looks up ids, distinct,
// and returns how many have no user. Not-found is not an error; an answer
// with the wrong user is.
type request func(ctx context.Context, ids []int64) (notFound int, err error)

// single answers requests of one id with get.
func single(get func(context.Context, int64) (userdb.User, error)) request {
	return func(ctx context.Context, ids []int64) (int, error) {
		u, err := get(ctx, ids[0])
		switch {
		case errors.Is(err, flightcache.ErrNotFound):
			return 1, nil
		case err != nil:
			return 0, err
		case u.ID != ids[0]:
			return 0, fmt.Errorf("asked for id %d and got user %d", ids[0], u.ID)
		}
		return 0, nil
	}
}

// batch answers requests of several ids with one call of getMany, such as
// one WHERE id IN (...) query.
func batch(getMany func(context.Context, []int64) (map[int64]userdb.User, error)) request {
	return func(ctx context.Context, ids []int64) (int, error) {
		found, err := getMany(ctx, ids)
		if err != nil {
			return 0, err
		}
		notFound := 0
		for _, id := range ids {
			u, ok := found[id]
			switch {
			case !ok:
				notFound++
			case u.ID != id:
				return 0, fmt.Errorf("asked for id %d and got user %d", id, u.ID)
			}
		}
		if len(found) != len(ids)-notFound {
			return 0, fmt.Errorf("asked for %d ids and got %d users, %d of them not asked for", len(ids), len(found), len(found)-(len(ids)-notFound))
		}
		return notFound, nil
	}
}

// many answers requests of several ids with one GetMany of l.
func many(l *flightcache.Loader[int64, userdb.User]) request {
	return func(ctx context.Context, ids []int64) (int, error) {
		res := l.GetMany(ctx, ids)
		notFound := 0
		for _, id := range ids {
			u, err := res.Get(id)
			switch {
			case errors.Is(err, flightcache.ErrNotFound):
				notFound++
			case err != nil:
				return 0, err
			case u.ID != id:
				return 0, fmt.Errorf("asked for id %d and got user %d", id, u.ID)
			}
		}
		return notFound, nil
	}
}

// progressCounter counts finished requests for the progress line.
type progressCounter struct{ n atomic.Int64 }

// replay runs the requests of workload, perRequest ids each, with
// concurrency workers, each taking the next request as soon as it is done
// with one, and measures every request's latency. Not-found answers are
// expected (ids above the seeded users); any other error stops the replay
// and is returned.
func replay(ctx context.Context, get request, workload []int64, perRequest, concurrency int, done *progressCounter) (report, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	requests := make([][]int64, 0, len(workload)/perRequest)
	lookups := 0
	for ids := range slices.Chunk(workload, perRequest) {
		ids = unique(ids)
		requests = append(requests, ids)
		lookups += len(ids)
	}
	latencies := make([]time.Duration, len(requests))
	var next, notFound atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range min(concurrency, len(requests)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(requests) || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				n, err := get(ctx, requests[i])
				latencies[i] = time.Since(t0)
				if err != nil {
					what := fmt.Sprintf("id %d", requests[i][0])
					if perRequest > 1 {
						what = fmt.Sprintf("ids %v", requests[i])
					}
					cancel(fmt.Errorf("request %d (%s): %w", i+1, what, err))
					return
				}
				notFound.Add(int64(n))
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
		requests: len(requests),
		lookups:  lookups,
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

// printTable writes the rows side by side. The Loader counters count ids:
// with -batch, a request of N distinct ids is N Gets.
func printTable(w io.Writer, rows []result) {
	const format = "%-12s %8v %10v %10v %9v %9v %6v %6v %6v %6v %7v\n"
	fmt.Fprintf(w, format, "setup", "requests", "db queries", "req/s", "p50", "p99", "hits", "misses", "shared", "loads", "batches")
	for _, r := range rows {
		rate := float64(r.report.requests) / r.report.elapsed.Seconds()
		cells := []any{r.setup, r.report.requests, r.queries, fmt.Sprintf("%.0f", rate),
			roundDuration(r.report.p50), roundDuration(r.report.p99)}
		if s := r.stats; s != nil {
			cells = append(cells, s.Hits, s.Misses, s.Shared, s.Loads, s.BatchLoads)
		} else {
			cells = append(cells, "-", "-", "-", "-", "-")
		}
		fmt.Fprintf(w, format, cells...)
	}
	if len(rows) == 0 { // one workload: the same in every row
		return
	}
	switch rep := rows[0].report; {
	case rep.lookups != rep.requests:
		fmt.Fprintf(w, "\nthe %d requests asked for %d ids in all, counting the distinct ids of each (hits + misses)",
			rep.requests, rep.lookups)
		if rep.notFound > 0 {
			fmt.Fprintf(w, "; %d had no user: answered not found", rep.notFound)
		}
		fmt.Fprintln(w)
	case rep.notFound > 0:
		fmt.Fprintf(w, "\n%d of the %d requests asked for an id with no user: answered not found\n",
			rep.notFound, rep.requests)
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
