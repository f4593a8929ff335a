package bench

import (
	"context"

	"github.com/maypok86/otter/v2"
	"github.com/maypok86/otter/v2/stats"
)

// otterAdapter is maypok86/otter v2's Cache.Get with a loader, its own
// load-through entry point (it deduplicates concurrent loads of a key).
type otterAdapter struct {
	c      *otter.Cache[string, string]
	loader otter.Loader[string, string]
}

func newOtter(s Setup) (Cache, error) {
	o := &otter.Options[string, string]{
		MaximumSize:      s.Capacity,
		ExpiryCalculator: otter.ExpiryWriting[string, string](s.TTL),
	}
	if s.StaleTTL > 0 {
		// Refresh (in the background, serving the old value) once TTL has
		// passed; drop the entry once TTL+StaleTTL has.
		o.ExpiryCalculator = otter.ExpiryWriting[string, string](s.TTL + s.StaleTTL)
		o.RefreshCalculator = otter.RefreshWriting[string, string](s.TTL)
	}
	c, err := otter.New(o)
	if err != nil {
		return nil, err
	}
	return &otterAdapter{c: c, loader: otter.LoaderFunc[string, string](s.Fetch)}, nil
}

// newOtterStats is newOtter with hit and miss counting on.
func newOtterStats(s Setup) (Cache, error) {
	c, err := otter.New(&otter.Options[string, string]{
		MaximumSize:      s.Capacity,
		ExpiryCalculator: otter.ExpiryWriting[string, string](s.TTL),
		StatsRecorder:    stats.NewCounter(),
	})
	if err != nil {
		return nil, err
	}
	return &otterAdapter{c: c, loader: otter.LoaderFunc[string, string](s.Fetch)}, nil
}

func (a *otterAdapter) Get(ctx context.Context, key string) (string, error) {
	return a.c.Get(ctx, key, a.loader)
}

func (a *otterAdapter) Close() { a.c.StopAllGoroutines() }
