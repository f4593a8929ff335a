package redistier

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flightcache/flightcache"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type user struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

func TestNewValidatesOptions(t *testing.T) {
	client := deadClient(t)
	noDeadlines := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = noDeadlines.Close() })

	tests := []struct {
		name   string
		client redis.UniversalClient
		opts   Options[string]
		want   []string
	}{
		{"nil client", nil, Options[string]{Prefix: "p"}, []string{"client is nil"}},
		{"typed nil client", (*redis.Client)(nil), Options[string]{Prefix: "p"}, []string{"client is nil"}},
		{"client ignores deadlines", noDeadlines, Options[string]{Prefix: "p"}, []string{"ContextTimeoutEnabled"}},
		{"no prefix", client, Options[string]{}, []string{"Prefix is required"}},
		{"long prefix", client, Options[string]{Prefix: strings.Repeat("p", MaxPrefixBytes+1)}, []string{"Prefix must be at most 256 bytes"}},
		{"every negative field", client, Options[string]{
			Prefix: "p", SchemaVersion: -1, Timeout: -1, MaxValueBytes: -1, PollInterval: -1,
			PingInterval: -1, BreakerFailures: -1, BreakerCooldown: -1,
		}, []string{"SchemaVersion", "Timeout", "MaxValueBytes", "PollInterval", "PingInterval", "BreakerFailures", "BreakerCooldown"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tier, err := New[string, int](tt.client, tt.opts)
			require.Error(t, err)
			assert.Nil(t, tier)
			require.ErrorIs(t, err, ErrInvalidOptions)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			for line := range strings.SplitSeq(err.Error(), "\n") {
				assert.True(t, strings.HasPrefix(line, "redistier: "), "line %q", line)
			}
		})
	}

	t.Run("key type without an encoder", func(t *testing.T) {
		type key struct{ A, B int }
		_, err := New[key, int](client, Options[key]{Prefix: "p"})
		require.ErrorIs(t, err, ErrInvalidOptions)
		assert.Contains(t, err.Error(), "KeyEncoder is required for key type redistier.key")

		tier, err := New[key, int](client, Options[key]{Prefix: "p", KeyEncoder: func(k key) string {
			return strconv.Itoa(k.A) + "," + strconv.Itoa(k.B)
		}})
		require.NoError(t, err)
		require.NoError(t, tier.Close())
	})

	t.Run("defaults", func(t *testing.T) {
		tier, err := New[string, int](client, Options[string]{Prefix: "p"})
		require.NoError(t, err)
		defer tier.Close()
		c := tier.cfg
		assert.Equal(t, DefaultTimeout, c.timeout)
		assert.Equal(t, DefaultMaxValueBytes, c.maxValueBytes)
		assert.Equal(t, DefaultPollInterval, c.pollInterval)
		assert.Equal(t, DefaultPingInterval, c.pingInterval)
		assert.Equal(t, DefaultBreakerFailures, c.breakerFailures)
		assert.Equal(t, DefaultBreakerCooldown, c.breakerCooldown)
		assert.IsType(t, JSONCodec{}, c.codec)
		assert.Equal(t, "p:0:", tier.ks.head)
		assert.Equal(t, "p:invalidations", tier.invChannel)
		assert.Equal(t, "p:leases", tier.leaseChannel)
	})
}

func TestDefaultKeyEncoders(t *testing.T) {
	type name string
	type id uint16
	check := func(t *testing.T, got func() string, want string) {
		t.Helper()
		assert.Equal(t, want, got())
	}
	check(t, func() string { return defaultKeyEncoder[string]()("a:b") }, "a:b")
	check(t, func() string { return defaultKeyEncoder[int]()(-42) }, "-42")
	check(t, func() string { return defaultKeyEncoder[int64]()(-1 << 63) }, "-9223372036854775808")
	check(t, func() string { return defaultKeyEncoder[int32]()(7) }, "7")
	check(t, func() string { return defaultKeyEncoder[int8]()(-8) }, "-8")
	check(t, func() string { return defaultKeyEncoder[uint64]()(1<<64 - 1) }, "18446744073709551615")
	check(t, func() string { return defaultKeyEncoder[uint32]()(9) }, "9")
	check(t, func() string { return defaultKeyEncoder[uint]()(10) }, "10")
	check(t, func() string { return defaultKeyEncoder[uintptr]()(11) }, "11")
	check(t, func() string { return defaultKeyEncoder[name]()("bob") }, "bob")
	check(t, func() string { return defaultKeyEncoder[id]()(65535) }, "65535")
	assert.Nil(t, defaultKeyEncoder[float64]())
	assert.Nil(t, defaultKeyEncoder[bool]())
	assert.Nil(t, defaultKeyEncoder[[2]int]())
}

func TestGetSetRoundTrip(t *testing.T) {
	client := newClient(t)
	clock := newFakeClock()
	prefix := testPrefix(t, client)
	tier := newTier[user](t, client, Options[string]{Prefix: prefix, Clock: clock})
	ctx := context.Background()

	_, ok, err := tier.Get(ctx, "u1")
	require.NoError(t, err)
	assert.False(t, ok, "a key never stored is a miss")

	want := user{ID: 1, Name: "Ada: the first"}
	require.NoError(t, tier.Set(ctx, "u1", flightcache.RemoteRecord[user]{Value: want, TTL: 10 * time.Second}))
	rec, ok, err := tier.Get(ctx, "u1")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, flightcache.RemoteRecord[user]{Value: want, TTL: 10 * time.Second}, rec)

	// Redis expires the record by itself too.
	pttl, err := client.PTTL(ctx, tier.ks.key(kindRecord, "u1")).Result()
	require.NoError(t, err)
	assert.True(t, pttl > 9*time.Second && pttl <= 10*time.Second, "PTTL %v", pttl)

	// The remaining lifetime is carried.
	clock.Add(4 * time.Second)
	rec, ok, err = tier.Get(ctx, "u1")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, 6*time.Second, rec.TTL)

	// Past its expiry (by the reader's clock) a record is a miss, not corrupt.
	clock.Add(6 * time.Second)
	_, ok, err = tier.Get(ctx, "u1")
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Zero(t, tier.Stats().Corrupt)

	// A reader whose clock is behind never sees more than the full TTL.
	clock.Add(-time.Hour)
	rec, ok, err = tier.Get(ctx, "u1")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, 10*time.Second, rec.TTL)

	// Negative records, and TTLs rounded up to a millisecond. (A minute
	// on top: Redis expires the key by its own clock, so a TTL of a few
	// milliseconds could end before the Get on a loaded machine.)
	require.NoError(t, tier.Set(ctx, "gone", flightcache.RemoteRecord[user]{NotFound: true, TTL: time.Minute + 1500*time.Microsecond}))
	rec, ok, err = tier.Get(ctx, "gone")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, flightcache.RemoteRecord[user]{NotFound: true, TTL: time.Minute + 2*time.Millisecond}, rec)

	// A NotFound record drops the value it is given.
	require.NoError(t, tier.Set(ctx, "gone2", flightcache.RemoteRecord[user]{Value: want, NotFound: true, TTL: time.Minute}))
	rec, ok, err = tier.Get(ctx, "gone2")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, flightcache.RemoteRecord[user]{NotFound: true, TTL: time.Minute}, rec)

	// A TTL of zero or less stores nothing and is not a dropped write.
	require.NoError(t, tier.Set(ctx, "no-ttl", flightcache.RemoteRecord[user]{Value: want}))
	require.NoError(t, tier.Set(ctx, "neg-ttl", flightcache.RemoteRecord[user]{Value: want, TTL: -time.Second}))
	n, err := client.Exists(ctx, tier.ks.key(kindRecord, "no-ttl"), tier.ks.key(kindRecord, "neg-ttl")).Result()
	require.NoError(t, err)
	assert.Zero(t, n)

	assert.Equal(t, flightcache.RemoteStats{}, tier.Stats())
}

func TestKeysAreIsolated(t *testing.T) {
	client := newClient(t)
	ctx := context.Background()
	base := testPrefix(t, client)
	rec := func(v string) flightcache.RemoteRecord[string] {
		return flightcache.RemoteRecord[string]{Value: v, TTL: time.Minute}
	}

	// Naive "prefix:version:key" would map all three to base:1:2:x.
	a := newTier[string](t, client, Options[string]{Prefix: base, SchemaVersion: 1, KeyEncoder: nil})
	b := newTier[string](t, client, Options[string]{Prefix: base + ":1", SchemaVersion: 2})
	c := newTier[string](t, client, Options[string]{Prefix: base + ":1:2", SchemaVersion: 0})
	require.NoError(t, a.Set(ctx, "2:x", rec("a")))
	require.NoError(t, b.Set(ctx, "x", rec("b")))
	require.NoError(t, c.Set(ctx, "x", rec("c")))

	// Keys that differ only around ':' and '%', and a key that spells the
	// escape of another.
	require.NoError(t, a.Set(ctx, "k:", rec("k-colon")))
	require.NoError(t, a.Set(ctx, "k%3A", rec("k-escaped")))
	require.NoError(t, a.Set(ctx, "k", rec("k")))
	// A long key is hashed; one spelling its hash stays apart.
	long := strings.Repeat("long:", 100)
	require.NoError(t, a.Set(ctx, long, rec("long")))
	hashed := a.ks.key(kindRecord, long)
	assert.Contains(t, hashed, ":1:v#", "a long key is stored under its hash")
	require.NoError(t, a.Set(ctx, hashed[strings.LastIndexByte(hashed, '#'):], rec("spelled hash")))

	// Another schema version of the same prefix sees none of them.
	a2 := newTier[string](t, client, Options[string]{Prefix: base, SchemaVersion: 2})

	for _, tc := range []struct {
		tier *Tier[string, string]
		key  string
		want string // "" for a miss
	}{
		{a, "2:x", "a"}, {b, "x", "b"}, {c, "x", "c"},
		{a, "k:", "k-colon"}, {a, "k%3A", "k-escaped"}, {a, "k", "k"},
		{a, long, "long"}, {a, hashed[strings.LastIndexByte(hashed, '#'):], "spelled hash"},
		{a2, "2:x", ""}, {a2, "k", ""}, {a2, long, ""},
		{b, "2:x", ""}, {c, "2:x", ""},
	} {
		got, ok, err := tc.tier.Get(ctx, tc.key)
		require.NoError(t, err)
		if tc.want == "" {
			assert.False(t, ok, "key %q of prefix %q", tc.key, tc.tier.cfg.prefix)
			continue
		}
		if assert.True(t, ok, "key %q", tc.key) {
			assert.Equal(t, tc.want, got.Value, "key %q", tc.key)
		}
	}
}

func TestCorruptRecordsAreMisses(t *testing.T) {
	client := newClient(t)
	ctx := context.Background()
	clock := newFakeClock()
	tier := newTier[user](t, client, Options[string]{Prefix: testPrefix(t, client), MaxValueBytes: 100, Clock: clock})

	valid := func(mod func(b []byte) []byte) []byte {
		b := appendEnvelope(nil, envelope{expiryMs: clock.Now().UnixMilli() + 60_000, ttlMs: 60_000, payload: []byte(`{"id":1}`)})
		return mod(b)
	}
	same := func(b []byte) []byte { return b }
	require.NotEmpty(t, valid(same))
	cases := []struct {
		name  string
		bytes []byte
	}{
		{"garbage", []byte("not an envelope at all")},
		{"empty", []byte{}},
		{"truncated header", valid(same)[:envelopeHeader-1]},
		{"wrong magic", valid(func(b []byte) []byte { b[0] = 'F'; return b })},
		{"newer format version", valid(func(b []byte) []byte { b[2] = envelopeVersion + 1; return b })},
		{"unknown flag", valid(func(b []byte) []byte { b[3] |= 0x80; return b })},
		{"zero expiry", valid(func(b []byte) []byte { clear(b[4:12]); return b })},
		{"zero ttl", valid(func(b []byte) []byte { clear(b[12:20]); return b })},
		{"negative with payload", valid(func(b []byte) []byte { b[3] |= flagNegative; return b })},
		{"payload the codec rejects", valid(func(b []byte) []byte { return append(b[:envelopeHeader], "{not json"...) })},
		{"payload of the wrong type", valid(func(b []byte) []byte { return append(b[:envelopeHeader], `"a string"`...) })},
		{"too large", valid(func(b []byte) []byte {
			return append(b[:envelopeHeader], `{"id":1,"name":"`+strings.Repeat("x", 100)+`"}`...)
		})},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := "k" + strconv.Itoa(i)
			require.NoError(t, client.Set(ctx, tier.ks.key(kindRecord, key), tc.bytes, time.Minute).Err())
			before := tier.Stats().Corrupt

			_, ok, err := tier.Get(ctx, key)
			require.NoError(t, err)
			assert.False(t, ok)
			assert.Equal(t, before+1, tier.Stats().Corrupt)

			// The next Set overwrites it.
			require.NoError(t, tier.Set(ctx, key, flightcache.RemoteRecord[user]{Value: user{ID: i}, TTL: time.Minute}))
			rec, ok, err := tier.Get(ctx, key)
			require.NoError(t, err)
			require.True(t, ok)
			assert.Equal(t, user{ID: i}, rec.Value)
			assert.Equal(t, before+1, tier.Stats().Corrupt)
		})
	}
	assert.Zero(t, tier.Stats().WritesDropped)

	t.Run("valid bytes written directly are read", func(t *testing.T) {
		require.NoError(t, client.Set(ctx, tier.ks.key(kindRecord, "raw"), valid(same), time.Minute).Err())
		rec, ok, err := tier.Get(ctx, "raw")
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, user{ID: 1}, rec.Value)
	})
}

func TestSetDropsWhatItCannotWrite(t *testing.T) {
	client := newClient(t)
	ctx := context.Background()
	tier := newTier[string](t, client, Options[string]{Prefix: testPrefix(t, client), MaxValueBytes: 64})

	err := tier.Set(ctx, "big", flightcache.RemoteRecord[string]{Value: strings.Repeat("x", 64), TTL: time.Minute})
	require.ErrorIs(t, err, ErrValueTooLarge)
	assert.EqualError(t, err, "redistier: value too large: a record of 86 bytes, limit 64")
	assert.Equal(t, uint64(1), tier.Stats().WritesDropped)
	_, ok, err := tier.Get(ctx, "big")
	require.NoError(t, err)
	assert.False(t, ok)

	// The largest record that fits: 20 bytes of envelope + `"…"`.
	require.NoError(t, tier.Set(ctx, "fits", flightcache.RemoteRecord[string]{Value: strings.Repeat("x", 42), TTL: time.Minute}))

	require.NoError(t, tier.Close())
	require.ErrorIs(t, tier.Set(ctx, "closed", flightcache.RemoteRecord[string]{Value: "v", TTL: time.Minute}), ErrClosed)
	assert.Equal(t, uint64(2), tier.Stats().WritesDropped)
}

// panicCodec panics on every call.
type panicCodec struct{}

func (panicCodec) Marshal(any) ([]byte, error) { panic("marshal boom") }
func (panicCodec) Unmarshal([]byte, any) error { panic("unmarshal boom") }

// failCodec fails every call.
type failCodec struct{}

func (failCodec) Marshal(any) ([]byte, error) { return nil, errors.New("cannot marshal") }
func (failCodec) Unmarshal([]byte, any) error { return errors.New("cannot unmarshal") }

func TestCodecFailuresNeverPanic(t *testing.T) {
	client := newClient(t)
	ctx := context.Background()
	prefix := testPrefix(t, client)
	good := newTier[string](t, client, Options[string]{Prefix: prefix})
	require.NoError(t, good.Set(ctx, "k", flightcache.RemoteRecord[string]{Value: "v", TTL: time.Minute}))

	for _, codec := range []Codec{panicCodec{}, failCodec{}} {
		tier := newTier[string](t, client, Options[string]{Prefix: prefix, Codec: codec})
		_, ok, err := tier.Get(ctx, "k")
		require.NoError(t, err)
		assert.False(t, ok)
		assert.Equal(t, uint64(1), tier.Stats().Corrupt)

		err = tier.Set(ctx, "k2", flightcache.RemoteRecord[string]{Value: "v", TTL: time.Minute})
		require.ErrorIs(t, err, ErrCodec)
		assert.Equal(t, uint64(1), tier.Stats().WritesDropped)

		// A negative record needs no codec.
		require.NoError(t, tier.Set(ctx, "k3", flightcache.RemoteRecord[string]{NotFound: true, TTL: time.Minute}))

		require.ErrorIs(t, tier.Invalidate(ctx, "k3"), ErrCodec)
	}

	panicky := newTier[string](t, client, Options[string]{Prefix: prefix, KeyEncoder: func(string) string { panic("encoder boom") }})
	_, _, err := panicky.Get(ctx, "k")
	require.ErrorContains(t, err, "KeyEncoder panicked: encoder boom")
	require.Error(t, panicky.Set(ctx, "k", flightcache.RemoteRecord[string]{Value: "v", TTL: time.Minute}))
	_, _, err = panicky.Lease(ctx, "k", time.Second)
	require.Error(t, err)
	_, _, err = panicky.Await(ctx, "k")
	require.Error(t, err)
	require.Error(t, panicky.Invalidate(ctx, "k"))
}

func TestCustomCodec(t *testing.T) {
	client := newClient(t)
	ctx := context.Background()
	tier := newTier[string](t, client, Options[string]{Prefix: testPrefix(t, client), Codec: ptrCodec{}})
	require.NoError(t, tier.Set(ctx, "k", flightcache.RemoteRecord[string]{Value: "raw bytes", TTL: time.Minute}))
	raw, err := client.Get(ctx, tier.ks.key(kindRecord, "k")).Bytes()
	require.NoError(t, err)
	assert.True(t, bytes.HasSuffix(raw, []byte("raw bytes")), "%q", raw)
	rec, ok, err := tier.Get(ctx, "k")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "raw bytes", rec.Value)
}

// ptrCodec stores strings as their bytes.
type ptrCodec struct{}

func (ptrCodec) Marshal(v any) ([]byte, error) {
	s, ok := v.(string)
	if !ok {
		return nil, errors.New("not a string")
	}
	return []byte(s), nil
}

func (ptrCodec) Unmarshal(b []byte, v any) error {
	p, ok := v.(*string)
	if !ok {
		return errors.New("not a *string")
	}
	*p = string(b)
	return nil
}

func TestLeaseIsExclusive(t *testing.T) {
	client := newClient(t)
	ctx := context.Background()
	prefix := testPrefix(t, client)
	a := newTier[string](t, client, Options[string]{Prefix: prefix})
	b := newTier[string](t, client, Options[string]{Prefix: prefix})

	releaseA, ok, err := a.Lease(ctx, "k", 10*time.Second)
	require.NoError(t, err)
	require.True(t, ok)
	pttl, err := client.PTTL(ctx, a.ks.key(kindLease, "k")).Result()
	require.NoError(t, err)
	assert.True(t, pttl > 9*time.Second && pttl <= 10*time.Second, "lease PTTL %v", pttl)

	releaseB, ok, err := b.Lease(ctx, "k", 10*time.Second)
	require.NoError(t, err)
	assert.False(t, ok, "a second instance cannot take a held lease")
	releaseB() // a no-op
	_, ok, err = a.Lease(ctx, "k", 10*time.Second)
	require.NoError(t, err)
	assert.False(t, ok, "nor can the holder itself")

	// Other keys are independent.
	releaseOther, ok, err := b.Lease(ctx, "other", 10*time.Second)
	require.NoError(t, err)
	assert.True(t, ok)
	releaseOther()

	releaseA()
	releaseA() // twice is fine
	releaseB2, ok, err := b.Lease(ctx, "k", 10*time.Second)
	require.NoError(t, err)
	assert.True(t, ok, "free again once released")
	releaseB2()

	_, _, err = a.Lease(ctx, "k", 0)
	require.ErrorContains(t, err, "ttl must be > 0")
}

func TestStaleReleaseLeavesAnothersLease(t *testing.T) {
	client := newClient(t)
	ctx := context.Background()
	prefix := testPrefix(t, client)
	a := newTier[string](t, client, Options[string]{Prefix: prefix})
	b := newTier[string](t, client, Options[string]{Prefix: prefix})
	lk := a.ks.key(kindLease, "k")

	t.Run("expired by Redis", func(t *testing.T) {
		releaseA, ok, err := a.Lease(ctx, "k", 50*time.Millisecond)
		require.NoError(t, err)
		require.True(t, ok)
		require.Eventually(t, func() bool { return client.Exists(ctx, lk).Val() == 0 },
			5*time.Second, 5*time.Millisecond, "the lease expires")

		releaseB, ok, err := b.Lease(ctx, "k", time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		tokenB := client.Get(ctx, lk).Val()

		releaseA() // stale: must not delete b's lease
		assert.Equal(t, tokenB, client.Get(ctx, lk).Val())
		_, ok, err = a.Lease(ctx, "k", time.Minute)
		require.NoError(t, err)
		assert.False(t, ok)

		releaseB()
		assert.Zero(t, client.Exists(ctx, lk).Val())
	})

	t.Run("deleted behind its back", func(t *testing.T) {
		releaseA, ok, err := a.Lease(ctx, "k", time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, client.Del(ctx, lk).Err())
		releaseB, ok, err := b.Lease(ctx, "k", time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		releaseA()
		assert.Equal(t, int64(1), client.Exists(ctx, lk).Val())
		releaseB()
		assert.Zero(t, client.Exists(ctx, lk).Val())
	})

	t.Run("release works after Close", func(t *testing.T) {
		c := newTier[string](t, client, Options[string]{Prefix: prefix})
		release, ok, err := c.Lease(ctx, "k", time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, c.Close())
		release()
		assert.Zero(t, client.Exists(ctx, lk).Val())
	})
}

func TestClosedTier(t *testing.T) {
	tier := newTier[string](t, deadClient(t), Options[string]{Prefix: "p"})
	require.NoError(t, tier.Close())
	require.NoError(t, tier.Close())
	ctx := context.Background()
	_, _, err := tier.Get(ctx, "k")
	require.ErrorIs(t, err, ErrClosed)
	assert.EqualError(t, err, "redistier: tier is closed (get)")
	_, _, err = tier.Lease(ctx, "k", time.Second)
	require.ErrorIs(t, err, ErrClosed)
	_, _, err = tier.Await(ctx, "k")
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, tier.Invalidate(ctx, "k"), ErrClosed)
	tier.Watch(nil, nil)() // does nothing
}

func TestLoggerPanicsAreContained(t *testing.T) {
	logger := slog.New(panicHandler{})
	tier := newTier[string](t, deadClient(t), Options[string]{Prefix: "p", Logger: logger, BreakerFailures: 1})
	_, _, err := tier.Get(context.Background(), "k") // opens the breaker, which logs
	require.Error(t, err)
	assert.True(t, tier.Stats().BreakerOpen)
}

type panicHandler struct{ slog.Handler }

func (panicHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (panicHandler) Handle(context.Context, slog.Record) error { panic("handler boom") }
