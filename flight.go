package flightcache

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// errAbandoned is the cancellation cause of a load whose callers all left.
var errAbandoned = errors.New("flightcache: every caller waiting for this fetch has left")

// call is one load of one key, shared by every Get that joins it.
type call[K comparable, V any] struct {
	// done is closed once val and err are final. A load run inline makes
	// it only when a second Get joins (under the shard's lock).
	done chan struct{}

	// Written by the load goroutine before done is closed; read after.
	val  V
	err  error
	took time.Duration // how long the fetch ran; -1: it never started

	// The flags sit together, so that a call takes one word for them.
	abnormal    bool // the fetch panicked or called runtime.Goexit (written as val and err are)
	background  bool // a refresh: started by no waiting Get
	batchFailed bool // err is a batch fetch's error: never "not found"
	inline      bool // run by its first Get (see doInlineLocked)
	started     bool // the fetch has its slot and is running; guarded by the flightShard.mu of the call's key

	token     uint64                  // the cache's token for this load
	endAt     int64                   // when the fetch returned (Loader.now), if fetch timed it; 0: unknown
	cancel    context.CancelCauseFunc // cancels the fetch's context
	refreshOf *entry[K, V]            // the entry a refresh replaces, if any
	entryTTL  ttlSlot                 // the fetch's choice of TTLs (SetTTL)
	maxLife   time.Duration           // > 0: the shared tier's copy ends then
	after     func()                  // run by the load goroutine once the callers are released
	// baseCtx is what the fetch's context is built on: the Get's values
	// and the TTL slot. A load run inline uses it as it is, cancelled by
	// Close; a load in its own goroutine wraps it in a cancelCtx.
	baseCtx loadContext

	// Guarded by the flightShard.mu of the call's key (as started is).
	waiters int // Gets waiting for this call

	// Set when the call is registered; its place in flightShard.calls.
	key     K
	hash    uint64      // the key's hash (see group.locate)
	nextKey *call[K, V] // next call of the same bucket of flightShard.calls
}

// loadHooks is what a group needs from its Loader.
type loadHooks[K comparable, V any] interface {
	// recheck looks key up in the cache once more before a load starts. It
	// is called with the key's flightShard.mu held and must not call user code.
	recheck(key K) lookup[K, V]
	// hit answers a Get from what recheck found. It is called without
	// any lock held.
	hit(ctx context.Context, key K, res lookup[K, V]) (V, error)
	// begin registers a load of key with the cache and returns its token.
	begin(key K) uint64
	// recheckBegin is recheck and, when key is not found, begin, in one
	// step; the token is 0 without a cache or when key is found. It is
	// called with the key's flightShard.mu held.
	recheckBegin(key K) (lookup[K, V], uint64)
	// fetch loads the value of key (shared tier, then the user's fetch).
	fetch(ctx context.Context, key K, c *call[K, V]) (V, error, time.Duration)
	// done stores or discards the finished call's result and counts it.
	// Without a cache, for a call with no error, it runs no user code
	// (settle calls it without a recover then).
	done(key K, c *call[K, V])
	// fetchBatch loads keys with one batch fetch, setting each call's
	// result (val, err, took).
	fetchBatch(ctx context.Context, keys []K, calls []*call[K, V])
}

// group runs at most one load per key at a time. Every caller waits on its
// own context; the fetch runs in a goroutine of its own on a context that
// keeps the first caller's values but not its cancellation (with inline
// set, on the goroutine of a first caller that cannot be cancelled; see
// doInlineLocked). A panic or runtime.Goexit in the fetch becomes an error
// for every waiter.
type group[K comparable, V any] struct {
	hooks         loadHooks[K, V]
	st            *counters
	sem           *semaphore.Weighted // bounds running fetches; nil: no bound
	timeout       time.Duration       // bounds each load; 0: no bound
	keepAbandoned bool                // a started load nobody waits for runs on (cache mode)
	maxBatch      int                 // most keys in one batch fetch; 0: no limit
	window        time.Duration       // > 0: single-key loads are micro-batched
	inline        bool                // Config.InlineFetch: a Get that cannot be cancelled runs its load itself
	cached        bool                // the hooks keep a cache, to re-check before a load
	// reuse is set when no load's TTL choice is ever read (flight mode
	// without a shared tier): then a load run inline needs no TTL slot of
	// its own, its fetch context is not part of its call, and a call that
	// no other Get joined is kept in its shard's spare for the next one.
	reuse    bool
	plainCtx loadContext // the fetch context of an inline load with reuse, for a Get on context.Background or TODO
	// closing is cancelled, with cause ErrClosed, by close: the fetch
	// context of a load run inline ends with it.
	closing context.Context
	stop    context.CancelCauseFunc

	// The loads are split by key hash over shards, each with its own lock,
	// so that misses on different keys do not queue for one mutex.
	keys   keyHasher[K]
	shift  uint // a key's shard is its hash >> shift
	shards []flightShard[K, V]
	closed atomic.Bool // no load may start; set by close before it visits the shards
	// pending is the micro-batch collecting loads now. Micro-batching
	// (window > 0) keeps one shard, whose lock guards pending.
	pending *batch[K, V]

	// Written by loads, kept 128 bytes (a pair of cache lines) from the
	// fields above, which every miss reads.
	_      [128]byte
	wg     sync.WaitGroup // counts load goroutines and batches, for close (inline loads: flightShard.loads)
	noSlot ttlSlot        // the TTL slot of the inline loads' contexts with reuse: SetTTL works, nothing reads it
	_      [128]byte
}

// flightShard holds the loads of the keys that hash to it.
type flightShard[K comparable, V any] struct {
	mu      sync.Mutex               // guards calls, running, and the waiters and started of their calls
	calls   callTable[K, V]          // the load that new Gets of a key join
	running map[*call[K, V]]struct{} // every load not yet finished, joinable or not (not inline ones)
	spare   []*call[K, V]            // zeroed calls for inline loads, with group.reuse
	// loads counts the loads of this shard's keys registered and not yet
	// settled (inline ones included): Stats.InFlight is their sum, and
	// close waits for it to reach 0. Counting under mu, which both ends of
	// a load hold anyway, costs nothing; an atomic gauge and a WaitGroup
	// cost four locked instructions per load, a quarter of an inline one.
	loads int
	idle  chan struct{} // made by close while loads > 0; closed when loads reaches 0
	_     [128]byte     // keeps shards off each other's cache lines (and their pairs)
}

// maxSpare bounds flightShard.spare.
const maxSpare = 4

// spareLocked returns a zeroed call, reused when s has one. s.mu must be
// held.
func (s *flightShard[K, V]) spareLocked() *call[K, V] {
	if n := len(s.spare); n > 0 {
		c := s.spare[n-1]
		s.spare[n-1] = nil
		s.spare = s.spare[:n-1]
		return c
	}
	return &call[K, V]{}
}

// locate returns key's hash and shard. The hash also places the key in
// the shard's table of calls: a load hashes its key once.
func (g *group[K, V]) locate(key K) (uint64, *flightShard[K, V]) {
	h := g.keys.hash(key)
	return h, &g.shards[h>>g.shift] // a shift of 64 (one shard) gives 0
}

// shard returns key's shard.
func (g *group[K, V]) shard(key K) *flightShard[K, V] {
	_, s := g.locate(key)
	return s
}

func (g *group[K, V]) init(hooks loadHooks[K, V], st *counters, cfg Config, ttlUnread bool) {
	g.hooks, g.st = hooks, st
	g.timeout = cfg.FetchTimeout
	g.keepAbandoned = cfg.Mode == ModeCache
	if cfg.MaxConcurrentFetches > 0 {
		g.sem = semaphore.NewWeighted(int64(cfg.MaxConcurrentFetches))
	}
	g.maxBatch, g.window = cfg.MaxBatchSize, cfg.BatchWindow
	g.inline = cfg.InlineFetch && cfg.BatchWindow == 0
	g.closing, g.stop = context.WithCancelCause(context.Background())
	g.reuse = g.inline && ttlUnread
	g.cached = cfg.Mode == ModeCache
	g.plainCtx = loadContext{Context: g.closing, values: context.Background(), slot: &g.noSlot}
	bits := 0
	if g.window == 0 { // micro-batching needs one lock over every key
		bits = shardBits(1, 0)
	}
	g.keys, g.shift = newKeyHasher[K](), uint(64-bits)
	g.shards = make([]flightShard[K, V], 1<<bits)
	for i := range g.shards {
		g.shards[i].running = make(map[*call[K, V]]struct{})
	}
}

// do joins the load of key or starts one, and waits for it on ctx. It
// counts the Get as a miss, or as a hit when recheck finds the key.
func (g *group[K, V]) do(ctx context.Context, key K) (V, error) {
	c, v, err := g.join(ctx, key)
	if c != nil {
		<-c.done
		return c.val, c.err
	}
	return v, err
}

// join is do, except that a Get whose ctx cannot end (ctx.Done() == nil)
// that must wait for a load gets its call back instead: it receives from
// c.done itself, then reads c.val and c.err. A waiter woken with a
// thousand others returns through cold stack lines, a few per frame, so
// Loader.Get waits in its own frame, with none of join's below it. c is
// nil when v and err are the result.
func (g *group[K, V]) join(ctx context.Context, key K) (c *call[K, V], v V, err error) {
	// Most Gets that get here start a load: make its call before taking
	// the shard's lock, to keep the allocations out of the critical section.
	// (A reused call for an inline load is taken under the lock instead.)
	end := ctx.Done()
	inline := g.inline && end == nil
	var pre *call[K, V]
	if !inline || !g.reuse {
		pre = &call[K, V]{}
	}
	h, s := g.locate(key)
	s.mu.Lock()
	c = s.calls.find(h, key)
	if c == nil || g.closed.Load() {
		return g.startLocked(ctx, end, s, h, key, pre, inline)
	}
	c.waiters++
	if c.done == nil {
		c.done = make(chan struct{})
	}
	cl := g.st.cell()
	cl.misses.Add(1)
	cl.shared.Add(1)
	s.mu.Unlock()
	if end != nil {
		v, err = g.waitOrLeave(ctx, end, key, c)
		return nil, v, err
	}
	return c, v, nil
}

// startLocked is join for a key with no load to join, or a closed group:
// it re-checks the cache, then starts a load (pre, when not nil, is its
// call) and returns it to wait for as join does, or runs it inline. end is
// ctx.Done(). s is key's shard; s.mu must be held, and startLocked
// releases it.
func (g *group[K, V]) startLocked(ctx context.Context, end <-chan struct{}, s *flightShard[K, V], h uint64, key K, pre *call[K, V], inline bool) (*call[K, V], V, error) {
	var zero V
	if g.closed.Load() {
		s.mu.Unlock()
		return nil, zero, ErrClosed
	}
	var c *call[K, V]
	var token uint64
	if g.cached {
		var res lookup[K, V]
		if res, token = g.hooks.recheckBegin(key); res.found {
			s.mu.Unlock()
			v, err := g.hooks.hit(ctx, key, res)
			return nil, v, err
		}
	}
	if pre == nil {
		pre = s.spareLocked()
	}
	pre.token = token
	if inline {
		v, err := g.doInlineLocked(ctx, s, h, key, pre)
		return nil, v, err
	}
	pre.done = make(chan struct{})
	if g.window > 0 {
		c = g.joinMicroBatchLocked(ctx, s, h, key) // registers again: pre's token goes unused
	} else {
		c = g.startCallLocked(ctx, s, h, key, pre, false, nil)
	}
	c.waiters = 1
	cl := g.st.cell()
	cl.loadStarts.Add(1)
	s.mu.Unlock()
	if end != nil {
		v, err := g.waitOrLeave(ctx, end, key, c)
		return nil, v, err
	}
	return c, zero, nil
}

// doInlineLocked runs a load of key on the calling goroutine, as
// x/sync/singleflight's Do does, for a Get whose ctx can never end
// (ctx.Done() == nil): such a Get could not leave the load early anyway, so
// a goroutine of its own would only cost time. Other Gets join the load
// as usual and wait on their own contexts. The fetch's context keeps ctx's
// values and ends on Close (and at FetchTimeout). A panic is returned as a
// *PanicError; a fetch calling runtime.Goexit ends this goroutine, as it
// asks, after releasing the other waiters with ErrGoexit. c is the new
// call, its token taken. s is key's shard; s.mu must be held, and
// doInlineLocked releases it.
func (g *group[K, V]) doInlineLocked(ctx context.Context, s *flightShard[K, V], h uint64, key K, c *call[K, V]) (V, error) {
	c.inline = true
	s.calls.insert(h, key, c) // not in s.running: close cancels g.closing instead
	s.loads++
	c.waiters = 1
	c.started = g.sem == nil // with a slot to wait for, slotAndFetch sets it
	c.cancel = noCancel      // Close cancels g.closing instead
	cl := g.st.cell()
	cl.loadStarts.Add(1)
	s.mu.Unlock()
	plain := ctx == context.Background() || ctx == context.TODO()
	var fctx *loadContext
	switch {
	case g.reuse && plain:
		fctx = &g.plainCtx
	case g.reuse: // the context must not be part of c, which is reused
		fctx = &loadContext{Context: g.closing, values: context.WithoutCancel(ctx), slot: &g.noSlot}
	case plain:
		c.baseCtx = loadContext{Context: g.closing, values: ctx, slot: &c.entryTTL}
		fctx = &c.baseCtx
	default: // WithoutCancel hides any cancelable parent from context.Cause
		c.baseCtx = loadContext{Context: g.closing, values: context.WithoutCancel(ctx), slot: &c.entryTTL}
		fctx = &c.baseCtx
	}
	return g.run(fctx, s, key, c) // c may be reused once run returns
}

// noCancel is the cancel func of a load run inline.
func noCancel(error) {}

// loadContext is the fetch context of a load run inline: the values of
// the Get's context and the load's TTL slot (SetTTL), the cancellation of
// the group's closing context (the embedded Context).
type loadContext struct {
	context.Context
	values context.Context
	slot   *ttlSlot
}

// Value returns the load's TTL slot, the Get context's values, then the
// closing context's (which is how context.Cause finds ErrClosed).
func (c *loadContext) Value(key any) any {
	if _, ok := key.(ttlSlotKey); ok {
		return c.slot
	}
	if v := c.values.Value(key); v != nil {
		return v
	}
	return c.Context.Value(key)
}

// background starts a load of key that no Get waits for (a refresh), unless
// a load of key is running already or the group is closed. It returns the
// channel closed when the running or started load ends (nil when closed).
func (g *group[K, V]) background(ctx context.Context, key K, refreshOf *entry[K, V]) (done <-chan struct{}, started bool) {
	h, s := g.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if g.closed.Load() {
		return nil, false
	}
	if c := s.calls.find(h, key); c != nil {
		if c.done == nil {
			c.done = make(chan struct{})
		}
		return c.done, false
	}
	c := &call[K, V]{done: make(chan struct{})}
	c.token = g.hooks.begin(key)
	return g.startCallLocked(ctx, s, h, key, c, true, refreshOf).done, true
}

// startCallLocked starts c, a load of key whose token is taken, in its own
// goroutine and makes it the one new Gets join. s is key's shard; s.mu
// must be held and g open.
func (g *group[K, V]) startCallLocked(ctx context.Context, s *flightShard[K, V], h uint64, key K, c *call[K, V], background bool, refreshOf *entry[K, V]) *call[K, V] {
	s.registerLocked(g, h, key, c)
	c.background, c.refreshOf = background, refreshOf
	// The Get's values without its cancellation (nor its deadline): the
	// base's Done is Background's, and the cancelCtx above it answers
	// context.Cause, so the Get's own cause never shows through.
	c.baseCtx = loadContext{Context: context.Background(), values: ctx, slot: &c.entryTTL}
	fctx, cancel := context.WithCancelCause(&c.baseCtx)
	c.cancel = cancel
	g.wg.Add(1)
	go g.run(fctx, s, key, c)
	return c
}

// newCallLocked registers a new load of key; the caller sets its cancel
// func and runs it. s is key's shard; s.mu must be held and g open.
func (g *group[K, V]) newCallLocked(s *flightShard[K, V], h uint64, key K) *call[K, V] {
	c := &call[K, V]{done: make(chan struct{})}
	c.token = g.hooks.begin(key)
	s.registerLocked(g, h, key, c)
	return c
}

// registerLocked makes c the load of key (of hash h) that new Gets join.
// s.mu must be held and g open.
func (s *flightShard[K, V]) registerLocked(g *group[K, V], h uint64, key K, c *call[K, V]) {
	s.calls.insert(h, key, c)
	s.running[c] = struct{}{}
	s.loads++
}

// wait returns c's result, or ctx.Err() as soon as ctx ends.
func (g *group[K, V]) wait(ctx context.Context, key K, c *call[K, V]) (V, error) {
	if end := ctx.Done(); end != nil {
		return g.waitOrLeave(ctx, end, key, c)
	}
	// A plain receive: woken by the close, a waiter returns without taking
	// the channel's lock again, as a select's waiter must.
	<-c.done
	return c.val, c.err
}

// waitOrLeave is wait for a ctx that can end; end is ctx.Done().
func (g *group[K, V]) waitOrLeave(ctx context.Context, end <-chan struct{}, key K, c *call[K, V]) (V, error) {
	select {
	case <-c.done:
		return c.val, c.err
	case <-end:
	}
	select {
	case <-c.done: // finished as ctx ended: the result is better than an error
		return c.val, c.err
	default:
	}
	g.leave(key, c)
	g.st.abandoned.Add(1)
	var zero V
	return zero, ctx.Err()
}

// leave removes one waiter from c. A load left with no waiter is cancelled
// and forgotten, so that the next Get starts afresh, unless it is still the
// load that new Gets join and its result will be stored: a refresh, or a
// load in cache mode that has started (not waiting for a slot).
func (g *group[K, V]) leave(key K, c *call[K, V]) {
	s := g.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	c.waiters--
	if c.waiters > 0 {
		return
	}
	joinable := s.calls.find(c.hash, key) == c
	if joinable && (c.background || g.keepAbandoned && c.started) {
		return
	}
	if joinable {
		s.calls.remove(c)
	}
	c.cancel(errAbandoned)
}

// forget makes new Gets of key start a new load instead of joining the
// running one, whose waiters still get its result.
func (g *group[K, V]) forget(key K) {
	h, s := g.locate(key)
	s.mu.Lock()
	if c := s.calls.find(h, key); c != nil {
		s.calls.remove(c)
		if c.waiters == 0 {
			c.cancel(errAbandoned)
		}
	}
	s.mu.Unlock()
}

// forgetAll is forget for every key.
func (g *group[K, V]) forgetAll() {
	for i := range g.shards {
		s := &g.shards[i]
		s.mu.Lock()
		for _, c := range s.calls.clear() {
			if c.waiters == 0 {
				c.cancel(errAbandoned)
			}
		}
		s.mu.Unlock()
	}
}

// close stops new loads, cancels the running ones, waits for every load
// to settle (flightShard.loads, inline ones included) and for the load
// goroutines to return. Once it has set closed and visited a shard, no
// load starts there: every loads++ and wg.Add happens under a shard's
// lock while g is open, so all come before the waits.
func (g *group[K, V]) close() {
	g.closed.Store(true)
	g.stop(ErrClosed)
	for i := range g.shards {
		s := &g.shards[i]
		s.mu.Lock()
		for c := range s.running {
			c.cancel(ErrClosed)
		}
		if g.window > 0 { // one shard, whose lock guards pending
			g.dispatchLocked() // a waiting micro-batch ends now, on a cancelled context
		}
		s.mu.Unlock()
	}
	for i := range g.shards { // the loads settle, inline ones included
		s := &g.shards[i]
		s.mu.Lock()
		if s.loads > 0 && s.idle == nil {
			s.idle = make(chan struct{})
		}
		idle := s.idle
		s.mu.Unlock()
		if idle != nil {
			<-idle
		}
	}
	g.wg.Wait() // then the goroutines return
}

// inFlight returns the number of loads registered and not yet settled.
func (g *group[K, V]) inFlight() int {
	n := 0
	for i := range g.shards {
		s := &g.shards[i]
		s.mu.Lock()
		n += s.loads
		s.mu.Unlock()
	}
	return n
}

// run is the goroutine of one load. Whatever the fetch does (return, panic,
// runtime.Goexit), run records an outcome, releases every waiter and frees
// the key. It returns the outcome, for a load run inline: finish may have
// handed c to the next load.
func (g *group[K, V]) run(ctx context.Context, s *flightShard[K, V], key K, c *call[K, V]) (v V, err error) {
	if !c.inline { // an inline load is counted in s.loads alone
		defer g.wg.Done()
	}
	if g.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.timeout)
		defer cancel()
	}
	returned := false
	defer func() {
		if !returned { // only runtime.Goexit gets here without returning
			c.err, c.abnormal = ErrGoexit, true
		}
		after := c.after
		var cancel context.CancelCauseFunc
		var done chan struct{}
		cancel, done, v, err = g.settle(ctx, s, key, c)
		release(cancel, done) // from this frame, not settle's: see release
		if after != nil {
			_ = catchPanic(after)
		}
	}()
	if perr := catchPanic(func() { c.val, c.err, c.took = g.slotAndFetch(ctx, s, key, c) }); perr != nil {
		c.err, c.abnormal = perr, true
	}
	returned = true
	return v, err // set by the deferred finish
}

// catchPanic runs f and returns a *PanicError if it panicked. If f calls
// runtime.Goexit, catchPanic does not return: the caller's deferred
// functions run, which must tell that case apart (see run).
func catchPanic(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	f()
	return nil
}

// slotAndFetch waits for a fetch slot, then runs the fetch.
func (g *group[K, V]) slotAndFetch(ctx context.Context, s *flightShard[K, V], key K, c *call[K, V]) (V, error, time.Duration) {
	if g.sem != nil {
		if err := g.sem.Acquire(ctx, 1); err != nil {
			var zero V
			return zero, fmt.Errorf("flightcache: waiting for a fetch slot: %w", err), -1
		}
		defer g.sem.Release(1)
	}
	// Cancelled while waiting, or abandoned before its goroutine ran: don't
	// start. An inline load with no slot to wait for has not waited and
	// cannot be abandoned; only Close can have ended its context, and the
	// flag says so more cheaply.
	if g.sem == nil && c.inline {
		if g.closed.Load() {
			var zero V
			return zero, ErrClosed, -1
		}
		return g.hooks.fetch(ctx, key, c)
	}
	if err := ctx.Err(); err != nil {
		var zero V
		return zero, err, -1
	}
	if !c.started { // set at creation for an inline load that needs no slot
		s.mu.Lock()
		c.started = true
		s.mu.Unlock()
	}
	return g.hooks.fetch(ctx, key, c)
}

// finish hands c's result to the Loader, frees the key unless a newer load
// holds it, releases the waiters and returns the result. ctx is the load's
// context: an error caused by Close says so. s is key's shard. With reuse,
// an inline call nobody joined goes to s.spare: the caller must not touch
// c after finish.
func (g *group[K, V]) finish(ctx context.Context, s *flightShard[K, V], key K, c *call[K, V]) (V, error) {
	cancel, done, v, err := g.settle(ctx, s, key, c)
	release(cancel, done)
	return v, err
}

// release ends a finished load: it cancels the load's context, then wakes
// its waiters. A load goroutine calls it from its own deferred function
// rather than from settle's frame: it starts on a 2 KiB stack, and the
// context's cancellation, one frame deeper, overflowed it on every load (a
// stack copy, about half of an uncontended miss).
func release(cancel context.CancelCauseFunc, done chan struct{}) {
	cancel(nil)
	if done != nil {
		close(done)
	}
}

// settle is finish but for release: it returns the load's cancel func and
// done channel (nil when nobody joined) for the caller to release, and the
// result.
func (g *group[K, V]) settle(ctx context.Context, s *flightShard[K, V], key K, c *call[K, V]) (cancel context.CancelCauseFunc, done chan struct{}, v V, err error) {
	if c.err != nil && errors.Is(context.Cause(ctx), ErrClosed) {
		c.err = fmt.Errorf("%w: the load was interrupted: %w", ErrClosed, c.err)
	}
	// done runs user code (Config.NotFound, Rand, Clock, Logger): a panic
	// there fails this load's callers but never the process, and never
	// keeps the call from being released.
	if !g.cached && c.err == nil {
		g.hooks.done(key, c) // runs no user code: see loadHooks.done
	} else if perr := catchPanic(func() { g.hooks.done(key, c) }); perr != nil {
		var zero V
		c.val, c.err, c.abnormal = zero, perr, true
	}
	s.mu.Lock()
	if s.calls.find(c.hash, key) == c {
		s.calls.remove(c)
	}
	if !c.inline {
		delete(s.running, c)
	}
	if s.loads--; s.loads == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
	done = c.done // nobody can join now: a nil done stays nil
	v, err, cancel = c.val, c.err, c.cancel
	if done == nil && c.inline && g.reuse && len(s.spare) < maxSpare {
		// Nobody else refers to c: no Get joined it (that makes done), it is
		// out of s.calls, and its fetch context is not part of it.
		*c = call[K, V]{}
		s.spare = append(s.spare, c)
	}
	s.mu.Unlock()
	return cancel, done, v, err
}
