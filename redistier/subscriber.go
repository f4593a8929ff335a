package redistier

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Backoff between attempts to re-establish a broken subscription.
const (
	minResubscribeBackoff = 25 * time.Millisecond
	maxResubscribeBackoff = 5 * time.Second
)

// subscriber keeps one Redis subscription to one channel alive on a
// goroutine it owns, from start until stop: it pings the connection when it
// has been silent for pingInterval, and when the subscription breaks (an
// error, or a ping unanswered within timeout) it closes it and subscribes
// again with exponential backoff. Messages are handed to onMessage and
// every re-establishment to onReset, on that goroutine.
type subscriber struct {
	client       redis.UniversalClient
	channel      string
	timeout      time.Duration
	pingInterval time.Duration
	logger       *slog.Logger
	what         string // for log messages: "watch" or "lease notifications"

	onMessage func(payload string)
	onReset   func()

	ctx    context.Context // canceled by stop
	cancel context.CancelFunc
	ready  chan struct{} // closed once the first subscription is confirmed
	done   chan struct{} // closed when run returns

	late     chan struct{} // closed by markLate
	lateOnce sync.Once     // closes late once
	stopOnce sync.Once     // makes stop idempotent

	mu      sync.Mutex    // guards ps and stopped
	ps      *redis.PubSub // the current subscription, closed by stop
	stopped bool          // stop was called: run must not subscribe again
}

func newSubscriber(client redis.UniversalClient, channel string, timeout, pingInterval time.Duration,
	logger *slog.Logger, what string, onMessage func(string), onReset func()) *subscriber {
	ctx, cancel := context.WithCancel(context.Background())
	return &subscriber{
		client: client, channel: channel, timeout: timeout, pingInterval: pingInterval,
		logger: logger, what: what, onMessage: onMessage, onReset: onReset,
		ctx: ctx, cancel: cancel,
		ready: make(chan struct{}), done: make(chan struct{}), late: make(chan struct{}),
	}
}

// start starts the goroutine.
func (s *subscriber) start() { go s.run() }

// markLate tells the subscriber that its owner stopped waiting for the
// first subscription, so that its confirmation, when it comes, is reported
// through onReset: messages may have been missed meanwhile.
func (s *subscriber) markLate() { s.lateOnce.Do(func() { close(s.late) }) }

// stop ends the subscription and waits for the goroutine to return. It may
// be called more than once and from any goroutine but the subscriber's own.
func (s *subscriber) stop() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.stopped = true
		ps := s.ps
		s.mu.Unlock()
		s.cancel()
		if ps != nil {
			_ = ps.Close() // unblocks a pending receive
		}
	})
	<-s.done
}

// run is the subscriber's goroutine.
func (s *subscriber) run() {
	defer close(s.done)
	backoff := minResubscribeBackoff
	established := false // a subscription was confirmed before
	for {
		ps, err := s.subscribe()
		if ps == nil && err == nil {
			return // stopped
		}
		if err == nil {
			if !established {
				established = true
				close(s.ready)
				select {
				case <-s.late:
					s.reset()
				default:
				}
			} else {
				s.reset()
			}
			backoff = minResubscribeBackoff
			err = s.receive(ps)
		}
		s.closePS(ps)
		if s.ctx.Err() != nil {
			return
		}
		s.log(slog.LevelWarn, "redistier: subscription broken; re-subscribing", "error", err, "retry_in", backoff)
		t := time.NewTimer(jitter(backoff))
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, maxResubscribeBackoff)
	}
}

// subscribe opens a subscription and waits, up to timeout, for Redis to
// confirm it. It returns nil, nil once stop has been called.
func (s *subscriber) subscribe() (*redis.PubSub, error) {
	ps := s.client.Subscribe(s.ctx) // no channel: connects lazily
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		_ = ps.Close()
		return nil, nil
	}
	s.ps = ps
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	if err := ps.Subscribe(ctx, s.channel); err != nil {
		return ps, err
	}
	for {
		msg, err := ps.ReceiveTimeout(ctx, s.timeout)
		if err != nil {
			return ps, err
		}
		if sub, ok := msg.(*redis.Subscription); ok && sub.Kind == "subscribe" && sub.Channel == s.channel {
			return ps, nil
		}
	}
}

// receive delivers the messages of an established subscription until it
// breaks or stop is called, and returns why.
func (s *subscriber) receive(ps *redis.PubSub) error {
	pinged := false // a ping is outstanding
	for {
		wait := s.pingInterval
		if pinged {
			wait = s.timeout
		}
		// The context's deadline also bounds the reconnection go-redis
		// attempts by itself after a broken read.
		ctx, cancel := context.WithTimeout(s.ctx, wait+s.timeout)
		msg, err := ps.ReceiveTimeout(ctx, wait)
		cancel()
		if s.ctx.Err() != nil {
			return s.ctx.Err()
		}
		if err != nil {
			if !isTimeout(err) || pinged {
				return err
			}
			ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
			err := ps.Ping(ctx)
			cancel()
			if err != nil {
				return err
			}
			pinged = true
			continue
		}
		pinged = false
		switch msg := msg.(type) {
		case *redis.Message:
			if msg.Channel == s.channel {
				s.deliver(msg.Payload)
			}
		case *redis.Subscription:
			if msg.Channel == s.channel && msg.Kind != "subscribe" {
				return errors.New("redistier: unsubscribed by the server")
			}
		}
	}
}

// deliver runs onMessage, containing a panic.
func (s *subscriber) deliver(payload string) {
	defer s.recoverHandler()
	s.onMessage(payload)
}

// reset runs onReset, containing a panic.
func (s *subscriber) reset() {
	defer s.recoverHandler()
	s.onReset()
}

func (s *subscriber) recoverHandler() {
	if r := recover(); r != nil {
		s.log(slog.LevelError, "redistier: subscription handler panicked", "panic", r)
	}
}

// closePS closes ps unless stop already did.
func (s *subscriber) closePS(ps *redis.PubSub) {
	if ps == nil {
		return
	}
	s.mu.Lock()
	if s.ps == ps {
		s.ps = nil
	}
	s.mu.Unlock()
	_ = ps.Close()
}

func (s *subscriber) log(level slog.Level, msg string, attrs ...any) {
	logSafe(s.logger, level, msg, append(attrs, "channel", s.channel, "for", s.what)...)
}

// isTimeout reports whether err is a read timeout, which leaves a
// subscription usable.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// jitter returns d ± 50%.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d)
}
