package redistier

import (
	"context"
	"crypto/rand"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flightcache/flightcache"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// redisAddr is the address of the Redis the tests use.
func redisAddr() string {
	if a := os.Getenv("FLIGHTCACHE_TEST_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// unavailable skips the test because something it needs is missing, or
// fails it under CI=true, where everything must be there.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (required under CI=true)", args...)
	}
	t.Skipf(format, args...)
}

// newClient returns a client of the test Redis, closed at cleanup. It skips
// the test when no Redis answers (fails it under CI=true).
func newClient(t testing.TB, mods ...func(*redis.Options)) *redis.Client {
	t.Helper()
	opt := &redis.Options{Addr: redisAddr(), ContextTimeoutEnabled: true}
	for _, m := range mods {
		m(opt)
	}
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		unavailable(t, "no Redis answers at %s (set FLIGHTCACHE_TEST_REDIS_ADDR to use another): %v", opt.Addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// testPrefix returns a prefix unique to this run of the test and deletes
// its keys at cleanup.
func testPrefix(t testing.TB, client redis.UniversalClient) string {
	t.Helper()
	p := "fctest:" + rand.Text()[:12]
	t.Cleanup(func() { deleteKeys(t, client, p+":*") })
	return p
}

// deleteKeys deletes the keys matching pattern.
func deleteKeys(t testing.TB, client redis.UniversalClient, pattern string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	iter := client.Scan(ctx, 0, pattern, 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Logf("cleanup of %s: %v", pattern, err)
		return
	}
	if len(keys) > 0 {
		if err := client.Del(ctx, keys...).Err(); err != nil {
			t.Logf("cleanup of %s: %v", pattern, err)
		}
	}
}

// newTier returns a Tier with string keys, closed at cleanup. Timeout
// defaults to 1s here: the unit tests are about behaviour, not deadlines.
func newTier[V any](t testing.TB, client redis.UniversalClient, opts Options[string]) *Tier[string, V] {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = time.Second
	}
	tier, err := New[string, V](client, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tier.Close() })
	return tier
}

// deadClient returns a client of an address where nothing listens (calls
// fail at once with "connection refused"), closed at cleanup.
func deadClient(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// fakeClock is a Clock moved by hand; it starts at the real time.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

func (c *fakeClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// recv returns the next value of ch, failing the test after timeout: for
// events that cross a real Redis.
func recv[T any](t testing.TB, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
		panic("unreachable")
	}
}

// durations summarizes a sample of durations.
type durations []time.Duration

func (d durations) percentile(p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

// recOf is a record of v for a minute.
func recOf(v string) flightcache.RemoteRecord[string] {
	return flightcache.RemoteRecord[string]{Value: v, TTL: time.Minute}
}

// commandCount counts the data commands a client sends through its Process
// and pipeline paths. Connection set-up (HELLO, CLIENT SETINFO, AUTH, SELECT,
// PING), which passes there too whenever a connection is opened (by a
// pub/sub reconnect as well), is not counted; pub/sub traffic itself does not
// pass there. Tests use it to tell a call that was skipped from one that
// reached Redis without reading the clock.
type commandCount struct{ n atomic.Int64 }

// countCommands installs a commandCount on client.
func countCommands(client *redis.Client) *commandCount {
	c := &commandCount{}
	client.AddHook(c)
	return c
}

// count adds the data commands among cmds.
func (c *commandCount) count(cmds ...redis.Cmder) {
	for _, cmd := range cmds {
		switch cmd.Name() {
		case "hello", "client", "auth", "select", "ping":
		default:
			c.n.Add(1)
		}
	}
}

func (c *commandCount) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commandCount) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.count(cmd)
		return next(ctx, cmd)
	}
}

func (c *commandCount) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.count(cmds...)
		return next(ctx, cmds)
	}
}
