package bench

import (
	"context"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/sync/singleflight"
)

// golangLRU is hashicorp/golang-lru/v2 plus x/sync/singleflight, written by
// hand as a careful user would: the thread-safe lru.Cache holds the value
// with its expiry (the package's expirable LRU starts a goroutine that can
// never be stopped, so it is not used), and the cache is checked again
// inside the flight so that a Get which missed just before another's load
// finished does not fetch a second time.
type golangLRU struct {
	c     *lru.Cache[string, lruEntry]
	g     singleflight.Group
	fetch Fetch
	ttl   int64
	epoch time.Time
}

// lruEntry is a value and its expiry in nanoseconds since golangLRU.epoch.
type lruEntry struct {
	v   string
	exp int64
}

func newGolangLRU(s Setup) (Cache, error) {
	c, err := lru.New[string, lruEntry](s.Capacity)
	if err != nil {
		return nil, err
	}
	return &golangLRU{c: c, fetch: s.Fetch, ttl: int64(s.TTL), epoch: time.Now()}, nil
}

func (a *golangLRU) lookup(key string) (string, bool) {
	e, ok := a.c.Get(key)
	if !ok || int64(time.Since(a.epoch)) >= e.exp {
		return "", false
	}
	return e.v, true
}

func (a *golangLRU) Get(ctx context.Context, key string) (string, error) {
	if v, ok := a.lookup(key); ok {
		return v, nil
	}
	v, err, _ := a.g.Do(key, func() (any, error) {
		if v, ok := a.lookup(key); ok {
			return v, nil
		}
		v, err := a.fetch(ctx, key)
		if err == nil {
			a.c.Add(key, lruEntry{v: v, exp: int64(time.Since(a.epoch)) + a.ttl})
		}
		return v, err
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

func (a *golangLRU) Close() {}

// exactLRU is the reference model of the hit ratio an exact LRU of the
// same size reaches: golang-lru's simplelru under one mutex, the fetch run
// under the lock (the reference workload's fetch returns at once).
type exactLRU struct {
	mu    sync.Mutex // guards lru
	lru   *simplelru.LRU[string, string]
	fetch Fetch
}

func newExactLRU(s Setup) (Cache, error) {
	l, err := simplelru.NewLRU[string, string](s.Capacity, nil)
	if err != nil {
		return nil, err
	}
	return &exactLRU{lru: l, fetch: s.Fetch}, nil
}

func (a *exactLRU) Get(ctx context.Context, key string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if v, ok := a.lru.Get(key); ok {
		return v, nil
	}
	v, err := a.fetch(ctx, key)
	if err == nil {
		a.lru.Add(key, v)
	}
	return v, err
}

func (a *exactLRU) Close() {}

// twoQueue is the reference model of golang-lru's 2Q policy, used as
// exactLRU is.
type twoQueue struct {
	mu    sync.Mutex // serialises miss and add, so that no key is fetched twice
	c     *lru.TwoQueueCache[string, string]
	fetch Fetch
}

func newTwoQueue(s Setup) (Cache, error) {
	c, err := lru.New2Q[string, string](s.Capacity)
	if err != nil {
		return nil, err
	}
	return &twoQueue{c: c, fetch: s.Fetch}, nil
}

func (a *twoQueue) Get(ctx context.Context, key string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if v, ok := a.c.Get(key); ok {
		return v, nil
	}
	v, err := a.fetch(ctx, key)
	if err == nil {
		a.c.Add(key, v)
	}
	return v, err
}

func (a *twoQueue) Close() {}
