package flightcache

import (
	"sync/atomic"
	"time"
	"unsafe"
)

// Stats is a snapshot of a Loader's counters, taken by Loader.Stats. The
// counters only grow over the Loader's life; Entries and InFlight are gauges.
//
// Every Get that returns before Close is counted exactly once as a hit or a
// miss (Hits + Misses = Gets), and every miss either started a load or
// joined one (Misses = Loads + Shared). In flight mode Hits stays 0, and
// so it does with Config.DisableHitCounting.
type Stats struct {
	// Hits counts Gets answered from the cache without waiting for a fetch
	// (none with Config.DisableHitCounting).
	Hits uint64
	// Misses counts Gets that started a load or joined one.
	Misses uint64
	// Shared counts Gets that joined a load another Get had started.
	Shared uint64
	// Loads counts loads started: at most one runs per key at a time.
	Loads uint64
	// LoadErrors counts loads that ended in an error, not-found and panics
	// included (refreshes are counted in RefreshErrors instead).
	LoadErrors uint64
	// Panics counts loads and refreshes whose fetch panicked or called
	// runtime.Goexit.
	Panics uint64
	// Abandoned counts Gets that returned early because their context ended.
	Abandoned uint64
	// Evictions counts entries removed to make room under MaxEntries.
	Evictions uint64
	// StaleHits counts hits on stale entries (also counted in Hits).
	StaleHits uint64
	// NegativeHits counts hits on not-found entries (also counted in Hits).
	NegativeHits uint64
	// Refreshes counts background refreshes started (stale entries, early
	// refresh, Refresh). They are not Loads.
	Refreshes uint64
	// RefreshErrors counts background refreshes that failed; a not-found
	// answer is not a failure.
	RefreshErrors uint64
	// RemoteHits counts loads answered by the shared tier (WithRemote).
	RemoteHits uint64
	// RemoteMisses counts loads that found nothing in the shared tier.
	RemoteMisses uint64
	// RemoteErrors counts shared-tier calls that failed; the Loader then
	// carries on without it.
	RemoteErrors uint64
	// LeaseWaits counts loads that waited for another instance's fetch.
	LeaseWaits uint64
	// InvalidationsSent counts invalidations published to other instances.
	InvalidationsSent uint64
	// InvalidationsReceived counts invalidations (and resets) received
	// from other instances.
	InvalidationsReceived uint64
	// RemoteBreakerOpen, RemoteWritesDropped and RemoteCorrupt are the
	// Remote's own RemoteStats.
	RemoteBreakerOpen   bool
	RemoteWritesDropped uint64
	RemoteCorrupt       uint64
	// Entries is the number of entries held now (expired ones not yet
	// dropped included).
	Entries int
	// InFlight is the number of loads running now.
	InFlight int
	// LoadDuration is the distribution of fetch durations.
	LoadDuration Histogram
	// BatchLoads counts batch fetches (WithBatch).
	BatchLoads uint64
	// BatchSize is the distribution of keys per batch fetch.
	BatchSize SizeHistogram
}

// batchBounds are the upper bounds of the batch-size histogram buckets. The
// array is never written.
var batchBounds = [...]uint64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}

// SizeHistogram is a snapshot of batch sizes in fixed buckets. It is a
// comparable value; its zero value is an empty histogram.
type SizeHistogram struct {
	// Count is the number of observations and Sum their total.
	Count, Sum uint64
	// Counts[i] counts sizes n with Bounds()[i-1] < n <= Bounds()[i]; the
	// last element counts those above every bound. Not cumulative.
	Counts [len(batchBounds) + 1]uint64
}

// Bounds returns the buckets' upper bounds, in increasing order.
func (SizeHistogram) Bounds() [len(batchBounds)]uint64 { return batchBounds }

// loadBounds are the upper bounds of the load-duration histogram buckets.
// The array is never written.
var loadBounds = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// Histogram is a snapshot of load durations in fixed buckets. It is a
// comparable value; its zero value is an empty histogram.
type Histogram struct {
	// Count is the number of observations.
	Count uint64
	// Sum is the total of the observed durations.
	Sum time.Duration
	// Counts[i] is the number of observations d with
	// Bounds()[i-1] < d <= Bounds()[i]; the last element counts those above
	// every bound. Counts are not cumulative.
	Counts [len(loadBounds) + 1]uint64
}

// Bounds returns the buckets' upper bounds, in increasing order.
func (Histogram) Bounds() [len(loadBounds)]time.Duration { return loadBounds }

// counters holds a Loader's statistics as atomics, so that no path takes a
// lock to count. The counters every Get or load touches live in stripes
// (see cell); the rest are plain atomics.
type counters struct {
	_                        [128]byte // off the lines of the fields before (in Loader), which Gets read
	cells                    [stripes]counterCell
	hitCells                 [hitStripes]hitCell
	loadErrors, panics       atomic.Uint64
	abandoned                atomic.Uint64
	staleHits, negativeHits  atomic.Uint64
	refreshes, refreshErrors atomic.Uint64
	remoteHits, remoteMisses atomic.Uint64
	remoteErrors, leaseWaits atomic.Uint64
	invSent, invReceived     atomic.Uint64

	batchLoads atomic.Uint64
	batchSum   atomic.Uint64
	batchHist  [len(batchBounds) + 1]atomic.Uint64
}

// counterCell is one stripe of the hot counters, padded so that no two
// stripes share a cache line.
type counterCell struct {
	misses, shared, loads, evictions atomic.Uint64
	// loadStarts counts the Gets that missed and started a load: each is
	// a miss and a load, counted with one locked add instead of two.
	loadStarts atomic.Uint64
	durSum     atomic.Int64
	durHist    [len(loadBounds) + 1]atomic.Uint64
	_          [64]byte
}

// hitCell is one stripe of the hits counter, alone in a pair of cache
// lines (some CPUs fetch lines in pairs). Hits, the only count a hit
// makes, have more stripes than the other hot counters: two goroutines
// writing one stripe slow each other's hits by a quarter on 2 cores, and
// with 64 stripes that happens to 1 pair in 64, for 8 KiB per Loader.
type hitCell struct {
	n atomic.Uint64
	_ [120]byte
}

// stripeBits is log2 of the number of stripes.
const stripeBits = 4

// stripes is the number of counterCells.
const stripes = 1 << stripeBits

// hitStripeBits is log2 of the number of hitCells.
const hitStripeBits = 6

// hitStripes is the number of hitCells.
const hitStripes = 1 << hitStripeBits

// cell returns the stripe of the calling goroutine, chosen by its stack
// address: a goroutine keeps counting in the same stripe, so goroutines
// running on different Ps rarely write the same cache line (a stripe
// chosen at random, or by key, would move between the cores' caches on
// about every other count).
func (c *counters) cell() *counterCell {
	return &c.cells[stackHash()>>(64-stripeBits)]
}

// stackHash hashes the calling goroutine's stack address (Fibonacci
// hashing: stacks at regular distances get distant hashes); see cell.
func stackHash() uint64 {
	var probe byte
	sp := uint64(uintptr(unsafe.Pointer(&probe))) >> 10 // stacks are at least 2 KiB apart
	return sp * 0x9E3779B97F4A7C15
}

// hit counts one hit.
func (c *counters) hit() { c.hitCells[stackHash()>>(64-hitStripeBits)].n.Add(1) }

// observe records one fetch duration.
func (c *counters) observe(d time.Duration) {
	i := 0
	for i < len(loadBounds) && d > loadBounds[i] {
		i++
	}
	cl := c.cell()
	cl.durHist[i].Add(1)
	cl.durSum.Add(int64(d))
}

// observeBatch records the size of one batch fetch.
func (c *counters) observeBatch(n int) {
	i := 0
	for i < len(batchBounds) && uint64(n) > batchBounds[i] {
		i++
	}
	c.batchHist[i].Add(1)
	c.batchSum.Add(uint64(n))
}

// snapshot reads every counter. Counters read one by one may be mid-update
// relative to each other while Gets run; at rest they agree exactly.
func (c *counters) snapshot() Stats {
	s := Stats{
		LoadErrors:            c.loadErrors.Load(),
		Panics:                c.panics.Load(),
		Abandoned:             c.abandoned.Load(),
		StaleHits:             c.staleHits.Load(),
		NegativeHits:          c.negativeHits.Load(),
		Refreshes:             c.refreshes.Load(),
		RefreshErrors:         c.refreshErrors.Load(),
		RemoteHits:            c.remoteHits.Load(),
		RemoteMisses:          c.remoteMisses.Load(),
		RemoteErrors:          c.remoteErrors.Load(),
		LeaseWaits:            c.leaseWaits.Load(),
		InvalidationsSent:     c.invSent.Load(),
		InvalidationsReceived: c.invReceived.Load(),
	}
	for i := range c.cells {
		cl := &c.cells[i]
		starts := cl.loadStarts.Load()
		s.Misses += cl.misses.Load() + starts
		s.Shared += cl.shared.Load()
		s.Loads += cl.loads.Load() + starts
		s.Evictions += cl.evictions.Load()
		s.LoadDuration.Sum += time.Duration(cl.durSum.Load())
		for j := range cl.durHist { // Count is their total, so buckets never exceed it
			n := cl.durHist[j].Load()
			s.LoadDuration.Counts[j] += n
			s.LoadDuration.Count += n
		}
	}
	for i := range c.hitCells {
		s.Hits += c.hitCells[i].n.Load()
	}
	s.BatchLoads = c.batchLoads.Load()
	s.BatchSize.Sum = c.batchSum.Load()
	for i := range c.batchHist {
		s.BatchSize.Counts[i] = c.batchHist[i].Load()
		s.BatchSize.Count += s.BatchSize.Counts[i]
	}
	return s
}
