package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"
)

// Fetch loads the value of key: the function every adapter calls on a miss.
// It is an alias so that it converts to each library's own function type.
type Fetch = func(ctx context.Context, key string) (string, error)

// Setup is what every adapter is built from.
type Setup struct {
	// Capacity bounds the number of entries (ignored in flight mode).
	Capacity int
	// TTL is how long a fetched value is served; > 0.
	TTL time.Duration
	// StaleTTL is the window after TTL in which a library with a stale
	// tier serves the old value while it refreshes the key; others ignore it.
	StaleTTL time.Duration
	// Fetch loads a value.
	Fetch Fetch
}

// Cache is one library behind the harness's interface. Get returns the
// value of key, loading it with Setup.Fetch when the library has not got
// it; concurrent Gets of one key are meant to share one fetch.
type Cache interface {
	Get(ctx context.Context, key string) (string, error)
	// Close stops whatever the library runs in the background.
	Close()
}

// joinCounter is implemented by a Cache that counts the Gets that joined a
// fetch already running (flightcache: Stats().Shared). Scenarios that need
// their waiters committed to a fetch before they go on (cancelling the
// first caller, letting the fetch finish) wait for the count where it
// exists; for the other libraries they allow time.
type joinCounter interface {
	Joined() uint64
}

// waitJoined waits until c has counted want joins, yielding the processor
// in between; it reports false if c counts none, or after limit.
func waitJoined(c Cache, want uint64, limit time.Duration) bool {
	jc, ok := c.(joinCounter)
	if !ok {
		return false
	}
	deadline := time.Now().Add(limit)
	for jc.Joined() < want {
		if time.Now().After(deadline) {
			return false
		}
		runtime.Gosched()
	}
	return true
}

// Kind says what a library keeps.
type Kind int

const (
	// Flight libraries share concurrent fetches and keep nothing.
	Flight Kind = iota
	// Cached libraries also keep results for the TTL.
	Cached
	// Reference models are single-lock caches used only to measure what an
	// eviction policy's hit ratio should be; they are not peers.
	Reference
)

// Library is one contender.
type Library struct {
	// Name is the benchmark sub-name, e.g. "otter".
	Name string
	// Kind says whether it caches.
	Kind Kind
	// Stale is set for a library configured with a stale-while-revalidate
	// window of Setup.StaleTTL.
	Stale bool
	// Flightcache is set for flightcache's own adapters.
	Flightcache bool
	// HitOnly marks a variant that only the hit path measures: a library
	// with its hit statistics switched the other way from its default, so
	// that counted hits meet counted hits and uncounted meet uncounted.
	HitOnly bool
	// CountsHits is set for a configuration that counts its hits (a
	// statistic a user can read): the hit path compares counted with counted.
	CountsHits bool
	// New builds one instance.
	New func(Setup) (Cache, error)
	// Note says what the adapter does beyond calling the library, for the
	// results page.
	Note string
}

// Libraries returns every adapter, flightcache's first.
func Libraries() []Library {
	return slices.Clone(libraries)
}

// Lookup returns the library named name.
func Lookup(name string) (Library, error) {
	for _, l := range libraries {
		if l.Name == name {
			return l, nil
		}
	}
	return Library{}, fmt.Errorf("bench: no library named %q", name)
}

// Select returns the libraries that keep passes.
func Select(keep func(Library) bool) []Library {
	var out []Library
	for _, l := range libraries {
		if keep(l) {
			out = append(out, l)
		}
	}
	return out
}

// Peers of the workloads, as selectors for Select.
var (
	// Caches are the caching libraries without a stale window: the hit
	// path, mixed zipf and memory contenders.
	Caches = func(l Library) bool { return l.Kind == Cached && !l.Stale && !l.HitOnly }
	// HitPath are the hit path contenders: the caches and the HitOnly
	// variants.
	HitPath = func(l Library) bool { return l.Kind == Cached && !l.Stale }
	// Loaders are every peer without a stale window, flight-only ones
	// included: the miss storm and cancellation contenders.
	Loaders = func(l Library) bool { return l.Kind != Reference && !l.Stale && !l.HitOnly }
	// Expiring are the caching libraries, stale windows included: the
	// expiry stampede contenders.
	Expiring = func(l Library) bool { return l.Kind == Cached && !l.HitOnly }
	// Flights are the flight-only libraries.
	Flights = func(l Library) bool { return l.Kind == Flight }
	// WithReferences are the caches plus the reference models: the
	// mixed zipf and hit ratio contenders.
	WithReferences = func(l Library) bool { return (l.Kind == Cached && !l.Stale && !l.HitOnly) || l.Kind == Reference }
)

// errNotLoaded is returned by adapters whose library reports a failed load
// as "no item" rather than with the fetch's error.
var errNotLoaded = errors.New("bench: the library returned no value (its loader cannot return an error)")

// libraries is the registry; each entry's constructor lives in the file of
// its library.
var libraries = []Library{
	{Name: "flightcache-flight", Kind: Flight, Flightcache: true, New: newFlightcacheFlight,
		Note: "`Config{InlineFetch: true}` (flight mode; a Get with a non-cancelable ctx runs the load itself)"},
	{Name: "flightcache-flight-untimed", Kind: Flight, Flightcache: true, New: newFlightcacheFlightUntimed,
		Note: "`Config{InlineFetch: true, DisableLoadTiming: true}` (as flightcache-flight, without the load-duration histogram)"},
	{Name: "flightcache", Kind: Cached, Flightcache: true, CountsHits: true, New: newFlightcacheCache,
		Note: "`ModeCache`, `MaxEntries`, `TTL`, `InlineFetch` (default policy: SIEVE)"},
	{Name: "flightcache-uncounted", Kind: Cached, HitOnly: true, Flightcache: true, New: newFlightcacheUncounted,
		Note: "as flightcache, plus `DisableHitCounting` (`Stats.Hits` not counted; hit path only)"},
	{Name: "flightcache-2q", Kind: Cached, Flightcache: true, New: newFlightcache2Q,
		Note: "`ModeCache` with `Policy: Policy2Q` (no `InlineFetch`: every load in its own goroutine)"},
	{Name: "flightcache-stale", Kind: Cached, Stale: true, Flightcache: true, New: newFlightcacheCache,
		Note: "`ModeCache` with `StaleTTL`, `InlineFetch`"},
	{Name: "singleflight", Kind: Flight, New: newSingleflightDo,
		Note: "x/sync `Group.Do`; the fetch gets the first caller's ctx"},
	{Name: "singleflight-dochan", Kind: Flight, New: newSingleflightDoChan,
		Note: "x/sync `Group.DoChan` + `select` on ctx (callers can leave); the fetch gets the first caller's ctx"},
	{Name: "golang-lru+sf", Kind: Cached, New: newGolangLRU,
		Note: "`lru.Cache` + `singleflight.Group` by hand: expiry time stored with the value, re-check inside the flight"},
	{Name: "otter", Kind: Cached, New: newOtter,
		Note: "`Options{MaximumSize, ExpiryCalculator: ExpiryWriting}`, `Cache.Get` with a `LoaderFunc`"},
	{Name: "otter-stats", Kind: Cached, HitOnly: true, CountsHits: true, New: newOtterStats,
		Note: "as otter, plus `StatsRecorder: stats.NewCounter()` (hits counted, as flightcache counts them by default; hit path only)"},
	{Name: "otter-refresh", Kind: Cached, Stale: true, New: newOtter,
		Note: "as otter, plus `RefreshCalculator: RefreshWriting(TTL)` and expiry after TTL+StaleTTL"},
	{Name: "sturdyc", Kind: Cached, New: newSturdyc,
		Note: "`New(capacity, 10 shards, ttl, 10%, WithNoContinuousEvictions())`, `GetOrFetch` (a closure per call, as its API requires)"},
	{Name: "ttlcache", Kind: Cached, CountsHits: true, New: newTTLCache,
		Note: "`WithLoader(NewSuppressedLoader(...))`, `WithCapacity`, `WithTTL`, `WithDisableTouchOnHit` (expire after write, as the others); its loader gets no ctx"},
	{Name: "ristretto+sf", Kind: Cached, New: newRistretto,
		Note: "`Cache` + `singleflight.Group` by hand: re-check inside the flight, `SetWithTTL` then `Wait()` (Set is asynchronous)"},
	{Name: "lru-exact", Kind: Reference, New: newExactLRU,
		Note: "reference: `simplelru.LRU` under one mutex, fetch under the lock"},
	{Name: "2q", Kind: Reference, New: newTwoQueue,
		Note: "reference: golang-lru `TwoQueueCache` (2Q) under one mutex, fetch under the lock"},
}

// DefaultStaleTTL is the stale window of the Stale libraries when a Setup
// gives none.
const DefaultStaleTTL = time.Second

// Open builds an instance from s: a Stale library gets s.StaleTTL
// (DefaultStaleTTL when zero), the others none.
func (l Library) Open(s Setup) (Cache, error) {
	if !l.Stale {
		s.StaleTTL = 0
	} else if s.StaleTTL == 0 {
		s.StaleTTL = DefaultStaleTTL
	}
	c, err := l.New(s)
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", l.Name, err)
	}
	return c, nil
}
