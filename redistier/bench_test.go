package redistier

import (
	"context"
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
