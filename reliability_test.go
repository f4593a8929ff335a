package flightcache_test

// Shared helpers of the reliability suite (RELIABILITY.md): the model,
// thrash, crash, memory, cross-talk, time, failure, close-under-load and
// fuzz tests. Every helper's name starts with "rel" so that it never
// collides with the helpers of the other test files.

import (
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// relStress reports whether the full-size stress runs were asked for with
// FLIGHTCACHE_STRESS=1 (see RELIABILITY.md).
func relStress() bool { return os.Getenv("FLIGHTCACHE_STRESS") == "1" }

// relEnvInt returns the integer in the environment variable name, or def
// when it is unset. A malformed value fails the test rather than being
// silently ignored.
func relEnvInt(t testing.TB, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return n
}

// relSize is the CI size of a test, or the stress size under
// FLIGHTCACHE_STRESS=1; the environment variable name overrides both.
func relSize(t testing.TB, name string, ci, stress int) int {
	t.Helper()
	if relStress() {
		return relEnvInt(t, name, stress)
	}
	return relEnvInt(t, name, ci)
}

// relStacks returns the stacks of every goroutine.
func relStacks() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}

// relWatchdog watches a progress counter. Its stalled channel is closed
// when the counter has not moved for the given time; the test then fails
// with every goroutine's stack (relAwait). It is a timer, not a wait: a
// healthy run never sees it fire.
type relWatchdog struct {
	progress atomic.Int64
	stalled  chan struct{}
	stop     chan struct{}
	done     chan struct{}
}

func relNewWatchdog(stall time.Duration) *relWatchdog {
	w := &relWatchdog{stalled: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(stall / 30)
		defer tick.Stop()
		last, since := w.progress.Load(), time.Now()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			if p := w.progress.Load(); p != last {
				last, since = p, time.Now()
				continue
			}
			if time.Since(since) >= stall {
				close(w.stalled)
				return
			}
		}
	}()
	return w
}

// tick records progress.
func (w *relWatchdog) tick() { w.progress.Add(1) }

// close stops the watchdog's goroutine.
func (w *relWatchdog) close() {
	close(w.stop)
	<-w.done
}

// relAwait waits for done, failing the test with all goroutine stacks if
// the watchdog sees no progress first.
func relAwait(t testing.TB, w *relWatchdog, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-w.stalled:
		t.Fatalf("%s: no progress for the watchdog's whole period; all goroutines:\n%s", what, relStacks())
	}
}

// relKnownDefects lists the defects this suite found that are not fixed
// yet (see RELIABILITY.md), by id. While an entry is here, the tests that
// show the defect skip with "known defect: ..." (or, for the thrash and
// close-under-load tests, leave out only the triggering behaviour); delete
// the entry with the fix. FLIGHTCACHE_RUN_KNOWN_DEFECTS=1 runs them anyway.
var relKnownDefects = map[string]string{}

// relKnown reports whether the defect id is known and unfixed, and so must
// be kept out of the run.
func relKnown(id string) bool {
	_, ok := relKnownDefects[id]
	return ok && os.Getenv("FLIGHTCACHE_RUN_KNOWN_DEFECTS") != "1"
}

// relSkipKnown skips t while the defect id is known and unfixed.
func relSkipKnown(t testing.TB, id string) {
	t.Helper()
	if relKnown(id) {
		t.Skip("known defect: " + relKnownDefects[id])
	}
}
