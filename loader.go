package flightcache

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync/atomic"
	"time"
)

// FetchFunc loads the value of key, typically from a database or a remote
// service. It runs on a context that carries the values of the Get that
// started it but not that Get's cancellation, bounded by Config.FetchTimeout;
// the Loader cancels it when nobody needs the result any more and on Close.
// To say that key names no record, return (or wrap) ErrNotFound.
type FetchFunc[K comparable, V any] func(ctx context.Context, key K) (V, error)

// Loader wraps a FetchFunc so that concurrent Gets of one key share one
// fetch (flight mode) and, in cache mode, results are kept in a bounded LRU
// for a TTL. Create one with New; the zero Loader is not usable. A Loader is
// safe for concurrent use by any number of goroutines.
//
// Every value a fetch returns is handed to all the Gets that shared it and,
// in cache mode, to later hits: treat values as read-only.
type Loader[K comparable, V any] struct {
	fetchFn FetchFunc[K, V]
	name    string
	ttl     time.Duration
	clock   Clock     // nil: time.Now
	epoch   time.Time // instant 0 of the int64 times the cache stores
	logger  *slog.Logger

	cache  *cache[K, V] // nil in flight mode
	flight group[K, V]
	st     counters
	closed atomic.Bool
}

// New returns a Loader that loads values with fetch and behaves as cfg
// says. It returns an error wrapping ErrInvalidConfig that names every
// problem with cfg, or with a nil fetch. The zero Config is valid: flight
// mode with no limits.
func New[K comparable, V any](fetch FetchFunc[K, V], cfg Config) (*Loader[K, V], error) {
	err := cfg.Validate()
	if fetch == nil {
		err = errors.Join(invalidf("fetch function is nil"), err)
	}
	if err != nil {
		return nil, err
	}
	l := &Loader[K, V]{
		fetchFn: fetch,
		name:    cfg.Name,
		ttl:     cfg.TTL,
		clock:   cfg.Clock,
		logger:  cfg.Logger,
	}
	if l.name == "" {
		l.name = "default"
	}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	if l.clock != nil {
		l.epoch = l.clock.Now()
	} else {
		l.epoch = time.Now()
	}
	if cfg.Mode == ModeCache {
		l.cache = newCache[K, V](cfg.MaxEntries)
	}
	l.flight.init(l, &l.st, cfg)
	return l, nil
}

// Name returns Config.Name, or "default" when it was empty.
func (l *Loader[K, V]) Name() string { return l.name }

// Get returns the value of key. In cache mode a fresh entry is returned
// without fetching. Otherwise Get joins the running load of key or starts
// one, and waits for it until ctx ends: then Get returns ctx.Err() at once,
// and the load carries on for any other waiter. A fetch's error is returned
// as the fetch returned it; a panic becomes a *PanicError. After Close, Get
// returns ErrClosed.
func (l *Loader[K, V]) Get(ctx context.Context, key K) (V, error) {
	if l.closed.Load() {
		var zero V
		return zero, ErrClosed
	}
	if l.cache != nil {
		if v, ok := l.cache.get(key, l.now()); ok {
			l.st.hits.Add(1)
			return v, nil
		}
	}
	return l.flight.do(ctx, key)
}

// Set stores value for key as if a fetch had returned it, for TTL. A load
// of key that is running now still answers its own waiters but does not
// store its result over value, and later Gets do not join it. In flight mode
// nothing is stored; Set only detaches later Gets from a running load.
func (l *Loader[K, V]) Set(key K, value V) {
	if l.closed.Load() {
		return
	}
	l.flight.forget(key)
	if l.cache != nil && l.cache.set(key, value, l.expiry(l.now(), l.ttl)) {
		l.st.evictions.Add(1)
	}
}

// Invalidate drops key, so that the next Get fetches it again. A load of
// key that is running now still answers its own waiters but neither stores
// its result nor is joined by later Gets.
func (l *Loader[K, V]) Invalidate(key K) {
	l.flight.forget(key)
	if l.cache != nil {
		l.cache.remove(key)
	}
}

// InvalidateAll is Invalidate for every key.
func (l *Loader[K, V]) InvalidateAll() {
	l.flight.forgetAll()
	if l.cache != nil {
		l.cache.purge(false)
	}
}

// Len returns the number of entries held, expired ones that have not been
// dropped yet included. It is 0 in flight mode.
func (l *Loader[K, V]) Len() int {
	if l.cache == nil {
		return 0
	}
	return int(l.cache.len.Load())
}

// Stats returns a snapshot of the Loader's counters. It takes no lock.
func (l *Loader[K, V]) Stats() Stats {
	s := l.st.snapshot()
	s.Entries = l.Len()
	return s
}

// Close cancels the running fetches, waits for them to return, drops the
// cache and makes later Gets return ErrClosed. Gets waiting for an
// interrupted load receive an error wrapping ErrClosed. Close leaves no
// goroutine behind; it waits for fetches that ignore their context's
// cancellation. Calling Close again does nothing. It always returns nil.
func (l *Loader[K, V]) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return nil
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

// expiry returns now+ttl, saturating instead of overflowing; a ttl of 0
// means never.
func (l *Loader[K, V]) expiry(now int64, ttl time.Duration) int64 {
	if ttl <= 0 || now > math.MaxInt64-int64(ttl) {
		return never
	}
	return now + int64(ttl)
}

// recheck implements loadHooks.
func (l *Loader[K, V]) recheck(key K) (V, bool) {
	if l.cache == nil {
		var zero V
		return zero, false
	}
	return l.cache.get(key, l.now())
}

// begin implements loadHooks.
func (l *Loader[K, V]) begin(key K) uint64 {
	if l.cache == nil {
		return 0
	}
	return l.cache.begin(key)
}

// fetch implements loadHooks: it runs the user's fetch and times it.
func (l *Loader[K, V]) fetch(ctx context.Context, key K) (V, error, time.Duration) {
	start := l.now()
	v, err := l.fetchFn(ctx, key)
	return v, err, time.Duration(l.now() - start)
}

// done implements loadHooks: it counts the finished load and, in cache
// mode, stores a successful result unless a write to key came after the
// load began.
func (l *Loader[K, V]) done(key K, c *call[V]) {
	switch {
	case c.abnormal:
		l.st.panics.Add(1)
		l.st.loadErrors.Add(1)
		attrs := []any{"loader", l.name, "error", c.err}
		var pe *PanicError
		if errors.As(c.err, &pe) {
			attrs = append(attrs, "stack", string(pe.Stack))
		}
		l.log(slog.LevelError, "flightcache: fetch did not return", attrs...)
	case c.err != nil:
		l.st.loadErrors.Add(1)
	}
	if !c.abnormal && c.took >= 0 {
		l.st.observe(c.took)
	}
	if l.cache == nil {
		return
	}
	_, evicted := l.cache.finish(key, c.token, c.err == nil, c.val, l.expiry(l.now(), l.ttl))
	if evicted {
		l.st.evictions.Add(1)
	}
}

// log reports through Config.Logger. A panicking handler is contained: a
// report is never worth the process.
func (l *Loader[K, V]) log(level slog.Level, msg string, attrs ...any) {
	defer func() { _ = recover() }()
	l.logger.Log(context.Background(), level, msg, attrs...)
}

// compile-time check that a Loader is a metrics Source.
var _ Source = (*Loader[string, int])(nil)
