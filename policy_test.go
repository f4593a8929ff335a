package flightcache_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightcache/flightcache"
)

// TestPolicy2QResistsScans: a hot set used twice survives a one-off scan
// of many cold keys under 2Q, and is flushed by it under LRU.
func TestPolicy2QResistsScans(t *testing.T) {
	for _, tc := range []struct {
		policy      flightcache.Policy
		hotRefetch  int64
		description string
	}{
		{flightcache.PolicyLRU, 3, "LRU: the scan flushed the hot set"},
		{flightcache.Policy2Q, 0, "2Q: the hot set survived the scan"},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			var fetches atomic.Int64
			l := mustNew(t, func(ctx context.Context, key string) (string, error) {
				fetches.Add(1)
				return key, nil
			}, flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, Policy: tc.policy})
			ctx := context.Background()
			hot := []string{"h1", "h2", "h3"}
			for range 2 {
				for _, k := range hot {
					_, err := l.Get(ctx, k)
					require.NoError(t, err)
				}
			}
			for i := range 20 {
				_, err := l.Get(ctx, fmt.Sprint("cold", i))
				require.NoError(t, err)
			}
			require.LessOrEqual(t, l.Len(), 10)
			before := fetches.Load()
			for _, k := range hot {
				v, err := l.Get(ctx, k)
				require.NoError(t, err)
				require.Equal(t, k, v)
			}
			require.Equal(t, tc.hotRefetch, fetches.Load()-before, tc.description)
			s := l.Stats()
			require.EqualValues(t, fetches.Load()-int64(l.Len()), s.Evictions, "every insertion beyond MaxEntries evicted one, and was counted")
			require.Equal(t, 10, l.Len())
			requireBalanced(t, s, 29)
		})
	}
}

func TestPolicyText(t *testing.T) {
	for _, p := range []flightcache.Policy{flightcache.PolicySieve, flightcache.PolicyLRU, flightcache.Policy2Q} {
		b, err := p.MarshalText()
		require.NoError(t, err)
		var back flightcache.Policy
		require.NoError(t, back.UnmarshalText(b))
		require.Equal(t, p, back)
	}
	var p flightcache.Policy
	require.NoError(t, p.UnmarshalText([]byte("2Q")))
	require.Equal(t, flightcache.Policy2Q, p)
	require.ErrorContains(t, p.UnmarshalText([]byte("lfu")), `unknown policy "lfu"`)
	_, err := flightcache.Policy(9).MarshalText()
	require.Error(t, err)

	var cfg flightcache.Config
	require.NoError(t, json.Unmarshal([]byte(`{"mode":"cache","max_entries":5,"policy":"2q"}`), &cfg))
	require.Equal(t, flightcache.Policy2Q, cfg.Policy)
	require.ErrorContains(t, flightcache.Config{Policy: 7}.Validate(), "Policy Policy(7) is unknown")
}
