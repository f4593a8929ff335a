package redistier

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flightcache/flightcache"
	"github.com/redis/go-redis/v9"
)

// Tier is a flightcache.Remote kept in Redis: the tier that every instance
// of a service shares, between each instance's local cache and the fetch.
// Create one with New and hand it to flightcache.New with
// flightcache.WithRemote; the zero Tier is not usable. A Tier is safe for
// concurrent use by any number of goroutines.
//
// Every Redis call is bounded by Options.Timeout and goes through a circuit
// breaker; a failure is returned as an error (wrapping the go-redis error,
// ErrCircuitOpen or ErrClosed), never as a panic, so that the Loader can
// carry on without the shared tier.
//
// Records expire in Redis by their TTL (SET ... PX) and carry their
// absolute expiry, on the writer's wall clock, in their envelope: Get
// returns the lifetime left by the reader's wall clock, at most the TTL the
// record was written with. Instances are expected to keep their clocks in
// sync (NTP: milliseconds apart); a reader whose clock is s ahead of the
// writer's sees records s shorter-lived (expired early when s exceeds the
// TTL), one whose clock is s behind sees them up to s longer-lived, never
// beyond their full TTL.
type Tier[K comparable, V any] struct {
	client       redis.UniversalClient
	cfg          config[K]
	ks           keyspace
	invChannel   string   // invalidations of the prefix, every schema version
	leaseChannel string   // lease releases of the prefix
	instance     [16]byte // identifies this Tier's invalidation messages
	br           breaker

	writesDropped atomic.Uint64
	corrupt       atomic.Uint64
	closed        atomic.Bool

	mu       sync.Mutex                            // guards waiters, notifier, watches and replays.Add
	waiters  map[string]map[chan struct{}]struct{} // Await's wake-up channels, by record key
	notifier *subscriber                           // lease releases; started by the first Await
	watches  map[*subscriber]struct{}              // running Watches, stopped by Close
	replays  sync.WaitGroup                        // the running replay of failed invalidations

	pendingMu  sync.Mutex        // guards pending
	pending    map[string]string // failed invalidations to send again: record key → message ("" if none)
	hasPending atomic.Bool       // pending is not empty
	replaying  atomic.Bool       // a replay goroutine runs

	testHookAwait func() // tests: called each time Await starts waiting
}

// compile-time check that a Tier is a flightcache.Remote.
var _ flightcache.Remote[string, int] = (*Tier[string, int])(nil)

// New returns a Tier that keeps records in Redis through client. It returns
// an error wrapping ErrInvalidOptions that names every problem with opts,
// or with client: nil, or a go-redis client created without
// ContextTimeoutEnabled (it would not honour Options.Timeout). New does not
// contact Redis.
//
// The client remains the caller's: the Tier never closes it, and it must
// outlive the Tier.
func New[K comparable, V any](client redis.UniversalClient, opts Options[K]) (*Tier[K, V], error) {
	cfg, err := resolve(client, opts)
	if err != nil {
		return nil, err
	}
	t := &Tier[K, V]{
		client:       client,
		cfg:          cfg,
		ks:           newKeyspace(cfg.prefix, cfg.schema),
		invChannel:   cfg.prefix + invalidationSuffix,
		leaseChannel: cfg.prefix + leaseSuffix,
		br: breaker{
			threshold: int64(cfg.breakerFailures),
			cooldown:  cfg.breakerCooldown,
			now:       cfg.now,
			logger:    cfg.logger,
		},
		waiters: make(map[string]map[chan struct{}]struct{}),
		watches: make(map[*subscriber]struct{}),
		pending: make(map[string]string),
	}
	_, _ = rand.Read(t.instance[:]) // never fails
	return t, nil
}

// Get returns the record stored for key, with the lifetime it has left.
// ok is false, with a nil error, when there is none, when it has expired,
// and when the stored bytes do not decode (another format version, too
// large, not an envelope, rejected by the Codec): such records are counted
// in Stats().Corrupt and left for the next Set to overwrite.
func (t *Tier[K, V]) Get(ctx context.Context, key K) (rec flightcache.RemoteRecord[V], ok bool, err error) {
	if t.closed.Load() {
		return rec, false, fmt.Errorf("%w (get)", ErrClosed)
	}
	enc, err := t.encodeKey(key)
	if err != nil {
		return rec, false, err
	}
	return t.get(ctx, "get", t.ks.key(kindRecord, enc))
}

// get reads and decodes the record at rk.
func (t *Tier[K, V]) get(ctx context.Context, op, rk string) (rec flightcache.RemoteRecord[V], ok bool, err error) {
	var b []byte
	err = t.call(ctx, op, func(ctx context.Context) error {
		var err error
		b, err = t.client.Get(ctx, rk).Bytes()
		return err
	})
	if errors.Is(err, redis.Nil) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, err
	}
	rec, ok = t.decode(b)
	return rec, ok, nil
}

// Set stores rec for key for rec.TTL (rounded up to a millisecond); a TTL
// of zero or less stores nothing and returns nil. A write that cannot be
// made (Redis failed, the breaker is open, the Codec failed, the record is
// larger than Options.MaxValueBytes) is dropped, counted in
// Stats().WritesDropped and returned as an error.
func (t *Tier[K, V]) Set(ctx context.Context, key K, rec flightcache.RemoteRecord[V]) error {
	if rec.TTL <= 0 {
		return nil
	}
	err := t.set(ctx, key, rec)
	if err != nil {
		t.writesDropped.Add(1)
	}
	return err
}

func (t *Tier[K, V]) set(ctx context.Context, key K, rec flightcache.RemoteRecord[V]) error {
	if t.closed.Load() {
		return fmt.Errorf("%w (set)", ErrClosed)
	}
	enc, err := t.encodeKey(key)
	if err != nil {
		return err
	}
	ttlMs := durationMs(rec.TTL)
	e := envelope{expiryMs: t.nowMs() + ttlMs, ttlMs: ttlMs, negative: rec.NotFound}
	if !rec.NotFound {
		if e.payload, err = t.marshal(rec.Value); err != nil {
			return err
		}
	}
	if n := envelopeHeader + len(e.payload); n > t.cfg.maxValueBytes {
		return fmt.Errorf("%w: a record of %d bytes, limit %d", ErrValueTooLarge, n, t.cfg.maxValueBytes)
	}
	b := appendEnvelope(make([]byte, 0, envelopeHeader+len(e.payload)), e)
	rk := t.ks.key(kindRecord, enc)
	return t.call(ctx, "set", func(ctx context.Context) error {
		return t.client.Set(ctx, rk, b, time.Duration(ttlMs)*time.Millisecond).Err()
	})
}

// Invalidate deletes key's record and then publishes the key on the
// prefix's invalidation channel, so that every other Tier of the prefix
// watching it (see Watch) hands the key to its onInvalidate. The key is
// sent encoded with the Codec; Invalidate fails with an error wrapping
// ErrCodec, after the delete, if the key does not come back equal from a
// Codec round trip.
//
// An invalidation that fails because of Redis (or the open breaker) is
// returned as an error and also remembered (up to MaxPendingInvalidations
// keys): it is sent again, delete and message, on a goroutine of the Tier's,
// as soon as a call shows Redis answering again, so that neither Redis nor
// another instance keeps the stale value after the outage. Sending it again
// is safe even if the key was written since: that only costs a miss.
func (t *Tier[K, V]) Invalidate(ctx context.Context, key K) error {
	if t.closed.Load() {
		return fmt.Errorf("%w (invalidate)", ErrClosed)
	}
	enc, err := t.encodeKey(key)
	if err != nil {
		return err
	}
	msg, msgErr := t.invalidation(key, enc)
	rk := t.ks.key(kindRecord, enc)
	if err := t.invalidate(ctx, rk, msg); err != nil {
		t.remember(rk, msg)
		return err
	}
	return msgErr
}

// invalidate deletes the record at rk and then, if msg is not empty,
// publishes msg.
func (t *Tier[K, V]) invalidate(ctx context.Context, rk, msg string) error {
	if err := t.call(ctx, "invalidate", func(ctx context.Context) error {
		return t.client.Del(ctx, rk).Err()
	}); err != nil || msg == "" {
		return err
	}
	// After the delete, not pipelined with it: an instance that drops its
	// copy on this message must not read the old record back.
	return t.call(ctx, "invalidate", func(ctx context.Context) error {
		return t.client.Publish(ctx, t.invChannel, msg).Err()
	})
}

// releaseScript deletes a lease if it still holds the caller's token, then
// wakes the waiters of the key in any case: the record may have been
// stored even if the lease expired first.
var releaseScript = redis.NewScript(`
local held = 0
if redis.call("GET", KEYS[1]) == ARGV[1] then
	redis.call("DEL", KEYS[1])
	held = 1
end
redis.call("PUBLISH", ARGV[2], ARGV[3])
return held
`)

// Lease tries to take the fleet-wide right to fetch key for ttl (rounded up
// to a millisecond): SET NX PX on the key's lease with a random token. ok
// is false, with a nil error, when another holder has it. release gives the
// lease up: it deletes the lease only if it still holds this token (a
// compare-and-delete script, so a lease that expired and was taken by
// another instance is left alone), and wakes the Awaits of the key. Store
// the record before releasing, or the waiters return without it. release
// may be called any number of times, even after Close; it is bounded by
// Options.Timeout and its failure is only logged (the lease then expires by
// its TTL). When ok is false, release is a no-op.
func (t *Tier[K, V]) Lease(ctx context.Context, key K, ttl time.Duration) (release func(), ok bool, err error) {
	release = func() {}
	if t.closed.Load() {
		return release, false, fmt.Errorf("%w (lease)", ErrClosed)
	}
	if ttl <= 0 {
		return release, false, fmt.Errorf("redistier: lease: ttl must be > 0 (got %v)", ttl)
	}
	enc, err := t.encodeKey(key)
	if err != nil {
		return release, false, err
	}
	lk, rk := t.ks.key(kindLease, enc), t.ks.key(kindRecord, enc)
	token := rand.Text()
	err = t.call(ctx, "lease", func(ctx context.Context) error {
		var err error
		ok, err = t.client.SetNX(ctx, lk, token, time.Duration(durationMs(ttl))*time.Millisecond).Result()
		return err
	})
	if err != nil || !ok {
		return release, false, err
	}
	var once sync.Once
	return func() { once.Do(func() { t.release(lk, rk, token) }) }, true, nil
}

// release runs releaseScript for one lease.
func (t *Tier[K, V]) release(lk, rk, token string) {
	err := t.call(context.Background(), "release", func(ctx context.Context) error {
		return releaseScript.Run(ctx, t.client, []string{lk}, token, t.leaseChannel, rk).Err()
	})
	if err != nil {
		t.log(slog.LevelWarn, "redistier: lease release failed; it will expire by its TTL", "error", err)
	}
}

// Await waits until a record for key is stored and returns it. It returns
// ok false and a nil error as soon as the key's lease is not held without a
// record being stored (released, expired, or never taken), and when ctx
// ends (ctx.Err() tells). It returns an error when Redis fails.
//
// Await is woken by the lease-release notification that release publishes
// (one subscription per Tier, opened by the first Await, kept until Close)
// and, in case that is lost or the record is stored without a release,
// re-reads the key every Options.PollInterval. Each read is two Redis calls
// (the lease, then the record), each bounded by Options.Timeout; Await
// itself is bounded only by ctx. It starts no goroutine of its own.
func (t *Tier[K, V]) Await(ctx context.Context, key K) (rec flightcache.RemoteRecord[V], ok bool, err error) {
	if t.closed.Load() {
		return rec, false, fmt.Errorf("%w (await)", ErrClosed)
	}
	enc, err := t.encodeKey(key)
	if err != nil {
		return rec, false, err
	}
	rk, lk := t.ks.key(kindRecord, enc), t.ks.key(kindLease, enc)
	wake, ready := t.addWaiter(rk)
	defer t.removeWaiter(rk, wake)
	var tick *time.Ticker
	for {
		if ctx.Err() != nil {
			return rec, false, nil
		}
		if t.closed.Load() {
			return rec, false, fmt.Errorf("%w (await)", ErrClosed)
		}
		rec, ok, held, err := t.check(ctx, rk, lk)
		if err != nil {
			if ctx.Err() != nil {
				return rec, false, nil
			}
			return rec, false, err
		}
		if ok || !held {
			return rec, ok, nil
		}
		if ready != nil {
			// The Tier's first wait: the notification subscription is
			// starting. Wait for it (up to Timeout) and read again, since
			// a release before it was confirmed went unnoticed.
			timer := time.NewTimer(t.cfg.timeout)
			select {
			case <-ready:
			case <-timer.C:
			case <-ctx.Done():
			}
			timer.Stop()
			ready = nil
			continue
		}
		if tick == nil {
			tick = time.NewTicker(t.cfg.pollInterval)
			defer tick.Stop()
		}
		if t.testHookAwait != nil {
			t.testHookAwait()
		}
		select {
		case <-wake:
		case <-tick.C:
		case <-ctx.Done():
		}
	}
}

// check reads whether the lease of a key is held and then its record: in
// this order, so that a lease found released means that a record stored
// before the release is seen.
func (t *Tier[K, V]) check(ctx context.Context, rk, lk string) (rec flightcache.RemoteRecord[V], ok, held bool, err error) {
	var n int64
	err = t.call(ctx, "await", func(ctx context.Context) error {
		var err error
		n, err = t.client.Exists(ctx, lk).Result()
		return err
	})
	if err != nil {
		return rec, false, false, err
	}
	rec, ok, err = t.get(ctx, "await", rk)
	return rec, ok, n > 0, err
}

// addWaiter registers a wake-up channel for the record key rk, starting the
// lease-notification subscription if it is not running. ready is non-nil
// while that subscription has not been confirmed yet.
func (t *Tier[K, V]) addWaiter(rk string) (wake chan struct{}, ready <-chan struct{}) {
	wake = make(chan struct{}, 1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.notifier == nil && !t.closed.Load() {
		t.notifier = newSubscriber(t.client, t.leaseChannel, t.cfg.timeout, t.cfg.pingInterval,
			t.cfg.logger, "lease notifications", t.wakeWaiters, t.wakeAll)
		t.notifier.start()
	}
	if t.notifier != nil {
		select {
		case <-t.notifier.ready:
		default:
			ready = t.notifier.ready
		}
	}
	m := t.waiters[rk]
	if m == nil {
		m = make(map[chan struct{}]struct{})
		t.waiters[rk] = m
	}
	m[wake] = struct{}{}
	return wake, ready
}

func (t *Tier[K, V]) removeWaiter(rk string, wake chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m := t.waiters[rk]; m != nil {
		delete(m, wake)
		if len(m) == 0 {
			delete(t.waiters, rk)
		}
	}
}

// wakeWaiters wakes the Awaits of the record key in a lease notification.
func (t *Tier[K, V]) wakeWaiters(rk string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for ch := range t.waiters[rk] {
		signal(ch)
	}
}

// wakeAll wakes every Await, after notifications may have been missed.
func (t *Tier[K, V]) wakeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.waiters {
		for ch := range m {
			signal(ch)
		}
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Watch subscribes to the prefix's invalidation channel on a goroutine of
// its own and, until stop is called, hands every key invalidated by another
// Tier (another instance) to onInvalidate; the Tier's own invalidations are
// skipped. When the subscription breaks (an error, or a ping unanswered
// within Options.Timeout after Options.PingInterval of silence) it is
// re-established with exponential backoff (25ms doubling to 5s, jittered),
// and onReset is called once it is: invalidations may have been missed
// meanwhile. onReset is also called for a message that cannot be decoded,
// or whose key does not encode back to the key it names.
//
// Watch waits up to Options.Timeout for the subscription to be confirmed;
// if it is not by then, Watch returns anyway and onReset is called when it
// is. The handlers run one at a time on the Watch's goroutine and must not
// block (nor call stop or Close, which wait for that goroutine); a panic in
// one is logged and contained. stop unsubscribes and
// returns once the goroutine has ended; it may be called more than once.
// Close stops every Watch. After Close, Watch does nothing.
func (t *Tier[K, V]) Watch(onInvalidate func(key K), onReset func()) (stop func()) {
	if onInvalidate == nil {
		onInvalidate = func(K) {}
	}
	if onReset == nil {
		onReset = func() {}
	}
	var s *subscriber
	s = newSubscriber(t.client, t.invChannel, t.cfg.timeout, t.cfg.pingInterval, t.cfg.logger, "watch",
		func(payload string) { t.invalidated(payload, onInvalidate, onReset) }, onReset)
	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		return func() {}
	}
	t.watches[s] = struct{}{}
	t.mu.Unlock()
	s.start()
	timer := time.NewTimer(t.cfg.timeout)
	select {
	case <-s.ready:
	case <-timer.C:
		s.markLate()
	}
	timer.Stop()
	return func() {
		s.stop()
		t.mu.Lock()
		delete(t.watches, s)
		t.mu.Unlock()
	}
}

// Invalidation messages, published on <prefix>:invalidations:
//
//	offset size field
//	0      1    message version (messageVersion)
//	1      16   instance id of the sender
//	17     n    uvarint length of the key body, then the body (see keys.go)
//	-      -    the key encoded with the Codec
//
// The body lets the receiver check that the key it decodes is the key the
// sender meant (same KeyEncoder, Codec round trip).
const messageVersion = 1

// invalidation returns the message announcing the invalidation of key.
func (t *Tier[K, V]) invalidation(key K, enc string) (string, error) {
	kb, err := t.marshal(key)
	if err != nil {
		return "", err
	}
	var back K
	if err := t.unmarshal(kb, &back); err != nil || back != key {
		return "", fmt.Errorf("%w: the key does not survive a round trip, so other instances could not drop it", ErrCodec)
	}
	bd := body(enc)
	msg := make([]byte, 0, 1+len(t.instance)+binary.MaxVarintLen64+len(bd)+len(kb))
	msg = append(msg, messageVersion)
	msg = append(msg, t.instance[:]...)
	msg = binary.AppendUvarint(msg, uint64(len(bd)))
	msg = append(msg, bd...)
	msg = append(msg, kb...)
	return string(msg), nil
}

// errBadMessage is returned by parseInvalidation.
var errBadMessage = errors.New("redistier: malformed invalidation message")

// parseInvalidation splits an invalidation message.
func parseInvalidation(msg []byte) (instance []byte, bd, kb []byte, err error) {
	if len(msg) < 1+16 || msg[0] != messageVersion {
		return nil, nil, nil, errBadMessage
	}
	instance, rest := msg[1:17], msg[17:]
	n, w := binary.Uvarint(rest)
	if w <= 0 || n > uint64(len(rest)-w) {
		return nil, nil, nil, errBadMessage
	}
	rest = rest[w:]
	return instance, rest[:n], rest[n:], nil
}

// invalidated handles one message of the invalidation channel.
func (t *Tier[K, V]) invalidated(payload string, onInvalidate func(K), onReset func()) {
	instance, bd, kb, err := parseInvalidation([]byte(payload))
	if err == nil && bytes.Equal(instance, t.instance[:]) {
		return // our own
	}
	var key K
	if err == nil {
		err = t.unmarshal(kb, &key)
	}
	if err == nil {
		var enc string
		if enc, err = t.encodeKey(key); err == nil && body(enc) != string(bd) {
			err = errors.New("redistier: the key decoded from the message does not encode back to the key it names")
		}
	}
	if err != nil {
		t.log(slog.LevelWarn, "redistier: unreadable invalidation; resetting the local tier", "error", err)
		onReset()
		return
	}
	onInvalidate(key)
}

// Stats returns the Tier's counters: BreakerOpen while the breaker skips
// Redis (open, or half-open with its probe in flight), WritesDropped for
// the Sets that failed or were skipped (a TTL of zero or less excepted),
// Corrupt for the records read that did not decode. It takes no lock.
func (t *Tier[K, V]) Stats() flightcache.RemoteStats {
	return flightcache.RemoteStats{
		BreakerOpen:   t.br.isOpen(),
		WritesDropped: t.writesDropped.Load(),
		Corrupt:       t.corrupt.Load(),
	}
}

// Close stops every Watch, the subscription Await uses and the replay of
// failed invalidations, waits for their goroutines to end, and makes later
// calls return ErrClosed (a pending Await ends at its next read).
// Invalidations still waiting to be sent again are dropped. It does not close the client, which is the
// caller's. Calling Close again does nothing. It always returns nil.
func (t *Tier[K, V]) Close() error {
	if !t.closed.CompareAndSwap(false, true) {
		return nil
	}
	t.mu.Lock()
	subs := make([]*subscriber, 0, len(t.watches)+1)
	if t.notifier != nil {
		subs = append(subs, t.notifier)
	}
	for s := range t.watches {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	for _, s := range subs {
		s.stop()
	}
	t.replays.Wait()
	t.wakeAll()
	return nil
}

// call runs one Redis command under the breaker and Options.Timeout. It
// returns redis.Nil as it is (a miss is a success) and other errors
// wrapped with the operation's name.
func (t *Tier[K, V]) call(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	probe, ok := t.br.allow()
	if !ok {
		return fmt.Errorf("%w (%s skipped)", ErrCircuitOpen, op)
	}
	cctx, cancel := context.WithTimeout(ctx, t.cfg.timeout)
	err := fn(cctx)
	cancel()
	switch {
	case err == nil || errors.Is(err, redis.Nil):
		t.br.done(probe, outcomeSuccess)
		if t.hasPending.Load() {
			t.startReplay()
		}
		return err
	case ctx.Err() != nil: // the caller gave up: not Redis's fault
		t.br.done(probe, outcomeNeutral)
	default:
		t.br.done(probe, outcomeFailure)
	}
	return fmt.Errorf("redistier: %s: %w", op, err)
}

// decode turns stored bytes into a record; ok is false for a miss.
func (t *Tier[K, V]) decode(b []byte) (rec flightcache.RemoteRecord[V], ok bool) {
	if len(b) > t.cfg.maxValueBytes {
		t.corrupt.Add(1)
		return rec, false
	}
	e, err := decodeEnvelope(b)
	if err != nil {
		t.corrupt.Add(1)
		return rec, false
	}
	left := e.expiryMs - t.nowMs()
	if left <= 0 {
		return rec, false // expired: a miss, not corrupt
	}
	rec.TTL = time.Duration(min(left, e.ttlMs)) * time.Millisecond
	if e.negative {
		rec.NotFound = true
		return rec, true
	}
	if err := t.unmarshal(e.payload, &rec.Value); err != nil {
		t.corrupt.Add(1)
		return flightcache.RemoteRecord[V]{}, false
	}
	return rec, true
}

// encodeKey runs the KeyEncoder, containing a panic.
func (t *Tier[K, V]) encodeKey(key K) (enc string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("redistier: KeyEncoder panicked: %v", r)
		}
	}()
	return t.cfg.encodeKey(key), nil
}

// marshal runs the Codec's Marshal, containing a panic.
func (t *Tier[K, V]) marshal(v any) (b []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("%w: Marshal panicked: %v", ErrCodec, r)
		}
	}()
	b, err = t.cfg.codec.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCodec, err)
	}
	return b, nil
}

// unmarshal runs the Codec's Unmarshal, containing a panic.
func (t *Tier[K, V]) unmarshal(data []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: Unmarshal panicked: %v", ErrCodec, r)
		}
	}()
	if err := t.cfg.codec.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %w", ErrCodec, err)
	}
	return nil
}

func (t *Tier[K, V]) nowMs() int64 { return t.cfg.now().UnixMilli() }

func (t *Tier[K, V]) log(level slog.Level, msg string, attrs ...any) {
	logSafe(t.cfg.logger, level, msg, attrs...)
}

// maxTTLMs is the longest TTL, in milliseconds, that a time.Duration holds.
const maxTTLMs = math.MaxInt64 / int64(time.Millisecond)

// durationMs returns d in milliseconds, rounded up, at most maxTTLMs.
func durationMs(d time.Duration) int64 {
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond != 0 {
		ms++
	}
	return min(ms, maxTTLMs)
}

// logSafe logs through l; a panicking handler is contained.
func logSafe(l *slog.Logger, level slog.Level, msg string, attrs ...any) {
	defer func() { _ = recover() }()
	l.Log(context.Background(), level, msg, attrs...)
}
