package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// MemoryEnv is the environment variable that makes a test binary of this
// package a memory child (see RunMemoryChild): "LIBRARY:ENTRIES".
const MemoryEnv = "FLIGHTCACHE_BENCH_MEMORY_CHILD"

// MemoryResult is what a memory child measured.
type MemoryResult struct {
	Library string `json:"library"`
	// Entries is the number of entries loaded, Held the number still
	// cached when it was measured.
	Entries int `json:"entries"`
	Held    int `json:"held"`
	// Retained is the growth of the live heap (runtime.MemStats.HeapAlloc
	// after two GCs) from before the cache was built to after it was
	// filled. Keys and values are allocated before, and kept alive after,
	// so it counts the library's own structures only.
	Retained int64 `json:"retained"`
	// Payload is the size of the keys' and values' bytes and string
	// headers, for scale: not included in Retained.
	Payload int64 `json:"payload"`
}

// PerEntry returns the retained bytes per entry held.
func (r MemoryResult) PerEntry() float64 {
	if r.Held == 0 {
		return 0
	}
	return float64(r.Retained) / float64(r.Held)
}

// MeasureMemory fills a fresh cache of lib with n string entries and
// measures the heap it retains. Run it in a process of its own (Memory
// does), since anything else allocated meanwhile would be counted.
func MeasureMemory(lib Library, n int) (MemoryResult, error) {
	keys, values := Keys("key:", n), Keys("value:", n)
	var fetches atomic.Int64
	fetch := func(ctx context.Context, key string) (string, error) {
		fetches.Add(1)
		i := KeyIndex(key, len("key:"))
		if i < 0 || i >= n {
			return "", fmt.Errorf("bench: unexpected key %q", key)
		}
		return values[i], nil
	}
	res := MemoryResult{Library: lib.Name, Entries: n}
	for i := range keys {
		res.Payload += int64(len(keys[i]) + len(values[i]) + 2*16)
	}
	ctx := context.Background()
	before := liveHeap()
	// Room for every entry: sturdyc's and ristretto's bounds are not exact
	// (shards, sampled eviction), and nothing must be evicted here.
	c, err := lib.Open(Setup{Capacity: n + n/4, TTL: time.Hour, Fetch: fetch})
	if err != nil {
		return res, err
	}
	defer c.Close()
	for _, k := range keys {
		if _, err := c.Get(ctx, k); err != nil {
			return res, err
		}
	}
	after := liveHeap()
	res.Retained = int64(after) - int64(before)
	f0 := fetches.Load()
	for _, k := range keys {
		if _, err := c.Get(ctx, k); err != nil {
			return res, err
		}
	}
	res.Held = n - int(fetches.Load()-f0)
	runtime.KeepAlive(keys)
	runtime.KeepAlive(values)
	return res, nil
}

// liveHeap returns the live heap after two collections (the second
// sweeps what the first found unreachable, finalizers included).
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// RunMemoryChild is the body of a memory child: if MemoryEnv is set, it
// measures the library it names, prints the result as JSON on stdout and
// reports true (the caller then exits). A test binary's TestMain calls it
// first thing.
func RunMemoryChild() (ran bool, err error) {
	spec := os.Getenv(MemoryEnv)
	if spec == "" {
		return false, nil
	}
	name, count, ok := strings.Cut(spec, ":")
	n, cerr := strconv.Atoi(count)
	if !ok || cerr != nil || n <= 0 {
		return true, fmt.Errorf("bench: bad %s %q (want LIBRARY:ENTRIES)", MemoryEnv, spec)
	}
	lib, err := Lookup(name)
	if err != nil {
		return true, err
	}
	res, err := MeasureMemory(lib, n)
	if err != nil {
		return true, err
	}
	return true, json.NewEncoder(os.Stdout).Encode(res)
}

// Memory measures lib with n entries in a fresh process: it runs the
// executable exe (a test binary whose TestMain calls RunMemoryChild) with
// MemoryEnv set.
func Memory(exe string, lib Library, n int) (MemoryResult, error) {
	cmd := exec.Command(exe, "-test.run=^$")
	// A binary built with -race sleeps 1s at exit unless told not to.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), MemoryEnv+"="+lib.Name+":"+strconv.Itoa(n), "GORACE="+gorace)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return MemoryResult{}, fmt.Errorf("bench: memory child for %s: %w", lib.Name, err)
	}
	var res MemoryResult
	if err := json.Unmarshal(out, &res); err != nil {
		return MemoryResult{}, fmt.Errorf("bench: memory child for %s printed %q: %w", lib.Name, out, err)
	}
	return res, nil
}
