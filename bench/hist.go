package bench

import (
	"math/bits"
	"time"
)

// Hist is a log-linear latency histogram in nanoseconds: exact below 16ns,
// then 16 buckets per power of two (under 3.2% error), plus the exact
// maximum. One goroutine owns one, so recording takes neither a lock nor an
// allocation; Merge combines them afterwards.
type Hist struct {
	counts [61 * 16]uint64
	max    time.Duration
}

func histBucket(v uint64) int {
	if v < 16 {
		return int(v)
	}
	e := bits.Len64(v) - 1 // 4..63
	return (e-3)*16 + int(v>>(e-4)&15)
}

// histValue returns the middle of bucket i.
func histValue(i int) time.Duration {
	if i < 16 {
		return time.Duration(i)
	}
	e, sub := i/16+3, uint64(i%16)
	return time.Duration((16+sub)<<(e-4) + (1<<(e-4))/2)
}

// Record adds one observation.
func (h *Hist) Record(d time.Duration) {
	d = max(d, 0)
	h.counts[histBucket(uint64(d))]++
	h.max = max(h.max, d)
}

// Merge adds o's observations to h.
func (h *Hist) Merge(o *Hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.max = max(h.max, o.max)
}

// Count returns the number of observations.
func (h *Hist) Count() uint64 {
	var n uint64
	for _, c := range h.counts {
		n += c
	}
	return n
}

// Max returns the largest observation.
func (h *Hist) Max() time.Duration { return h.max }

// Above returns the number of observations of at least d (to bucket
// resolution).
func (h *Hist) Above(d time.Duration) uint64 {
	var n uint64
	for i := histBucket(uint64(max(d, 0))); i < len(h.counts); i++ {
		n += h.counts[i]
	}
	return n
}

// Quantile returns the value below which a fraction q of the observations
// fall (0 for an empty histogram).
func (h *Hist) Quantile(q float64) time.Duration {
	total := h.Count()
	if total == 0 {
		return 0
	}
	rank := max(uint64(q*float64(total)+0.5), 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(histValue(i), h.max)
		}
	}
	return h.max
}
