package bench

import (
	"context"

	"github.com/flightcache/flightcache"
)

// flightcacheAdapter is a flightcache Loader; Get calls Loader.Get.
type flightcacheAdapter struct {
	l *flightcache.Loader[string, string]
}

func (a *flightcacheAdapter) Get(ctx context.Context, key string) (string, error) {
	return a.l.Get(ctx, key)
}

func (a *flightcacheAdapter) Close() { _ = a.l.Close() }

// Joined counts the Gets that joined a running load.
func (a *flightcacheAdapter) Joined() uint64 { return a.l.Stats().Shared }

func newFlightcacheFlight(s Setup) (Cache, error) {
	l, err := flightcache.New(s.Fetch, flightcache.Config{Name: "bench", InlineFetch: true})
	if err != nil {
		return nil, err
	}
	return &flightcacheAdapter{l}, nil
}

func newFlightcacheFlightUntimed(s Setup) (Cache, error) {
	l, err := flightcache.New(s.Fetch, flightcache.Config{Name: "bench", InlineFetch: true, DisableLoadTiming: true})
	if err != nil {
		return nil, err
	}
	return &flightcacheAdapter{l}, nil
}

// cacheConfig is the flightcache adapters' cache mode: InlineFetch and the
// default SIEVE policy, sized and timed by s.
func cacheConfig(s Setup) flightcache.Config {
	return flightcache.Config{
		Name:        "bench",
		Mode:        flightcache.ModeCache,
		MaxEntries:  s.Capacity,
		TTL:         s.TTL,
		StaleTTL:    s.StaleTTL,
		InlineFetch: true,
	}
}

func newFlightcacheCache(s Setup) (Cache, error) {
	l, err := flightcache.New(s.Fetch, cacheConfig(s))
	if err != nil {
		return nil, err
	}
	return &flightcacheAdapter{l}, nil
}

func newFlightcacheUncounted(s Setup) (Cache, error) {
	cfg := cacheConfig(s)
	cfg.DisableHitCounting = true
	l, err := flightcache.New(s.Fetch, cfg)
	if err != nil {
		return nil, err
	}
	return &flightcacheAdapter{l}, nil
}

func newFlightcache2Q(s Setup) (Cache, error) {
	l, err := flightcache.New(s.Fetch, flightcache.Config{
		Name:       "bench",
		Mode:       flightcache.ModeCache,
		Policy:     flightcache.Policy2Q,
		MaxEntries: s.Capacity,
		TTL:        s.TTL,
	})
	if err != nil {
		return nil, err
	}
	return &flightcacheAdapter{l}, nil
}
