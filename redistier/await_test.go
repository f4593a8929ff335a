package redistier

import (
	"context"
	"testing"
	"time"

	"github.com/flightcache/flightcache"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// awaitResult is what an Await returned, and when.
type awaitResult struct {
	rec flightcache.RemoteRecord[string]
	ok  bool
	err error
	at  time.Time
}

// startAwait runs tier.Await(ctx, key) on a goroutine and returns once it
// is waiting (its first read found the lease held and no record), with the
// channel that receives its result.
func startAwait(t testing.TB, ctx context.Context, tier *Tier[string, string], key string) <-chan awaitResult {
	t.Helper()
	done, _ := startAwaitCounting(t, ctx, tier, key)
	return done
}

// startAwaitCounting is startAwait, also returning a channel that receives
// a value each time the Await waits again after being woken.
func startAwaitCounting(t testing.TB, ctx context.Context, tier *Tier[string, string], key string) (<-chan awaitResult, <-chan struct{}) {
	t.Helper()
	waiting := make(chan struct{}, 10)
	tier.testHookAwait = func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}
	done := make(chan awaitResult, 1)
	go func() {
		rec, ok, err := tier.Await(ctx, key)
		done <- awaitResult{rec, ok, err, time.Now()}
	}()
	select {
	case <-waiting:
	case r := <-done:
		t.Fatalf("Await returned before waiting: %+v", r)
	}
	return done, waiting
}

func TestAwait(t *testing.T) {
	client := newClient(t)
	ctx := context.Background()
	prefix := testPrefix(t, client)
	holder := newTier[string](t, client, Options[string]{Prefix: prefix})
	waiter := newTier[string](t, client, Options[string]{Prefix: prefix, PollInterval: time.Hour})
	value := func(v string) flightcache.RemoteRecord[string] {
		return flightcache.RemoteRecord[string]{Value: v, TTL: time.Minute}
	}
	lease := func(t *testing.T, key string, ttl time.Duration) func() {
		t.Helper()
		release, ok, err := holder.Lease(ctx, key, ttl)
		require.NoError(t, err)
		require.True(t, ok)
		return release
	}

	t.Run("no lease held: returns at once", func(t *testing.T) {
		rec, ok, err := waiter.Await(ctx, "free")
		require.NoError(t, err)
		assert.False(t, ok)
		assert.Zero(t, rec)
	})

	t.Run("record stored: returns it at once", func(t *testing.T) {
		release := lease(t, "stored", time.Minute)
		defer release()
		require.NoError(t, holder.Set(ctx, "stored", value("v")))
		rec, ok, err := waiter.Await(ctx, "stored")
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, "v", rec.Value)
	})

	// With PollInterval an hour, only the notification can wake these.
	t.Run("woken by the release that follows a Set", func(t *testing.T) {
		release := lease(t, "set-release", time.Minute)
		done := startAwait(t, ctx, waiter, "set-release")
		require.NoError(t, holder.Set(ctx, "set-release", value("fetched")))
		release()
		r := recv(t, done, 5*time.Second, "Await")
		require.NoError(t, r.err)
		require.True(t, r.ok)
		assert.Equal(t, "fetched", r.rec.Value)
		assert.InDelta(t, time.Minute, r.rec.TTL, float64(time.Second))
	})

	t.Run("woken by a release without a record", func(t *testing.T) {
		release := lease(t, "gave-up", time.Minute)
		done := startAwait(t, ctx, waiter, "gave-up")
		release()
		r := recv(t, done, 5*time.Second, "Await")
		require.NoError(t, r.err)
		assert.False(t, r.ok)
	})

	t.Run("woken by a negative record", func(t *testing.T) {
		release := lease(t, "negative", time.Minute)
		done := startAwait(t, ctx, waiter, "negative")
		require.NoError(t, holder.Set(ctx, "negative", flightcache.RemoteRecord[string]{NotFound: true, TTL: time.Minute}))
		release()
		r := recv(t, done, 5*time.Second, "Await")
		require.NoError(t, r.err)
		require.True(t, r.ok)
		assert.True(t, r.rec.NotFound)
	})

	t.Run("ctx ends: ok false, nil error", func(t *testing.T) {
		release := lease(t, "timeout", time.Minute)
		defer release()
		cctx, cancel := context.WithCancel(ctx)
		done := startAwait(t, cctx, waiter, "timeout")
		cancel()
		r := recv(t, done, 5*time.Second, "Await")
		require.NoError(t, r.err)
		assert.False(t, r.ok)
	})

	t.Run("Close ends a pending Await", func(t *testing.T) {
		release := lease(t, "closing", time.Minute)
		defer release()
		w := newTier[string](t, client, Options[string]{Prefix: prefix, PollInterval: time.Hour})
		done := startAwait(t, ctx, w, "closing")
		require.NoError(t, w.Close())
		r := recv(t, done, 5*time.Second, "Await")
		require.ErrorIs(t, r.err, ErrClosed)
	})

	// Without a release, polling finds the record or the expired lease.
	poller := newTier[string](t, client, Options[string]{Prefix: prefix, PollInterval: 10 * time.Millisecond})

	t.Run("woken by a Set alone (polling)", func(t *testing.T) {
		release := lease(t, "set-only", time.Minute)
		defer release()
		done := startAwait(t, ctx, poller, "set-only")
		require.NoError(t, holder.Set(ctx, "set-only", value("polled")))
		r := recv(t, done, 5*time.Second, "Await")
		require.NoError(t, r.err)
		require.True(t, r.ok)
		assert.Equal(t, "polled", r.rec.Value)
	})

	t.Run("lease expired without a record (polling)", func(t *testing.T) {
		lease(t, "expires", time.Minute) // never released
		done := startAwait(t, ctx, poller, "expires")
		// The lease expires (Redis's clock) once the Await is waiting.
		leaseKey := holder.ks.key(kindLease, "expires")
		require.True(t, client.PExpire(ctx, leaseKey, time.Millisecond).Val(), "the lease is %s", leaseKey)
		r := recv(t, done, 5*time.Second, "Await")
		require.NoError(t, r.err)
		assert.False(t, r.ok)
	})

	t.Run("another prefix's release does not wake it", func(t *testing.T) {
		other := newTier[string](t, client, Options[string]{Prefix: prefix + ":other"})
		release := lease(t, "shared-name", time.Minute)
		defer release()
		otherRelease, ok, err := other.Lease(ctx, "shared-name", time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		done, rewaits := startAwaitCounting(t, ctx, waiter, "shared-name")
		otherRelease()
		// A release of this prefix, of another key, wakes nothing either;
		// then the key's own release ends the wait. Notifications arrive in
		// order on one subscription: had either of the first two woken the
		// Await, it would have waited again before the third.
		r2, ok, err := holder.Lease(ctx, "unrelated", time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		r2()
		release()
		r := recv(t, done, 5*time.Second, "Await")
		require.NoError(t, r.err)
		assert.False(t, r.ok)
		assert.Empty(t, rewaits, "woken only by its own key's release")
	})
}
