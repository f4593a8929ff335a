package bench

import (
	"context"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"golang.org/x/sync/singleflight"
)

// ristrettoAdapter is dgraph-io/ristretto v2 plus x/sync/singleflight, by
// hand. Ristretto applies a Set asynchronously (through a buffer drained by
// its own goroutine): a Get right after the flight returned could still
// miss and fetch the key again. So the flight calls Wait after SetWithTTL,
// and the cache is checked again inside the flight, as for golang-lru.
// Ristretto may also reject a Set (its TinyLFU admission policy, once the
// cache is full): that is its design, and shows in the hit ratio.
type ristrettoAdapter struct {
	c     *ristretto.Cache[string, string]
	g     singleflight.Group
	fetch Fetch
	ttl   time.Duration
}

func newRistretto(s Setup) (Cache, error) {
	c, err := ristretto.NewCache(&ristretto.Config[string, string]{
		NumCounters:        10 * int64(s.Capacity), // 10x the entries, as its docs advise
		MaxCost:            int64(s.Capacity),      // cost 1 per entry: MaxCost is the entry count
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, err
	}
	return &ristrettoAdapter{c: c, fetch: s.Fetch, ttl: s.TTL}, nil
}

func (a *ristrettoAdapter) Get(ctx context.Context, key string) (string, error) {
	if v, ok := a.c.Get(key); ok {
		return v, nil
	}
	v, err, _ := a.g.Do(key, func() (any, error) {
		if v, ok := a.c.Get(key); ok {
			return v, nil
		}
		v, err := a.fetch(ctx, key)
		if err == nil {
			a.c.SetWithTTL(key, v, 1, a.ttl)
			a.c.Wait()
		}
		return v, err
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

func (a *ristrettoAdapter) Close() { a.c.Close() }
