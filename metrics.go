package flightcache

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Source is what a Collector reads: any *Loader, whatever its key and value
// types, or anything else that names itself and reports Stats.
type Source interface {
	// Name is the value of the "loader" label.
	Name() string
	// Stats returns a snapshot of the counters; it must be cheap and safe
	// for concurrent use.
	Stats() Stats
}

// metricDef describes one metric exported for each Source.
type metricDef struct {
	name, help string
	kind       prometheus.ValueType
	value      func(Stats) float64
}

// metricDefs lists the counters and gauges; the histogram is apart. It is
// never written.
var metricDefs = [...]metricDef{
	{hitsName, "Gets answered from the cache.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.Hits) }},
	{"flightcache_misses_total", "Gets that started or joined a load.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.Misses) }},
	{"flightcache_shared_total", "Gets that joined a load another Get started.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.Shared) }},
	{"flightcache_loads_total", "Loads started.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.Loads) }},
	{"flightcache_load_errors_total", "Loads that ended in an error.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.LoadErrors) }},
	{"flightcache_panics_total", "Loads whose fetch panicked or called runtime.Goexit.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.Panics) }},
	{"flightcache_abandoned_total", "Gets that returned early because their context ended.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.Abandoned) }},
	{"flightcache_evictions_total", "Entries evicted to make room.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.Evictions) }},
	{"flightcache_stale_hits_total", "Hits on stale entries, served while a refresh runs.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.StaleHits) }},
	{"flightcache_negative_hits_total", "Hits on cached not-found results.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.NegativeHits) }},
	{"flightcache_refreshes_total", "Background refreshes started.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.Refreshes) }},
	{"flightcache_refresh_errors_total", "Background refreshes that failed.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.RefreshErrors) }},
	{"flightcache_remote_hits_total", "Loads answered by the shared tier.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.RemoteHits) }},
	{"flightcache_remote_misses_total", "Loads that found nothing in the shared tier.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.RemoteMisses) }},
	{"flightcache_remote_errors_total", "Shared-tier calls that failed.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.RemoteErrors) }},
	{"flightcache_lease_waits_total", "Loads that waited for another instance's fetch.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.LeaseWaits) }},
	{"flightcache_invalidations_sent_total", "Invalidations published to other instances.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.InvalidationsSent) }},
	{"flightcache_invalidations_received_total", "Invalidations received from other instances.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.InvalidationsReceived) }},
	{"flightcache_remote_writes_dropped_total", "Shared-tier writes that failed or were skipped.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.RemoteWritesDropped) }},
	{"flightcache_remote_corrupt_total", "Shared-tier records that did not decode.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.RemoteCorrupt) }},
	{"flightcache_remote_breaker_open", "1 while the shared tier's circuit breaker is open.", prometheus.GaugeValue, func(s Stats) float64 {
		if s.RemoteBreakerOpen {
			return 1
		}
		return 0
	}},
	{"flightcache_batch_loads_total", "Batch fetches.", prometheus.CounterValue, func(s Stats) float64 { return float64(s.BatchLoads) }},
	{"flightcache_entries", "Entries held in the cache.", prometheus.GaugeValue, func(s Stats) float64 { return float64(s.Entries) }},
	{"flightcache_in_flight", "Loads running now.", prometheus.GaugeValue, func(s Stats) float64 { return float64(s.InFlight) }},
}

const loadDurationName = "flightcache_load_duration_seconds"

// Collector exports the Stats of one or more Loaders as Prometheus metrics,
// each with a constant "loader" label holding the Loader's Name. It reads
// Stats at scrape time only: Gets never touch a Prometheus object. Register
// it in a registry of your own; flightcache registers nothing globally.
// A Loader with Config.DisableHitCounting (in cache mode) has no
// flightcache_hits_total series, and one with Config.DisableLoadTiming no
// flightcache_load_duration_seconds: a statistic it does not keep is left
// out, not exported as a zero. A Collector is safe for concurrent use; its
// zero value collects nothing.
type Collector struct {
	sources []collected
	err     error // a problem found by NewCollector, reported by Describe
}

// collected is one Source with its descriptors, built once. A nil
// descriptor is a metric the Source does not keep (see uncounted).
type collected struct {
	src      Source
	descs    [len(metricDefs)]*prometheus.Desc
	duration *prometheus.Desc
	batch    *prometheus.Desc
}

// uncounted is implemented by a Loader whose Config turns a statistic off
// (DisableHitCounting, DisableLoadTiming): the Collector then exports no
// series for it rather than a zero that a dashboard would take for a
// measurement (a hit ratio of 0%, fetches that take no time).
type uncounted interface {
	hitsUncounted() bool
	loadsUntimed() bool
}

// hitsName is the name of the hits counter, which a Loader with
// DisableHitCounting does not export.
const hitsName = "flightcache_hits_total"

// NewCollector returns a Collector for the given sources. Their names must
// differ: registering a Collector with two sources of one name fails, and
// so does registering two Collectors holding sources of one name. Extra
// constant labels can be added with prometheus.WrapRegistererWith.
func NewCollector(sources ...Source) *Collector {
	c := &Collector{sources: make([]collected, len(sources))}
	seen := make(map[string]bool, len(sources))
	for i, src := range sources {
		name := src.Name()
		if seen[name] && c.err == nil {
			c.err = fmt.Errorf("flightcache: two sources named %q in one Collector: give each Loader its own Config.Name", name)
		}
		seen[name] = true
		labels := prometheus.Labels{"loader": name}
		u, _ := src.(uncounted)
		c.sources[i].src = src
		for j, def := range metricDefs {
			if def.name == hitsName && u != nil && u.hitsUncounted() {
				continue
			}
			c.sources[i].descs[j] = prometheus.NewDesc(def.name, def.help, nil, labels)
		}
		if u == nil || !u.loadsUntimed() {
			c.sources[i].duration = prometheus.NewDesc(loadDurationName, "Time taken by fetches.", nil, labels)
		}
		c.sources[i].batch = prometheus.NewDesc("flightcache_batch_size", "Keys per batch fetch.", nil, labels)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	if c.err != nil {
		ch <- prometheus.NewInvalidDesc(c.err)
		return
	}
	for i := range c.sources {
		for _, d := range c.sources[i].descs {
			if d != nil {
				ch <- d
			}
		}
		if d := c.sources[i].duration; d != nil {
			ch <- d
		}
		ch <- c.sources[i].batch
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if c.err != nil {
		return
	}
	for i := range c.sources {
		s := c.sources[i].src.Stats()
		for j, def := range metricDefs {
			if d := c.sources[i].descs[j]; d != nil {
				ch <- prometheus.MustNewConstMetric(d, def.kind, def.value(s))
			}
		}
		if d := c.sources[i].duration; d != nil {
			h := s.LoadDuration
			buckets := make(map[float64]uint64, len(loadBounds))
			var cumulative uint64
			for j, bound := range h.Bounds() {
				cumulative += h.Counts[j]
				buckets[bound.Seconds()] = cumulative
			}
			ch <- prometheus.MustNewConstHistogram(d, h.Count, h.Sum.Seconds(), buckets)
		}

		bs := s.BatchSize
		sizes := make(map[float64]uint64, len(batchBounds))
		var cumulative uint64
		for j, bound := range bs.Bounds() {
			cumulative += bs.Counts[j]
			sizes[float64(bound)] = cumulative
		}
		ch <- prometheus.MustNewConstHistogram(c.sources[i].batch, bs.Count, float64(bs.Sum), sizes)
	}
}

var _ prometheus.Collector = (*Collector)(nil)
