package redistier

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/flightcache/flightcache"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// watcher collects what a Watch delivers.
type watcher[K comparable] struct {
	keys   chan K
	resets chan struct{}
	stop   func()
}

func watch[K comparable, V any](t *testing.T, tier *Tier[K, V]) *watcher[K] {
	t.Helper()
	w := &watcher[K]{keys: make(chan K, 100), resets: make(chan struct{}, 100)}
	w.stop = tier.Watch(func(k K) { w.keys <- k }, func() { w.resets <- struct{}{} })
	t.Cleanup(w.stop)
	return w
}

func (w *watcher[K]) next(t *testing.T) K {
	t.Helper()
	return recv(t, w.keys, 5*time.Second, "an invalidation")
}

func (w *watcher[K]) reset(t *testing.T) {
	t.Helper()
	recv(t, w.resets, 5*time.Second, "a reset")
}

// numSub returns the number of subscribers of channel.
func numSub(t *testing.T, client *redis.Client, channel string) int64 {
	t.Helper()
	n, err := client.PubSubNumSub(context.Background(), channel).Result()
	require.NoError(t, err)
	return n[channel]
}

func TestInvalidateReachesOtherInstances(t *testing.T) {
	client := newClient(t)
	ctx := context.Background()
	prefix := testPrefix(t, client)
	a := newTier[string](t, client, Options[string]{Prefix: prefix})
	b := newTier[string](t, client, Options[string]{Prefix: prefix, SchemaVersion: 3}) // invalidations cross versions
	other := newTier[string](t, client, Options[string]{Prefix: prefix + "x"})
	other2 := newTier[string](t, client, Options[string]{Prefix: prefix + "x"})
	wa, wb, wo := watch(t, a), watch(t, b), watch(t, other)
	assert.Equal(t, int64(2), numSub(t, client, prefix+invalidationSuffix), "Watch returns once subscribed")

	require.NoError(t, a.Set(ctx, "k:1", flightcache.RemoteRecord[string]{Value: "v", TTL: time.Minute}))
	require.NoError(t, a.Invalidate(ctx, "k:1"))
	_, ok, err := a.Get(ctx, "k:1")
	require.NoError(t, err)
	assert.False(t, ok, "the record is deleted")
	assert.Equal(t, "k:1", wb.next(t))

	require.NoError(t, b.Invalidate(ctx, "k2"))
	// One subscription delivers in order: had a received its own "k:1", it
	// would come first.
	assert.Equal(t, "k2", wa.next(t), "a skips its own invalidation")
	require.NoError(t, a.Invalidate(ctx, "k3"))
	assert.Equal(t, "k3", wb.next(t), "b skips its own invalidation")

	require.NoError(t, other2.Invalidate(ctx, "last"))
	assert.Equal(t, "last", wo.next(t), "another prefix sees none of the first three")

	// A long (hashed) key travels whole.
	long := strings.Repeat("long key ", 50)
	require.NoError(t, a.Invalidate(ctx, long))
	assert.Equal(t, long, wb.next(t))

	assert.Empty(t, wa.resets)
	assert.Empty(t, wb.resets)
}

func TestInvalidateOtherKeyTypes(t *testing.T) {
	client := newClient(t)
	ctx := context.Background()
	prefix := testPrefix(t, client)

	t.Run("integers", func(t *testing.T) {
		a, err := New[int64, string](client, Options[int64]{Prefix: prefix + ":int", Timeout: time.Second})
		require.NoError(t, err)
		defer a.Close()
		b, err := New[int64, string](client, Options[int64]{Prefix: prefix + ":int", Timeout: time.Second})
		require.NoError(t, err)
		defer b.Close()
		w := watch(t, b)
		require.NoError(t, a.Invalidate(ctx, -1<<63))
		assert.Equal(t, int64(-1<<63), w.next(t))
	})

	t.Run("structs with a KeyEncoder", func(t *testing.T) {
		type key struct {
			Org string
			ID  int
		}
		opts := Options[key]{Prefix: prefix + ":struct", Timeout: time.Second, KeyEncoder: func(k key) string {
			return k.Org + "/" + strings.Repeat("#", k.ID) // injective enough for the test
		}}
		a, err := New[key, string](client, opts)
		require.NoError(t, err)
		defer a.Close()
		b, err := New[key, string](client, opts)
		require.NoError(t, err)
		defer b.Close()
		w := watch(t, b)
		require.NoError(t, a.Invalidate(ctx, key{"acme", 3}))
		assert.Equal(t, key{"acme", 3}, w.next(t))
	})

	t.Run("a key the codec cannot carry", func(t *testing.T) {
		type opaque struct{ id int } // JSON sees no field
		a, err := New[opaque, string](client, Options[opaque]{Prefix: prefix + ":opaque", Timeout: time.Second,
			KeyEncoder: func(k opaque) string { return strings.Repeat("#", k.id) }})
		require.NoError(t, err)
		defer a.Close()
		require.NoError(t, a.Set(ctx, opaque{2}, flightcache.RemoteRecord[string]{Value: "v", TTL: time.Minute}))
		err = a.Invalidate(ctx, opaque{2})
		require.ErrorIs(t, err, ErrCodec)
		assert.Contains(t, err.Error(), "does not survive a round trip")
		_, ok, err := a.Get(ctx, opaque{2})
		require.NoError(t, err)
		assert.False(t, ok, "the record is deleted all the same")
	})
}

func TestWatchResetsOnUnreadableMessages(t *testing.T) {
	client := newClient(t)
	ctx := context.Background()
	prefix := testPrefix(t, client)
	a := newTier[string](t, client, Options[string]{Prefix: prefix})
	b := newTier[string](t, client, Options[string]{Prefix: prefix})
	w := watch(t, b)
	channel := prefix + invalidationSuffix

	good, err := a.invalidation("k", "k")
	require.NoError(t, err)
	for name, msg := range map[string]string{
		"garbage":          "hello",
		"empty":            "",
		"unknown version":  "\x02" + good[1:],
		"truncated":        good[:20],
		"length too large": good[:17] + "\xff\x01" + good[19:],
		"key not JSON":     good[:len(good)-len(`"k"`)] + `{`,
		"key mismatch":     good[:len(good)-len(`"k"`)] + `"j"`,
	} {
		require.NoError(t, client.Publish(ctx, channel, msg).Err(), name)
		w.reset(t)
	}
	require.NoError(t, client.Publish(ctx, channel, good).Err())
	assert.Equal(t, "k", w.next(t))
	assert.Empty(t, w.resets)
}

func TestWatchHandlerPanicsAreContained(t *testing.T) {
	client := newClient(t)
	ctx := context.Background()
	prefix := testPrefix(t, client)
	a := newTier[string](t, client, Options[string]{Prefix: prefix})
	b := newTier[string](t, client, Options[string]{Prefix: prefix})
	got := make(chan string, 10)
	stop := b.Watch(func(k string) {
		if k == "boom" {
			panic("handler boom")
		}
		got <- k
	}, nil)
	defer stop()
	require.NoError(t, a.Invalidate(ctx, "boom"))
	require.NoError(t, a.Invalidate(ctx, "next"))
	assert.Equal(t, "next", recv(t, got, 5*time.Second, "an invalidation"))
}

// pubSubClients returns the CLIENT LIST fields of the pub/sub connections
// of the clients named name.
func pubSubClients(t *testing.T, client *redis.Client, name string) []map[string]string {
	t.Helper()
	list, err := client.Do(context.Background(), "CLIENT", "LIST", "TYPE", "pubsub").Text()
	require.NoError(t, err)
	var found []map[string]string
	for line := range strings.SplitSeq(strings.TrimSpace(list), "\n") {
		fields := map[string]string{}
		for f := range strings.FieldsSeq(line) {
			k, v, _ := strings.Cut(f, "=")
			fields[k] = v
		}
		if fields["name"] == name {
			found = append(found, fields)
		}
	}
	return found
}

// killPubSub closes, server side, the pub/sub connections of the clients
// named name (CLIENT KILL TYPE pubsub, restricted to them), and returns how
// many it closed.
func killPubSub(t *testing.T, client *redis.Client, name string) int {
	t.Helper()
	conns := pubSubClients(t, client, name)
	for _, c := range conns {
		require.NoError(t, client.Do(context.Background(), "CLIENT", "KILL", "ID", c["id"]).Err())
	}
	return len(conns)
}

func TestWatchPingsAQuietSubscription(t *testing.T) {
	name := "fctest-" + rand.Text()[:10]
	client := newClient(t, func(o *redis.Options) { o.ClientName = name })
	ctx := context.Background()
	prefix := testPrefix(t, client)
	a := newTier[string](t, client, Options[string]{Prefix: prefix, PingInterval: 20 * time.Millisecond})
	b := newTier[string](t, client, Options[string]{Prefix: prefix})
	w := watch(t, a)
	waitUntil(t, 5*time.Second, "the quiet subscription is pinged", func() bool {
		conns := pubSubClients(t, client, name)
		return len(conns) == 1 && conns[0]["cmd"] == "ping"
	})
	require.NoError(t, b.Invalidate(ctx, "k"))
	assert.Equal(t, "k", w.next(t), "the pinged subscription still delivers")
	assert.Empty(t, w.resets, "answered pings break nothing")
	assert.Len(t, pubSubClients(t, client, name), 1)
}

func TestWatchResubscribesAfterBreak(t *testing.T) {
	name := "fctest-" + rand.Text()[:10]
	client := newClient(t, func(o *redis.Options) { o.ClientName = name })
	ctx := context.Background()
	prefix := testPrefix(t, client)
	a := newTier[string](t, client, Options[string]{Prefix: prefix})
	b := newTier[string](t, client, Options[string]{Prefix: prefix})
	w := watch(t, b)

	for range 3 {
		start := time.Now()
		require.Equal(t, 1, killPubSub(t, client, name), "b's Watch")
		w.reset(t)
		t.Logf("subscription re-established and onReset called %v after the kill", time.Since(start))
		require.NoError(t, a.Invalidate(ctx, "after"))
		assert.Equal(t, "after", w.next(t), "invalidations flow again")
	}
	assert.Empty(t, w.resets, "one reset per break")
}

func TestWatchStopAndClose(t *testing.T) {
	client := newClient(t)
	prefix := testPrefix(t, client)
	channel := prefix + invalidationSuffix
	a := newTier[string](t, client, Options[string]{Prefix: prefix})

	stop1 := a.Watch(func(string) {}, func() {})
	stop2 := a.Watch(func(string) {}, func() {})
	assert.Equal(t, int64(2), numSub(t, client, channel))
	stop1()
	stop1()
	require.Eventually(t, func() bool { return numSub(t, client, channel) == 1 }, 5*time.Second, 5*time.Millisecond)

	require.NoError(t, a.Close())
	require.Eventually(t, func() bool { return numSub(t, client, channel) == 0 }, 5*time.Second, 5*time.Millisecond)
	stop2() // after Close: returns at once
}

func TestWatchStartedWhileRedisIsDown(t *testing.T) {
	srv := startRedisServer(t)
	srv.kill()
	client := redis.NewClient(&redis.Options{Addr: srv.addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = client.Close() })
	const timeout = 100 * time.Millisecond
	a := newTier[string](t, client, Options[string]{Prefix: "down", Timeout: timeout})
	b := newTier[string](t, client, Options[string]{Prefix: "down"})

	start := time.Now()
	w := watch(t, a)
	took := time.Since(start)
	t.Logf("Watch returned after %v with Redis down", took)
	assert.GreaterOrEqual(t, took, timeout, "Watch waits for the subscription up to Timeout")
	assert.Less(t, took, timeout+faultSlack, "and no longer")

	srv.start()
	w.reset(t) // subscribed late: invalidations may have been missed
	require.NoError(t, b.Invalidate(context.Background(), "k"))
	assert.Equal(t, "k", w.next(t))
}
