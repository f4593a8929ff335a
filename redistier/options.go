package redistier

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/flightcache/flightcache"
	"github.com/redis/go-redis/v9"
)

// Defaults applied by New to the zero fields of Options.
const (
	// DefaultTimeout bounds each Redis call when Options.Timeout is zero.
	DefaultTimeout = 100 * time.Millisecond
	// DefaultMaxValueBytes is the size limit of a stored record (envelope
	// included) when Options.MaxValueBytes is zero: 1 MiB.
	DefaultMaxValueBytes = 1 << 20
	// DefaultPollInterval is how often Await re-reads Redis when
	// Options.PollInterval is zero.
	DefaultPollInterval = 50 * time.Millisecond
	// DefaultPingInterval is how long a subscription may stay silent before
	// it is pinged, when Options.PingInterval is zero.
	DefaultPingInterval = time.Second
	// DefaultBreakerFailures is the number of consecutive failed calls that
	// opens the circuit breaker when Options.BreakerFailures is zero.
	DefaultBreakerFailures = 5
	// DefaultBreakerCooldown is how long the open breaker skips Redis
	// before it lets one probe through, when Options.BreakerCooldown is zero.
	DefaultBreakerCooldown = time.Second
)

// MaxPrefixBytes is the longest Options.Prefix that New accepts. With it,
// and long keys replaced by their SHA-256, every Redis key a Tier writes is
// at most about 480 bytes.
const MaxPrefixBytes = 256

// Codec turns values into bytes and back. Marshal and Unmarshal have the
// shape of encoding/json's functions: Unmarshal receives a pointer to the
// value to fill. A Codec must be safe for concurrent use. A Tier recovers
// from a Codec that panics and treats the panic as an error.
//
// The Codec also encodes keys in the invalidation messages that Watch
// decodes, so it must round-trip the key type K too.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSONCodec is the default Codec: encoding/json. Its zero value is ready to
// use and safe for concurrent use.
type JSONCodec struct{}

// Marshal returns json.Marshal(v).
func (JSONCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal returns json.Unmarshal(data, v).
func (JSONCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// Options configure a Tier. Prefix is required; every other zero field
// takes the default named in its comment. New copies the Options; changing
// them afterwards does not affect the Tier.
type Options[K comparable] struct {
	// Prefix names the Tier's namespace: every Redis key it writes starts
	// with Prefix + ":", and its invalidation and lease channels are
	// Prefix + ":invalidations" and Prefix + ":leases". Tiers with
	// different prefixes never see each other's records, whatever the
	// prefixes contain (':' included). Required; at most MaxPrefixBytes.
	Prefix string

	// SchemaVersion is part of every record's key. Change it when the
	// encoding of V changes incompatibly: records written under another
	// version are then never read (they expire by their TTL).
	// Invalidations cross versions. Must be >= 0; zero is a valid version.
	SchemaVersion int

	// Codec encodes values (and, in invalidation messages, keys). Nil means
	// JSONCodec.
	Codec Codec

	// KeyEncoder turns a key into the string that identifies it in Redis.
	// It must be injective (two different keys give two different strings)
	// and deterministic across instances. Nil means the default for string
	// keys and all integer kinds (named types included); New returns an
	// error for any other key type without one.
	KeyEncoder func(K) string

	// Timeout bounds every Redis call: Get, Set, Lease, Invalidate (each of
	// its two commands), a lease release, each read of Await (which itself
	// waits up to its context) and each step of a subscription. A call that
	// fails for Redis fails within Timeout. Zero means DefaultTimeout.
	Timeout time.Duration

	// MaxValueBytes limits the size of a stored record, envelope included:
	// a larger value is not written (Set returns ErrValueTooLarge) and a
	// larger record read from Redis is a miss counted in Stats().Corrupt.
	// Zero means DefaultMaxValueBytes.
	MaxValueBytes int

	// PollInterval is how often Await re-reads the key while it waits, in
	// case a lease-release notification was lost or the record was stored
	// without a lease release. Zero means DefaultPollInterval.
	PollInterval time.Duration

	// PingInterval is how long a subscription (Watch, and the one Await
	// uses) may stay silent before it is pinged; one that does not answer
	// within Timeout is re-established. Zero means DefaultPingInterval.
	PingInterval time.Duration

	// BreakerFailures is the number of consecutive failed Redis calls after
	// which the circuit breaker opens: calls then fail at once with
	// ErrCircuitOpen. Zero means DefaultBreakerFailures.
	BreakerFailures int

	// BreakerCooldown is how long the open breaker skips Redis before it
	// lets one call through as a probe; the breaker closes if the probe
	// succeeds and stays open for another cooldown if it fails. Zero means
	// DefaultBreakerCooldown.
	BreakerCooldown time.Duration

	// Clock tells the time for the breaker's cooldown and for record
	// expiry (the envelope's wall-clock expiry). Nil means time.Now. Tests
	// replace it.
	Clock flightcache.Clock

	// Logger receives reports of breaker transitions, broken
	// subscriptions and unreadable messages. Nil discards them. Keys are
	// never logged.
	Logger *slog.Logger
}

// config is the validated, defaulted form of Options.
type config[K comparable] struct {
	prefix          string
	schema          int
	codec           Codec
	encodeKey       func(K) string
	timeout         time.Duration
	maxValueBytes   int
	pollInterval    time.Duration
	pingInterval    time.Duration
	breakerFailures int
	breakerCooldown time.Duration
	now             func() time.Time
	logger          *slog.Logger
}

// invalidf returns an error wrapping ErrInvalidOptions with the detail.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...)
}

// resolve validates o and client and fills in the defaults. It reports
// every problem at once.
func resolve[K comparable](client redis.UniversalClient, o Options[K]) (config[K], error) {
	var errs []error
	if client == nil || reflect.ValueOf(client).Kind() == reflect.Pointer && reflect.ValueOf(client).IsNil() {
		errs = append(errs, invalidf("client is nil"))
	} else if ignoresDeadlines(client) {
		errs = append(errs, invalidf("the client ignores context deadlines, so Timeout could not bound its calls: create it with ContextTimeoutEnabled: true"))
	}
	switch {
	case o.Prefix == "":
		errs = append(errs, invalidf("Prefix is required"))
	case len(o.Prefix) > MaxPrefixBytes:
		errs = append(errs, invalidf("Prefix must be at most %d bytes (got %d)", MaxPrefixBytes, len(o.Prefix)))
	}
	if o.SchemaVersion < 0 {
		errs = append(errs, invalidf("SchemaVersion must not be negative (got %d)", o.SchemaVersion))
	}
	if o.Timeout < 0 {
		errs = append(errs, invalidf("Timeout must not be negative (got %v)", o.Timeout))
	}
	if o.MaxValueBytes < 0 {
		errs = append(errs, invalidf("MaxValueBytes must not be negative (got %d)", o.MaxValueBytes))
	}
	if o.PollInterval < 0 {
		errs = append(errs, invalidf("PollInterval must not be negative (got %v)", o.PollInterval))
	}
	if o.PingInterval < 0 {
		errs = append(errs, invalidf("PingInterval must not be negative (got %v)", o.PingInterval))
	}
	if o.BreakerFailures < 0 {
		errs = append(errs, invalidf("BreakerFailures must not be negative (got %d)", o.BreakerFailures))
	}
	if o.BreakerCooldown < 0 {
		errs = append(errs, invalidf("BreakerCooldown must not be negative (got %v)", o.BreakerCooldown))
	}
	enc := o.KeyEncoder
	if enc == nil {
		enc = defaultKeyEncoder[K]()
		if enc == nil {
			errs = append(errs, invalidf("KeyEncoder is required for key type %v (defaults exist for strings and integers only)", reflect.TypeFor[K]()))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return config[K]{}, err
	}
	c := config[K]{
		prefix:          o.Prefix,
		schema:          o.SchemaVersion,
		codec:           o.Codec,
		encodeKey:       enc,
		timeout:         orDefault(o.Timeout, DefaultTimeout),
		maxValueBytes:   orDefault(o.MaxValueBytes, DefaultMaxValueBytes),
		pollInterval:    orDefault(o.PollInterval, DefaultPollInterval),
		pingInterval:    orDefault(o.PingInterval, DefaultPingInterval),
		breakerFailures: orDefault(o.BreakerFailures, DefaultBreakerFailures),
		breakerCooldown: orDefault(o.BreakerCooldown, DefaultBreakerCooldown),
		now:             time.Now,
		logger:          o.Logger,
	}
	if c.codec == nil {
		c.codec = JSONCodec{}
	}
	if o.Clock != nil {
		c.now = o.Clock.Now
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// orDefault returns v, or def when v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// ignoresDeadlines reports whether client is one of go-redis's clients
// created without ContextTimeoutEnabled: such a client bounds its socket
// reads and writes by its own ReadTimeout and WriteTimeout (seconds by
// default), not by the context's deadline. Other implementations of
// UniversalClient are trusted.
func ignoresDeadlines(client redis.UniversalClient) bool {
	switch c := client.(type) {
	case *redis.Client:
		return !c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return !c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return !c.Options().ContextTimeoutEnabled
	}
	return false
}
