package flightcache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// BatchFunc loads several keys with one query, such as
// "SELECT ... WHERE id = ANY($1)". It returns the values it found; a key
// absent from the map is not found. An error fails every key of the call
// (and is never taken for "not found"). Like a FetchFunc, it runs on a
// context that keeps the first caller's values but not its cancellation.
type BatchFunc[K comparable, V any] func(ctx context.Context, keys []K) (map[K]V, error)

// WithBatch gives the Loader a batch fetch: GetMany loads all its missing
// keys with it (in calls of at most Config.MaxBatchSize keys), and with
// Config.BatchWindow set, single Gets are coalesced into it too.
func WithBatch[K comparable, V any](fetch BatchFunc[K, V]) Option[K, V] {
	return Option[K, V]{apply: func(l *Loader[K, V]) { l.batchFn = fetch }}
}

// ErrNotRequested is returned by Results.Get for a key that was not asked
// for.
var ErrNotRequested = errors.New("flightcache: key was not requested")

// errBatchAbsent is the not-found error of a key a batch fetch left out.
var errBatchAbsent = fmt.Errorf("%w: the batch fetch returned no value for this key", ErrNotFound)

// Results holds the outcome of GetMany, key by key. Its zero value holds
// nothing. It is safe for concurrent reads.
type Results[K comparable, V any] struct {
	values map[K]V
	errs   map[K]error
}

// Get returns the value of one requested key, or the error that key met:
// errors.Is(err, ErrNotFound) for a key the fetch did not find, the fetch's
// own error, ctx.Err(), ... For a key that was not requested it returns
// ErrNotRequested.
func (r Results[K, V]) Get(key K) (V, error) {
	if v, ok := r.values[key]; ok {
		return v, nil
	}
	if err, ok := r.errs[key]; ok {
		var zero V
		return zero, err
	}
	var zero V
	return zero, ErrNotRequested
}

// Values returns the keys that were loaded, with their values. Keys that
// met an error are absent: check Err or Errors.
func (r Results[K, V]) Values() map[K]V { return r.values }

// Errors returns the keys that met an error, with their errors.
func (r Results[K, V]) Errors() map[K]error { return r.errs }

// Err returns nil when every key was loaded, and otherwise an error that
// joins the distinct errors met (errors.Is works through it) and says how
// many keys failed.
func (r Results[K, V]) Err() error {
	if len(r.errs) == 0 {
		return nil
	}
	var distinct []error
	seen := make(map[error]bool)
	for _, err := range r.errs {
		if !seen[err] {
			seen[err] = true
			distinct = append(distinct, err)
		}
	}
	return fmt.Errorf("flightcache: %d of %d keys failed: %w", len(r.errs), len(r.errs)+len(r.values), errors.Join(distinct...))
}

// Len returns the number of distinct keys requested.
func (r Results[K, V]) Len() int { return len(r.values) + len(r.errs) }

// GetMany returns the values of keys: cached ones at once, keys already
// being loaded by a Get or another GetMany by joining those loads, and the
// rest with one batch fetch (WithBatch; split by Config.MaxBatchSize), or
// without one with concurrent single fetches. Duplicate keys are loaded
// once. Each key is counted as one Get in Stats. When ctx ends, the keys
// still waiting get ctx.Err() and their loads carry on for any other
// waiter.
func (l *Loader[K, V]) GetMany(ctx context.Context, keys []K) Results[K, V] {
	res := Results[K, V]{values: make(map[K]V, len(keys)), errs: make(map[K]error)}
	put := func(key K, v V, err error) {
		if err != nil {
			res.errs[key] = err
		} else {
			res.values[key] = v
		}
	}
	missing := make([]K, 0, len(keys))
	seen := make(map[K]bool, len(keys))
	for _, key := range keys {
		if seen[key] {
			continue
		}
		seen[key] = true
		if l.closed.Load() {
			res.errs[key] = ErrClosed
			continue
		}
		if l.cache != nil {
			if found := l.cache.get(key, l.now(), 0); found.found {
				v, err := l.hit(ctx, key, found)
				put(key, v, err)
				continue
			}
		}
		missing = append(missing, key)
	}
	if len(missing) == 0 {
		return res
	}
	if l.batchFn == nil {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, key := range missing {
			wg.Go(func() {
				v, err := l.flight.do(ctx, key)
				mu.Lock()
				put(key, v, err)
				mu.Unlock()
			})
		}
		wg.Wait()
		return res
	}
	waits, hits := l.flight.doMany(ctx, missing)
	for _, h := range hits {
		v, err := l.hit(ctx, h.key, h.res)
		put(h.key, v, err)
	}
	for _, w := range waits {
		if w.c == nil {
			put(w.key, *new(V), ErrClosed)
			continue
		}
		v, err := l.flight.wait(ctx, w.key, w.c)
		put(w.key, v, err)
	}
	return res
}

// batch is one batch fetch of several keys, each with its own call.
type batch[K comparable, V any] struct {
	keys   []K
	calls  []*call[K, V]
	ctx    context.Context         // the fetch's context
	cancel context.CancelCauseFunc // cancels ctx; called once no call needs it
	live   atomic.Int64            // calls not yet cancelled
	timer  *time.Timer             // micro-batching: dispatches the batch
}

// newBatchLocked returns an empty batch whose fetch keeps ctx's values,
// counted in g.wg until its goroutine (started by startBatch) ends. Some
// shard's lock must be held and g open, so that close waits for it.
func (g *group[K, V]) newBatchLocked(ctx context.Context) *batch[K, V] {
	b := &batch[K, V]{}
	b.ctx, b.cancel = context.WithCancelCause(context.WithoutCancel(ctx))
	g.wg.Add(1)
	return b
}

// addLocked registers a new load of key as part of b. s is key's shard;
// s.mu must be held.
func (g *group[K, V]) addLocked(s *flightShard[K, V], h uint64, b *batch[K, V], key K) *call[K, V] {
	c := g.newCallLocked(s, h, key)
	var once sync.Once
	c.cancel = func(cause error) { // the batch ends once none of its calls needs it
		once.Do(func() {
			// Close cancels every call; the batch ends with the first of
			// them, so that its cause says Close. Ended by whichever call
			// is cancelled last, it would name that call's cause: one whose
			// callers all left would make a Close look like an abandonment
			// to the others' waiters (a bare context.Canceled).
			if errors.Is(cause, ErrClosed) || b.live.Add(-1) == 0 {
				b.cancel(cause)
			}
		})
	}
	b.live.Add(1)
	b.keys, b.calls = append(b.keys, key), append(b.calls, c)
	return c
}

// waitFor is one key of a GetMany and the load it waits for (nil: closed).
type waitFor[K comparable, V any] struct {
	key K
	c   *call[K, V]
}

// hitFor is one key of a GetMany that the recheck found in the cache.
type hitFor[K comparable, V any] struct {
	key K
	res lookup[K, V]
}

// doMany joins the running loads of keys and starts batch fetches for the
// others, counting each key as a Get. The caller waits for each call.
func (g *group[K, V]) doMany(ctx context.Context, keys []K) (waits []waitFor[K, V], hits []hitFor[K, V]) {
	var b *batch[K, V]
	for _, key := range keys {
		h, s := g.locate(key)
		s.mu.Lock()
		if g.closed.Load() {
			s.mu.Unlock()
			waits = append(waits, waitFor[K, V]{key: key})
			continue
		}
		if c := s.calls.find(h, key); c != nil {
			c.waiters++
			if c.done == nil { // a load run inline makes it for its first joiner
				c.done = make(chan struct{})
			}
			s.mu.Unlock()
			cl := g.st.cell()
			cl.misses.Add(1)
			cl.shared.Add(1)
			waits = append(waits, waitFor[K, V]{key, c})
			continue
		}
		if res := g.hooks.recheck(key); res.found {
			s.mu.Unlock()
			hits = append(hits, hitFor[K, V]{key, res})
			continue
		}
		if b == nil {
			b = g.newBatchLocked(ctx)
		}
		c := g.addLocked(s, h, b, key)
		c.waiters = 1
		s.mu.Unlock()
		g.st.cell().loadStarts.Add(1)
		waits = append(waits, waitFor[K, V]{key, c})
		if g.maxBatch > 0 && len(b.keys) == g.maxBatch {
			g.startBatch(b)
			b = nil
		}
	}
	if b != nil {
		g.startBatch(b)
	}
	return waits, hits
}

// joinMicroBatchLocked adds a new load of key to the micro-batch being
// collected, starting one (and its window) when there is none. A full batch
// goes at once. s is the group's only shard (micro-batching keeps one);
// s.mu must be held and g open.
func (g *group[K, V]) joinMicroBatchLocked(ctx context.Context, s *flightShard[K, V], h uint64, key K) *call[K, V] {
	b := g.pending
	if b != nil && b.ctx.Err() != nil {
		// Every caller of the batch being collected has left, which
		// cancelled it: send it off (it ends at once) and start afresh.
		g.dispatchLocked()
		b = nil
	}
	if b == nil {
		b = g.newBatchLocked(ctx)
		g.pending = b
		g.wg.Add(1) // the timer's func, done when it has run or been stopped
		b.timer = time.AfterFunc(g.window, func() {
			defer g.wg.Done()
			s.mu.Lock()
			if g.pending == b {
				g.dispatchLocked()
			}
			s.mu.Unlock()
		})
	}
	c := g.addLocked(s, h, b, key)
	if g.maxBatch > 0 && len(b.keys) >= g.maxBatch {
		g.dispatchLocked()
	}
	return c
}

// dispatchLocked starts the micro-batch being collected, if any. The
// lock of the group's only shard must be held.
func (g *group[K, V]) dispatchLocked() {
	b := g.pending
	if b == nil {
		return
	}
	g.pending = nil
	if b.timer.Stop() {
		g.wg.Done() // its func will not run
	}
	g.startBatch(b)
}

// startBatch runs b's fetch in a goroutine of its own (counted in g.wg
// since newBatchLocked).
func (g *group[K, V]) startBatch(b *batch[K, V]) {
	go g.runBatch(b)
}

// runBatch is the goroutine of one batch fetch: run's counterpart for
// several keys. Whatever the fetch does, every call gets an outcome and its
// waiters are released.
func (g *group[K, V]) runBatch(b *batch[K, V]) {
	defer g.wg.Done()
	ctx := b.ctx
	if g.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.timeout)
		defer cancel()
	}
	returned := false
	var failure error
	defer func() {
		if !returned {
			failure = ErrGoexit
		}
		for i, c := range b.calls {
			if failure != nil {
				c.val, c.err, c.abnormal = *new(V), failure, true
			}
			g.finish(ctx, g.shard(b.keys[i]), b.keys[i], c)
		}
		for _, c := range b.calls {
			if c.after != nil && failure == nil {
				_ = catchPanic(c.after)
			}
		}
	}()
	failure = catchPanic(func() { g.slotAndBatch(ctx, b) })
	returned = true
}

// slotAndBatch waits for a fetch slot, then runs the batch fetch.
func (g *group[K, V]) slotAndBatch(ctx context.Context, b *batch[K, V]) {
	if g.sem != nil {
		if err := g.sem.Acquire(ctx, 1); err != nil {
			err = fmt.Errorf("flightcache: waiting for a fetch slot: %w", err)
			for _, c := range b.calls {
				c.err, c.took = err, -1
			}
			return
		}
		defer g.sem.Release(1)
	}
	if err := ctx.Err(); err != nil { // cancelled while waiting: don't start
		for _, c := range b.calls {
			c.err, c.took = err, -1
		}
		return
	}
	for i, c := range b.calls {
		s := g.shard(b.keys[i])
		s.mu.Lock()
		c.started = true
		s.mu.Unlock()
	}
	g.hooks.fetchBatch(ctx, b.keys, b.calls)
}

// fetchBatch implements loadHooks: keys found in the shared tier are
// answered from it, the rest go to the batch fetch in one call.
func (l *Loader[K, V]) fetchBatch(ctx context.Context, keys []K, calls []*call[K, V]) {
	todo := make([]int, 0, len(keys))
	remote := l.remote
	for i, key := range keys {
		if remote == nil {
			todo = append(todo, i)
			continue
		}
		var rec RemoteRecord[V]
		var ok bool
		err := l.remoteCall(func() (err error) { rec, ok, err = remote.Get(ctx, key); return err })
		switch {
		case err != nil:
			l.remoteFailed("get", err)
			remote = nil // skip the shared tier for the rest of this batch
			todo = append(todo, i)
		case ok:
			calls[i].val, calls[i].err, calls[i].took = l.fromShared(calls[i], rec)
		default:
			l.st.remoteMisses.Add(1)
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return
	}
	ask := make([]K, len(todo))
	for j, i := range todo {
		ask[j] = keys[i]
	}
	l.st.batchLoads.Add(1)
	l.st.observeBatch(len(ask))
	var start int64
	if l.timed {
		start = l.now()
	}
	found, err := l.batchFn(ctx, ask)
	var took time.Duration
	if l.timed {
		took = time.Duration(l.now() - start)
	}
	if err == nil && ctx.Err() != nil {
		// It returned after its context ended: what it left out was not
		// looked for, so it is not "not found".
		err = ctx.Err()
	}
	for _, i := range todo {
		c := calls[i]
		c.took = took
		switch v, ok := found[keys[i]]; {
		case err != nil:
			c.err, c.batchFailed = err, true
		case ok:
			c.val = v
		default:
			c.err = errBatchAbsent
		}
		if remote != nil && ctx.Err() == nil {
			l.storeShared(ctx, keys[i], c, c.val, c.err, nil)
		}
	}
}
