package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flightcache/flightcache/bench"
)

// sample is a few raw benchmark lines in the harness's format.
const sample = `goos: linux
goarch: amd64
pkg: github.com/flightcache/flightcache/bench
cpu: Test CPU
BenchmarkHit/dist=uniform/lib=rwmutex-map   	1000	20.0 ns/op	0 B/op	0 allocs/op
BenchmarkHit/dist=uniform/lib=flightcache   	1000	120.0 ns/op	0 B/op	0 allocs/op
BenchmarkHit/dist=uniform/lib=flightcache   	1000	130.0 ns/op	0 B/op	0 allocs/op
BenchmarkHit/dist=uniform/lib=otter         	1000	70.0 ns/op	0 B/op	0 allocs/op
BenchmarkHit/dist=uniform/lib=flightcache-uncounted	1000	60.0 ns/op	0 B/op	0 allocs/op
BenchmarkHit/dist=uniform/lib=otter-stats   	1000	90.0 ns/op	0 B/op	0 allocs/op
BenchmarkHit/dist=uniform/lib=otter-2       	1000	35.0 ns/op	0 B/op	0 allocs/op
BenchmarkHitRatio/lib=flightcache-2 	1	0.6040 hits/op
BenchmarkHitRatio/lib=lru-exact-2   	1	0.6040 hits/op
BenchmarkMemory/lib=flightcache-2   	1	195.0 B/entry	100000 held
BenchmarkMemory/lib=otter-2         	1	110.0 B/entry	100000 held
BenchmarkExpiryStampede/lib=flightcache-stale-2	1	200.0 ns/op	0 early-fetches	0.99 fetches/key/cycle	0 overlaps	100.0 p50-ns	150.0 p99-ns	1000000 max-ns	0.0001 slow-gets/op
BenchmarkExpiryStampede/lib=flightcache-noexpiry-2	1	150.0 ns/op	0 early-fetches	0 overlaps	90.0 p50-ns	120.0 p99-ns	1000000 max-ns	0 slow-gets/op
`

func TestReportFromSample(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "bench.txt")
	if err := os.WriteFile(raw, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := parseResults(raw)
	if err != nil {
		t.Fatal(err)
	}
	if s := res.get(id{bench: "Hit", dist: "uniform", lib: "flightcache", procs: 1}, "ns/op"); s.n != 2 || s.center != 125 {
		t.Errorf("flightcache uniform -cpu 1: %+v, want 2 samples with median 125 ns", s)
	}
	if s := res.get(id{bench: "Hit", dist: "uniform", lib: "otter", procs: 2}, "ns/op"); s.center != 35 {
		t.Errorf("otter uniform -cpu 2: %+v, want 35 ns", s)
	}
	png := filepath.Join(dir, "hit.png")
	if err := hitChart(res, png); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(png); err != nil || fi.Size() == 0 {
		t.Fatalf("chart not written: %v", err)
	}
	if res.storm, err = readStormRounds(testStorm(t, dir)); err != nil {
		t.Fatal(err)
	}
	beh := []behaviour{{lib: bench.Library{Name: "flightcache"}, trials: 1, waiterErr: "–", firstErr: "context.Canceled", fetches: 1}}
	md := filepath.Join(dir, "RESULTS.md")
	if err := writeMarkdown(md, res, beh, reportInfo{Began: time.Now(), Count: 1, Benchtime: time.Second, Stampede: time.Second, StormRounds: 1}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, want := range []string{
		"| hit path, uniform, `-cpu 1`, hits not counted (`DisableHitCounting`): ns/op ≤ fastest peer that does the same | 60.0 ns | otter 70.0 ns | 0.86× | **met** |",
		"| hit path, uniform, `-cpu 1`, hits counted (the default): ns/op ≤ fastest peer that does the same | 125 ns | otter-stats 90.0 ns | 1.39× | **not met** |",
		"| mixed zipf: hit ratio ≥ exact LRU of the same size | 0.6040 | lru-exact 0.6040 |  | **met** |",
		"| memory per entry ≤ leanest peer + 10% | 195 B | otter 110 B | 1.77× | **not met** |",
		"| stampede with StaleTTL: no overlapping fetches of one key | 0 |  |  | **met** |",
		"| flight overhead, one key, no contention, `-cpu 1`: ≤ x/sync `Do` (`InlineFetch`, `DisableLoadTiming`) | – | singleflight – | – | not measured |",
		"Test CPU",
		// ristretto+sf is the peer flightcache compares worst with round by round (testStorm)
		"| miss storm (flightcache): waiter release time ≤ every peer's, round by round (median ratio, 95% interval) | 350 ns ±71% | ristretto+sf 345 ns ±74% | 0.99× (0.95–1.11) | **met** |",
		"| singleflight | 0.00 | 0 | 385 ns ±71% | 1.10× (1.10–1.10) |",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("RESULTS.md lacks %q", want)
		}
	}
	if strings.Contains(page, "%!") {
		t.Errorf("RESULTS.md has a formatting error:\n%s", page)
	}
}
