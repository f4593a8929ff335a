package redistier

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flightcache/flightcache"
	"github.com/stretchr/testify/require"
)

// BenchmarkGetHit compares a Tier.Get hit (breaker, deadline, envelope,
// JSON decoding of a small struct) with a bare go-redis GET of the same
// bytes, in the same run against the same Redis.
func BenchmarkGetHit(b *testing.B) {
	client := newClient(b)
	ctx := context.Background()
	tier := newTier[user](b, client, Options[string]{Prefix: testPrefix(b, client), Timeout: time.Second})
	rec := flightcache.RemoteRecord[user]{Value: user{ID: 42, Name: "Ada Lovelace"}, TTL: time.Hour}
	require.NoError(b, tier.Set(ctx, "user:42", rec))
	rk := tier.ks.key(kindRecord, "user:42")
	raw, err := client.Get(ctx, rk).Bytes()
	require.NoError(b, err)
	b.Logf("record: %d bytes", len(raw))

	b.Run("tier", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok, err := tier.Get(ctx, "user:42"); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("bare-GET", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if v, err := client.Get(ctx, rk).Bytes(); err != nil || len(v) != len(raw) {
				b.Fatal(err)
			}
		}
	})
	// Both in turn, each timed: on a busy machine both see the same load.
	b.Run("interleaved", func(b *testing.B) {
		var tierNs, bareNs time.Duration
		for b.Loop() {
			start := time.Now()
			if _, ok, err := tier.Get(ctx, "user:42"); err != nil || !ok {
				b.Fatal(ok, err)
			}
			mid := time.Now()
			if v, err := client.Get(ctx, rk).Bytes(); err != nil || len(v) != len(raw) {
				b.Fatal(err)
			}
			tierNs += mid.Sub(start)
			bareNs += time.Since(mid)
		}
		b.ReportMetric(float64(tierNs.Nanoseconds())/float64(b.N), "tier-ns/op")
		b.ReportMetric(float64(bareNs.Nanoseconds())/float64(b.N), "bare-ns/op")
		b.ReportMetric(0, "ns/op")
	})
	b.Run("tier-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, ok, err := tier.Get(ctx, "user:42"); err != nil || !ok {
					b.Error(ok, err)
					return
				}
			}
		})
	})
	b.Run("bare-GET-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if v, err := client.Get(ctx, rk).Bytes(); err != nil || len(v) != len(raw) {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkDecode is the CPU part of a hit, without Redis.
func BenchmarkDecode(b *testing.B) {
	tier := newTier[user](b, deadClient(b), Options[string]{Prefix: "p"})
	payload, err := tier.marshal(user{ID: 42, Name: "Ada Lovelace"})
	require.NoError(b, err)
	raw := appendEnvelope(nil, envelope{expiryMs: tier.nowMs() + 3_600_000, ttlMs: 3_600_000, payload: payload})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := tier.decode(raw); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkKey is the cost of building a Redis key.
func BenchmarkKey(b *testing.B) {
	ks := newKeyspace("users", 1)
	b.ReportAllocs()
	for b.Loop() {
		_ = ks.key(kindRecord, "user:42")
	}
}

// BenchmarkFleetBurst: 4 Loaders (simulated replicas, each with its own
// client and local tier) share one Redis; each op is a burst of 64 Gets of
// a cold key spread across them, whose fetch takes 1ms. It reports the
// fetches per burst (the target is exactly 1 for the whole fleet) and the
// lease waits per burst.
func BenchmarkFleetBurst(b *testing.B) {
	prefix := testPrefix(b, newClient(b))
	var fetches atomic.Int64
	cfg := flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 1 << 20, TTL: time.Hour, RemoteLeaseTimeout: 10 * time.Second}
	fleet := newFleet(b, 4, prefix, cfg, Options[string]{Timeout: 5 * time.Second}, func(ctx context.Context, key string) (string, error) {
		fetches.Add(1)
		t := time.NewTimer(time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return "v:" + key, nil
	})
	ctx := context.Background()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		key := fmt.Sprint("burst-", n)
		n++
		var wg sync.WaitGroup
		for i := range 64 {
			wg.Go(func() {
				if v, err := fleet[i%4].Get(ctx, key); err != nil || v != "v:"+key {
					b.Errorf("Get = %q, %v", v, err)
				}
			})
		}
		wg.Wait()
	}
	var waits uint64
	for _, l := range fleet {
		waits += l.Stats().LeaseWaits
	}
	b.ReportMetric(float64(fetches.Load())/float64(n), "fetches/burst")
	b.ReportMetric(float64(waits)/float64(n), "lease-waits/burst")
}

// BenchmarkAwaitWakeUp measures how long after the holder's release (a
// pub/sub notification) or, with nothing released, after its Set (found by
// polling every 40ms) a waiting Await returns, on the test Redis. An op is
// one lease, Await, Set and wake-up; the figures are wake-p50-µs and
// wake-p90-µs. Which mechanism wakes an Await is tested in TestAwait, with
// the other one ruled out (PollInterval an hour, or no release).
func BenchmarkAwaitWakeUp(b *testing.B) {
	client := newClient(b)
	ctx := context.Background()
	prefix := testPrefix(b, client)
	const poll = 40 * time.Millisecond
	holder := newTier[string](b, client, Options[string]{Prefix: prefix})
	waiter := newTier[string](b, client, Options[string]{Prefix: prefix, PollInterval: poll})
	keys := 0
	for _, release := range []bool{true, false} {
		name := "release"
		if !release {
			name = "set-only-poll-40ms"
		}
		b.Run(name, func(b *testing.B) {
			var d durations
			for b.Loop() {
				keys++
				key := fmt.Sprint("k", keys)
				rel, ok, err := holder.Lease(ctx, key, time.Minute)
				require.NoError(b, err)
				require.True(b, ok, "lease")
				done := startAwait(b, ctx, waiter, key)
				require.NoError(b, holder.Set(ctx, key, recOf("v")))
				start := time.Now()
				if release {
					rel()
				}
				r := recv(b, done, 5*time.Second, "Await")
				require.NoError(b, r.err)
				require.True(b, r.ok, "Await found the record")
				d = append(d, r.at.Sub(start))
				rel()
			}
			b.ReportMetric(float64(d.percentile(.5).Microseconds()), "wake-p50-µs")
			b.ReportMetric(float64(d.percentile(.9).Microseconds()), "wake-p90-µs")
		})
	}
}
