package flightcache

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
	// ModeCache is ModeFlight plus an LRU of at most Config.MaxEntries
	// results, each kept for Config.TTL.
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

	// MaxEntries bounds the number of cached entries; the least recently
	// used entry is evicted to make room. Required (> 0) in cache mode,
	// ignored in flight mode.
	MaxEntries int `json:"max_entries,omitempty" yaml:"max_entries,omitempty"`

	// TTL is how long a cached value is served after it was written. Zero
	// means entries never expire (they leave only by eviction or
	// invalidation). Ignored in flight mode.
	TTL time.Duration `json:"ttl,omitempty" yaml:"ttl,omitempty"`

	// FetchTimeout bounds each load, including its wait for a fetch slot
	// (see MaxConcurrentFetches). Zero means no bound beyond the callers'
	// own contexts.
	FetchTimeout time.Duration `json:"fetch_timeout,omitempty" yaml:"fetch_timeout,omitempty"`

	// MaxConcurrentFetches bounds the fetches running at once across all
	// keys. Zero means no bound.
	MaxConcurrentFetches int `json:"max_concurrent_fetches,omitempty" yaml:"max_concurrent_fetches,omitempty"`

	// Clock replaces time.Now for expiry decisions and for timing fetches
	// (tests). Code only.
	Clock Clock `json:"-" yaml:"-"`

	// Logger receives reports of fetch panics. Nil discards them. Keys are
	// never logged: they may be secrets such as tokens. Code only.
	Logger *slog.Logger `json:"-" yaml:"-"`
}

// Validate reports every problem with c, each wrapped with ErrInvalidConfig
// and naming its field. New calls it.
func (c Config) Validate() error {
	var errs []error
	if c.Mode != ModeFlight && c.Mode != ModeCache {
		errs = append(errs, invalidf("Mode %v is unknown (want ModeFlight or ModeCache)", c.Mode))
	}
	switch {
	case c.Mode == ModeCache && c.MaxEntries <= 0:
		errs = append(errs, invalidf("MaxEntries must be > 0 in cache mode (got %d)", c.MaxEntries))
	case c.MaxEntries < 0:
		errs = append(errs, invalidf("MaxEntries must not be negative (got %d)", c.MaxEntries))
	}
	if c.TTL < 0 {
		errs = append(errs, invalidf("TTL must not be negative (got %v)", c.TTL))
	}
	if c.FetchTimeout < 0 {
		errs = append(errs, invalidf("FetchTimeout must not be negative (got %v)", c.FetchTimeout))
	}
	if c.MaxConcurrentFetches < 0 {
		errs = append(errs, invalidf("MaxConcurrentFetches must not be negative (got %d)", c.MaxConcurrentFetches))
	}
	return errors.Join(errs...)
}

// configJSON is Config with its durations written as strings.
type configJSON struct {
	*configPlain
	TTL          jsonDuration `json:"ttl,omitzero"`
	FetchTimeout jsonDuration `json:"fetch_timeout,omitzero"`
}

// configPlain has Config's fields but not its methods.
type configPlain Config

// UnmarshalJSON decodes c from JSON, reading durations as strings in
// time.ParseDuration's form ("1m30s"). A bare number is accepted only when
// it is 0, since a number of nanoseconds is rarely what a file means.
// Fields absent from the JSON keep their values.
func (c *Config) UnmarshalJSON(data []byte) error {
	aux := configJSON{
		configPlain:  (*configPlain)(c),
		TTL:          jsonDuration{name: "ttl", d: c.TTL},
		FetchTimeout: jsonDuration{name: "fetch_timeout", d: c.FetchTimeout},
	}
	if err := json.Unmarshal(data, &aux); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			field := te.Field[strings.LastIndexByte(te.Field, '.')+1:]
			return fmt.Errorf("flightcache: %s: cannot use a JSON %s as %v", field, te.Value, te.Type)
		}
		return err
	}
	c.TTL, c.FetchTimeout = aux.TTL.d, aux.FetchTimeout.d
	return nil
}

// MarshalJSON encodes c with durations as strings, so that UnmarshalJSON
// reads back the same Config (code-only fields excepted).
func (c Config) MarshalJSON() ([]byte, error) {
	plain := configPlain(c)
	return json.Marshal(configJSON{
		configPlain:  &plain,
		TTL:          jsonDuration{name: "ttl", d: c.TTL},
		FetchTimeout: jsonDuration{name: "fetch_timeout", d: c.FetchTimeout},
	})
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
