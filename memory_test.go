package flightcache_test

// Promise 4, bounded memory under a flood of unique keys (attacker-chosen
// ids, bad tokens): the live heap stays within a bound derived from
// MaxEntries whatever the number of distinct keys, negative (not-found)
// entries count toward MaxEntries like any other, the in-flight table is
// bounded by the callers' concurrency and empties afterwards, and the
// Prometheus output has no per-key labels and a fixed number of series.
//
// The bound: each cached entry may cost at most relEntryBudget bytes of
// live heap (key, value, LRU node, map slot, entry record; measured about
// 300 B for the keys and values below, see RELIABILITY.md), plus a fixed
// relHeapSlack for the Loader, its maps' spare capacity and the test's own
// bookkeeping. A leak of even 16 B per distinct key fails the test through
// the growth check between the middle and the end of the flood.
//
// CI size: 250,000 distinct keys. Full size:
//
//	FLIGHTCACHE_STRESS=1 go test -race -run TestBoundedMemory .

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/flightcache/flightcache"
)

const (
	relEntryBudget = 1024    // bytes of live heap per cached entry, at most
	relHeapSlack   = 4 << 20 // bytes for everything that does not grow with entries
	relGrowthSlack = 1 << 20 // the live heap may not grow more than this in the flood's second half
)

// relLiveHeap returns the live heap after a full collection.
func relLiveHeap() uint64 {
	runtime.GC()
	runtime.GC() // the second one frees what the first one's finalizers released
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// relToken is the i-th attacker-chosen key: long, unique, never repeated
// by the flood.
func relToken(i int) string { return fmt.Sprintf("tok-%016x-%08d", uint64(i)*0x9e3779b97f4a7c15, i) }

// relSeries gathers reg and returns the number of series, failing on any
// label but "loader" or on a label value that looks like a key.
func relSeries(t *testing.T, reg prometheus.Gatherer, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			n++
			checkLabels(t, mf, m, name)
		}
	}
	return n
}

func checkLabels(t *testing.T, mf *dto.MetricFamily, m *dto.Metric, name string) {
	t.Helper()
	if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetName() != "loader" || m.GetLabel()[0].GetValue() != name {
		t.Errorf("%s has labels %v, want only loader=%q", mf.GetName(), m.GetLabel(), name)
	}
}

func TestBoundedMemory(t *testing.T) {
	const maxEntries = 10_000
	const workers = 8
	const batch = 20
	keys := relSize(t, "FLIGHTCACHE_MEMORY_KEYS", 250_000, 1_000_000)

	for _, mode := range []flightcache.Mode{flightcache.ModeCache, flightcache.ModeFlight} {
		t.Run(mode.String(), func(t *testing.T) {
			n := keys
			if mode == flightcache.ModeFlight {
				n = keys / 4
			}
			runMemoryFlood(t, mode, maxEntries, workers, batch, n)
		})
	}
}

func runMemoryFlood(t *testing.T, mode flightcache.Mode, maxEntries, workers, batch, keys int) {
	start := time.Now()
	base := relLiveHeap()
	var fetched atomic.Int64
	// Keys whose number is a multiple of 3 do not exist: an attacker's bad
	// tokens. The others have a value of about the key's size.
	exists := func(key string) bool {
		i, _ := strconv.Atoi(key[len(key)-8:])
		return i%3 != 0
	}
	fetch := func(ctx context.Context, key string) (string, error) {
		fetched.Add(1)
		if !exists(key) {
			return "", flightcache.ErrNotFound
		}
		return "user:" + key, nil
	}
	batchFetch := func(ctx context.Context, ks []string) (map[string]string, error) {
		out := make(map[string]string, len(ks))
		for _, k := range ks {
			fetched.Add(1)
			if exists(k) {
				out[k] = "user:" + k
			}
		}
		return out, nil
	}
	name := "flood_" + mode.String()
	l, err := flightcache.New(fetch, flightcache.Config{
		Name: name, Mode: mode, MaxEntries: maxEntries, TTL: time.Hour, NegativeTTL: time.Hour,
	}, flightcache.WithBatch(batchFetch))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(flightcache.NewCollector(l))
	seriesBefore := relSeries(t, reg, name)
	ctx := context.Background()

	// Negative entries alone fill the cache to MaxEntries and no further.
	if mode == flightcache.ModeCache {
		for i := range 2 * maxEntries {
			if _, err := l.Get(ctx, relToken(3*i)); !errors.Is(err, flightcache.ErrNotFound) {
				t.Fatalf("Get(%s) = %v, want ErrNotFound", relToken(3*i), err)
			}
		}
		if l.Len() != maxEntries {
			t.Fatalf("after %d not-found keys Len = %d, want MaxEntries = %d: negative entries must count toward the bound", 2*maxEntries, l.Len(), maxEntries)
		}
		s := l.Stats()
		if s.Evictions != uint64(maxEntries) {
			t.Fatalf("Evictions = %d, want %d", s.Evictions, maxEntries)
		}
		before := s.NegativeHits
		if _, err := l.Get(ctx, relToken(3*(2*maxEntries-1))); !errors.Is(err, flightcache.ErrNotFound) || l.Stats().NegativeHits != before+1 {
			t.Fatalf("the most recent not-found key was not a negative hit: %v", err)
		}
		l.InvalidateAll()
	}

	// The flood: every worker asks for fresh keys, re-asks for recent ones
	// (hits), and now and then asks for a batch of fresh keys at once.
	var next atomic.Int64
	next.Store(int64(6 * maxEntries)) // past the keys used above
	first := next.Load() + 1
	end := first + int64(keys)
	var nextSample atomic.Int64
	var peak, mid atomic.Uint64
	var peakInFlight atomic.Int64
	var samples atomic.Int64
	w := relNewWatchdog(30 * time.Second)
	var wg sync.WaitGroup
	var wrong atomic.Int64
	sample := func() {
		h := relLiveHeap()
		for {
			p := peak.Load()
			if h <= p || peak.CompareAndSwap(p, h) {
				break
			}
		}
		samples.Add(1)
	}
	for range workers {
		wg.Go(func() {
			var recent []string
			for {
				i := int(next.Add(1))
				if i >= int(end) {
					return
				}
				if off := int64(i) - first; off >= nextSample.Load() {
					if at := nextSample.Load(); off >= at && nextSample.CompareAndSwap(at, at+int64(keys/8)) {
						sample()
						if at >= int64(keys/2) && mid.Load() == 0 {
							mid.Store(relLiveHeap())
						}
					}
				}
				key := relToken(i)
				if i%50 == 0 { // a batch of fresh keys
					ks := []string{key}
					for len(ks) < batch {
						j := int(next.Add(1))
						if j >= int(end) {
							break
						}
						ks = append(ks, relToken(j))
					}
					res := l.GetMany(ctx, ks)
					for _, k := range ks {
						v, err := res.Get(k)
						if exists(k) && v != "user:"+k || !exists(k) && !errors.Is(err, flightcache.ErrNotFound) {
							wrong.Add(1)
						}
					}
				} else {
					v, err := l.Get(ctx, key)
					if exists(key) && v != "user:"+key || !exists(key) && !errors.Is(err, flightcache.ErrNotFound) {
						wrong.Add(1)
					}
				}
				if i%16 == 0 {
					if f := int64(l.Stats().InFlight); f > peakInFlight.Load() {
						peakInFlight.Store(f) // racy max: good enough for a bound check
					}
				}
				recent = append(recent, key)
				if len(recent) > 64 {
					recent = recent[1:]
				}
				if i%4 == 0 { // a re-ask: usually a hit in cache mode
					k := recent[i%len(recent)]
					if v, err := l.Get(ctx, k); exists(k) && v != "user:"+k || !exists(k) && !errors.Is(err, flightcache.ErrNotFound) {
						wrong.Add(1)
					}
				}
				w.tick()
			}
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	relAwait(t, w, done, "memory flood")
	w.close()
	sample()
	live := relLiveHeap()

	if wrong.Load() != 0 {
		t.Errorf("%d Gets returned a wrong value or error", wrong.Load())
	}
	s := l.Stats()
	if s.InFlight != 0 {
		t.Errorf("InFlight = %d after the flood, want 0", s.InFlight)
	}
	if bound := int64(workers * batch); peakInFlight.Load() > bound {
		t.Errorf("InFlight reached %d with %d callers asking at most %d keys each", peakInFlight.Load(), workers, batch)
	}
	wantLen := maxEntries
	if mode == flightcache.ModeFlight {
		wantLen = 0
	}
	if l.Len() != wantLen {
		t.Errorf("Len = %d, want %d", l.Len(), wantLen)
	}
	growth := int64(live) - int64(base)
	bound := int64(relHeapSlack)
	if mode == flightcache.ModeCache {
		bound += int64(maxEntries) * relEntryBudget
	}
	if growth > bound {
		t.Errorf("live heap grew by %d B (%d B per MaxEntries) with %d distinct keys, bound %d B", growth, growth/int64(maxEntries), keys, bound)
	}
	if peakGrowth := int64(peak.Load()) - int64(base); peakGrowth > bound {
		t.Errorf("peak live heap grew by %d B, bound %d B", peakGrowth, bound)
	}
	if m := mid.Load(); m != 0 && int64(live)-int64(m) > relGrowthSlack {
		t.Errorf("live heap grew by %d B over the flood's second half: something is kept per key", int64(live)-int64(m))
	}

	if got := relSeries(t, reg, name); got != seriesBefore {
		t.Errorf("%d series after the flood, %d before: the series must not depend on keys", got, seriesBefore)
	}
	if got := testutil.CollectAndCount(flightcache.NewCollector(l)); got != seriesBefore {
		t.Errorf("CollectAndCount = %d, want %d", got, seriesBefore)
	}
	var text strings.Builder
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		fmt.Fprintln(&text, mf.String())
	}
	if strings.Contains(text.String(), "tok-") {
		t.Errorf("a key appears in the metrics output")
	}
	extra := 0
	if mode == flightcache.ModeCache {
		extra = 2 * maxEntries
	}
	t.Logf("memory %s: %d distinct keys (+%d not-found-only) in %v, MaxEntries %d, Len %d, fetched %d, hits %d (negative %d), evictions %d; "+
		"live heap growth %.1f MiB (%d B/entry), peak %.1f MiB over %d samples, bound %.1f MiB, second-half growth %+d KiB; peak InFlight %d, after 0; %d series, labels: loader only",
		mode, keys, extra, time.Since(start).Round(time.Millisecond), maxEntries, l.Len(),
		fetched.Load(), s.Hits, s.NegativeHits, s.Evictions,
		float64(growth)/(1<<20), growth/int64(maxEntries), float64(int64(peak.Load())-int64(base))/(1<<20), samples.Load(), float64(bound)/(1<<20),
		(int64(live)-int64(mid.Load()))/1024, peakInFlight.Load(), seriesBefore)
}
