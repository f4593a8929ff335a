package flightcache

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRecheckInsideFlight covers the race in which a Get misses the cache
// just as another load stores the key: entering the flight, it must find the
// stored value instead of fetching again, and count a hit.
func TestRecheckInsideFlight(t *testing.T) {
	var calls atomic.Int64
	l, err := New(func(ctx context.Context, key string) (string, error) {
		calls.Add(1)
		return "fetched", nil
	}, Config{Mode: ModeCache, MaxEntries: 10})
	require.NoError(t, err)
	defer l.Close()

	l.Set("k", "stored") // lands between this Get's cache miss and its flight
	v, err := l.flight.do(context.Background(), "k")
	require.NoError(t, err)
	require.Equal(t, "stored", v)
	require.Zero(t, calls.Load())
	s := l.Stats()
	require.EqualValues(t, 1, s.Hits)
	require.Zero(t, s.Misses)
	require.Zero(t, s.Loads)
}
