package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The tests below run every workload at a small size, so that `go test`
// (with -race in CI) checks that the harness works for every library in a
// few seconds. The full sizes are the benchmarks', run by cmd/report.

func TestHitPathSmoke(t *testing.T) {
	keys := Keys("key:", 500)
	trace := ZipfTrace(len(keys), 5_000, zipfS, 1)
	for _, lib := range Select(HitPath) {
		t.Run(lib.Name, func(t *testing.T) {
			var fetches atomic.Int64
			c, err := lib.Open(Setup{Capacity: 2 * len(keys), TTL: time.Hour, Fetch: func(ctx context.Context, key string) (string, error) {
				fetches.Add(1)
				return key, nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := preload(c, keys); err != nil {
				t.Fatal(err)
			}
			f0 := fetches.Load()
			for _, i := range trace {
				if v, err := c.Get(t.Context(), keys[i]); err != nil || v != keys[i] {
					t.Fatalf("Get(%q) = %q, %v", keys[i], v, err)
				}
			}
			if n := fetches.Load() - f0; n != 0 {
				t.Errorf("%d fetches on the hit path, want 0", n)
			}
		})
	}
}

func TestMixedSmoke(t *testing.T) {
	keys := Keys("key:", 20_000)
	trace := ZipfTrace(len(keys), 40_000, zipfS, 3)
	for _, lib := range Select(WithReferences) {
		t.Run(lib.Name, func(t *testing.T) {
			hits, err := HitRatio(lib, keys, trace, 500, 5_000)
			if err != nil {
				t.Fatal(err)
			}
			if hits <= 0.1 || hits >= 0.95 {
				t.Errorf("hit ratio %.3f, want a plausible one for a 500-entry cache over Zipf(1.01) of 20,000 keys", hits)
			}
		})
	}
}

func TestMissStormSmoke(t *testing.T) {
	for _, lib := range Select(Loaders) {
		t.Run(lib.Name, func(t *testing.T) {
			res, err := MissStorm(lib, StormConfig{Waiters: 50, Rounds: 2, FetchTime: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if res.Fetches < 2 || len(res.Release) != 2 {
				t.Errorf("%d fetches and %d release times for 2 rounds", res.Fetches, len(res.Release))
			}
		})
	}
}

// TestMissStormRoundRobinSmoke: every library of a round-robin storm runs
// its own rounds, each with one fetch per round and a release time.
func TestMissStormRoundRobinSmoke(t *testing.T) {
	libs := Select(Loaders)
	res, err := MissStormRoundRobin(libs, StormConfig{Waiters: 50, Rounds: 3, FetchTime: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(libs) {
		t.Fatalf("%d results for %d libraries", len(res), len(libs))
	}
	for i, r := range res {
		if r.Rounds != 3 || len(r.Release) != 3 || r.Fetches < 3 || r.Elapsed < 3*10*time.Millisecond {
			t.Errorf("%s: %d rounds, %d release times, %d fetches, %v elapsed; want 3, 3, at least 3, at least 30ms",
				libs[i].Name, r.Rounds, len(r.Release), r.Fetches, r.Elapsed)
		}
	}
	path := filepath.Join(t.TempDir(), "rounds.csv")
	if err := WriteStormRounds(path, libs, res); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 1+3*len(libs) || lines[0] != "round,library,release_ns" {
		t.Fatalf("%d lines, header %q; want %d and round,library,release_ns", len(lines), lines[0], 1+3*len(libs))
	}
	want := fmt.Sprintf("2,%s,%d", libs[1].Name, res[1].Release[2].Nanoseconds())
	if !slices.Contains(lines, want) {
		t.Errorf("no line %q in\n%s", want, data)
	}
	res[0].Release = res[0].Release[:2]
	if err := WriteStormRounds(path, libs, res); err == nil {
		t.Error("WriteStormRounds took 2 release times for 3 rounds")
	}
}

func TestStampedeSmoke(t *testing.T) {
	cfg := StampedeConfig{
		Readers: 8, Keys: 10, TTL: 10 * time.Millisecond, StaleTTL: 200 * time.Millisecond,
		FetchTime: 4 * time.Millisecond, Duration: 100 * time.Millisecond, WarmCycles: 1, Batch: 16,
	}
	for _, lib := range Select(Expiring) {
		t.Run(lib.Name, func(t *testing.T) {
			res, err := Stampede(lib, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Gets == 0 || res.Fetches == 0 {
				t.Errorf("%d Gets and %d fetches in %v with a TTL of %v", res.Gets, res.Fetches, cfg.Duration, cfg.TTL)
			}
			// flightcache promises never to run two fetches of one key at
			// once; the others are measured, not judged.
			if lib.Flightcache && res.Overlaps != 0 {
				t.Errorf("%d fetches overlapped another fetch of the same key, want 0", res.Overlaps)
			}
		})
	}
}

func TestCancellationSmoke(t *testing.T) {
	cfg := CancelConfig{Waiters: 20, FetchTime: 40 * time.Millisecond, CancelAfter: 10 * time.Millisecond}
	for _, lib := range Select(Loaders) {
		t.Run(lib.Name, func(t *testing.T) {
			res, err := Cancellation(lib, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("first caller: %s at %v; fetches %d (cancelled: %v); %d of %d waiters failed (%s); last at %v",
				ErrorKind(res.FirstErr), res.FirstReturned, res.Fetches, res.FetchCancelled,
				res.Failed, cfg.Waiters, ErrorKind(res.WaiterErr), res.LastReturned)
			// flightcache promises that a caller's cancellation is its own.
			if lib.Flightcache && (res.Failed != 0 || res.Fetches != 1 || res.FetchCancelled) {
				t.Errorf("%d waiters failed, %d fetches, fetch cancelled %v; want 0, 1, false", res.Failed, res.Fetches, res.FetchCancelled)
			}
		})
	}
}

func TestMemorySmoke(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const n = 2_000
	for _, lib := range Select(Caches) {
		t.Run(lib.Name, func(t *testing.T) {
			res, err := Memory(exe, lib, n)
			if err != nil {
				t.Fatal(err)
			}
			if res.Held != n || res.Retained <= 0 {
				t.Errorf("held %d of %d entries, retained %d bytes", res.Held, n, res.Retained)
			}
		})
	}
}
