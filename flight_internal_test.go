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

// TestBatchCancelCauseClose: a batch's context ends once none of its calls
// needs it, and its cause must say Close whenever Close cancelled one of
// them, even if another call, whose callers all left, is cancelled last.
// (TestCloseUnderLoad found this: a Close that visited one call's shard
// before the other's caller left gave the first call's waiter a bare
// context.Canceled instead of ErrClosed.)
func TestBatchCancelCauseClose(t *testing.T) {
	for _, order := range []string{"close first", "abandoned first"} {
		t.Run(order, func(t *testing.T) {
			l, err := New(func(ctx context.Context, key string) (string, error) { return key, nil },
				Config{}, WithBatch(func(ctx context.Context, keys []string) (map[string]string, error) { return nil, nil }))
			require.NoError(t, err)
			defer l.Close()
			g := &l.flight
			hA, sA := g.locate("a")
			hB, sB := g.locate("b")
			sA.mu.Lock()
			b := g.newBatchLocked(context.Background())
			a := g.addLocked(sA, hA, b, "a")
			sA.mu.Unlock()
			sB.mu.Lock()
			bc := g.addLocked(sB, hB, b, "b")
			sB.mu.Unlock()
			defer func() { // the batch never starts: end it as its goroutine would, before Close waits for it
				for i, c := range b.calls {
					c.err = context.Canceled
					g.finish(b.ctx, g.shard(b.keys[i]), b.keys[i], c)
				}
				g.wg.Done()
			}()

			if order == "close first" {
				bc.cancel(ErrClosed)
				a.cancel(errAbandoned)
			} else {
				a.cancel(errAbandoned)
				require.NoError(t, b.ctx.Err(), "one call still needs the batch")
				bc.cancel(ErrClosed)
			}
			require.ErrorIs(t, context.Cause(b.ctx), ErrClosed)
		})
	}
}
