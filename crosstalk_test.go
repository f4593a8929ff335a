package flightcache_test

// Promise 5, no cross-talk: the value (or not-found answer) of one key is
// never returned for another: keys equal as strings but of different types,
// struct keys whose fields concatenate to the same string, and Loaders with
// different names sharing one store through the shared tier. Fuzzed by
// FuzzNoCrossTalk (fuzz_test.go).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flightcache/flightcache"
)

// relPair is a composite key whose fields may concatenate ambiguously.
type relPair struct{ A, B string }

// relName is a string type distinct from string.
type relName string

// relRender is the one value a key may ever be answered with.
func relRender(key any) string { return fmt.Sprintf("%T=%#v", key, key) }

// relCrossTalkCheck drives a Loader over keys that must stay apart: Gets,
// concurrent Gets, GetMany, Set, Invalidate and not-found answers, in both
// modes. notFound says which keys do not exist.
func relCrossTalkCheck[K comparable](t *testing.T, keys []K, notFound func(K) bool) {
	t.Helper()
	for _, mode := range []flightcache.Mode{flightcache.ModeFlight, flightcache.ModeCache} {
		synctest.Test(t, func(t *testing.T) {
			var fetches atomic.Int64
			hold := make(chan struct{})
			var held atomic.Bool
			held.Store(true)
			fetch := func(ctx context.Context, key K) (string, error) {
				fetches.Add(1)
				if held.Load() {
					<-hold
				}
				if notFound(key) {
					return "", fmt.Errorf("%w: %s", flightcache.ErrNotFound, relRender(key))
				}
				return relRender(key), nil
			}
			batch := func(ctx context.Context, ks []K) (map[K]string, error) {
				out := make(map[K]string, len(ks))
				for _, k := range ks {
					if !notFound(k) {
						out[k] = relRender(k)
					}
				}
				return out, nil
			}
			l, err := flightcache.New(fetch, flightcache.Config{
				Mode: mode, MaxEntries: 4 * len(keys), TTL: time.Minute, NegativeTTL: time.Minute,
			}, flightcache.WithBatch(batch))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			ctx := context.Background()
			check := func(what string, key K, v string, err error) {
				t.Helper()
				if notFound(key) {
					if !errors.Is(err, flightcache.ErrNotFound) || strings.Contains(err.Error(), "=") && !strings.HasSuffix(err.Error(), relRender(key)) {
						t.Errorf("%s %v: %q, %v: want this key's not-found", what, relRender(key), v, err)
					}
					return
				}
				if err != nil || v != relRender(key) {
					t.Errorf("%s %v: %q, %v: want %q", what, relRender(key), v, err, relRender(key))
				}
			}

			// Concurrent Gets of every key while the fetches are held: no
			// key may join another's fetch.
			var wg sync.WaitGroup
			for _, k := range keys {
				for range 3 {
					wg.Go(func() {
						v, err := l.Get(ctx, k)
						check("concurrent Get", k, v, err)
					})
				}
			}
			synctest.Wait()
			if got := fetches.Load(); got != int64(len(keys)) {
				t.Errorf("%v: %d fetches running for %d distinct keys: some keys shared a fetch", mode, got, len(keys))
			}
			held.Store(false)
			close(hold)
			wg.Wait()

			for _, k := range keys { // cached (or fetched again in flight mode)
				v, err := l.Get(ctx, k)
				check("Get", k, v, err)
			}
			res := l.GetMany(ctx, keys)
			if res.Len() != len(keys) {
				t.Errorf("GetMany: %d results for %d keys", res.Len(), len(keys))
			}
			for _, k := range keys {
				v, err := res.Get(k)
				check("GetMany", k, v, err)
			}
			// Writes to one key leave the others alone.
			for i, k := range keys {
				l.Set(k, "set:"+relRender(k))
				for _, other := range keys[i+1:] {
					v, err := l.Get(ctx, other)
					if v == "set:"+relRender(k) {
						t.Errorf("Set(%s) changed %s", relRender(k), relRender(other))
					}
					_ = err
				}
				if mode == flightcache.ModeCache {
					if v, err := l.Get(ctx, k); err != nil || v != "set:"+relRender(k) {
						t.Errorf("Get(%s) after Set = %q, %v", relRender(k), v, err)
					}
				}
			}
			if mode == flightcache.ModeCache {
				l.Invalidate(keys[0])
				for _, k := range keys[1:] {
					if v, _ := l.Get(ctx, k); v != "set:"+relRender(k) {
						t.Errorf("Invalidate(%s) dropped %s (got %q)", relRender(keys[0]), relRender(k), v)
					}
				}
			}
		})
	}
}

func TestNoCrossTalkKeyTypes(t *testing.T) {
	// Equal as strings ("1"), different as Go values.
	keys := []any{
		int64(1), int(1), int32(1), uint(1), uint8(1), float64(1), float32(1), "1", relName("1"),
		json.Number("1"), time.Duration(1), true, [1]int{1}, [1]string{"1"}, relPair{"1", ""}, relPair{"", "1"},
		complex(1, 0), int64(-1), "-1", "", relName(""), struct{}{}, nil,
	}
	relCrossTalkCheck(t, keys, func(k any) bool {
		_, isString := k.(string)
		return isString || k == nil
	})
}

func TestNoCrossTalkAmbiguousStructKeys(t *testing.T) {
	keys := []relPair{
		{"a", "bc"}, {"ab", "c"}, {"abc", ""}, {"", "abc"},
		{"a:b", "c"}, {"a", "b:c"}, {"a\x00", "b"}, {"a", "\x00b"},
		{`a"`, `"b`}, {`a","b`, ""}, {"é", ""}, {"\xc3", "\xa9"},
	}
	relCrossTalkCheck(t, keys, func(k relPair) bool { return k.B == "" })
}

// relNSRemote gives one Loader its own key space in a shared store, as the
// redistier module's Prefix does: keys are length-prefixed so that no two
// (name, key) pairs meet.
type relNSRemote struct {
	*fakeRemote
	ns string
}

func (r *relNSRemote) key(k string) string { return strconv.Itoa(len(r.ns)) + ":" + r.ns + ":" + k }

func (r *relNSRemote) Get(ctx context.Context, key string) (flightcache.RemoteRecord[string], bool, error) {
	return r.fakeRemote.Get(ctx, r.key(key))
}

func (r *relNSRemote) Set(ctx context.Context, key string, rec flightcache.RemoteRecord[string]) error {
	return r.fakeRemote.Set(ctx, r.key(key), rec)
}

func (r *relNSRemote) Invalidate(ctx context.Context, key string) error {
	return r.fakeRemote.Invalidate(ctx, r.key(key))
}

func (r *relNSRemote) Lease(ctx context.Context, key string, ttl time.Duration) (func(), bool, error) {
	return r.fakeRemote.Lease(ctx, r.key(key), ttl)
}

func (r *relNSRemote) Await(ctx context.Context, key string) (flightcache.RemoteRecord[string], bool, error) {
	return r.fakeRemote.Await(ctx, r.key(key))
}

func (r *relNSRemote) Watch(onInvalidate func(string), onReset func()) func() {
	return r.fakeRemote.Watch(func(k string) {
		if key, ok := strings.CutPrefix(k, r.key("")); ok {
			onInvalidate(key)
		}
	}, onReset)
}

func TestNoCrossTalkSharedStore(t *testing.T) {
	store := newSharedStore(newClock())
	fetches := map[string]*atomic.Int64{"users": {}, "orders": {}}
	newInstance := func(name string, id int) *flightcache.Loader[string, string] {
		l, err := flightcache.New(func(ctx context.Context, key string) (string, error) {
			fetches[name].Add(1)
			if strings.HasPrefix(key, "missing") {
				return "", fmt.Errorf("%w: %s %s", flightcache.ErrNotFound, name, key)
			}
			return name + "/" + key, nil
		}, flightcache.Config{
			Name: name, Mode: flightcache.ModeCache, MaxEntries: 100, TTL: time.Hour, NegativeTTL: time.Hour, Clock: store.clock,
		}, flightcache.WithRemote[string, string](&relNSRemote{fakeRemote: &fakeRemote{s: store, id: id}, ns: name}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		return l
	}
	// Two instances of each Loader; "users:x" as a users key against "x" as
	// an orders key, and so on, must all stay apart.
	users := []*flightcache.Loader[string, string]{newInstance("users", 1), newInstance("users", 2)}
	orders := []*flightcache.Loader[string, string]{newInstance("orders", 3), newInstance("orders", 4)}
	ctx := context.Background()
	want := func(l *flightcache.Loader[string, string], key, v string) {
		t.Helper()
		got, err := l.Get(ctx, key)
		if err != nil || got != v {
			t.Fatalf("%s.Get(%q) = %q, %v, want %q", l.Name(), key, got, err, v)
		}
	}
	keys := []string{"42", "1", "users:42", "6:orders:42", ""}
	for _, k := range keys {
		want(users[0], k, "users/"+k)
		want(orders[0], k, "orders/"+k)
		want(users[1], k, "users/"+k) // from the shared tier
		want(orders[1], k, "orders/"+k)
	}
	if fetches["users"].Load() != int64(len(keys)) || fetches["orders"].Load() != int64(len(keys)) {
		t.Fatalf("fetches users %d, orders %d, want %d each (the second instance reads the shared tier)",
			fetches["users"].Load(), fetches["orders"].Load(), len(keys))
	}
	// A not-found in one key space is not a not-found in the other.
	if _, err := users[0].Get(ctx, "missing"); !errors.Is(err, flightcache.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := users[1].Get(ctx, "missing"); !errors.Is(err, flightcache.ErrNotFound) {
		t.Fatal(err)
	}
	if v, err := orders[1].Get(ctx, "missing"); !errors.Is(err, flightcache.ErrNotFound) || !strings.Contains(err.Error(), "orders missing") {
		t.Fatalf("orders.Get(missing) = %q, %v: want the orders fetch's own not-found", v, err)
	}
	// Writes and invalidations stay in their key space but reach every
	// instance of it.
	users[0].Set("42", "users-written")
	want(users[1], "42", "users-written")
	want(orders[0], "42", "orders/42")
	want(orders[1], "42", "orders/42")
	orders[1].Invalidate("1")
	want(users[0], "1", "users/1")
	want(users[1], "1", "users/1")
	before := fetches["orders"].Load()
	want(orders[0], "1", "orders/1")
	if fetches["orders"].Load() != before+1 {
		t.Fatalf("orders[0] did not drop its copy of 1 on the other instance's invalidation")
	}
	for _, l := range append(users, orders...) {
		if s := l.Stats(); s.RemoteErrors != 0 {
			t.Fatalf("%s: %d remote errors", l.Name(), s.RemoteErrors)
		}
	}
}
