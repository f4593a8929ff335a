package flightcache_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flightcache/flightcache"
)

// ExampleNew wraps a lookup in a Loader in flight mode, the zero Config.
// Flight mode keeps nothing once a fetch returns: Gets that overlap share one
// fetch, but two Gets one after the other fetch twice.
func ExampleNew() {
	var queries atomic.Int64
	fetchUser := func(ctx context.Context, id int) (string, error) {
		queries.Add(1)
		if id <= 0 {
			return "", flightcache.ErrNotFound
		}
		return fmt.Sprintf("user-%d", id), nil
	}

	users, err := flightcache.New(fetchUser, flightcache.Config{Name: "users"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer users.Close()

	ctx := context.Background()
	for range 2 {
		name, err := users.Get(ctx, 42)
		fmt.Println(name, err)
	}
	_, err = users.Get(ctx, -1)
	fmt.Println(errors.Is(err, flightcache.ErrNotFound))

	s := users.Stats()
	fmt.Printf("queries=%d loads=%d hits=%d\n", queries.Load(), s.Loads, s.Hits)
	// Output:
	// user-42 <nil>
	// user-42 <nil>
	// true
	// queries=3 loads=3 hits=0
}

// Example_flightMode starts ten concurrent Gets of one key. However they
// interleave, no two fetches of the key ever run at once, every caller gets
// the same value, and every Get is a miss that either started the load or
// joined it (Misses = Loads + Shared). How many of them joined depends on
// scheduling, so the example prints only what is certain.
func Example_flightMode() {
	const callers = 10
	var running, maxRunning atomic.Int64
	release := make(chan struct{})
	fetchToken := func(ctx context.Context, client string) (string, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			cur := maxRunning.Load()
			if n <= cur || maxRunning.CompareAndSwap(cur, n) {
				break
			}
		}
		select { // hold the fetch until every caller has been started
		case <-release:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return "token-for-" + client, nil
	}

	tokens, err := flightcache.New(fetchToken, flightcache.Config{Name: "tokens"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tokens.Close()

	var wg sync.WaitGroup
	results := make([]string, callers)
	for i := range callers {
		wg.Go(func() {
			tok, err := tokens.Get(context.Background(), "billing-service")
			if err != nil {
				tok = err.Error()
			}
			results[i] = tok
		})
	}
	close(release)
	wg.Wait()

	same := true
	for _, r := range results {
		same = same && r == results[0]
	}
	s := tokens.Stats()
	fmt.Println("value:", results[0])
	fmt.Println("every caller got it:", same)
	fmt.Println("fetches of the key running at once, at most:", maxRunning.Load())
	fmt.Println("misses:", s.Misses, "= loads + shared:", s.Misses == s.Loads+s.Shared)
	// Output:
	// value: token-for-billing-service
	// every caller got it: true
	// fetches of the key running at once, at most: 1
	// misses: 10 = loads + shared: true
}

// ExampleLoader_cacheMode keeps results in an LRU: the second Get of a key
// is a hit and does not fetch.
func ExampleLoader_cacheMode() {
	var queries atomic.Int64
	fetchPrice := func(ctx context.Context, sku string) (int, error) {
		queries.Add(1)
		return len(sku) * 100, nil
	}

	prices, err := flightcache.New(fetchPrice, flightcache.Config{
		Name:       "prices",
		Mode:       flightcache.ModeCache,
		MaxEntries: 1000,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer prices.Close()

	ctx := context.Background()
	for range 2 {
		p, _ := prices.Get(ctx, "apple")
		fmt.Println("apple:", p)
	}
	prices.Set("pear", 250) // stored as if fetched
	p, _ := prices.Get(ctx, "pear")
	fmt.Println("pear:", p)

	s := prices.Stats()
	fmt.Printf("queries=%d hits=%d misses=%d loads=%d entries=%d\n",
		queries.Load(), s.Hits, s.Misses, s.Loads, s.Entries)

	prices.Invalidate("apple")
	_, _ = prices.Get(ctx, "apple")
	fmt.Println("queries after Invalidate and Get:", queries.Load())
	// Output:
	// apple: 500
	// apple: 500
	// pear: 250
	// queries=1 hits=2 misses=1 loads=1 entries=2
	// queries after Invalidate and Get: 2
}

// ExampleConfig_json reads a Config from JSON, as an application would from
// its configuration file. Durations are strings such as "30s".
func ExampleConfig_json() {
	var cfg flightcache.Config
	if err := json.Unmarshal([]byte(`{"mode": "cache", "max_entries": 10000, "ttl": "30s"}`), &cfg); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("mode:", cfg.Mode, "max_entries:", cfg.MaxEntries, "ttl:", cfg.TTL)

	fetch := func(ctx context.Context, key string) (string, error) { return "v:" + key, nil }
	l, err := flightcache.New(fetch, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()

	ctx := context.Background()
	_, _ = l.Get(ctx, "a")
	v, _ := l.Get(ctx, "a")
	s := l.Stats()
	fmt.Println(v, "hits:", s.Hits, "loads:", s.Loads)

	// A bad value is reported with the field it belongs to.
	err = json.Unmarshal([]byte(`{"ttl": 30}`), &cfg)
	fmt.Println(err)
	// Output:
	// mode: cache max_entries: 10000 ttl: 30s
	// v:a hits: 1 loads: 1
	// flightcache: ttl: want a duration string such as "30s", got 30
}

// ExampleNewCollector exports a Loader's counters to Prometheus through a
// registry of the application's own.
func ExampleNewCollector() {
	fetch := func(ctx context.Context, id int) (int, error) { return id * id, nil }
	squares, err := flightcache.New(fetch, flightcache.Config{
		Name:       "squares",
		Mode:       flightcache.ModeCache,
		MaxEntries: 100,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer squares.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(flightcache.NewCollector(squares))

	ctx := context.Background()
	for _, id := range []int{1, 2, 1, 1, 3, 2} {
		_, _ = squares.Get(ctx, id)
	}

	families, err := reg.Gather()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, mf := range families {
		switch mf.GetName() {
		case "flightcache_hits_total", "flightcache_loads_total", "flightcache_entries":
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			value := m.GetCounter().GetValue()
			if m.GetGauge() != nil {
				value = m.GetGauge().GetValue()
			}
			label := m.GetLabel()[0]
			fmt.Printf("%s{%s=%q} %g\n", mf.GetName(), label.GetName(), label.GetValue(), value)
		}
	}
	// Output:
	// flightcache_entries{loader="squares"} 3
	// flightcache_hits_total{loader="squares"} 3
	// flightcache_loads_total{loader="squares"} 3
}
