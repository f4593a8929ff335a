package flightcache_test

// Promise 1, model equivalence: a Loader and a small, obviously correct
// reference model (a map, an explicit LRU list and explicit timestamps, no
// concurrency) are driven by the same random sequences of operations and
// fetch outcomes; after every step their observable results must agree.
//
// What the model covers, exactly:
//
//   - modes: cache mode (most seeds) and flight mode;
//   - operations: Get, GetMany (with a batch fetch), Set, Invalidate,
//     InvalidateAll, Refresh, clock advances, and Close followed by more
//     operations;
//   - fetch outcomes: a value, not-found (ErrNotFound, negatively cached for
//     NegativeTTL), a transient error, a panic, runtime.Goexit, a per-entry
//     TTL chosen with SetTTL (0, negative, tiny, huge), and "slow" fetches
//     that advance the fake clock while they run; batch outcomes: a map
//     leaving some keys out, an error, a panic, runtime.Goexit;
//   - time: TTL, StaleTTL (stale-while-revalidate: the background refresh
//     is observed synchronously with synctest.Wait), NegativeTTL, the
//     refresh backoff after failures (1s, 2s, 4s, ... 5m), durations up to
//     math.MaxInt64 (saturation), boundaries hit to the nanosecond;
//   - MaxEntries from 1 to 8, far below the size at which a cache may be
//     split into shards, so the cache is one exact LRU or one exact SIEVE
//     queue (the policy alternates by seed): eviction order is compared
//     through Len and through which later Gets fetch.
//
// After every step the test compares the values and errors returned (the
// errors.Is class, and the exact text where the model knows it), the
// fetches that ran (keys, order, single or batch), Len, and the counters of
// Stats. Not covered: Jitter and EarlyRefresh (random by design; tested in
// tiers_test.go), concurrency (thrash_test.go), the shared tier.
//
// A failure prints its seed and the operations that led to it; replay one
// seed with
//
//	go test -race -run 'TestModel/seed=123$' .

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flightcache/flightcache"
)

// relClock is a Clock moved by hand (and by fetches that model a slow
// backend). It is safe for concurrent use.
type relClock struct{ ns atomic.Int64 }

func relNewClock() *relClock {
	c := &relClock{}
	c.ns.Store(1_700_000_000_000_000_000)
	return c
}

func (c *relClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *relClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// modelForever is the expiry of an entry that never expires.
const modelForever int64 = math.MaxInt64

// modelAdd is t+d, saturating at modelForever.
func modelAdd(t int64, d time.Duration) int64 {
	if d > 0 && t > modelForever-int64(d) {
		return modelForever
	}
	return t + int64(d)
}

// fetchKind is one outcome of a fetch or a batch fetch.
type fetchKind uint8

const (
	fetchValue fetchKind = iota
	fetchNotFound
	fetchError
	fetchPanic
	fetchGoexit
)

func (k fetchKind) String() string {
	return [...]string{"value", "not-found", "error", "panic", "goexit"}[k]
}

// fetchPlan is what one single-key fetch does.
type fetchPlan struct {
	kind   fetchKind
	slow   time.Duration // the clock advances by this much while it runs
	setTTL bool          // it calls SetTTL(ctx, ttl)
	ttl    time.Duration
}

func (p fetchPlan) String() string {
	s := p.kind.String()
	if p.slow > 0 {
		s += fmt.Sprintf(" slow=%v", p.slow)
	}
	if p.setTTL {
		s += fmt.Sprintf(" SetTTL(%v)", p.ttl)
	}
	return s
}

// batchPlan is what one batch fetch does.
type batchPlan struct {
	kind   fetchKind // fetchValue: a map without the absent keys
	slow   time.Duration
	absent map[string]bool
}

// errClass is what kind of error a result carries.
type errClass uint8

const (
	classNone errClass = iota
	classNotFound
	classTransient
	classPanic
	classGoexit
	classClosed
	classOther
)

func (c errClass) String() string {
	return [...]string{"nil", "ErrNotFound", "transient", "ErrPanic", "ErrGoexit", "ErrClosed", "other"}[c]
}

// modelResult is the observable outcome of one Get (or one key of a
// GetMany): a value or an error class, with the error's text when the
// model knows it exactly.
type modelResult struct {
	value string
	class errClass
	msg   string // "": any text
}

func (r modelResult) String() string {
	if r.class == classNone {
		return fmt.Sprintf("%q", r.value)
	}
	if r.msg != "" {
		return fmt.Sprintf("%v(%q)", r.class, r.msg)
	}
	return r.class.String()
}

func (r modelResult) matches(got modelResult) bool {
	if r.class != got.class || r.value != got.value {
		return false
	}
	return r.msg == "" || r.msg == got.msg
}

// modelTransient is the error of a transient fetch failure.
type modelTransient struct{ what string }

func (e *modelTransient) Error() string { return "transient " + e.what }

func classify(v string, err error) modelResult {
	if err == nil {
		return modelResult{value: v}
	}
	var te *modelTransient
	var pe *flightcache.PanicError
	switch {
	case errors.Is(err, flightcache.ErrClosed):
		return modelResult{class: classClosed, msg: err.Error()}
	case errors.As(err, &pe):
		return modelResult{class: classPanic, msg: fmt.Sprint(pe.Value)}
	case errors.Is(err, flightcache.ErrGoexit):
		return modelResult{class: classGoexit, msg: err.Error()}
	case errors.Is(err, flightcache.ErrNotFound):
		return modelResult{class: classNotFound, msg: err.Error()}
	case errors.As(err, &te):
		return modelResult{class: classTransient, msg: err.Error()}
	}
	return modelResult{class: classOther, msg: err.Error()}
}

// modelEntry is one entry of the model's cache.
type modelEntry struct {
	value      string
	negative   modelResult // class != classNone: a not-found entry
	expires    int64       // first instant at which it is not fresh
	staleUntil int64       // first instant at which it is not served
	failures   int         // refreshes failed in a row
	retryAt    int64       // no refresh starts before this instant
}

// modelCounters are the Stats the model predicts.
type modelCounters struct {
	Hits, Misses, Loads, LoadErrors, Panics, Evictions       uint64
	StaleHits, NegativeHits, Refreshes, RefreshErrors, Batch uint64
}

// model is the reference: what a Loader must do, one operation at a time.
type model struct {
	cache              bool // cache mode; flight mode keeps nothing
	max                int
	ttl, stale, negTTL time.Duration
	now                int64 // nanoseconds since the Loader was made
	entries            map[string]*modelEntry
	sieve              bool            // PolicySieve; else PolicyLRU
	order              []string        // LRU: least recently used first; SIEVE: oldest first
	visited            map[string]bool // SIEVE: read since the hand passed
	hand               int             // SIEVE: index in order of the hand; -1: none (start at the oldest)
	closed             bool
	st                 modelCounters
	fetches, batches   int // for the report
}

// touch marks key used: LRU moves it to the most recently used end, SIEVE
// sets its visited bit.
func (m *model) touch(key string) {
	if m.sieve {
		m.visited[key] = true
		return
	}
	m.order = slices.DeleteFunc(m.order, func(k string) bool { return k == key })
	m.order = append(m.order, key)
}

func (m *model) drop(key string) {
	delete(m.entries, key)
	delete(m.visited, key)
	j := slices.Index(m.order, key)
	if j < 0 {
		return
	}
	m.order = slices.Delete(m.order, j, j+1)
	if m.sieve && j < m.hand {
		m.hand--
	}
	if m.hand >= len(m.order) { // the hand was on the newest entry
		m.hand = -1
	}
}

// clearAll empties the cache (InvalidateAll, Close).
func (m *model) clearAll() {
	clear(m.entries)
	clear(m.visited)
	m.order, m.hand = nil, -1
}

// store puts e in the cache: in place of key's entry, marked used; or as
// the newest entry, after evicting one when the cache is full (LRU: the
// least recently used; SIEVE: the hand, from where it stopped toward the
// newest, clears visited bits and takes the first entry without one).
func (m *model) store(key string, e *modelEntry) {
	if _, ok := m.entries[key]; ok {
		m.entries[key] = e
		m.touch(key)
		return
	}
	if len(m.order) >= m.max {
		victim := m.order[0]
		if m.sieve {
			i := max(m.hand, 0)
			for m.visited[m.order[i]] {
				m.visited[m.order[i]] = false
				if i++; i == len(m.order) {
					i = 0
				}
			}
			victim, m.hand = m.order[i], i
		}
		m.drop(victim)
		m.st.Evictions++
	}
	m.entries[key] = e
	m.order = append(m.order, key)
}

// lookup is the cache read of a Get: the entry while it is served (fresh,
// stale or negative), marked most recently used; an entry past its stale
// window is dropped.
func (m *model) lookup(key string) *modelEntry {
	e, ok := m.entries[key]
	if !ok {
		return nil
	}
	if m.now >= e.staleUntil {
		m.drop(key)
		return nil
	}
	m.touch(key)
	return e
}

// hit answers from e, counting it, and reports whether a stale e must be
// refreshed.
func (m *model) hit(e *modelEntry) (res modelResult, refresh bool) {
	m.st.Hits++
	res = modelResult{value: e.value}
	if e.negative.class != classNone {
		res = e.negative
		m.st.NegativeHits++
	}
	if m.now >= e.expires {
		m.st.StaleHits++
		if e.negative.class == classNone && m.now >= e.retryAt {
			m.st.Refreshes++
			refresh = true
		}
	}
	return res, refresh
}

func modelBackoff(failures int) time.Duration {
	if failures > 20 {
		return 5 * time.Minute
	}
	return min(time.Second<<(failures-1), 5*time.Minute)
}

// finish applies the result of a load (or refresh) of key that ended now:
// counters, then what the cache keeps.
func (m *model) finish(key string, res modelResult, setTTL bool, ttl time.Duration, background bool, refreshOf *modelEntry) {
	notFound := res.class == classNotFound
	failed := res.class != classNone && !notFound
	abnormal := res.class == classPanic || res.class == classGoexit
	if background && failed {
		m.st.RefreshErrors++
	}
	if !background && res.class != classNone {
		m.st.LoadErrors++
	}
	if abnormal {
		m.st.Panics++
	}
	if !m.cache {
		return
	}
	if failed {
		if refreshOf != nil {
			refreshOf.failures++
			refreshOf.retryAt = modelAdd(m.now, modelBackoff(refreshOf.failures))
		}
		return
	}
	life, stale := m.ttl, m.stale
	if notFound {
		life, stale = m.negTTL, 0
	}
	if setTTL {
		life = ttl
		if life <= 0 {
			m.drop(key)
			return
		}
	} else if life == 0 && notFound {
		m.drop(key)
		return
	}
	e := &modelEntry{expires: modelForever}
	if life > 0 {
		e.expires = modelAdd(m.now, life)
	}
	e.staleUntil = modelAdd(e.expires, stale)
	if notFound {
		e.negative = res
	} else {
		e.value = res.value
	}
	m.store(key, e)
}

// single is the result a fetch following plan p returns for key at step.
func singleResult(key string, step int, p fetchPlan) modelResult {
	what := fmt.Sprintf("%s@%d", key, step)
	switch p.kind {
	case fetchNotFound:
		return modelResult{class: classNotFound, msg: flightcache.ErrNotFound.Error() + ": " + what}
	case fetchError:
		return modelResult{class: classTransient, msg: "transient " + what}
	case fetchPanic:
		return modelResult{class: classPanic, msg: "boom " + what}
	case fetchGoexit:
		return modelResult{class: classGoexit, msg: flightcache.ErrGoexit.Error()}
	}
	return modelResult{value: fmt.Sprintf("v%d:%s", step, key)}
}

// load runs one single-key fetch of key following p.
func (m *model) load(key string, step int, p fetchPlan, background bool, refreshOf *modelEntry) modelResult {
	m.fetches++
	m.now += int64(p.slow)
	res := singleResult(key, step, p)
	m.finish(key, res, p.setTTL, p.ttl, background, refreshOf)
	return res
}

var modelClosed = modelResult{class: classClosed, msg: flightcache.ErrClosed.Error()}

// get is Get(key): its result and the fetches it runs.
func (m *model) get(key string, step int, p fetchPlan) (modelResult, []string) {
	if m.closed {
		return modelClosed, nil
	}
	if m.cache {
		if e := m.lookup(key); e != nil {
			res, refresh := m.hit(e)
			if refresh {
				m.load(key, step, p, true, e)
				return res, []string{"fetch " + key}
			}
			return res, nil
		}
	}
	m.st.Misses++
	m.st.Loads++
	return m.load(key, step, p, false, nil), []string{"fetch " + key}
}

// getMany is GetMany(keys) with a batch fetch: hits first (their refreshes
// run after the batch, in key order: the test holds them until then), then
// one batch fetch of the missing keys in request order.
func (m *model) getMany(keys []string, step int, plans map[string]fetchPlan, bp batchPlan) (map[string]modelResult, []string) {
	results := make(map[string]modelResult)
	var missing []string
	type refresh struct {
		key string
		e   *modelEntry
	}
	var refreshes []refresh
	for _, key := range keys {
		if _, dup := results[key]; dup || slices.Contains(missing, key) {
			continue
		}
		if m.closed {
			results[key] = modelClosed
			continue
		}
		if m.cache {
			if e := m.lookup(key); e != nil {
				res, r := m.hit(e)
				results[key] = res
				if r {
					refreshes = append(refreshes, refresh{key, e})
				}
				continue
			}
		}
		missing = append(missing, key)
	}
	var log []string
	if len(missing) > 0 {
		m.batches++
		m.st.Misses += uint64(len(missing))
		m.st.Loads += uint64(len(missing))
		m.st.Batch++
		log = append(log, "batch "+strings.Join(missing, ","))
		m.now += int64(bp.slow)
		what := fmt.Sprintf("batch@%d", step)
		for _, key := range missing {
			var res modelResult
			switch {
			case bp.kind == fetchError:
				res = modelResult{class: classTransient, msg: "transient " + what}
			case bp.kind == fetchPanic:
				res = modelResult{class: classPanic, msg: "boom " + what}
			case bp.kind == fetchGoexit:
				res = modelResult{class: classGoexit, msg: flightcache.ErrGoexit.Error()}
			case bp.absent[key]:
				res = modelResult{class: classNotFound} // the Loader's own text
			default:
				res = modelResult{value: fmt.Sprintf("b%d:%s", step, key)}
			}
			results[key] = res
			m.finish(key, res, false, 0, false, nil)
		}
	}
	for _, r := range refreshes {
		log = append(log, "fetch "+r.key)
		m.load(r.key, step, plans[r.key], true, r.e)
	}
	return results, log
}

func (m *model) set(key, value string) {
	if m.closed || !m.cache {
		return
	}
	e := &modelEntry{value: value, expires: modelForever}
	if m.ttl > 0 {
		e.expires = modelAdd(m.now, m.ttl)
	}
	e.staleUntil = modelAdd(e.expires, m.stale)
	m.store(key, e)
}

func (m *model) refresh(key string, step int, p fetchPlan) []string {
	if m.closed || !m.cache {
		return nil
	}
	m.st.Refreshes++
	m.load(key, step, p, true, nil)
	return []string{"fetch " + key}
}

// modelRun drives one seed: the Loader, the model, and the fake backend
// whose answers the run chooses.
type modelRun struct {
	t     *testing.T
	seed  uint64
	rng   *rand.Rand
	clock *relClock
	l     *flightcache.Loader[string, string]
	m     *model
	keys  []string
	trace []string // the operations so far, for the report
	cfg   string

	mu      sync.Mutex // guards the fields below, read by fetch goroutines
	step    int
	plans   map[string]fetchPlan // this step's plan for each key
	bplan   batchPlan
	log     []string // the fetches that ran this step, in order
	holding bool     // single fetches wait for their gate (during GetMany)
	gates   map[string]chan struct{}
	blocked int // single fetches waiting for their gate
}

func (r *modelRun) fetch(ctx context.Context, key string) (string, error) {
	r.mu.Lock()
	var gate chan struct{}
	if r.holding {
		gate = r.gateLocked(key)
		r.blocked++
	}
	r.mu.Unlock()
	if gate != nil {
		<-gate
		r.mu.Lock()
		r.blocked--
		r.mu.Unlock()
	}
	r.mu.Lock()
	p, step := r.plans[key], r.step
	r.log = append(r.log, "fetch "+key)
	r.mu.Unlock()
	r.clock.Advance(p.slow)
	if p.setTTL {
		flightcache.SetTTL(ctx, p.ttl)
	}
	what := fmt.Sprintf("%s@%d", key, step)
	switch p.kind {
	case fetchNotFound:
		return "", fmt.Errorf("%w: %s", flightcache.ErrNotFound, what)
	case fetchError:
		return "", &modelTransient{what}
	case fetchPanic:
		panic("boom " + what)
	case fetchGoexit:
		runtime.Goexit()
	}
	return fmt.Sprintf("v%d:%s", step, key), nil
}

func (r *modelRun) batch(ctx context.Context, keys []string) (map[string]string, error) {
	r.mu.Lock()
	bp, step := r.bplan, r.step
	r.log = append(r.log, "batch "+strings.Join(keys, ","))
	r.mu.Unlock()
	r.clock.Advance(bp.slow)
	what := fmt.Sprintf("batch@%d", step)
	switch bp.kind {
	case fetchError:
		return nil, &modelTransient{what}
	case fetchPanic:
		panic("boom " + what)
	case fetchGoexit:
		runtime.Goexit()
	}
	out := make(map[string]string)
	for _, k := range keys {
		if !bp.absent[k] {
			out[k] = fmt.Sprintf("b%d:%s", step, k)
		}
	}
	return out, nil
}

// gateLocked returns key's gate, making it. r.mu must be held.
func (r *modelRun) gateLocked(key string) chan struct{} {
	g, ok := r.gates[key]
	if !ok {
		g = make(chan struct{})
		r.gates[key] = g
	}
	return g
}

func (r *modelRun) release(key string) {
	r.mu.Lock()
	g := r.gateLocked(key)
	r.mu.Unlock()
	select {
	case <-g:
	default:
		close(g)
	}
}

func (r *modelRun) pick(ds ...time.Duration) time.Duration { return ds[r.rng.IntN(len(ds))] }

func (r *modelRun) randomPlan() fetchPlan {
	var p fetchPlan
	switch n := r.rng.IntN(100); {
	case n < 55:
		p.kind = fetchValue
	case n < 72:
		p.kind = fetchNotFound
	case n < 86:
		p.kind = fetchError
	case n < 94:
		p.kind = fetchPanic
	default:
		p.kind = fetchGoexit
	}
	if r.rng.IntN(4) == 0 {
		p.slow = r.pick(1, 2, time.Second, r.m.ttl, r.m.ttl-1, time.Duration(r.rng.Int64N(int64(20*time.Second))))
		p.slow = max(p.slow, 0) // a TTL of 0 or huge: no overflow of the fake clock
		p.slow = min(p.slow, time.Hour)
	}
	if r.rng.IntN(8) == 0 {
		p.setTTL = true
		p.ttl = r.pick(0, -1, 1, 3*time.Second, math.MaxInt64, math.MinInt64)
	}
	return p
}

func (r *modelRun) randomBatchPlan(keys []string) batchPlan {
	bp := batchPlan{absent: map[string]bool{}}
	switch n := r.rng.IntN(100); {
	case n < 75:
		bp.kind = fetchValue
	case n < 88:
		bp.kind = fetchError
	case n < 95:
		bp.kind = fetchPanic
	default:
		bp.kind = fetchGoexit
	}
	for _, k := range keys {
		if r.rng.IntN(4) == 0 {
			bp.absent[k] = true
		}
	}
	if r.rng.IntN(4) == 0 {
		bp.slow = time.Duration(r.rng.Int64N(int64(15 * time.Second)))
	}
	return bp
}

// randomAdvance picks how far the clock moves: often exactly to (or 1ns
// either side of) a boundary of some entry, so that every boundary is hit
// to the nanosecond.
func (r *modelRun) randomAdvance() time.Duration {
	switch r.rng.IntN(6) {
	case 0:
		return time.Duration(r.rng.IntN(3))
	case 1:
		return time.Duration(r.rng.Int64N(int64(20 * time.Second)))
	case 2:
		return r.pick(time.Minute, 5*time.Minute, time.Hour)
	}
	var bounds []int64
	for _, e := range r.m.entries {
		for _, b := range []int64{e.expires, e.staleUntil, e.retryAt} {
			if b != modelForever && b > r.m.now && b-r.m.now < int64(24*time.Hour) {
				bounds = append(bounds, b)
			}
		}
	}
	if len(bounds) == 0 {
		return time.Duration(r.rng.IntN(3))
	}
	slices.Sort(bounds)
	b := bounds[r.rng.IntN(len(bounds))]
	return max(time.Duration(b-r.m.now)+time.Duration(r.rng.IntN(3)-1), 0)
}

func (r *modelRun) fail(format string, args ...any) {
	r.t.Helper()
	from := max(0, len(r.trace)-40)
	r.t.Fatalf("seed %d, step %d: %s\nconfig: %s\nlast operations:\n  %s\nreplay: go test -race -run 'TestModel/seed=%d$' .",
		r.seed, r.step, fmt.Sprintf(format, args...), r.cfg, strings.Join(r.trace[from:], "\n  "), r.seed)
}

// settle lets every background refresh finish and returns the fetches
// that ran this step.
func (r *modelRun) settle() []string {
	synctest.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	log := r.log
	r.log = nil
	return log
}

func (r *modelRun) checkStep(op string, got, want modelResult, gotLog, wantLog []string) {
	r.t.Helper()
	if !want.matches(got) {
		r.fail("%s returned %v, the model says %v", op, got, want)
	}
	r.checkLog(op, gotLog, wantLog)
}

func (r *modelRun) checkLog(op string, got, want []string) {
	r.t.Helper()
	if !slices.Equal(got, want) {
		r.fail("%s ran fetches %q, the model says %q", op, got, want)
	}
}

func (r *modelRun) checkState() {
	r.t.Helper()
	if got, want := r.l.Len(), len(r.m.entries); got != want {
		r.fail("Len() = %d, the model holds %d: %q", got, want, r.m.order)
	}
	s := r.l.Stats()
	got := modelCounters{
		Hits: s.Hits, Misses: s.Misses, Loads: s.Loads, LoadErrors: s.LoadErrors, Panics: s.Panics,
		Evictions: s.Evictions, StaleHits: s.StaleHits, NegativeHits: s.NegativeHits,
		Refreshes: s.Refreshes, RefreshErrors: s.RefreshErrors, Batch: s.BatchLoads,
	}
	if got != r.m.st {
		r.fail("Stats differ:\n  loader %+v\n  model  %+v", got, r.m.st)
	}
	if s.Shared != 0 || s.Abandoned != 0 || s.InFlight != 0 {
		r.fail("Shared %d, Abandoned %d, InFlight %d: all must be 0 in a sequential run at rest", s.Shared, s.Abandoned, s.InFlight)
	}
}

func (r *modelRun) setPlans(plans map[string]fetchPlan, bp batchPlan) {
	r.mu.Lock()
	r.step++
	r.plans, r.bplan = plans, bp
	r.mu.Unlock()
}

func (r *modelRun) randomKey() string { return r.keys[r.rng.IntN(len(r.keys))] }

// stepOnce runs one random operation on both and compares.
func (r *modelRun) stepOnce(ops map[string]int) {
	ctx := context.Background()
	n := r.rng.IntN(100)
	switch {
	case n < 42: // Get
		key, p := r.randomKey(), r.randomPlan()
		r.setPlans(map[string]fetchPlan{key: p}, batchPlan{})
		op := fmt.Sprintf("%d: Get(%s) fetch:%v", r.step, key, p)
		r.trace = append(r.trace, op)
		ops["Get"]++
		want, wantLog := r.m.get(key, r.step, p)
		got := classify(r.l.Get(ctx, key))
		r.checkStep(op, got, want, r.settle(), wantLog)
	case n < 52: // GetMany
		keys := make([]string, 1+r.rng.IntN(5))
		plans := map[string]fetchPlan{}
		for i := range keys {
			keys[i] = r.randomKey()
			plans[keys[i]] = r.randomPlan()
		}
		bp := r.randomBatchPlan(keys)
		r.setPlans(plans, bp)
		op := fmt.Sprintf("%d: GetMany(%q) batch:%v absent:%v slow:%v refreshes:%v", r.step, keys, bp.kind, bp.absent, bp.slow, plans)
		r.trace = append(r.trace, op)
		ops["GetMany"]++
		want, wantLog := r.m.getMany(keys, r.step, plans, bp)
		r.mu.Lock()
		r.holding, r.gates, r.blocked = true, map[string]chan struct{}{}, 0
		r.mu.Unlock()
		res := r.l.GetMany(ctx, keys)
		synctest.Wait()
		// The refreshes that the hits started wait for their gates: let
		// them run one at a time, in the model's order.
		for _, entry := range wantLog {
			if key, ok := strings.CutPrefix(entry, "fetch "); ok {
				r.release(key)
				synctest.Wait()
			}
		}
		r.mu.Lock()
		extra := r.blocked
		r.holding = false
		for k := range r.gates {
			select {
			case <-r.gates[k]:
			default:
				close(r.gates[k])
			}
		}
		r.mu.Unlock()
		gotLog := r.settle()
		if extra > 0 {
			r.fail("%s started %d refreshes the model did not expect (fetches %q, want %q)", op, extra, gotLog, wantLog)
		}
		if res.Len() != len(want) {
			r.fail("%s: Results.Len() = %d, want %d", op, res.Len(), len(want))
		}
		for _, key := range keys {
			got := classify(res.Get(key))
			if !want[key].matches(got) {
				r.fail("%s: key %s got %v, the model says %v", op, key, got, want[key])
			}
		}
		r.checkLog(op, gotLog, wantLog)
	case n < 60: // Set
		key := r.randomKey()
		r.setPlans(nil, batchPlan{})
		value := fmt.Sprintf("s%d:%s", r.step, key)
		r.trace = append(r.trace, fmt.Sprintf("%d: Set(%s)", r.step, key))
		ops["Set"]++
		r.m.set(key, value)
		r.l.Set(key, value)
		r.checkLog("Set", r.settle(), nil)
	case n < 66: // Invalidate
		key := r.randomKey()
		r.setPlans(nil, batchPlan{})
		r.trace = append(r.trace, fmt.Sprintf("%d: Invalidate(%s)", r.step, key))
		ops["Invalidate"]++
		if r.m.cache {
			r.m.drop(key)
		}
		r.l.Invalidate(key)
		r.checkLog("Invalidate", r.settle(), nil)
	case n < 67: // InvalidateAll
		r.setPlans(nil, batchPlan{})
		r.trace = append(r.trace, fmt.Sprintf("%d: InvalidateAll", r.step))
		ops["InvalidateAll"]++
		if r.m.cache {
			r.m.clearAll()
		}
		r.l.InvalidateAll()
		r.checkLog("InvalidateAll", r.settle(), nil)
	case n < 72: // Refresh
		key, p := r.randomKey(), r.randomPlan()
		r.setPlans(map[string]fetchPlan{key: p}, batchPlan{})
		op := fmt.Sprintf("%d: Refresh(%s) fetch:%v", r.step, key, p)
		r.trace = append(r.trace, op)
		ops["Refresh"]++
		wantLog := r.m.refresh(key, r.step, p)
		<-r.l.Refresh(ctx, key)
		r.checkLog(op, r.settle(), wantLog)
	default: // the clock moves
		d := r.randomAdvance()
		r.setPlans(nil, batchPlan{})
		r.trace = append(r.trace, fmt.Sprintf("%d: Advance(%v) now=%d", r.step, d, r.m.now+int64(d)))
		ops["Advance"]++
		r.m.now += int64(d)
		r.clock.Advance(d)
	}
	r.checkState()
}

// modelTotals adds up what every seed did, for the report.
type modelTotals struct {
	mu               sync.Mutex
	seeds, steps     int
	fetches, batches int
	ops              map[string]int
}

func runModel(t *testing.T, seed uint64, steps int, totals *modelTotals) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	r := &modelRun{t: t, seed: seed, rng: rng, clock: relNewClock(), plans: map[string]fetchPlan{}}
	m := &model{cache: rng.IntN(8) != 0, max: 1 + rng.IntN(8), entries: map[string]*modelEntry{},
		sieve: seed%2 == 0, visited: map[string]bool{}, hand: -1}
	r.m = m
	m.ttl = r.pick(0, 1, 2, 10, time.Second, 10*time.Second, time.Minute, math.MaxInt64)
	m.stale = r.pick(0, 0, 1, 3, time.Second, 5*time.Second, time.Hour, math.MaxInt64)
	m.negTTL = r.pick(0, 1, time.Second, 30*time.Second, math.MaxInt64)
	cfg := flightcache.Config{
		Mode: flightcache.ModeFlight, MaxEntries: m.max, TTL: m.ttl, StaleTTL: m.stale, NegativeTTL: m.negTTL,
		Clock: r.clock,
	}
	if m.cache {
		cfg.Mode = flightcache.ModeCache
	}
	if !m.sieve {
		cfg.Policy = flightcache.PolicyLRU
	}
	r.cfg = fmt.Sprintf("Mode %v, Policy %v, MaxEntries %d, TTL %v, StaleTTL %v, NegativeTTL %v", cfg.Mode, cfg.Policy, cfg.MaxEntries, cfg.TTL, cfg.StaleTTL, cfg.NegativeTTL)
	for i := range m.max + 1 + rng.IntN(5) {
		r.keys = append(r.keys, fmt.Sprintf("k%d", i))
	}
	l, err := flightcache.New(r.fetch, cfg, flightcache.WithBatch(r.batch))
	if err != nil {
		t.Fatalf("seed %d: New: %v", seed, err)
	}
	r.l = l
	defer l.Close()

	ops := map[string]int{}
	for range steps {
		r.stepOnce(ops)
	}

	// Close, then every operation is refused and nothing fetches.
	r.setPlans(nil, batchPlan{})
	r.trace = append(r.trace, fmt.Sprintf("%d: Close", r.step))
	if err := l.Close(); err != nil {
		r.fail("Close: %v", err)
	}
	m.closed = true
	m.clearAll()
	r.checkState()
	for range 10 {
		r.stepOnce(ops)
	}

	totals.mu.Lock()
	defer totals.mu.Unlock()
	totals.seeds++
	totals.steps += steps + 11
	totals.fetches += m.fetches
	totals.batches += m.batches
	for k, v := range ops {
		totals.ops[k] += v
	}
}

func TestModel(t *testing.T) {
	seeds := relSize(t, "FLIGHTCACHE_MODEL_SEEDS", 300, 5000)
	steps := relSize(t, "FLIGHTCACHE_MODEL_STEPS", 150, 400)
	first := relEnvInt(t, "FLIGHTCACHE_MODEL_FIRST_SEED", 1)
	totals := &modelTotals{ops: map[string]int{}}
	for seed := first; seed < first+seeds; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				runModel(t, uint64(seed), steps, totals)
			})
		})
	}
	t.Logf("model: %d seeds (%d..%d) x %d steps = %d operations (%v), %d fetches, %d batch fetches, all equivalent",
		totals.seeds, first, first+seeds-1, steps+11, totals.steps, totals.ops, totals.fetches, totals.batches)
}
