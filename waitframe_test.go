package flightcache_test

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"

	"github.com/flightcache/flightcache"
)

// TestWaiterParksInGet: a Get on a context that cannot end, waiting for a
// load, blocks in Loader.Get's own frame, with no frame of the flight
// core below it. A miss storm's release time is mostly the cost of
// resuming a thousand parked goroutines, each through cold stack lines,
// so every frame between the caller and the receive counts (see
// bench/README.md, miss storm). The test reads the stacks of the parked
// Gets: a refactor that moves the receive back into a helper fails it.
func TestWaiterParksInGet(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  flightcache.Config
	}{
		{"flight", flightcache.Config{}},
		{"flight-inline", flightcache.Config{InlineFetch: true}},
		{"cache", flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10}},
		{"cache-inline", flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, InlineFetch: true}},
		{"cache-lru", flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, Policy: flightcache.PolicyLRU}},
		{"cache-2q", flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, Policy: flightcache.Policy2Q}},
		{"cache-early-refresh", flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, EarlyRefresh: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				l := mustNew(t, func(ctx context.Context, key string) (string, error) {
					<-release
					return "v:" + key, nil
				}, tc.cfg)
				const n = 3
				var wg sync.WaitGroup
				for range n {
					wg.Go(func() {
						v, err := l.Get(context.Background(), "k")
						if err != nil || v != "v:k" {
							t.Errorf("Get = %q, %v; want v:k", v, err)
						}
					})
				}
				synctest.Wait() // the fetch blocks on release; the Gets wait for it

				buf := make([]byte, 1<<20)
				stacks := string(buf[:runtime.Stack(buf, true)])
				waiting := 0
				for _, g := range strings.Split(stacks, "\n\n") {
					lines := strings.Split(g, "\n")
					if len(lines) < 2 || !strings.Contains(g, "flightcache.(*Loader[...]).Get(") {
						continue
					}
					if strings.Contains(g, "flightcache_test.TestWaiterParksInGet") && strings.Contains(lines[1], "TestWaiterParksInGet") {
						continue // the inline leader, blocked in the fetch itself
					}
					waiting++
					require.Contains(t, lines[1], "flightcache.(*Loader[...]).Get(",
						"a waiting Get's top frame must be Loader.Get; its stack:\n%s", g)
				}
				want := n
				if tc.cfg.InlineFetch {
					want = n - 1 // one of them runs the fetch
				}
				require.Equal(t, want, waiting, "parked Gets found in:\n%s", stacks)
				close(release)
				wg.Wait()
			})
		})
	}
}
