package flightcache_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightcache/flightcache"
)

func TestConfigTierFieldsFromJSON(t *testing.T) {
	var cfg flightcache.Config
	require.NoError(t, json.Unmarshal([]byte(`{
		"mode": "cache", "max_entries": 100, "ttl": "30s",
		"stale_ttl": "2m", "negative_ttl": "5s", "jitter": 0.1,
		"early_refresh": true, "early_refresh_beta": 1.5
	}`), &cfg))
	require.Equal(t, 2*time.Minute, cfg.StaleTTL)
	require.Equal(t, 5*time.Second, cfg.NegativeTTL)
	require.Equal(t, 0.1, cfg.Jitter)
	require.True(t, cfg.EarlyRefresh)
	require.Equal(t, 1.5, cfg.EarlyRefreshBeta)
	require.NoError(t, cfg.Validate())

	out, err := json.Marshal(cfg)
	require.NoError(t, err)
	require.Contains(t, string(out), `"stale_ttl":"2m0s"`)
	require.Contains(t, string(out), `"negative_ttl":"5s"`)
	var back flightcache.Config
	require.NoError(t, json.Unmarshal(out, &back))
	require.Equal(t, cfg, back)

	err = json.Unmarshal([]byte(`{"negative_ttl": "soon"}`), &cfg)
	require.ErrorContains(t, err, "negative_ttl")
	err = json.Unmarshal([]byte(`{"stale_ttl": 5}`), &cfg)
	require.ErrorContains(t, err, "stale_ttl: want a duration string")
}

func TestConfigTierFieldsValidated(t *testing.T) {
	for _, tc := range []struct {
		cfg  flightcache.Config
		want string
	}{
		{flightcache.Config{StaleTTL: -1}, "StaleTTL must not be negative"},
		{flightcache.Config{NegativeTTL: -time.Second}, "NegativeTTL must not be negative (got -1s)"},
		{flightcache.Config{Jitter: 1.5}, "Jitter must be a fraction in [0, 1] (got 1.5)"},
		{flightcache.Config{Jitter: -0.1}, "Jitter must be a fraction in [0, 1]"},
		{flightcache.Config{Jitter: math.NaN()}, "Jitter must be a fraction in [0, 1] (got NaN)"},
		{flightcache.Config{EarlyRefreshBeta: -1}, "EarlyRefreshBeta must be a finite number >= 0"},
		{flightcache.Config{EarlyRefreshBeta: math.Inf(1)}, "EarlyRefreshBeta must be a finite number >= 0"},
	} {
		err := tc.cfg.Validate()
		require.ErrorIs(t, err, flightcache.ErrInvalidConfig, tc.want)
		require.ErrorContains(t, err, "flightcache: invalid config: "+tc.want)
		_, err = flightcache.New(func(_ context.Context, k string) (int, error) { return 0, nil }, tc.cfg)
		require.True(t, errors.Is(err, flightcache.ErrInvalidConfig), tc.want)
	}
	require.NoError(t, flightcache.Config{Jitter: 1, EarlyRefreshBeta: 0}.Validate())
}
