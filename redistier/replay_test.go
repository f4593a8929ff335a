package redistier

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFailedInvalidationsAreBounded(t *testing.T) {
	tier := newTier[string](t, deadClient(t), Options[string]{Prefix: "p", BreakerFailures: 1})
	ctx := context.Background()
	for range 3 { // the same key is remembered once
		require.Error(t, tier.Invalidate(ctx, "same"))
	}
	assert.Len(t, tier.pending, 1)
	for i := range MaxPendingInvalidations + 10 {
		require.ErrorIs(t, tier.Invalidate(ctx, strconv.Itoa(i)), ErrCircuitOpen)
	}
	assert.Len(t, tier.pending, MaxPendingInvalidations)
	assert.True(t, tier.hasPending.Load())
	require.NoError(t, tier.Close()) // drops them; starts no replay
	assert.False(t, tier.replaying.Load())
}

func TestFailedInvalidationIsSentAgain(t *testing.T) {
	client := newClient(t)
	ctx := context.Background()
	prefix := testPrefix(t, client)
	a := newTier[string](t, client, Options[string]{Prefix: prefix})
	b := newTier[string](t, client, Options[string]{Prefix: prefix})
	w := watch(t, b)
	require.NoError(t, a.Set(ctx, "k", recOf("stale")))

	// As if Redis had failed: the invalidation is remembered, not sent.
	enc, err := a.encodeKey("k")
	require.NoError(t, err)
	msg, err := a.invalidation("k", enc)
	require.NoError(t, err)
	a.remember(a.ks.key(kindRecord, enc), msg)

	_, ok, err := a.Get(ctx, "other") // Redis answers: the replay starts
	require.NoError(t, err)
	require.False(t, ok)
	assert.Equal(t, "k", w.next(t))
	_, ok, err = b.Get(ctx, "k")
	require.NoError(t, err)
	assert.False(t, ok, "deleted before the message was sent")
	waitUntil(t, 5*time.Second, "the replay ends", func() bool { return !a.replaying.Load() })
	assert.False(t, a.hasPending.Load())
	assert.Empty(t, a.pending)
}
