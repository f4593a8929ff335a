// Command quickstart shows what flightcache does to a thundering herd: 200
// concurrent requests for the same identity-provider token, answered by
// calling a slow fake database directly, through a Loader in flight mode,
// and through a Loader in cache mode.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flightcache/flightcache"
)

const (
	requests = 200                   // concurrent requests per burst
	latency  = 50 * time.Millisecond // how long one database query takes
	clientID = "billing-service"     // every request wants this client's token
)

// db is a fake token store: every query takes latency and is counted.
type db struct{ queries atomic.Int64 }

func (d *db) token(ctx context.Context, client string) (string, error) {
	d.queries.Add(1)
	t := time.NewTimer(latency)
	defer t.Stop()
	select {
	case <-t.C:
		return "token-for-" + client, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// burst fires requests concurrent calls of get. The goroutines are all
// spawned before any of them calls get, and a query lasts far longer than
// releasing them takes, so every call overlaps the first query.
func burst(get func(context.Context, string) (string, error)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range requests {
		wg.Go(func() {
			<-start
			if _, err := get(context.Background(), clientID); err != nil {
				log.Fatal(err)
			}
		})
	}
	close(start)
	wg.Wait()
}

// row is one line of the table: what one burst cost.
type row struct {
	setup   string
	queries int64
	stats   *flightcache.Stats // counters of this burst alone; nil: no Loader
}

func main() {
	// 1. Every request queries the database itself.
	direct := &db{}
	burst(direct.token)
	rows := []row{{setup: "direct", queries: direct.queries.Load()}}

	// 2. Flight mode: concurrent requests share one query; nothing is kept,
	// so a second burst would query again.
	rows = append(rows, run("flight", flightcache.Config{Name: "flight"}, 1)...)

	// 3. Cache mode: the first burst shares one query, the second is
	// answered from the cache without touching the database.
	rows = append(rows, run("cache", flightcache.Config{
		Name: "cache", Mode: flightcache.ModeCache, MaxEntries: 1000, TTL: time.Minute,
	}, 2)...)

	const format = "%-16s %8v %10v %6v %6v %6v %6v\n"
	fmt.Printf(format, "setup", "requests", "db queries", "hits", "misses", "shared", "loads")
	for _, r := range rows {
		if s := r.stats; s != nil {
			fmt.Printf(format, r.setup, requests, r.queries, s.Hits, s.Misses, s.Shared, s.Loads)
		} else {
			fmt.Printf(format, r.setup, requests, r.queries, "-", "-", "-", "-")
		}
	}
}

// run puts a fresh database behind a Loader configured by cfg and fires
// bursts bursts one after the other, returning one row for each.
func run(setup string, cfg flightcache.Config, bursts int) []row {
	store := &db{}
	loader, err := flightcache.New(store.token, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer loader.Close()
	var rows []row
	var prevQueries int64
	var prev flightcache.Stats
	for i := range bursts {
		burst(loader.Get)
		s, q := loader.Stats(), store.queries.Load()
		name := setup
		if bursts > 1 {
			name = fmt.Sprintf("%s, burst %d", setup, i+1)
		}
		rows = append(rows, row{setup: name, queries: q - prevQueries, stats: &flightcache.Stats{
			Hits: s.Hits - prev.Hits, Misses: s.Misses - prev.Misses,
			Shared: s.Shared - prev.Shared, Loads: s.Loads - prev.Loads,
		}})
		prev, prevQueries = s, q
	}
	return rows
}
