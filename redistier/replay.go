package redistier

import (
	"context"
	"log/slog"
)

// MaxPendingInvalidations bounds the failed invalidations a Tier remembers
// to send again once Redis answers (see Tier.Invalidate); further ones are
// only logged.
const MaxPendingInvalidations = 10_000

// remember records a failed invalidation to send again.
func (t *Tier[K, V]) remember(rk, msg string) {
	t.pendingMu.Lock()
	_, known := t.pending[rk]
	full := !known && len(t.pending) >= MaxPendingInvalidations
	if !full {
		t.pending[rk] = msg
		t.hasPending.Store(true)
	}
	t.pendingMu.Unlock()
	if full {
		t.log(slog.LevelError, "redistier: too many failed invalidations to remember; this one is lost",
			"limit", MaxPendingInvalidations)
	}
}

// startReplay starts the goroutine that sends the remembered invalidations
// again, unless it runs already or the Tier is closed.
func (t *Tier[K, V]) startReplay() {
	if !t.replaying.CompareAndSwap(false, true) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() { // Close waits only for replays added before it
		t.replaying.Store(false)
		return
	}
	t.replays.Add(1)
	go t.replay()
}

// replay sends the remembered invalidations again until none is left, one
// fails (the next successful call starts it again), or the Tier closes.
func (t *Tier[K, V]) replay() {
	defer t.replays.Done()
	defer t.replaying.Store(false)
	for {
		t.pendingMu.Lock()
		batch := make(map[string]string, min(len(t.pending), replayBatch))
		for rk, msg := range t.pending {
			if len(batch) == replayBatch {
				break
			}
			batch[rk] = msg
		}
		t.pendingMu.Unlock()
		if len(batch) == 0 {
			return
		}
		for rk, msg := range batch {
			if t.closed.Load() {
				return
			}
			if err := t.replayOne(rk, msg); err != nil {
				t.log(slog.LevelWarn, "redistier: resending a failed invalidation failed; will retry", "error", err)
				return
			}
			t.pendingMu.Lock()
			if m, ok := t.pending[rk]; ok && m == msg {
				delete(t.pending, rk)
			}
			if len(t.pending) == 0 {
				t.hasPending.Store(false)
			}
			t.pendingMu.Unlock()
		}
		t.log(slog.LevelInfo, "redistier: resent failed invalidations", "count", len(batch))
	}
}

// replayOne sends one invalidation again, each call bounded by Timeout.
func (t *Tier[K, V]) replayOne(rk, msg string) error {
	return t.invalidate(context.Background(), rk, msg)
}

// replayBatch is how many invalidations replay copies out at a time.
const replayBatch = 100
