package flightcache

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Remote is a tier shared by every instance of a service, such as Redis
// (see the redistier module), consulted between the local cache and the
// fetch: local cache → Remote → fetch. It also lets one instance of the fleet
// fetch a key while the others wait for its result (leases), and carries
// invalidations to every instance. A Loader uses one through WithRemote.
//
// Implementations must be safe for concurrent use, bound every call by
// their own timeout, and report failures as errors rather than panics: a
// Loader treats any error as "the shared tier is unavailable" and carries on
// with the local flight and fetch, so a request never fails because the
// shared tier did. Keys and values are encoded by the implementation.
type Remote[K comparable, V any] interface {
	// Get returns the record stored for key; ok is false when there is
	// none. Bytes that do not decode are reported as none (ok false, nil
	// error), never returned.
	Get(ctx context.Context, key K) (rec RemoteRecord[V], ok bool, err error)

	// Set stores rec for key for rec.TTL (> 0).
	Set(ctx context.Context, key K, rec RemoteRecord[V]) error

	// Invalidate deletes key and tells every other instance to drop its
	// local copy (their Watch's onInvalidate).
	Invalidate(ctx context.Context, key K) error

	// Lease tries to take, for at most ttl, the fleet-wide right to fetch
	// key. ok is false when another instance holds it. release gives the
	// lease up and wakes the instances waiting in Await; it is safe to call
	// after the lease has expired or been taken by another instance (it
	// then does nothing to that instance's lease).
	Lease(ctx context.Context, key K, ttl time.Duration) (release func(), ok bool, err error)

	// Await waits until a record for key is stored and returns it. It
	// returns ok false as soon as the key's lease is released without a
	// record being stored, or when ctx ends.
	Await(ctx context.Context, key K) (rec RemoteRecord[V], ok bool, err error)

	// Watch delivers, until stop is called, the invalidations sent by other
	// instances: onInvalidate for one key, onReset when some may have been
	// missed (the subscription broke and was re-established), so the local
	// tier must be flushed. Handlers must not block. stop returns once no
	// handler runs any more and the delivering goroutine has ended.
	Watch(onInvalidate func(key K), onReset func()) (stop func())

	// Stats returns the implementation's own counters.
	Stats() RemoteStats
}

// RemoteRecord is one key's record in a Remote.
type RemoteRecord[V any] struct {
	// Value is the fetched value; zero for a not-found record.
	Value V
	// NotFound marks a negative record: the key names no record.
	NotFound bool
	// TTL is, for Set, how long to keep the record; for Get and Await, how
	// long it has left.
	TTL time.Duration
}

// RemoteStats are the counters a Remote keeps itself; Loader.Stats includes
// them.
type RemoteStats struct {
	// BreakerOpen is true while the implementation skips the store after
	// repeated failures.
	BreakerOpen bool
	// WritesDropped counts writes that failed or were skipped.
	WritesDropped uint64
	// Corrupt counts stored records that did not decode (wrong version, too
	// large, bad bytes) and were treated as misses.
	Corrupt uint64
}

// Option configures a Loader beyond what a Config can say: things made of
// code. The zero Option does nothing.
type Option[K comparable, V any] struct {
	apply func(*Loader[K, V])
}

// WithRemote makes the Loader consult r between its local cache and the
// fetch, unless Config.DisableRemote is set. Its type arguments must be
// given: flightcache.WithRemote[string, User](tier).
func WithRemote[K comparable, V any](r Remote[K, V]) Option[K, V] {
	return Option[K, V]{apply: func(l *Loader[K, V]) { l.remote = r }}
}

// errRemoteNotFound is returned for a not-found record of the shared tier.
var errRemoteNotFound = fmt.Errorf("%w (recorded in the shared tier)", ErrNotFound)

// initRemote validates and records the shared-tier settings. A Remote given
// with WithRemote is dropped when cfg.DisableRemote is set.
func (l *Loader[K, V]) initRemote(cfg Config) error {
	if cfg.DisableRemote {
		l.remote = nil
	}
	if l.remote == nil {
		return nil
	}
	l.remoteTTL = cmp.Or(cfg.RemoteTTL, cfg.TTL)
	l.remoteNegTTL = cmp.Or(cfg.RemoteNegativeTTL, cfg.NegativeTTL)
	l.leaseTimeout = cmp.Or(cfg.RemoteLeaseTimeout, cfg.FetchTimeout, 5*time.Second)
	l.remoteBudget = cfg.RemoteTimeout
	if l.remoteTTL <= 0 {
		return invalidf("RemoteTTL (or TTL) must be > 0 when a Remote is used")
	}
	return nil
}

// fetchShared loads key through the shared tier: a record stored there
// answers at once; otherwise this instance takes the key's fleet-wide lease
// and fetches (storing the result for the others), or waits for the
// instance that holds it, up to the lease timeout, then fetches itself. Any
// failure of the shared tier skips its remaining steps for this load, so it
// adds at most one Remote timeout to it.
func (l *Loader[K, V]) fetchShared(ctx context.Context, key K, c *call[K, V]) (V, error, time.Duration) {
	rctx := ctx // the look-up, lease and re-check share RemoteTimeout
	if l.remoteBudget > 0 {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, l.remoteBudget)
		defer cancel()
	}
	// A refresh exists because this instance's copy is stale: reading the
	// shared copy back would not renew it. It goes to the lease instead, so
	// that one instance of the fleet refreshes and the others take its
	// result.
	if !c.background {
		var rec RemoteRecord[V]
		var ok bool
		err := l.remoteCall(func() (err error) { rec, ok, err = l.remote.Get(rctx, key); return err })
		switch {
		case err != nil:
			l.remoteFailed("get", err)
			return l.timedFetch(ctx, key)
		case ok:
			return l.fromShared(c, rec)
		}
		l.st.remoteMisses.Add(1)
	}

	var release func()
	var leased bool
	err := l.remoteCall(func() (err error) { release, leased, err = l.remote.Lease(rctx, key, l.leaseTimeout); return err })
	if err != nil {
		l.remoteFailed("lease", err)
		return l.timedFetch(ctx, key)
	}
	if leased {
		// Whatever happens to the fetch (even a panic), the lease goes
		// once the callers have their result; storeShared puts the write
		// before it.
		c.after = func() { _ = l.remoteCall(func() error { release(); return nil }) }
	}
	if leased && !c.background {
		// Another instance may have stored the key between our Get and our
		// Lease: look once more before fetching.
		var rec RemoteRecord[V]
		var ok bool
		if err := l.remoteCall(func() (err error) { rec, ok, err = l.remote.Get(rctx, key); return err }); err == nil && ok {
			return l.fromShared(c, rec)
		}
	}
	if !leased {
		l.st.leaseWaits.Add(1)
		wctx, cancel := context.WithTimeout(ctx, l.leaseTimeout)
		var rec RemoteRecord[V]
		var ok bool
		err := l.remoteCall(func() (err error) { rec, ok, err = l.remote.Await(wctx, key); return err })
		cancel()
		if ok {
			return l.fromShared(c, rec)
		}
		if ctx.Err() != nil { // the load itself was cancelled (Close, abandoned)
			var zero V
			return zero, ctx.Err(), -1
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			l.remoteFailed("await", err)
			return l.timedFetch(ctx, key)
		}
		// The holder gave up or timed out: fetch here, without a lease.
		v, err, took := l.timedFetch(ctx, key)
		l.storeShared(ctx, key, c, v, err, nil)
		return v, err, took
	}
	v, err, took := l.timedFetch(ctx, key)
	l.storeShared(ctx, key, c, v, err, release)
	return v, err, took
}

// fromShared answers a load from a shared-tier record; the local copy will
// end no later than the shared one.
func (l *Loader[K, V]) fromShared(c *call[K, V], rec RemoteRecord[V]) (V, error, time.Duration) {
	l.st.remoteHits.Add(1)
	c.maxLife = max(rec.TTL, 1)
	if rec.NotFound {
		var zero V
		return zero, errRemoteNotFound, -1
	}
	return rec.Value, nil, -1
}

// storeShared arranges for a fetch's result to be written to the shared
// tier — a value for RemoteTTL (or the TTL the fetch chose), a not-found
// answer for RemoteNegativeTTL; errors are never stored — and then for the
// lease, if any, to be released, in that order, so the instances waiting in
// Await find the record. The writes run after the load's own callers have
// their result (call.after), so a slow shared tier does not delay them.
func (l *Loader[K, V]) storeShared(ctx context.Context, key K, c *call[K, V], v V, err error, release func()) {
	rec := RemoteRecord[V]{Value: v, TTL: l.remoteTTL}
	store := true
	if err != nil {
		if c.batchFailed || !l.isNotFound(err) {
			store = false
		}
		rec = RemoteRecord[V]{NotFound: true, TTL: l.remoteNegTTL}
	}
	if c.entryTTL.hasTTL.Load() {
		rec.TTL = time.Duration(c.entryTTL.ttl.Load())
	}
	if rec.TTL <= 0 {
		store = false
	}
	if store {
		c.maxLife = rec.TTL
	}
	if !store && release == nil {
		return
	}
	wctx := context.WithoutCancel(ctx) // the load's context ends with it
	c.after = func() {
		if store {
			if err := l.remoteCall(func() error { return l.remote.Set(wctx, key, rec) }); err != nil {
				l.remoteFailed("set", err)
			}
		}
		if release != nil {
			_ = l.remoteCall(func() error { release(); return nil })
		}
	}
}

// remoteSet is Set's part in the shared tier: the value is stored there and
// the other instances drop their copies.
func (l *Loader[K, V]) remoteSet(key K, value V) {
	if l.remote == nil {
		return
	}
	ctx := context.Background()
	if err := l.remoteCall(func() error { return l.remote.Invalidate(ctx, key) }); err != nil {
		l.remoteFailed("invalidate", err)
		return
	}
	l.st.invSent.Add(1)
	if err := l.remoteCall(func() error { return l.remote.Set(ctx, key, RemoteRecord[V]{Value: value, TTL: l.remoteTTL}) }); err != nil {
		l.remoteFailed("set", err)
	}
}

// remoteInvalidate is Invalidate's part in the shared tier.
func (l *Loader[K, V]) remoteInvalidate(key K) {
	if l.remote == nil || l.closed.Load() {
		return
	}
	if err := l.remoteCall(func() error { return l.remote.Invalidate(context.Background(), key) }); err != nil {
		l.remoteFailed("invalidate", err)
		return
	}
	l.st.invSent.Add(1)
}

// remoteInvalidated handles an invalidation sent by another instance.
func (l *Loader[K, V]) remoteInvalidated(key K) {
	l.st.invReceived.Add(1)
	l.dropLocal(key)
}

// remoteReset handles a break in the invalidation feed: invalidations may
// have been missed, so the whole local tier goes.
func (l *Loader[K, V]) remoteReset() {
	l.st.invReceived.Add(1)
	l.flight.forgetAll()
	if l.cache != nil {
		l.cache.purge(false)
	}
}

// remoteCall runs one call of the Remote, turning a panic in it into an
// error: a broken shared tier is treated like an unreachable one.
func (l *Loader[K, V]) remoteCall(f func() error) (err error) {
	if perr := catchPanic(func() { err = f() }); perr != nil {
		return perr
	}
	return err
}

// remoteFailed counts and logs a failed shared-tier call.
func (l *Loader[K, V]) remoteFailed(op string, err error) {
	l.st.remoteErrors.Add(1)
	l.log(slog.LevelWarn, "flightcache: shared tier unavailable; carrying on without it", "loader", l.name, "op", op, "error", err)
}
