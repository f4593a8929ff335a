package flightcache_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flightcache/flightcache"
)

// BenchmarkGetMany compares loading 100 keys with one GetMany (one batch
// query) against 100 Gets, one after the other and all at once, on a fake
// database whose every query, single or batch, costs one 50µs round trip.
// Flight mode, so every op loads all 100 keys.
func BenchmarkGetMany(b *testing.B) {
	const n, roundTrip = 100, 50 * time.Microsecond
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "user:" + strconv.Itoa(i)
	}
	var queries atomic.Int64
	query := func(ctx context.Context) {
		queries.Add(1)
		t := time.NewTimer(roundTrip)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	one := func(ctx context.Context, key string) (string, error) {
		query(ctx)
		return key, nil
	}
	many := func(ctx context.Context, keys []string) (map[string]string, error) {
		query(ctx)
		out := make(map[string]string, len(keys))
		for _, k := range keys {
			out[k] = k
		}
		return out, nil
	}
	l, err := flightcache.New(one, flightcache.Config{}, flightcache.WithBatch(many))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	report := func(b *testing.B) {
		b.ReportMetric(float64(queries.Load())/float64(b.N), "queries/op")
	}

	b.Run("GetMany", func(b *testing.B) {
		b.ReportAllocs()
		queries.Store(0)
		for b.Loop() {
			if err := l.GetMany(ctx, keys).Err(); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("Get-sequential", func(b *testing.B) {
		b.ReportAllocs()
		queries.Store(0)
		for b.Loop() {
			for _, k := range keys {
				if _, err := l.Get(ctx, k); err != nil {
					b.Fatal(err)
				}
			}
		}
		report(b)
	})
	b.Run("Get-concurrent", func(b *testing.B) {
		b.ReportAllocs()
		queries.Store(0)
		for b.Loop() {
			var wg sync.WaitGroup
			for _, k := range keys {
				wg.Go(func() {
					if _, err := l.Get(ctx, k); err != nil {
						b.Error(err)
					}
				})
			}
			wg.Wait()
		}
		report(b)
	})
}
