package bench

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// counted is a fetch that counts its calls per key and returns "value:KEY"
// after hold (a timer), so that callers started meanwhile overlap it.
type counted struct {
	hold  time.Duration
	mu    sync.Mutex // guards calls
	calls map[string]int
	total atomic.Int64
}

func newCounted(hold time.Duration) *counted {
	return &counted{hold: hold, calls: make(map[string]int)}
}

func (f *counted) fetch(ctx context.Context, key string) (string, error) {
	f.total.Add(1)
	f.mu.Lock()
	f.calls[key]++
	f.mu.Unlock()
	if f.hold > 0 && !wait(f.hold, ctx.Done()) {
		return "", ctx.Err()
	}
	return "value:" + key, nil
}

func (f *counted) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[key]
}

// TestConformance checks every adapter: Get returns the fetched value;
// concurrent Gets of a cold key share exactly one fetch; and a caching
// library answers the next Gets without fetching again.
func TestConformance(t *testing.T) {
	for _, lib := range Libraries() {
		t.Run(lib.Name, func(t *testing.T) {
			f := newCounted(0)
			c, err := lib.Open(Setup{Capacity: 100, TTL: time.Hour, Fetch: f.fetch})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx := t.Context()

			for i := range 10 {
				k := "k" + strconv.Itoa(i)
				v, err := c.Get(ctx, k)
				if err != nil || v != "value:"+k {
					t.Fatalf("Get(%q) = %q, %v; want %q, nil", k, v, err, "value:"+k)
				}
				if n := f.count(k); n != 1 {
					t.Fatalf("Get(%q) fetched %d times, want 1", k, n)
				}
			}
			if lib.Kind == Flight {
				return
			}
			for i := range 10 {
				k := "k" + strconv.Itoa(i)
				v, err := c.Get(ctx, k)
				if err != nil || v != "value:"+k {
					t.Fatalf("second Get(%q) = %q, %v; want %q, nil", k, v, err, "value:"+k)
				}
				if n := f.count(k); n != 1 {
					t.Errorf("key %q fetched %d times after a second Get, want 1 (a cached value)", k, n)
				}
			}
		})
	}
}

// TestConformanceConcurrent starts 32 Gets of one cold key; every one of
// them is running before the fetch is let go, and all must share that one
// fetch. The fetch waits until the other 31 have joined it where the
// library counts joins (flightcache); for the others it holds 100ms once
// all have signalled, ample for a Get to reach its wait (a caching library
// would answer a later one from its cache anyway).
func TestConformanceConcurrent(t *testing.T) {
	const callers = 32
	for _, lib := range Libraries() {
		t.Run(lib.Name, func(t *testing.T) {
			var arrived sync.WaitGroup
			arrived.Add(callers)
			var fetches atomic.Int64
			var c Cache // set before any Get
			fetch := func(ctx context.Context, key string) (string, error) {
				fetches.Add(1)
				arrived.Wait() // every caller is about to Get (or in it)
				if jc, counts := c.(joinCounter); counts {
					if !waitJoined(c, callers-1, 10*time.Second) {
						t.Errorf("after 10s only %d of %d Gets joined the fetch", jc.Joined(), callers-1)
					}
				} else if !wait(100*time.Millisecond, ctx.Done()) {
					return "", ctx.Err()
				}
				return "value:" + key, nil
			}
			c, err := lib.Open(Setup{Capacity: 100, TTL: time.Hour, Fetch: fetch})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx := t.Context()
			var wg sync.WaitGroup
			for range callers {
				wg.Go(func() {
					arrived.Done()
					if v, err := c.Get(ctx, "cold"); err != nil || v != "value:cold" {
						t.Errorf("Get = %q, %v; want %q, nil", v, err, "value:cold")
					}
				})
			}
			wg.Wait()
			if n := fetches.Load(); n != 1 {
				t.Errorf("%d concurrent Gets of a cold key ran %d fetches, want 1", callers, n)
			}
		})
	}
}
