package bench

import (
	"context"
	"sync/atomic"
	"time"
)

// HitRatio fills a fresh cache of lib with capacity entries by the first
// warm Gets of trace (indices into keys), then makes the rest of the Gets
// from one goroutine and returns the fraction that did not fetch.
func HitRatio(lib Library, keys []string, trace []uint32, capacity, warm int) (float64, error) {
	var fetches atomic.Int64
	c, err := lib.Open(Setup{Capacity: capacity, TTL: time.Hour, Fetch: func(ctx context.Context, key string) (string, error) {
		fetches.Add(1)
		return key, nil
	}})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	ctx := context.Background()
	for n, i := range trace {
		if n == warm {
			fetches.Store(0)
		}
		if _, err := c.Get(ctx, keys[i]); err != nil {
			return 0, err
		}
	}
	return 1 - float64(fetches.Load())/float64(len(trace)-warm), nil
}
