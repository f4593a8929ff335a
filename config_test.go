package flightcache_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flightcache/flightcache"
)

// configTestFetch is a fetch function that returns the key's length.
func configTestFetch(_ context.Context, key string) (int, error) {
	return len(key), nil
}

// configTestClock is a comparable Clock, so that Configs holding it can be
// compared with require.Equal (a ClockFunc cannot: funcs never compare equal).
type configTestClock struct{ t time.Time }

func (c *configTestClock) Now() time.Time { return c.t }

func TestConfigNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		nilFunc bool
		cfg     flightcache.Config
		want    []string // every string must appear in the error message
	}{
		{
			name:    "nil fetch",
			nilFunc: true,
			want:    []string{"fetch function is nil"},
		},
		{
			name: "unknown mode",
			cfg:  flightcache.Config{Mode: flightcache.Mode(7)},
			want: []string{"Mode Mode(7) is unknown"},
		},
		{
			name: "cache mode with MaxEntries 0",
			cfg:  flightcache.Config{Mode: flightcache.ModeCache},
			want: []string{"MaxEntries must be > 0 in cache mode (got 0)"},
		},
		{
			name: "cache mode with MaxEntries -1",
			cfg:  flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: -1},
			want: []string{"MaxEntries must be > 0 in cache mode (got -1)"},
		},
		{
			name: "flight mode with negative MaxEntries",
			cfg:  flightcache.Config{Mode: flightcache.ModeFlight, MaxEntries: -1},
			want: []string{"MaxEntries must not be negative (got -1)"},
		},
		{
			name: "DisableLoadTiming with EarlyRefresh",
			cfg:  flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, EarlyRefresh: true, DisableLoadTiming: true},
			want: []string{"DisableLoadTiming cannot be combined with EarlyRefresh"},
		},
		{
			name: "negative TTL",
			cfg:  flightcache.Config{TTL: -time.Second},
			want: []string{"TTL must not be negative (got -1s)"},
		},
		{
			name: "negative TTL in cache mode",
			cfg:  flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 10, TTL: -time.Nanosecond},
			want: []string{"TTL must not be negative"},
		},
		{
			name: "negative FetchTimeout",
			cfg:  flightcache.Config{FetchTimeout: -time.Millisecond},
			want: []string{"FetchTimeout must not be negative (got -1ms)"},
		},
		{
			name: "negative MaxConcurrentFetches",
			cfg:  flightcache.Config{MaxConcurrentFetches: -3},
			want: []string{"MaxConcurrentFetches must not be negative (got -3)"},
		},
		{
			name:    "several problems at once",
			nilFunc: true,
			cfg: flightcache.Config{
				Mode:                 flightcache.ModeCache,
				MaxEntries:           0,
				TTL:                  -time.Second,
				FetchTimeout:         -time.Second,
				MaxConcurrentFetches: -1,
			},
			want: []string{
				"fetch function is nil",
				"MaxEntries must be > 0 in cache mode",
				"TTL must not be negative",
				"FetchTimeout must not be negative",
				"MaxConcurrentFetches must not be negative",
			},
		},
		{
			name: "unknown mode and negative fields",
			cfg: flightcache.Config{
				Mode:         flightcache.Mode(7),
				MaxEntries:   -2,
				FetchTimeout: -time.Second,
			},
			want: []string{
				"Mode Mode(7) is unknown",
				"MaxEntries must not be negative (got -2)",
				"FetchTimeout must not be negative",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fetch := flightcache.FetchFunc[string, int](configTestFetch)
			if tt.nilFunc {
				fetch = nil
			}
			l, err := flightcache.New(fetch, tt.cfg)
			require.Error(t, err)
			assert.Nil(t, l, "New must not return a Loader with an error")
			assert.ErrorIs(t, err, flightcache.ErrInvalidConfig)
			msg := err.Error()
			assert.True(t, strings.HasPrefix(msg, "flightcache:"), "message %q should start with %q", msg, "flightcache:")
			for _, w := range tt.want {
				assert.Contains(t, msg, w)
			}
			// Each problem is on a line of its own, each line a full message.
			lines := strings.Split(msg, "\n")
			assert.Len(t, lines, len(tt.want), "one line per problem in %q", msg)
			for _, line := range lines {
				assert.True(t, strings.HasPrefix(line, "flightcache: invalid config: "), "line %q", line)
			}

			if !tt.nilFunc {
				// Validate reports the same problems as New.
				verr := tt.cfg.Validate()
				require.Error(t, verr)
				assert.ErrorIs(t, verr, flightcache.ErrInvalidConfig)
				assert.Equal(t, msg, verr.Error())
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	valid := []flightcache.Config{
		{},
		{Mode: flightcache.ModeFlight, MaxEntries: 5}, // MaxEntries ignored in flight mode
		{Mode: flightcache.ModeCache, MaxEntries: 1},
		{
			Name: "users", Mode: flightcache.ModeCache, MaxEntries: 10000,
			TTL: 30 * time.Second, FetchTimeout: time.Minute, MaxConcurrentFetches: 8,
		},
	}
	for _, cfg := range valid {
		assert.NoError(t, cfg.Validate(), "%+v", cfg)
	}

	err := flightcache.Config{TTL: -1}.Validate()
	require.Error(t, err)
	assert.ErrorIs(t, err, flightcache.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "TTL")

	// Validate has a value receiver: it can be called on a pointer too.
	cfg := &flightcache.Config{Mode: flightcache.ModeCache}
	assert.ErrorIs(t, cfg.Validate(), flightcache.ErrInvalidConfig)
}

func TestConfigZeroIsFlightMode(t *testing.T) {
	var fetches atomic.Int64
	l, err := flightcache.New(func(_ context.Context, key string) (int, error) {
		fetches.Add(1)
		return len(key), nil
	}, flightcache.Config{})
	require.NoError(t, err)
	require.NotNil(t, l)
	t.Cleanup(func() { _ = l.Close() })

	assert.Equal(t, "default", l.Name())
	for range 2 {
		v, err := l.Get(t.Context(), "abc")
		require.NoError(t, err)
		assert.Equal(t, 3, v)
	}
	assert.Equal(t, int64(2), fetches.Load(), "flight mode keeps nothing: each sequential Get fetches")
	assert.Equal(t, 0, l.Len())

	s := l.Stats()
	assert.Equal(t, uint64(0), s.Hits)
	assert.Equal(t, uint64(2), s.Misses)
	assert.Equal(t, uint64(2), s.Loads)
	assert.Equal(t, 0, s.Entries)
}

func TestConfigNewDoesNotModifyConfig(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	clock := &configTestClock{t: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
	cfgs := []flightcache.Config{
		{}, // Name "" must stay "", though the Loader's Name is "default"
		{Mode: flightcache.ModeCache, MaxEntries: 3, TTL: time.Minute, Clock: clock, Logger: logger},
		{
			Name: "users", Mode: flightcache.ModeCache, MaxEntries: 10,
			FetchTimeout: time.Second, MaxConcurrentFetches: 2,
		},
		{MaxEntries: 0, FetchTimeout: 5 * time.Second},
	}
	for _, cfg := range cfgs {
		before := cfg
		l, err := flightcache.New(configTestFetch, cfg)
		require.NoError(t, err)
		_, err = l.Get(t.Context(), "k")
		require.NoError(t, err)
		require.NoError(t, l.Close())
		assert.Equal(t, before, cfg)
		if before.Name == "" {
			assert.Equal(t, "", cfg.Name)
			assert.Equal(t, "default", l.Name())
		} else {
			assert.Equal(t, before.Name, l.Name())
		}
	}

	// Changing the Config after New does not affect the Loader.
	cfg := flightcache.Config{Name: "orig", Mode: flightcache.ModeCache, MaxEntries: 1}
	l, err := flightcache.New(configTestFetch, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	cfg.Name = "changed"
	cfg.MaxEntries = 100
	for _, k := range []string{"a", "b", "c"} {
		_, err := l.Get(t.Context(), k)
		require.NoError(t, err)
	}
	assert.Equal(t, "orig", l.Name())
	assert.Equal(t, 1, l.Len(), "MaxEntries was read at New")
}

func TestModeString(t *testing.T) {
	assert.Equal(t, "flight", flightcache.ModeFlight.String())
	assert.Equal(t, "cache", flightcache.ModeCache.String())
	assert.Equal(t, "Mode(7)", flightcache.Mode(7).String())
	assert.Equal(t, "Mode(255)", flightcache.Mode(255).String())
	var zero flightcache.Mode
	assert.Equal(t, flightcache.ModeFlight, zero)
}

func TestModeTextRoundTrip(t *testing.T) {
	for _, m := range []flightcache.Mode{flightcache.ModeFlight, flightcache.ModeCache} {
		text, err := m.MarshalText()
		require.NoError(t, err)
		assert.Equal(t, m.String(), string(text))

		got := flightcache.Mode(42)
		require.NoError(t, got.UnmarshalText(text))
		assert.Equal(t, m, got)
	}
}

func TestModeUnmarshalText(t *testing.T) {
	tests := []struct {
		text string
		want flightcache.Mode
	}{
		{"flight", flightcache.ModeFlight},
		{"cache", flightcache.ModeCache},
		{"CACHE", flightcache.ModeCache},
		{"Cache", flightcache.ModeCache},
		{" flight ", flightcache.ModeFlight},
		{"\tcache\n", flightcache.ModeCache},
		{"", flightcache.ModeFlight},
	}
	for _, tt := range tests {
		m := flightcache.Mode(42) // overwritten on success
		require.NoError(t, m.UnmarshalText([]byte(tt.text)), "%q", tt.text)
		assert.Equal(t, tt.want, m, "%q", tt.text)
	}

	for _, bad := range []string{"lru", "flights", "ModeCache", "1"} {
		m := flightcache.ModeCache
		err := m.UnmarshalText([]byte(bad))
		require.Error(t, err, "%q", bad)
		assert.Contains(t, err.Error(), `unknown mode "`+bad+`"`)
		assert.True(t, strings.HasPrefix(err.Error(), "flightcache:"), err.Error())
		assert.Equal(t, flightcache.ModeCache, m, "a failed UnmarshalText leaves the Mode alone")
	}
}

func TestModeMarshalTextUnknown(t *testing.T) {
	text, err := flightcache.Mode(9).MarshalText()
	require.Error(t, err)
	assert.Nil(t, text)
	assert.Contains(t, err.Error(), "Mode(9)")
	assert.True(t, strings.HasPrefix(err.Error(), "flightcache:"), err.Error())
}

func TestConfigJSONDocExample(t *testing.T) {
	var cfg flightcache.Config
	require.NoError(t, json.Unmarshal([]byte(`{"mode": "cache", "max_entries": 10000, "ttl": "30s"}`), &cfg))
	assert.Equal(t, flightcache.Config{
		Mode:       flightcache.ModeCache,
		MaxEntries: 10000,
		TTL:        30 * time.Second,
	}, cfg)

	l, err := flightcache.New(configTestFetch, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })

	// It behaves as a cache: the second Get is a hit.
	for range 2 {
		v, err := l.Get(t.Context(), "abcd")
		require.NoError(t, err)
		assert.Equal(t, 4, v)
	}
	assert.Equal(t, uint64(1), l.Stats().Hits)
	assert.Equal(t, 1, l.Len())
}

func TestConfigJSONAllFields(t *testing.T) {
	var cfg flightcache.Config
	require.NoError(t, json.Unmarshal([]byte(`{
		"name": "users",
		"mode": "CACHE",
		"max_entries": 500,
		"ttl": "2h45m",
		"fetch_timeout": "1m30s",
		"max_concurrent_fetches": 16
	}`), &cfg))
	assert.Equal(t, flightcache.Config{
		Name:                 "users",
		Mode:                 flightcache.ModeCache,
		MaxEntries:           500,
		TTL:                  2*time.Hour + 45*time.Minute,
		FetchTimeout:         90 * time.Second,
		MaxConcurrentFetches: 16,
	}, cfg)
	require.NoError(t, cfg.Validate())
}

func TestConfigJSONErrors(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []string
	}{
		{"unknown mode", `{"mode": "lru"}`, []string{`unknown mode "lru"`, `"flight"`, `"cache"`}},
		{"mode as a number", `{"mode": 1}`, []string{"mode"}},
		{"bad ttl", `{"ttl": "30 parsecs"}`, []string{"ttl", "30 parsecs"}},
		{"bad fetch_timeout", `{"fetch_timeout": "soon"}`, []string{"fetch_timeout", "soon"}},
		{"bare number ttl", `{"ttl": 30}`, []string{"ttl", "duration string", "30"}},
		{"bare number fetch_timeout", `{"fetch_timeout": 1500}`, []string{"fetch_timeout", "duration string"}},
		{"ttl as a bool", `{"ttl": true}`, []string{"ttl", "duration string"}},
		{"empty ttl string", `{"ttl": ""}`, []string{"ttl"}},
		{"max_entries as a string", `{"max_entries": "10"}`, []string{"flightcache: max_entries", "string"}},
		{"not an object", `[1, 2]`, []string{"array"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg flightcache.Config
			err := json.Unmarshal([]byte(tt.json), &cfg)
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestConfigJSONZeroDuration(t *testing.T) {
	cfg := flightcache.Config{TTL: time.Minute, FetchTimeout: time.Second}
	require.NoError(t, json.Unmarshal([]byte(`{"ttl": 0, "fetch_timeout": 0}`), &cfg))
	assert.Zero(t, cfg.TTL)
	assert.Zero(t, cfg.FetchTimeout)

	cfg = flightcache.Config{TTL: time.Minute}
	require.NoError(t, json.Unmarshal([]byte(`{"ttl": "0s"}`), &cfg))
	assert.Zero(t, cfg.TTL)

	cfg = flightcache.Config{TTL: time.Minute}
	require.NoError(t, json.Unmarshal([]byte(`{"ttl": "0"}`), &cfg))
	assert.Zero(t, cfg.TTL)

	for _, zero := range []string{"-0", "0e0", "0.00"} {
		cfg = flightcache.Config{TTL: time.Minute}
		require.NoError(t, json.Unmarshal([]byte(`{"ttl": `+zero+`}`), &cfg), zero)
		assert.Zero(t, cfg.TTL, zero)
	}
}

func TestConfigJSONNullKeepsValue(t *testing.T) {
	cfg := flightcache.Config{TTL: time.Minute, FetchTimeout: time.Second, MaxEntries: 5}
	require.NoError(t, json.Unmarshal([]byte(`{"ttl": null, "fetch_timeout": null, "max_entries": null}`), &cfg))
	assert.Equal(t, time.Minute, cfg.TTL)
	assert.Equal(t, time.Second, cfg.FetchTimeout)
	assert.Equal(t, 5, cfg.MaxEntries)
}

func TestConfigJSONAbsentFieldsKeepValues(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	clock := &configTestClock{}
	cfg := flightcache.Config{
		Name:                 "users",
		Mode:                 flightcache.ModeCache,
		MaxEntries:           100,
		TTL:                  30 * time.Second,
		FetchTimeout:         5 * time.Second,
		MaxConcurrentFetches: 4,
		Clock:                clock,
		Logger:               logger,
	}
	require.NoError(t, json.Unmarshal([]byte(`{"max_entries": 200}`), &cfg))
	assert.Equal(t, flightcache.Config{
		Name:                 "users",
		Mode:                 flightcache.ModeCache,
		MaxEntries:           200,
		TTL:                  30 * time.Second,
		FetchTimeout:         5 * time.Second,
		MaxConcurrentFetches: 4,
		Clock:                clock,
		Logger:               logger,
	}, cfg)

	require.NoError(t, json.Unmarshal([]byte(`{"ttl": "1m"}`), &cfg))
	assert.Equal(t, time.Minute, cfg.TTL)
	assert.Equal(t, 5*time.Second, cfg.FetchTimeout)
	assert.Equal(t, 200, cfg.MaxEntries)

	require.NoError(t, json.Unmarshal([]byte(`{}`), &cfg))
	assert.Equal(t, "users", cfg.Name)
	assert.Equal(t, flightcache.ModeCache, cfg.Mode)
	assert.Equal(t, time.Minute, cfg.TTL)
	assert.Same(t, clock, cfg.Clock)
	assert.Same(t, logger, cfg.Logger)
}

func TestConfigJSONNested(t *testing.T) {
	var app struct {
		Port  int                `json:"port"`
		Cache flightcache.Config `json:"cache"`
	}
	require.NoError(t, json.Unmarshal([]byte(`{
		"port": 8080,
		"cache": {"name": "sessions", "mode": "cache", "max_entries": 10000, "ttl": "30s", "fetch_timeout": "1m30s"}
	}`), &app))
	assert.Equal(t, 8080, app.Port)
	assert.Equal(t, flightcache.Config{
		Name:         "sessions",
		Mode:         flightcache.ModeCache,
		MaxEntries:   10000,
		TTL:          30 * time.Second,
		FetchTimeout: 90 * time.Second,
	}, app.Cache)

	// Errors from inside the nested Config come through.
	err := json.Unmarshal([]byte(`{"cache": {"ttl": "30 parsecs"}}`), &app)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ttl")

	// Marshalling the application struct writes the Config in its own form.
	out, err := json.Marshal(app)
	require.NoError(t, err)
	assert.Contains(t, string(out), `"ttl":"30s"`)
	assert.Contains(t, string(out), `"fetch_timeout":"1m30s"`)
	assert.Contains(t, string(out), `"mode":"cache"`)

	// And a pointer field decodes too.
	var app2 struct {
		Cache *flightcache.Config `json:"cache"`
	}
	require.NoError(t, json.Unmarshal([]byte(`{"cache": {"mode": "cache", "max_entries": 1, "ttl": "1s"}}`), &app2))
	require.NotNil(t, app2.Cache)
	assert.Equal(t, flightcache.Config{Mode: flightcache.ModeCache, MaxEntries: 1, TTL: time.Second}, *app2.Cache)
}

func TestConfigJSONRoundTrip(t *testing.T) {
	full := flightcache.Config{
		Name:                 "users",
		Mode:                 flightcache.ModeCache,
		MaxEntries:           10000,
		TTL:                  30 * time.Second,
		FetchTimeout:         90 * time.Second,
		MaxConcurrentFetches: 8,
		Clock:                &configTestClock{},
		Logger:               slog.New(slog.DiscardHandler),
	}
	data, err := json.Marshal(full)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"ttl":"30s"`)
	assert.Contains(t, string(data), `"fetch_timeout":"1m30s"`)
	assert.Contains(t, string(data), `"mode":"cache"`)
	assert.Contains(t, string(data), `"name":"users"`)
	assert.Contains(t, string(data), `"max_entries":10000`)
	assert.Contains(t, string(data), `"max_concurrent_fetches":8`)
	assert.NotContains(t, string(data), "Clock")
	assert.NotContains(t, string(data), "Logger")
	assert.NotContains(t, string(data), "30000000000", "durations are written as strings")

	var got flightcache.Config
	require.NoError(t, json.Unmarshal(data, &got))
	want := full
	want.Clock, want.Logger = nil, nil // code-only fields are not written
	assert.Equal(t, want, got)

	// Pointer receivers and explicit method calls agree.
	data2, err := (&full).MarshalJSON()
	require.NoError(t, err)
	assert.JSONEq(t, string(data), string(data2))
	var got2 flightcache.Config
	require.NoError(t, got2.UnmarshalJSON(data2))
	assert.Equal(t, want, got2)

	// Several other Configs survive the round trip.
	for _, cfg := range []flightcache.Config{
		{},
		{Mode: flightcache.ModeCache, MaxEntries: 1},
		{TTL: time.Nanosecond},
		{FetchTimeout: 1500 * time.Millisecond},
		{Name: "x", MaxConcurrentFetches: 1},
		{InlineFetch: true, DisableLoadTiming: true},
		{Mode: flightcache.ModeCache, MaxEntries: 5, DisableHitCounting: true},
	} {
		data, err := json.Marshal(cfg)
		require.NoError(t, err)
		var fresh flightcache.Config
		require.NoError(t, json.Unmarshal(data, &fresh), string(data))
		assert.Equal(t, cfg, fresh, string(data))
	}
}

func TestConfigJSONZeroMarshal(t *testing.T) {
	data, err := json.Marshal(flightcache.Config{})
	require.NoError(t, err)
	assert.JSONEq(t, `{"mode": "flight"}`, string(data))
}

func TestConfigJSONMarshalUnknownMode(t *testing.T) {
	_, err := json.Marshal(flightcache.Config{Mode: flightcache.Mode(9)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Mode(9)")
}

func TestConfigJSONThenNew(t *testing.T) {
	// A Config decoded from JSON that New rejects names the Go field.
	var cfg flightcache.Config
	require.NoError(t, json.Unmarshal([]byte(`{"mode": "cache"}`), &cfg))
	l, err := flightcache.New(configTestFetch, cfg)
	require.Error(t, err)
	assert.Nil(t, l)
	assert.True(t, errors.Is(err, flightcache.ErrInvalidConfig))
	assert.Contains(t, err.Error(), "MaxEntries must be > 0 in cache mode")

	require.NoError(t, json.Unmarshal([]byte(`{"ttl": "-5s", "max_entries": 3}`), &cfg))
	l, err = flightcache.New(configTestFetch, cfg)
	require.Error(t, err)
	assert.Nil(t, l)
	assert.Contains(t, err.Error(), "TTL must not be negative (got -5s)")
}
