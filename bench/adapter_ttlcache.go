package bench

import (
	"context"

	"github.com/jellydator/ttlcache/v3"
)

// ttlcacheAdapter is jellydator/ttlcache v3 with its suppressed loader
// (an x/sync singleflight around the loader). Its loader receives no
// context and can return no error: the fetch runs on context.Background,
// and a failed fetch reaches the caller as errNotLoaded.
type ttlcacheAdapter struct {
	c *ttlcache.Cache[string, string]
}

func newTTLCache(s Setup) (Cache, error) {
	fetch := s.Fetch
	load := ttlcache.LoaderFunc[string, string](func(c *ttlcache.Cache[string, string], key string) *ttlcache.Item[string, string] {
		v, err := fetch(context.Background(), key)
		if err != nil {
			return nil
		}
		return c.Set(key, v, ttlcache.DefaultTTL)
	})
	c := ttlcache.New[string, string](
		ttlcache.WithTTL[string, string](s.TTL),
		ttlcache.WithCapacity[string, string](uint64(s.Capacity)),
		// Without this every hit would push the expiry back (sliding
		// expiry); the other libraries expire a fixed TTL after the write.
		ttlcache.WithDisableTouchOnHit[string, string](),
		ttlcache.WithLoader[string, string](ttlcache.NewSuppressedLoader[string, string](load, nil)),
	)
	return &ttlcacheAdapter{c: c}, nil
}

func (a *ttlcacheAdapter) Get(ctx context.Context, key string) (string, error) {
	it := a.c.Get(key)
	if it == nil {
		return "", errNotLoaded
	}
	return it.Value(), nil
}

func (a *ttlcacheAdapter) Close() {}
