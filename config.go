package flightcache

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"
)

// Mode selects what a Loader keeps between calls. The zero value is
// ModeFlight. A Mode reads and writes itself as text ("flight", "cache"), so
// it can be set from JSON, YAML or an environment variable.
type Mode uint8

const (
	// ModeFlight shares one fetch among concurrent Gets of a key and keeps
	// nothing once it returns: the next Get fetches again.
	ModeFlight Mode = iota
	// ModeCache is ModeFlight plus a cache of at most Config.MaxEntries
	// results (evicted as Config.Policy says), each kept for Config.TTL.
	ModeCache
)

// String returns "flight", "cache", or "Mode(N)" for a value that is neither.
func (m Mode) String() string {
	switch m {
	case ModeFlight:
		return "flight"
	case ModeCache:
		return "cache"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// MarshalText implements encoding.TextMarshaler. It fails for a Mode that
// is neither ModeFlight nor ModeCache.
func (m Mode) MarshalText() ([]byte, error) {
	if m != ModeFlight && m != ModeCache {
		return nil, fmt.Errorf("flightcache: cannot marshal unknown %v", m)
	}
	return []byte(m.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler. It accepts "flight"
// and "cache" in any letter case, and the empty string as ModeFlight (the
// zero value); anything else is an error naming the text.
func (m *Mode) UnmarshalText(text []byte) error {
	switch strings.ToLower(strings.TrimSpace(string(text))) {
	case "", "flight":
		*m = ModeFlight
	case "cache":
		*m = ModeCache
	default:
		return fmt.Errorf("flightcache: unknown mode %q (want \"flight\" or \"cache\")", text)
	}
	return nil
}

// Clock tells a Loader the time. Entries expire by it; the default is
// time.Now, read at every check, so testing/synctest drives it. A Clock must
// be safe for concurrent use and should not go backwards.
type Clock interface {
	Now() time.Time
}

// ClockFunc adapts a function to the Clock interface.
type ClockFunc func() time.Time

// Now returns f().
func (f ClockFunc) Now() time.Time { return f() }

// Config says how a Loader behaves. It is a plain value that an application
// can load from its own configuration: JSON and YAML decode into it with the
// snake_case keys in its tags, durations written as strings such as "30s":
//
//	{"mode": "cache", "max_entries": 10000, "ttl": "30s"}
//
// The zero Config is valid and means flight mode with no limits. New copies
// the Config; changing it afterwards does not affect the Loader.
type Config struct {
	// Name labels the Loader's metrics (the "loader" label). Empty means
	// "default". Give each Loader registered in one registry its own name.
	Name string `json:"name,omitempty" yaml:"name,omitempty"`

	// Mode selects flight-only or cached operation. Default ModeFlight.
	Mode Mode `json:"mode" yaml:"mode"`

	// MaxEntries bounds the number of cached entries; Policy chooses the
	// entry evicted to make room. Required (> 0) in cache mode, ignored in
	// flight mode.
	MaxEntries int `json:"max_entries,omitempty" yaml:"max_entries,omitempty"`

	// Policy chooses the entry to evict when MaxEntries is reached:
	// PolicySieve ("sieve", the default: lock-free hits), PolicyLRU ("lru")
	// or Policy2Q ("2q").
	Policy Policy `json:"policy,omitempty" yaml:"policy,omitempty"`

	// TTL is how long a cached value is served after it was written. Zero
	// means entries never expire (they leave only by eviction or
	// invalidation). Ignored in flight mode.
	TTL time.Duration `json:"ttl,omitempty" yaml:"ttl,omitempty"`

	// StaleTTL is the window after TTL in which an entry is still served at
	// once (stale-while-revalidate) while one background refresh of the key
	// runs; if the refresh fails the stale value keeps being served until
	// the window ends (stale-if-error), and refreshes back off from one
	// second, doubling, to five minutes. Zero means no window: an expired
	// entry is a miss. Ignored in flight mode.
	StaleTTL time.Duration `json:"stale_ttl,omitempty" yaml:"stale_ttl,omitempty"`

	// NegativeTTL is how long a not-found result (an error for which
	// errors.Is(err, ErrNotFound), or that NotFound accepts) is kept and
	// returned without fetching. Zero means not-found is not cached. Other
	// errors, cancellations, timeouts and panics are never cached. Ignored
	// in flight mode.
	NegativeTTL time.Duration `json:"negative_ttl,omitempty" yaml:"negative_ttl,omitempty"`

	// Jitter spreads each entry's TTL (and NegativeTTL) uniformly within
	// ±Jitter·TTL, so that entries written together do not expire together.
	// A fraction in [0, 1]; 0 means none.
	Jitter float64 `json:"jitter,omitempty" yaml:"jitter,omitempty"`

	// EarlyRefresh turns on probabilistic early refresh ("XFetch", Vattani
	// et al., VLDB 2015): a Get of a fresh entry starts a background
	// refresh with a probability that grows as expiry nears, scaled by the
	// key's last fetch duration and EarlyRefreshBeta. Entries written by Set
	// (no fetch duration) are never refreshed early.
	EarlyRefresh bool `json:"early_refresh,omitempty" yaml:"early_refresh,omitempty"`

	// EarlyRefreshBeta scales early refresh: above 1 refreshes earlier,
	// below 1 later. Zero means 1.
	EarlyRefreshBeta float64 `json:"early_refresh_beta,omitempty" yaml:"early_refresh_beta,omitempty"`

	// FetchTimeout bounds each load, including its wait for a fetch slot
	// (see MaxConcurrentFetches). Zero means no bound beyond the callers'
	// own contexts.
	FetchTimeout time.Duration `json:"fetch_timeout,omitempty" yaml:"fetch_timeout,omitempty"`

	// MaxConcurrentFetches bounds the fetches running at once across all
	// keys. Zero means no bound.
	MaxConcurrentFetches int `json:"max_concurrent_fetches,omitempty" yaml:"max_concurrent_fetches,omitempty"`

	// InlineFetch makes a Get whose context cannot be cancelled
	// (ctx.Done() == nil, as with context.Background()) run the load it
	// starts on its own goroutine, as x/sync/singleflight's Do does, instead
	// of a goroutine per load: a miss then costs about a ninth as much
	// (about 0.12 against 1.0 µs on a 2-core VM; see the README). Such a
	// Get could not leave early anyway; Gets that join the load, and Gets
	// with a cancelable context, work as before. The price:
	// a fetch that calls runtime.Goexit (t.FailNow in a test) ends that
	// Get's goroutine instead of returning ErrGoexit to it (the other
	// waiters still get ErrGoexit), and with a shared tier the starting Get
	// returns after the shared-tier write. Ignored with BatchWindow.
	InlineFetch bool `json:"inline_fetch,omitempty" yaml:"inline_fetch,omitempty"`

	// DisableLoadTiming stops the Loader from timing fetches: a load then
	// reads the clock twice less (about 55ns of a 120ns inline flight-mode
	// miss on a 2-core VM; see the README), Stats.LoadDuration stays at
	// zero, and a Collector exports no flightcache_load_duration_seconds
	// series for the Loader (rather than a histogram of nothing). Every
	// counter still counts. It cannot be combined with EarlyRefresh,
	// which needs each fetch's duration.
	DisableLoadTiming bool `json:"disable_load_timing,omitempty" yaml:"disable_load_timing,omitempty"`

	// DisableHitCounting stops the Loader from counting hits: Stats.Hits
	// stays at zero, so Hits + Misses = Gets no longer holds, and a
	// Collector exports no flightcache_hits_total series for the Loader,
	// so that a dashboard's hit ratio shows no data rather than 0%.
	// StaleHits and NegativeHits, rarer, still count, as does every other
	// counter. Counting a hit is one atomic add, about 9ns of an 80ns hit
	// on an Intel Xeon VM (see bench/): without it, a hit on an entry
	// already seen writes nothing at all. Hit-path peers such as otter
	// count no hits unless asked to. No effect in flight mode, which has
	// no hits.
	DisableHitCounting bool `json:"disable_hit_counting,omitempty" yaml:"disable_hit_counting,omitempty"`

	// RemoteTTL is how long a fetched value is kept in the shared tier (see
	// WithRemote); a local copy never outlives it. Zero means TTL. A Remote
	// needs one of the two to be > 0.
	RemoteTTL time.Duration `json:"remote_ttl,omitempty" yaml:"remote_ttl,omitempty"`

	// RemoteNegativeTTL is how long a not-found answer is kept in the
	// shared tier. Zero means NegativeTTL (0: not shared).
	RemoteNegativeTTL time.Duration `json:"remote_negative_ttl,omitempty" yaml:"remote_negative_ttl,omitempty"`

	// RemoteLeaseTimeout bounds how long an instance waits for another
	// instance that holds the key's fleet-wide lease to store its result,
	// before fetching itself; it is also the lease's lifetime. Zero means
	// FetchTimeout, or 5s when that is 0 too.
	RemoteLeaseTimeout time.Duration `json:"remote_lease_timeout,omitempty" yaml:"remote_lease_timeout,omitempty"`

	// RemoteTimeout bounds the shared-tier calls a load makes before it
	// fetches (look-up, lease, re-check) all together, on top of the
	// Remote's own per-call deadline: a slow shared tier adds at most this
	// to a load (waiting for another instance's lease is bounded by
	// RemoteLeaseTimeout instead). Zero leaves only the per-call deadlines.
	RemoteTimeout time.Duration `json:"remote_timeout,omitempty" yaml:"remote_timeout,omitempty"`

	// DisableRemote makes the Loader ignore the Remote given with
	// WithRemote: a configuration switch for the shared tier.
	DisableRemote bool `json:"disable_remote,omitempty" yaml:"disable_remote,omitempty"`

	// MaxBatchSize bounds the keys of one batch fetch (WithBatch); larger
	// sets are split. Zero means no bound.
	MaxBatchSize int `json:"max_batch_size,omitempty" yaml:"max_batch_size,omitempty"`

	// BatchWindow turns on micro-batching: single Gets of different keys
	// that start loads within this window (or until MaxBatchSize keys) are
	// loaded with one batch fetch, as Facebook's DataLoader does. A lone Get
	// waits at most the window. Needs WithBatch. Zero means off.
	BatchWindow time.Duration `json:"batch_window,omitempty" yaml:"batch_window,omitempty"`

	// Clock replaces time.Now for expiry decisions and for timing fetches
	// (tests). Code only.
	Clock Clock `json:"-" yaml:"-"`

	// Logger receives reports of fetch panics and failed background
	// refreshes. Nil discards them. Keys are never logged: they may be
	// secrets such as tokens. Code only.
	Logger *slog.Logger `json:"-" yaml:"-"`

	// NotFound classifies fetch errors as not-found (negatively cached for
	// NegativeTTL) in addition to those matching ErrNotFound, for example
	// sql.ErrNoRows. It must not block. Code only.
	NotFound func(error) bool `json:"-" yaml:"-"`

	// Rand returns a uniform random number in [0, 1) for Jitter and early
	// refresh; it must be safe for concurrent use. Nil means
	// math/rand/v2.Float64. Code only (tests fix it).
	Rand func() float64 `json:"-" yaml:"-"`
}

// Validate reports every problem with c, each wrapped with ErrInvalidConfig
// and naming its field. New calls it.
func (c Config) Validate() error {
	var errs []error
	if c.Mode != ModeFlight && c.Mode != ModeCache {
		errs = append(errs, invalidf("Mode %v is unknown (want ModeFlight or ModeCache)", c.Mode))
	}
	if c.Policy > Policy2Q {
		errs = append(errs, invalidf("Policy %v is unknown (want PolicySieve, PolicyLRU or Policy2Q)", c.Policy))
	}
	switch {
	case c.Mode == ModeCache && c.MaxEntries <= 0:
		errs = append(errs, invalidf("MaxEntries must be > 0 in cache mode (got %d)", c.MaxEntries))
	case c.MaxEntries < 0:
		errs = append(errs, invalidf("MaxEntries must not be negative (got %d)", c.MaxEntries))
	}
	negative := func(name string, v int64, shown any) {
		if v < 0 {
			errs = append(errs, invalidf("%s must not be negative (got %v)", name, shown))
		}
	}
	negative("TTL", int64(c.TTL), c.TTL)
	negative("StaleTTL", int64(c.StaleTTL), c.StaleTTL)
	negative("NegativeTTL", int64(c.NegativeTTL), c.NegativeTTL)
	if !(c.Jitter >= 0 && c.Jitter <= 1) { // NaN fails too
		errs = append(errs, invalidf("Jitter must be a fraction in [0, 1] (got %v)", c.Jitter))
	}
	if !(c.EarlyRefreshBeta >= 0 && c.EarlyRefreshBeta <= math.MaxFloat64) {
		errs = append(errs, invalidf("EarlyRefreshBeta must be a finite number >= 0 (got %v)", c.EarlyRefreshBeta))
	}
	if c.DisableLoadTiming && c.EarlyRefresh {
		errs = append(errs, invalidf("DisableLoadTiming cannot be combined with EarlyRefresh, which needs each fetch's duration"))
	}
	negative("RemoteTTL", int64(c.RemoteTTL), c.RemoteTTL)
	negative("RemoteNegativeTTL", int64(c.RemoteNegativeTTL), c.RemoteNegativeTTL)
	negative("RemoteLeaseTimeout", int64(c.RemoteLeaseTimeout), c.RemoteLeaseTimeout)
	negative("RemoteTimeout", int64(c.RemoteTimeout), c.RemoteTimeout)
	negative("MaxBatchSize", int64(c.MaxBatchSize), c.MaxBatchSize)
	negative("BatchWindow", int64(c.BatchWindow), c.BatchWindow)
	negative("FetchTimeout", int64(c.FetchTimeout), c.FetchTimeout)
	negative("MaxConcurrentFetches", int64(c.MaxConcurrentFetches), c.MaxConcurrentFetches)
	return errors.Join(errs...)
}

// configJSON is Config with its durations written as strings.
type configJSON struct {
	*configPlain
	TTL          jsonDuration `json:"ttl,omitzero"`
	StaleTTL     jsonDuration `json:"stale_ttl,omitzero"`
	NegativeTTL  jsonDuration `json:"negative_ttl,omitzero"`
	FetchTimeout jsonDuration `json:"fetch_timeout,omitzero"`

	RemoteTTL          jsonDuration `json:"remote_ttl,omitzero"`
	RemoteNegativeTTL  jsonDuration `json:"remote_negative_ttl,omitzero"`
	RemoteLeaseTimeout jsonDuration `json:"remote_lease_timeout,omitzero"`
	RemoteTimeout      jsonDuration `json:"remote_timeout,omitzero"`
	BatchWindow        jsonDuration `json:"batch_window,omitzero"`
}

// newConfigJSON wraps c for encoding/json.
func newConfigJSON(c *Config) configJSON {
	return configJSON{
		configPlain:  (*configPlain)(c),
		TTL:          jsonDuration{name: "ttl", d: c.TTL},
		StaleTTL:     jsonDuration{name: "stale_ttl", d: c.StaleTTL},
		NegativeTTL:  jsonDuration{name: "negative_ttl", d: c.NegativeTTL},
		FetchTimeout: jsonDuration{name: "fetch_timeout", d: c.FetchTimeout},

		RemoteTTL:          jsonDuration{name: "remote_ttl", d: c.RemoteTTL},
		RemoteNegativeTTL:  jsonDuration{name: "remote_negative_ttl", d: c.RemoteNegativeTTL},
		RemoteLeaseTimeout: jsonDuration{name: "remote_lease_timeout", d: c.RemoteLeaseTimeout},
		RemoteTimeout:      jsonDuration{name: "remote_timeout", d: c.RemoteTimeout},
		BatchWindow:        jsonDuration{name: "batch_window", d: c.BatchWindow},
	}
}

// configPlain has Config's fields but not its methods.
type configPlain Config

// UnmarshalJSON decodes c from JSON, reading durations as strings in
// time.ParseDuration's form ("1m30s"). A bare number is accepted only when
// it is 0, since a number of nanoseconds is rarely what a file means.
// Fields absent from the JSON keep their values.
func (c *Config) UnmarshalJSON(data []byte) error {
	aux := newConfigJSON(c)
	if err := json.Unmarshal(data, &aux); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			if te.Field == "" {
				return fmt.Errorf("flightcache: a Config must be a JSON object, not a JSON %s", te.Value)
			}
			field := te.Field[strings.LastIndexByte(te.Field, '.')+1:]
			return fmt.Errorf("flightcache: %s: cannot use a JSON %s as %v", field, te.Value, te.Type)
		}
		return err
	}
	c.TTL, c.StaleTTL, c.NegativeTTL, c.FetchTimeout = aux.TTL.d, aux.StaleTTL.d, aux.NegativeTTL.d, aux.FetchTimeout.d
	c.RemoteTTL, c.RemoteNegativeTTL, c.RemoteLeaseTimeout = aux.RemoteTTL.d, aux.RemoteNegativeTTL.d, aux.RemoteLeaseTimeout.d
	c.BatchWindow, c.RemoteTimeout = aux.BatchWindow.d, aux.RemoteTimeout.d
	return nil
}

// MarshalJSON encodes c with durations as strings, so that UnmarshalJSON
// reads back the same Config (code-only fields excepted).
func (c Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(newConfigJSON(&c))
}

// jsonDuration reads and writes a time.Duration as a string.
type jsonDuration struct {
	name string // the JSON key, for error messages
	d    time.Duration
}

func (j jsonDuration) IsZero() bool { return j.d == 0 }

func (j jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(j.d.String())
}

func (j *jsonDuration) UnmarshalJSON(data []byte) error {
	if string(data) == "null" { // as encoding/json does: null leaves the value alone
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		var n float64
		if json.Unmarshal(data, &n) == nil && n == 0 {
			j.d = 0
			return nil
		}
		return fmt.Errorf("flightcache: %s: want a duration string such as \"30s\", got %s", j.name, data)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("flightcache: %s: %w", j.name, err)
	}
	j.d = d
	return nil
}
