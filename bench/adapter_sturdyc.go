package bench

import (
	"context"

	"github.com/viccon/sturdyc"
)

// sturdycShards and sturdycEvictPercent are the values of sturdyc's README.
const (
	sturdycShards       = 10
	sturdycEvictPercent = 10
)

// sturdycAdapter is viccon/sturdyc's GetOrFetch. Its API takes the fetch
// as a func(ctx) closure per call, so every Get builds one: that is the
// library's cost, not the adapter's.
type sturdycAdapter struct {
	c     *sturdyc.Client[string]
	fetch Fetch
}

func newSturdyc(s Setup) (Cache, error) {
	// Without continuous evictions, sturdyc starts no goroutine (there is no
	// way to stop one); expired entries are still never served, and a full
	// shard still evicts.
	c := sturdyc.New[string](s.Capacity, sturdycShards, s.TTL, sturdycEvictPercent,
		sturdyc.WithNoContinuousEvictions())
	return &sturdycAdapter{c: c, fetch: s.Fetch}, nil
}

func (a *sturdycAdapter) Get(ctx context.Context, key string) (string, error) {
	return sturdyc.GetOrFetch(ctx, a.c, key, func(ctx context.Context) (string, error) {
		return a.fetch(ctx, key)
	})
}

func (a *sturdycAdapter) Close() {}
