package flightcache

import (
	"math/rand/v2"
	"testing"
)

// TestCallTable: keys whose hashes collide (7 distinct hashes for 1,000
// keys) are found, removed in random order and cleared exactly, across
// the table's growths.
func TestCallTable(t *testing.T) {
	var tab callTable[int, string]
	if tab.find(1, 1) != nil {
		t.Fatal("found a call in an empty table")
	}
	const n = 1000
	hash := func(k int) uint64 { return uint64(k%7) * 0x9E3779B97F4A7C15 }
	calls := make([]*call[int, string], n)
	for k := range n {
		calls[k] = &call[int, string]{}
		tab.insert(hash(k), k, calls[k])
	}
	if tab.n != n || len(tab.buckets) < n {
		t.Fatalf("n = %d, %d buckets after %d inserts", tab.n, len(tab.buckets), n)
	}
	for k := range n {
		if got := tab.find(hash(k), k); got != calls[k] {
			t.Fatalf("find(%d) = %p, want %p", k, got, calls[k])
		}
	}
	if tab.find(hash(n), n) != nil {
		t.Fatal("found a key never inserted whose hash collides with others")
	}
	order := rand.Perm(n)
	for i, k := range order[:n/2] {
		tab.remove(calls[k])
		if tab.find(hash(k), k) != nil {
			t.Fatalf("removal %d: key %d still found", i, k)
		}
		if tab.n != n-i-1 {
			t.Fatalf("removal %d: n = %d", i, tab.n)
		}
	}
	for _, k := range order[n/2:] {
		if tab.find(hash(k), k) != calls[k] {
			t.Fatalf("key %d lost by removing others", k)
		}
	}
	left := tab.clear()
	if len(left) != n/2 || tab.n != 0 {
		t.Fatalf("clear returned %d calls, n = %d; want %d, 0", len(left), tab.n, n/2)
	}
	seen := make(map[*call[int, string]]bool, len(left))
	for _, c := range left {
		seen[c] = true
	}
	for _, k := range order[n/2:] {
		if !seen[calls[k]] || tab.find(hash(k), k) != nil {
			t.Fatalf("key %d: returned by clear %v, still found %v", k, seen[calls[k]], tab.find(hash(k), k) != nil)
		}
	}
	tab.insert(hash(3), 3, calls[3]) // usable after clear
	if tab.find(hash(3), 3) != calls[3] {
		t.Fatal("insert after clear")
	}
}

// TestCallTableRemoveMissing: removing a call the table does not hold is
// an internal error, reported as such.
func TestCallTableRemoveMissing(t *testing.T) {
	var tab callTable[int, string]
	tab.insert(1, 1, &call[int, string]{})
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("no panic")
		}
	}()
	tab.remove(&call[int, string]{hash: 1})
}
