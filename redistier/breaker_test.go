package redistier

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newTestBreaker(clock *fakeClock) *breaker {
	return &breaker{threshold: 3, cooldown: time.Second, now: clock.Now, logger: slog.New(slog.DiscardHandler)}
}

func TestBreakerStates(t *testing.T) {
	clock := newFakeClock()
	b := newTestBreaker(clock)
	call := func(o outcome) (probe, ok bool) {
		probe, ok = b.allow()
		if ok {
			b.done(probe, o)
		}
		return probe, ok
	}

	// Failures must be consecutive.
	call(outcomeFailure)
	call(outcomeFailure)
	call(outcomeSuccess)
	call(outcomeFailure)
	call(outcomeFailure)
	assert.False(t, b.isOpen())
	call(outcomeNeutral) // a caller's cancellation counts for nothing
	assert.False(t, b.isOpen())

	// The third consecutive failure opens it.
	call(outcomeFailure)
	assert.True(t, b.isOpen())
	_, ok := b.allow()
	assert.False(t, ok, "open: calls are skipped")
	clock.Add(time.Second - time.Nanosecond)
	_, ok = b.allow()
	assert.False(t, ok, "still in the cooldown")

	// After the cooldown one probe goes through, and only one.
	clock.Add(time.Nanosecond)
	probe, ok := b.allow()
	require.True(t, ok)
	require.True(t, probe)
	_, ok = b.allow()
	assert.False(t, ok, "a probe is in flight")

	// A failed probe opens it for another cooldown.
	b.done(true, outcomeFailure)
	_, ok = b.allow()
	assert.False(t, ok)
	clock.Add(time.Second)

	// A probe abandoned by its caller lets the next call probe.
	probe, ok = b.allow()
	require.True(t, ok && probe)
	b.done(true, outcomeNeutral)
	probe, ok = b.allow()
	require.True(t, ok && probe)

	// A successful probe closes it.
	b.done(true, outcomeSuccess)
	assert.False(t, b.isOpen())
	probe, ok = b.allow()
	assert.True(t, ok)
	assert.False(t, probe)
	b.done(false, outcomeSuccess)

	// And the count starts again from zero.
	call(outcomeFailure)
	call(outcomeFailure)
	assert.False(t, b.isOpen())
}

// TestTierBreaker runs a Tier against an address where nothing listens:
// every call fails at once ("connection refused").
func TestTierBreaker(t *testing.T) {
	clock := newFakeClock()
	client := deadClient(t)
	sent := countCommands(client)
	tier := newTier[string](t, client, Options[string]{
		Prefix: "p", BreakerFailures: 3, BreakerCooldown: time.Minute, Clock: clock,
	})
	ctx := context.Background()
	for i := range 3 {
		_, _, err := tier.Get(ctx, "k")
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrCircuitOpen, "call %d reaches Redis", i)
		assert.Contains(t, err.Error(), "redistier: get: ")
	}
	assert.True(t, tier.Stats().BreakerOpen)

	require.EqualValues(t, 3, sent.n.Load(), "the three failed calls reached the client")
	_, _, err := tier.Get(ctx, "k")
	require.ErrorIs(t, err, ErrCircuitOpen)
	assert.EqualError(t, err, "redistier: circuit open (get skipped)")
	_, _, err = tier.Lease(ctx, "k", time.Second)
	require.ErrorIs(t, err, ErrCircuitOpen)
	_, _, err = tier.Await(ctx, "k")
	require.ErrorIs(t, err, ErrCircuitOpen)
	require.ErrorIs(t, tier.Invalidate(ctx, "k"), ErrCircuitOpen)
	require.ErrorIs(t, tier.Set(ctx, "k", recOf("v")), ErrCircuitOpen)
	assert.Equal(t, uint64(1), tier.Stats().WritesDropped)
	assert.EqualValues(t, 3, sent.n.Load(), "an open breaker sends nothing to Redis")

	clock.Add(time.Minute)
	_, _, err = tier.Get(ctx, "k")
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrCircuitOpen, "the probe reaches Redis")
	assert.EqualValues(t, 4, sent.n.Load(), "the probe was sent")
	_, _, err = tier.Get(ctx, "k")
	require.ErrorIs(t, err, ErrCircuitOpen, "and failed: open again")
}

func TestCallerCancellationDoesNotTripTheBreaker(t *testing.T) {
	tier := newTier[string](t, deadClient(t), Options[string]{Prefix: "p", BreakerFailures: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 5 {
		_, _, err := tier.Get(ctx, "k")
		require.ErrorIs(t, err, context.Canceled)
	}
	assert.False(t, tier.Stats().BreakerOpen)
}
