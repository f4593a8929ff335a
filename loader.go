package flightcache

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// FetchFunc loads the value of key, typically from a database or a remote
// service. It runs on a context that carries the values of the Get that
// started it but not that Get's cancellation, bounded by Config.FetchTimeout;
// the Loader cancels it when nobody needs the result any more and on Close.
// To say that key names no record, return (or wrap) ErrNotFound. To choose
// the lifetime of the entry it returns, it calls SetTTL with its context.
type FetchFunc[K comparable, V any] func(ctx context.Context, key K) (V, error)

// Loader wraps a FetchFunc so that concurrent Gets of one key share one
// fetch (flight mode) and, in cache mode, results are kept in a bounded
// cache (SIEVE, LRU or 2Q) with TTL tiers (fresh, stale, negative). Create one with New; the zero
// Loader is not usable. A Loader is safe for concurrent use by any number of
// goroutines.
//
// Every value a fetch returns is handed to all the Gets that shared it and,
// in cache mode, to later hits: treat values as read-only.
type Loader[K comparable, V any] struct {
	fetchFn  FetchFunc[K, V]
	name     string
	ttl      time.Duration
	staleTTL time.Duration
	negTTL   time.Duration
	jitter   float64
	beta     float64 // early refresh factor; 0: off
	clock    Clock   // nil: time.Now
	epoch    time.Time
	logger   *slog.Logger
	notFound func(error) bool // nil: ErrNotFound only
	rand     func() float64
	timed    bool // fetches are timed (not Config.DisableLoadTiming)

	cache    store[K, V]       // nil in flight mode
	sieve    *sieveCache[K, V] // cache, when it is one: called directly on the hit path
	lockFree bool              // sieve is set and early refresh is off: hits take get's lock-free path
	countHit bool              // hits are counted (not Config.DisableHitCounting)
	flight   group[K, V]

	batchFn BatchFunc[K, V] // nil: no batch fetch

	remote       Remote[K, V] // nil: no shared tier
	remoteTTL    time.Duration
	remoteNegTTL time.Duration
	leaseTimeout time.Duration
	remoteBudget time.Duration // RemoteTimeout; 0: none
	stopWatch    func()        // ends the Remote's invalidation feed
	st           counters
	closed       atomic.Bool
}

// New returns a Loader that loads values with fetch and behaves as cfg
// says, with the code-made parts given as options (WithRemote). It returns
// an error wrapping ErrInvalidConfig that names every problem with cfg, or
// with a nil fetch. The zero Config is valid: flight mode with no limits.
func New[K comparable, V any](fetch FetchFunc[K, V], cfg Config, opts ...Option[K, V]) (*Loader[K, V], error) {
	err := cfg.Validate()
	if fetch == nil {
		err = errors.Join(invalidf("fetch function is nil"), err)
	}
	if err != nil {
		return nil, err
	}
	l := &Loader[K, V]{
		fetchFn:  fetch,
		name:     cfg.Name,
		ttl:      cfg.TTL,
		staleTTL: cfg.StaleTTL,
		negTTL:   cfg.NegativeTTL,
		jitter:   cfg.Jitter,
		clock:    cfg.Clock,
		logger:   cfg.Logger,
		notFound: cfg.NotFound,
		rand:     cfg.Rand,
		timed:    !cfg.DisableLoadTiming,
		countHit: !cfg.DisableHitCounting,
	}
	if cfg.EarlyRefresh {
		l.beta = cfg.EarlyRefreshBeta
		if l.beta == 0 {
			l.beta = 1
		}
	}
	if l.name == "" {
		l.name = "default"
	}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	if l.rand == nil {
		l.rand = rand.Float64
	}
	if l.clock != nil {
		l.epoch = l.clock.Now()
	} else {
		l.epoch = time.Now()
	}
	for _, o := range opts {
		if o.apply != nil {
			o.apply(l)
		}
	}
	if err := l.initRemote(cfg); err != nil {
		return nil, err
	}
	if cfg.BatchWindow > 0 && l.batchFn == nil {
		return nil, invalidf("BatchWindow needs a batch fetch (WithBatch)")
	}
	if cfg.Mode == ModeCache {
		l.cache = newStore[K, V](cfg.Policy, cfg.MaxEntries)
		l.sieve, _ = l.cache.(*sieveCache[K, V])
		l.lockFree = l.sieve != nil && l.beta == 0
	}
	l.flight.init(l, &l.st, cfg, cfg.Mode == ModeFlight && l.remote == nil)
	if l.remote != nil {
		l.stopWatch = l.remote.Watch(l.remoteInvalidated, l.remoteReset)
	}
	return l, nil
}

// Name returns Config.Name, or "default" when it was empty.
func (l *Loader[K, V]) Name() string { return l.name }

// Get returns the value of key. In cache mode a fresh or stale entry is
// returned without waiting (a stale one also starts one background
// refresh), and a negative entry returns its not-found error. Otherwise Get
// joins the running load of key or starts one, and waits for it until ctx
// ends: then Get returns ctx.Err() at once, and the load carries on for any
// other waiter. A fetch's error is returned as the fetch returned it; a
// panic becomes a *PanicError. After Close, Get returns ErrClosed.
//
// Get is small enough to be inlined, and each path below it keeps few
// stack frames between the caller and a wait: a Get woken with a thousand
// others returns through cold stack lines.
func (l *Loader[K, V]) Get(ctx context.Context, key K) (V, error) {
	if l.cache != nil || l.closed.Load() {
		v, miss, err := l.get(ctx, key)
		if !miss {
			return v, err
		}
	}
	c, v, err := l.flight.join(ctx, key)
	if c != nil {
		// A waiter for a load, on a ctx that cannot end: it waits in this
		// frame (see group.join).
		<-c.done
		return c.val, c.err
	}
	return v, err
}

// get is Get in cache mode, and after Close, except that where a load is
// needed it reports miss instead of loading: Get loads, so that a Get
// waiting for a load has no frame of get's on its stack (see group.join).
func (l *Loader[K, V]) get(ctx context.Context, key K) (v V, miss bool, err error) {
	if !l.lockFree {
		return l.getOther(ctx, key)
	}
	// The default (SIEVE, no early refresh): a lock-free look-up. No
	// closed check: Close empties the cache before it returns, so a later
	// Get misses, and the flight core returns ErrClosed.
	now := l.now()
	v, fresh, held := l.sieve.getFresh(key, now)
	if fresh {
		l.hitCounted()
		return v, false, nil
	}
	if !held {
		return v, true, nil
	}
	return l.getHeld(ctx, key, now)
}

// getHeld is get for a key whose entry is held but not fresh (stale,
// negative or expired) at now.
func (l *Loader[K, V]) getHeld(ctx context.Context, key K, now int64) (v V, miss bool, err error) {
	if res := l.cache.get(key, now, 0); res.found {
		v, err = l.hit(ctx, key, res)
		return v, false, err
	}
	return v, true, nil
}

// getOther is get with the LRU or 2Q policy, early refresh, or after Close.
func (l *Loader[K, V]) getOther(ctx context.Context, key K) (v V, miss bool, err error) {
	if l.closed.Load() {
		return v, false, ErrClosed
	}
	now := l.now()
	var early float64
	if l.beta > 0 { // XFetch: β·(−ln u), u uniform in (0, 1]
		early = l.beta * -math.Log(1-l.rand())
	} else {
		fv, fresh, held := l.cache.getFresh(key, now)
		if fresh {
			l.hitCounted()
			return fv, false, nil
		}
		if !held {
			return v, true, nil
		}
	}
	if res := l.cache.get(key, now, early); res.found {
		v, err = l.hit(ctx, key, res)
		return v, false, err
	}
	return v, true, nil
}

// hitsUncounted reports whether Config.DisableHitCounting stops this
// Loader counting its hits (in cache mode: flight mode has none to count,
// and its zero is exact). The Collector then exports no hits series.
func (l *Loader[K, V]) hitsUncounted() bool { return l.cache != nil && !l.countHit }

// loadsUntimed reports whether Config.DisableLoadTiming stops this Loader
// timing its fetches. The Collector then exports no load-duration series.
func (l *Loader[K, V]) loadsUntimed() bool { return !l.timed }

// hitCounted counts a hit in Stats.Hits, unless Config.DisableHitCounting
// says not to.
func (l *Loader[K, V]) hitCounted() {
	if l.countHit {
		l.st.hit()
	}
}

// hit counts a Get answered from the cache and starts the refresh it asks
// for. It implements loadHooks too, for a hit found inside the flight.
func (l *Loader[K, V]) hit(ctx context.Context, key K, res lookup[K, V]) (V, error) {
	l.hitCounted()
	if res.stale {
		l.st.staleHits.Add(1)
	}
	if res.refresh != nil {
		l.startRefresh(ctx, key, res.refresh)
	}
	if res.negative {
		l.st.negativeHits.Add(1)
		var zero V
		return zero, res.err
	}
	return res.value, nil
}

// startRefresh starts a background refresh of key, replacing e, unless a
// load of key is running already.
func (l *Loader[K, V]) startRefresh(ctx context.Context, key K, e *entry[K, V]) {
	if _, started := l.flight.background(ctx, key, e); started {
		l.st.refreshes.Add(1)
		return
	}
	l.cache.refreshSkipped(e)
}

// Refresh reloads key in the background while Gets keep being answered
// from the cached entry, and returns at once. The returned channel is
// closed when the reload has ended, its result stored (or, on error, the old
// entry kept). If a load of key is running already, Refresh starts nothing
// and returns that load's channel. In flight mode, and after Close, it does
// nothing and returns a closed channel. A failed refresh is counted in
// Stats.RefreshErrors and logged.
func (l *Loader[K, V]) Refresh(ctx context.Context, key K) <-chan struct{} {
	if l.cache != nil && !l.closed.Load() {
		done, started := l.flight.background(ctx, key, nil)
		if started {
			l.st.refreshes.Add(1)
		}
		if done != nil {
			return done
		}
	}
	done := make(chan struct{})
	close(done)
	return done
}

// Set stores value for key as if a fetch had returned it, with Config.TTL
// (jittered) and Config.StaleTTL. A load of key that is running now still
// answers its own waiters but does not store its result over value, and
// later Gets do not join it. In flight mode nothing is stored locally; Set
// only detaches later Gets from a running load. With a Remote, the value is
// also stored in the shared tier, and the other instances drop their copies.
func (l *Loader[K, V]) Set(key K, value V) {
	if l.closed.Load() {
		return
	}
	l.flight.forget(key)
	l.remoteSet(key, value)
	if l.cache == nil {
		return
	}
	now := l.now()
	expires := addSat(now, l.jittered(l.ttl))
	if l.ttl == 0 {
		expires = never
	}
	e := newEntry(key, value, nil, expires, addSat(expires, l.staleTTL), 0)
	if n := l.cache.set(key, e); n > 0 {
		l.st.cell().evictions.Add(uint64(n))
	}
}

// Invalidate drops key, so that the next Get fetches it again. A load of
// key that is running now still answers its own waiters but neither stores
// its result nor is joined by later Gets. With a Remote, the key is also
// deleted from the shared tier and every other instance drops its copy; if
// the shared tier cannot be reached, that is counted in Stats.RemoteErrors
// and logged.
func (l *Loader[K, V]) Invalidate(key K) {
	l.dropLocal(key)
	l.remoteInvalidate(key)
}

// dropLocal is Invalidate without the shared tier.
func (l *Loader[K, V]) dropLocal(key K) {
	l.flight.forget(key)
	if l.cache != nil {
		l.cache.remove(key)
	}
}

// InvalidateAll is Invalidate for every key of this instance's local tier;
// the shared tier and other instances are left as they are.
func (l *Loader[K, V]) InvalidateAll() {
	l.flight.forgetAll()
	if l.cache != nil {
		l.cache.purge(false)
	}
}

// Len returns the number of entries held, negative entries and expired ones
// that have not been dropped yet included. It is 0 in flight mode.
func (l *Loader[K, V]) Len() int {
	if l.cache == nil {
		return 0
	}
	return l.cache.size()
}

// Stats returns a snapshot of the Loader's counters. It is safe to call
// at any time, from any goroutine; it reads the counters without a lock,
// and takes each flight shard's lock briefly to count InFlight (loads keep
// that count under the lock they hold anyway).
func (l *Loader[K, V]) Stats() Stats {
	s := l.st.snapshot()
	s.InFlight = l.flight.inFlight()
	s.Entries = l.Len()
	if l.remote != nil {
		rs := l.remote.Stats()
		s.RemoteBreakerOpen, s.RemoteWritesDropped, s.RemoteCorrupt = rs.BreakerOpen, rs.WritesDropped, rs.Corrupt
	}
	return s
}

// Close cancels the running fetches and refreshes, waits for them to
// return, drops the cache and makes later Gets return ErrClosed. Gets
// waiting for an interrupted load receive an error wrapping ErrClosed. Close
// leaves no goroutine behind; it waits for fetches that ignore their
// context's cancellation. Calling Close again does nothing. It always
// returns nil.
func (l *Loader[K, V]) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return nil
	}
	if l.stopWatch != nil {
		l.stopWatch()
	}
	if l.cache != nil {
		l.cache.purge(true)
	}
	l.flight.close()
	return nil
}

// now returns the time on the Loader's clock as nanoseconds since New.
// time.Time.Sub uses the monotonic clock when both readings have one, so a
// wall-clock jump neither expires entries nor keeps them forever.
func (l *Loader[K, V]) now() int64 {
	if l.clock == nil {
		return int64(time.Since(l.epoch))
	}
	return int64(l.clock.Now().Sub(l.epoch))
}

// jittered spreads ttl uniformly within ±Jitter·ttl, never below 1ns for
// a positive ttl (0 would mean "never expires").
func (l *Loader[K, V]) jittered(ttl time.Duration) time.Duration {
	if l.jitter == 0 || ttl <= 0 {
		return ttl
	}
	f := float64(ttl) * (1 + l.jitter*(2*l.rand()-1))
	if f >= math.MaxInt64 {
		return math.MaxInt64
	}
	return max(time.Duration(f), 1)
}

// isNotFound reports whether a fetch error says "no such record". Context
// errors never do, whatever they wrap.
func (l *Loader[K, V]) isNotFound(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return errors.Is(err, ErrNotFound) || l.notFound != nil && l.notFound(err)
}

// recheck implements loadHooks.
func (l *Loader[K, V]) recheck(key K) lookup[K, V] {
	if l.cache == nil {
		return lookup[K, V]{}
	}
	return l.cache.get(key, l.now(), 0)
}

// recheckBegin implements loadHooks.
func (l *Loader[K, V]) recheckBegin(key K) (lookup[K, V], uint64) {
	if l.cache == nil {
		return lookup[K, V]{}, 0
	}
	return l.cache.getOrBegin(key, l.now())
}

// begin implements loadHooks.
func (l *Loader[K, V]) begin(key K) uint64 {
	if l.cache == nil {
		return 0
	}
	return l.cache.begin(key)
}

// fetch implements loadHooks: it asks the shared tier when there is one,
// and otherwise runs the user's fetch.
func (l *Loader[K, V]) fetch(ctx context.Context, key K, c *call[K, V]) (V, error, time.Duration) {
	if l.remote != nil {
		return l.fetchShared(ctx, key, c)
	}
	if !l.timed {
		v, err := l.fetchFn(ctx, key)
		return v, err, 0
	}
	start := l.now()
	v, err := l.fetchFn(ctx, key)
	c.endAt = l.now() // done's "now": one clock read less per load
	return v, err, time.Duration(c.endAt - start)
}

// timedFetch runs the user's fetch and times it, unless fetches are not
// timed (then it reports 0).
func (l *Loader[K, V]) timedFetch(ctx context.Context, key K) (V, error, time.Duration) {
	if !l.timed {
		v, err := l.fetchFn(ctx, key)
		return v, err, 0
	}
	start := l.now()
	v, err := l.fetchFn(ctx, key)
	return v, err, time.Duration(l.now() - start)
}

// done implements loadHooks: it counts the finished load and, in cache
// mode, applies its result (store, drop, or keep the old entry) unless a
// write to key came after the load began.
func (l *Loader[K, V]) done(key K, c *call[K, V]) {
	notFound := c.err != nil && !c.abnormal && !c.batchFailed && l.isNotFound(c.err)
	failed := c.err != nil && !notFound
	switch {
	case c.background && failed:
		l.st.refreshErrors.Add(1)
	case c.err != nil && !c.background:
		l.st.loadErrors.Add(1)
	}
	if c.abnormal {
		l.st.panics.Add(1)
		attrs := []any{"loader", l.name, "error", c.err}
		if pe, ok := errors.AsType[*PanicError](c.err); ok {
			attrs = append(attrs, "stack", string(pe.Stack))
		}
		l.log(slog.LevelError, "flightcache: fetch did not return", attrs...)
	} else if c.took >= 0 && l.timed {
		l.st.observe(c.took)
	}
	if l.cache == nil {
		return
	}
	now := c.endAt
	if now == 0 { // not timed by fetch (shared tier, batch, panic)
		now = l.now()
	}
	e, drop := l.outcome(key, c, notFound, now)
	if n := l.cache.finish(key, c.token, e, drop); n > 0 {
		l.st.cell().evictions.Add(uint64(n))
	}
	if c.background && failed {
		attrs := []any{"loader", l.name, "error", c.err}
		if c.refreshOf != nil {
			attrs = append(attrs, "retry_in", l.cache.refreshFailed(c.refreshOf, now))
		}
		l.log(slog.LevelWarn, "flightcache: background refresh failed; serving the stale value", attrs...)
	}
}

// outcome turns a finished load into the entry to store, or nil with drop
// set when the key's entry must go (a zero TTL chosen by the fetch, or a
// not-found that is not cached), or nil alone when the entry stays as it is
// (errors, which are never cached).
func (l *Loader[K, V]) outcome(key K, c *call[K, V], notFound bool, now int64) (e *entry[K, V], drop bool) {
	if c.err != nil && !notFound {
		return nil, false
	}
	ttl, stale := l.jittered(l.ttl), l.staleTTL
	if notFound {
		ttl, stale = l.jittered(l.negTTL), 0
	}
	if c.entryTTL.hasTTL.Load() {
		ttl = time.Duration(c.entryTTL.ttl.Load())
		if ttl <= 0 {
			return nil, true
		}
	} else if ttl == 0 && notFound {
		return nil, true
	}
	if c.entryTTL.hasStale.Load() && !notFound {
		stale = time.Duration(c.entryTTL.stale.Load())
	}
	var expires int64 = never
	if ttl > 0 {
		expires = addSat(now, ttl)
	}
	staleUntil := addSat(expires, stale)
	if c.maxLife > 0 { // a local copy is never fresh longer than the shared one
		expires = min(expires, addSat(now, c.maxLife))
		staleUntil = min(staleUntil, addSat(expires, stale))
	}
	var took time.Duration
	if l.beta > 0 { // only early refresh needs it
		took = max(c.took, 0)
	}
	if notFound {
		var zero V
		return newEntry(key, zero, c.err, expires, staleUntil, took), false
	}
	return newEntry(key, c.val, nil, expires, staleUntil, took), false
}

// log reports through Config.Logger. A panicking handler is contained: a
// report is never worth the process.
func (l *Loader[K, V]) log(level slog.Level, msg string, attrs ...any) {
	defer func() { _ = recover() }()
	l.logger.Log(context.Background(), level, msg, attrs...)
}

// compile-time check that a Loader is a metrics Source.
var _ Source = (*Loader[string, int])(nil)
