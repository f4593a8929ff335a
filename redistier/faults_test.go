package redistier

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flightcache/flightcache"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Fault tests: a redis-server of the test's own behind a proxy in the
// test, killed, paused and slowed down.
const (
	faultTimeout = 100 * time.Millisecond
	// faultSlack is what a call bounded by faultTimeout may take beyond it
	// before a test calls it unbounded: scheduling delays of up to 141ms
	// have been seen under -race on a loaded 2-CPU machine. A call that
	// ignored Timeout would wait for the paused server, or for a pooled
	// connection (PoolTimeout, 4s): far longer. Which calls were made is
	// counted, not timed.
	faultSlack    = time.Second
	faultCooldown = time.Minute // on the fake clock
)

// logSignal is a slog.Handler that sends on ch each message containing
// substr and logged for the subscription named by its "for" attribute.
type logSignal struct {
	substr, sub string
	ch          chan struct{}
}

func (h logSignal) Enabled(context.Context, slog.Level) bool { return true }
func (h logSignal) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, h.substr) {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "for" && a.Value.String() == h.sub {
			select {
			case h.ch <- struct{}{}:
			default:
			}
			return false
		}
		return true
	})
	return nil
}
func (h logSignal) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h logSignal) WithGroup(string) slog.Handler      { return h }

// faultRig is a Tier whose every call is timed.
type faultRig struct {
	t       *testing.T
	tier    *Tier[string, string]
	clock   *fakeClock
	sent    *commandCount // commands the tier's client sent
	slowest time.Duration // of the calls that reached Redis and failed
}

// failing runs a call that must reach Redis and fail within the timeout.
func (r *faultRig) failing(name string, call func() error) {
	r.t.Helper()
	start := time.Now()
	err := call()
	took := time.Since(start)
	require.Error(r.t, err, name)
	require.NotErrorIs(r.t, err, ErrCircuitOpen, "%s reaches Redis", name)
	assert.Less(r.t, took, faultTimeout+faultSlack, "%s returns within Timeout: %v", name, err)
	r.slowest = max(r.slowest, took)
}

// skipped checks that every call fails with ErrCircuitOpen without sending
// anything to Redis.
func (r *faultRig) skipped() {
	r.t.Helper()
	ctx := context.Background()
	sent := r.sent.n.Load()
	start := time.Now()
	_, _, err := r.tier.Get(ctx, "k")
	require.ErrorIs(r.t, err, ErrCircuitOpen)
	require.ErrorIs(r.t, r.tier.Set(ctx, "k", recOf("v")), ErrCircuitOpen)
	_, _, err = r.tier.Lease(ctx, "k", time.Second)
	require.ErrorIs(r.t, err, ErrCircuitOpen)
	_, _, err = r.tier.Await(ctx, "k")
	require.ErrorIs(r.t, err, ErrCircuitOpen)
	require.ErrorIs(r.t, r.tier.Invalidate(ctx, "k"), ErrCircuitOpen)
	took := time.Since(start)
	assert.Equal(r.t, sent, r.sent.n.Load(), "the open breaker sent none of the five calls to Redis")
	assert.True(r.t, r.tier.Stats().BreakerOpen)
	r.t.Logf("breaker open: 5 calls answered in %v", took)
}

// openBreaker makes BreakerFailures calls that fail, each within the
// timeout, and checks that the breaker is then open.
func (r *faultRig) openBreaker() {
	r.t.Helper()
	ctx := context.Background()
	assert.False(r.t, r.tier.Stats().BreakerOpen)
	start := time.Now()
	r.failing("Get", func() error { _, _, err := r.tier.Get(ctx, "k"); return err })
	r.failing("Set", func() error { return r.tier.Set(ctx, "k", recOf("v")) })
	r.failing("Lease", func() error { _, _, err := r.tier.Lease(ctx, "k", time.Second); return err })
	r.t.Logf("breaker opened after 3 failed calls in %v (slowest call so far %v)", time.Since(start), r.slowest)
	r.skipped()
}

// recover lets the cooldown pass and checks that a probe closes the
// breaker.
func (r *faultRig) recover() {
	r.t.Helper()
	start := time.Now()
	probes := closeBreaker(r.t, r.clock, func() bool {
		_, _, err := r.tier.Get(context.Background(), "probe")
		return err == nil && !r.tier.Stats().BreakerOpen
	})
	r.t.Logf("after the cooldown, probe %d closed the breaker (%v)", probes, time.Since(start))
}

func TestFaults(t *testing.T) {
	srv := startRedisServer(t)
	px := startProxy(t, srv.addr)
	client := redis.NewClient(&redis.Options{Addr: px.addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = client.Close() })
	broken := make(chan struct{}, 1)
	clock := newFakeClock()
	tier, err := New[string, string](client, Options[string]{
		Prefix: "faults", Timeout: faultTimeout, BreakerFailures: 3, BreakerCooldown: faultCooldown,
		PingInterval: 200 * time.Millisecond, Clock: clock,
		Logger: slog.New(logSignal{substr: "subscription broken", sub: "watch", ch: broken}),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tier.Close() })
	r := &faultRig{t: t, tier: tier, clock: clock, sent: countCommands(client)}
	ctx := context.Background()
	w := watch(t, tier)

	require.NoError(t, tier.Set(ctx, "k", hourRec("v1")))
	got, ok, err := tier.Get(ctx, "k")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "v1", got.Value)

	// A peer on the same server, straight (not through the proxy), whose
	// subscription is never pinged: a paused server does not break it.
	peerClient := redis.NewClient(&redis.Options{Addr: srv.addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = peerClient.Close() })
	peer, err := New[string, string](peerClient, Options[string]{Prefix: "faults", Timeout: time.Second, PingInterval: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { _ = peer.Close() })
	pw := watch(t, peer)

	// Each phase breaks Redis, opens the breaker (the skipped calls include
	// an Invalidate of k), brings Redis back and closes the breaker; the
	// invalidation that failed is then sent again and reaches the peer.
	t.Run("killed", func(t *testing.T) {
		r.t = t
		srv.kill()
		r.openBreaker()
		recv(t, broken, 5*time.Second, "the Watch to see its subscription break")

		srv.start() // empty: the crash lost every record
		w.reset(t)  // re-subscribed: invalidations may have been missed
		pw.reset(t)
		r.recover()
		assert.Equal(t, "k", pw.next(t), "the failed invalidation is sent again")
		_, ok, err := tier.Get(ctx, "k")
		require.NoError(t, err)
		assert.False(t, ok, "nothing from before the crash")
		drain(broken)
	})

	t.Run("paused", func(t *testing.T) {
		r.t = t
		require.NoError(t, tier.Set(ctx, "k", hourRec("v2")))
		srv.pause()
		r.openBreaker()
		// Unanswered pings break the subscription; wait for that before
		// the server comes back.
		recv(t, broken, 5*time.Second, "the Watch to see its subscription break")

		srv.resume()
		r.recover()
		assert.Equal(t, "k", pw.next(t), "the failed invalidation is sent again")
		_, ok, err := tier.Get(ctx, "k")
		require.NoError(t, err)
		assert.False(t, ok, "the record invalidated during the pause is gone")
		w.reset(t)
		assert.Empty(t, pw.resets, "the peer's subscription survived the pause")
		drain(broken)
	})

	t.Run("slow", func(t *testing.T) {
		r.t = t
		require.NoError(t, tier.Set(ctx, "k", hourRec("v3")))
		// Slow, within the timeout, on the connections already open (a new
		// one takes four round trips): calls succeed.
		px.setDelay(10 * time.Millisecond)
		start := time.Now()
		got, ok, err := tier.Get(ctx, "k")
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, "v3", got.Value)
		t.Logf("Get through a 10ms delay: %v", time.Since(start))

		// Slower than the timeout: calls fail within it.
		px.setDelay(faultTimeout + 50*time.Millisecond)
		r.openBreaker()

		px.setDelay(0)
		r.recover()
		assert.Equal(t, "k", pw.next(t), "the failed invalidation is sent again")
		_, ok, err = tier.Get(ctx, "k")
		require.NoError(t, err)
		assert.False(t, ok)
	})

	t.Logf("slowest failed call: %v (Timeout %v)", r.slowest, faultTimeout)
	assert.Zero(t, tier.Stats().Corrupt)
}

// hourRec is a record of v for an hour: the fault tests move their clock
// by minutes.
func hourRec(v string) flightcache.RemoteRecord[string] {
	return flightcache.RemoteRecord[string]{Value: v, TTL: time.Hour}
}

// drain empties ch.
func drain(ch chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// TestPoolExhausted holds the only connection of a client's pool: a Tier
// call waits for one no longer than Timeout.
func TestPoolExhausted(t *testing.T) {
	client := newClient(t, func(o *redis.Options) { o.PoolSize = 1 })
	ctx := context.Background()
	tier := newTier[string](t, client, Options[string]{Prefix: testPrefix(t, client), Timeout: faultTimeout})
	require.NoError(t, tier.Set(ctx, "k", recOf("v")))

	conn := client.Conn() // takes the pool's only connection
	require.NoError(t, conn.Ping(ctx).Err())
	start := time.Now()
	_, _, err := tier.Get(ctx, "k")
	took := time.Since(start)
	require.Error(t, err)
	assert.Less(t, took, faultTimeout+faultSlack)
	t.Logf("Get with the pool exhausted failed after %v: %v", took, err)
	require.NoError(t, conn.Close())

	got, ok, err := tier.Get(ctx, "k")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "v", got.Value)
}
