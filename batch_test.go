package flightcache_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightcache/flightcache"
)

// batchDB is a fake database that answers single and batch queries,
// records every query, and can hold queries until released.
type batchDB struct {
	mu      sync.Mutex
	batches [][]string // keys of each batch query, in order
	singles []string   // keys of each single query
	hold    chan struct{}
	missing map[string]bool // keys that do not exist
	fail    func(keys []string) error
}

func (d *batchDB) wait(ctx context.Context) error {
	if d.hold == nil {
		return nil
	}
	select {
	case <-d.hold:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *batchDB) one(ctx context.Context, key string) (string, error) {
	d.mu.Lock()
	d.singles = append(d.singles, key)
	d.mu.Unlock()
	if err := d.wait(ctx); err != nil {
		return "", err
	}
	if d.missing[key] {
		return "", flightcache.ErrNotFound
	}
	return "v:" + key, nil
}

func (d *batchDB) many(ctx context.Context, keys []string) (map[string]string, error) {
	d.mu.Lock()
	d.batches = append(d.batches, slices.Clone(keys))
	d.mu.Unlock()
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	if d.fail != nil {
		if err := d.fail(keys); err != nil {
			return nil, err
		}
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		if !d.missing[k] {
			out[k] = "v:" + k
		}
	}
	return out, nil
}

func (d *batchDB) queries() (singles []string, batches [][]string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	batches = make([][]string, len(d.batches))
	for i, b := range d.batches {
		batches[i] = slices.Sorted(slices.Values(b))
	}
	return slices.Clone(d.singles), batches
}

func newBatchLoader(t *testing.T, db *batchDB, cfg flightcache.Config) *flightcache.Loader[string, string] {
	t.Helper()
	return mustNew(t, db.one, cfg, flightcache.WithBatch(db.many))
}

func TestGetManyDedupWithGetAndOverlappingGetMany(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := &batchDB{hold: make(chan struct{})}
		l := newBatchLoader(t, db, cacheCfg)
		ctx := context.Background()
		single := make(chan result, 1)
		go func() {
			v, err := l.Get(ctx, "k1")
			single <- result{v, err}
		}()
		synctest.Wait()
		resA := make(chan flightcache.Results[string, string], 1)
		go func() { resA <- l.GetMany(ctx, []string{"k1", "k2", "k3"}) }()
		synctest.Wait()
		resB := make(chan flightcache.Results[string, string], 1)
		go func() { resB <- l.GetMany(ctx, []string{"k2", "k3", "k4", "k4"}) }()
		synctest.Wait()
		close(db.hold)

		require.Equal(t, result{v: "v:k1"}, <-single)
		a, b := <-resA, <-resB
		require.NoError(t, a.Err())
		require.NoError(t, b.Err())
		require.Equal(t, map[string]string{"k1": "v:k1", "k2": "v:k2", "k3": "v:k3"}, a.Values())
		require.Equal(t, map[string]string{"k2": "v:k2", "k3": "v:k3", "k4": "v:k4"}, b.Values())

		singles, batches := db.queries()
		require.Equal(t, []string{"k1"}, singles, "the Get's fetch")
		require.Equal(t, [][]string{{"k2", "k3"}, {"k4"}}, batches, "each key fetched exactly once")
		s := l.Stats()
		require.EqualValues(t, 4, s.Loads)
		require.EqualValues(t, 3, s.Shared) // k1 in A, k2 and k3 in B
		require.EqualValues(t, 2, s.BatchLoads)
		requireBalanced(t, s, 1+3+3)
	})
}

func TestGetManyHitsAndPartialResults(t *testing.T) {
	db := &batchDB{missing: map[string]bool{"ghost": true}}
	cfg := cacheCfg
	cfg.NegativeTTL = time.Minute
	l := newBatchLoader(t, db, cfg)
	ctx := context.Background()
	_, err := l.Get(ctx, "a")
	require.NoError(t, err)

	res := l.GetMany(ctx, []string{"a", "b", "ghost"})
	require.Equal(t, 3, res.Len())
	v, err := res.Get("b")
	require.NoError(t, err)
	require.Equal(t, "v:b", v)
	_, err = res.Get("ghost")
	require.ErrorIs(t, err, flightcache.ErrNotFound, "a key absent from the batch result is not found")
	_, err = res.Get("zzz")
	require.ErrorIs(t, err, flightcache.ErrNotRequested)
	require.ErrorIs(t, res.Err(), flightcache.ErrNotFound)
	require.ErrorContains(t, res.Err(), "1 of 3 keys failed")

	_, batches := db.queries()
	require.Equal(t, [][]string{{"b", "ghost"}}, batches, "the cached key was not fetched")
	res = l.GetMany(ctx, []string{"a", "b", "ghost"})
	_, err = res.Get("ghost")
	require.ErrorIs(t, err, flightcache.ErrNotFound)
	_, batches = db.queries()
	require.Len(t, batches, 1, "values and the not-found were cached")
	require.EqualValues(t, 1, l.Stats().NegativeHits)
}

func TestBatchErrorIsNeverCachedOrNotFound(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	db := &batchDB{fail: func(keys []string) error {
		if failing.Load() {
			return fmt.Errorf("db: %w (misreported)", flightcache.ErrNotFound)
		}
		return nil
	}}
	cfg := cacheCfg
	cfg.NegativeTTL = time.Minute
	l := newBatchLoader(t, db, cfg)
	res := l.GetMany(context.Background(), []string{"a", "b"})
	require.Empty(t, res.Values())
	require.Len(t, res.Errors(), 2)
	require.Zero(t, l.Len(), "a batch error is never recorded as not found")
	failing.Store(false)
	res = l.GetMany(context.Background(), []string{"a", "b"})
	require.NoError(t, res.Err())
	require.EqualValues(t, 2, l.Stats().BatchLoads)
}

func TestBatchErrorFailsOnlyItsBatch(t *testing.T) {
	db := &batchDB{fail: func(keys []string) error {
		if slices.Contains(keys, "c") {
			return errors.New("boom")
		}
		return nil
	}}
	cfg := cacheCfg
	cfg.MaxBatchSize = 2
	l := newBatchLoader(t, db, cfg)
	res := l.GetMany(context.Background(), []string{"a", "b", "c", "d"})
	require.Equal(t, map[string]string{"a": "v:a", "b": "v:b"}, res.Values())
	for _, k := range []string{"c", "d"} {
		_, err := res.Get(k)
		require.EqualError(t, err, "boom")
	}
	require.EqualValues(t, 1, l.Stats().LoadErrors/2, "two keys of one failed batch")
}

func TestMaxBatchSizeSplits(t *testing.T) {
	db := &batchDB{}
	cfg := cacheCfg
	cfg.MaxEntries, cfg.MaxBatchSize = 1000, 100
	l := newBatchLoader(t, db, cfg)
	keys := make([]string, 250)
	for i := range keys {
		keys[i] = fmt.Sprint(i)
	}
	res := l.GetMany(context.Background(), keys)
	require.NoError(t, res.Err())
	require.Equal(t, 250, len(res.Values()))
	_, batches := db.queries()
	sizes := []int{}
	for _, b := range batches {
		sizes = append(sizes, len(b))
	}
	require.ElementsMatch(t, []int{100, 100, 50}, sizes)
	s := l.Stats()
	require.EqualValues(t, 3, s.BatchLoads)
	require.EqualValues(t, 3, s.BatchSize.Count)
	require.EqualValues(t, 250, s.BatchSize.Sum)
	require.EqualValues(t, 1, s.BatchSize.Counts[5], "50 lands in the le=50 bucket")
	require.EqualValues(t, 2, s.BatchSize.Counts[6], "100 lands in the le=100 bucket")
	requireBalanced(t, s, 250)
}

func TestGetManyCancellationDoesNotFailOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := &batchDB{hold: make(chan struct{})}
		l := newBatchLoader(t, db, flightcache.Config{})
		ctx, cancel := context.WithCancel(context.Background())
		first := make(chan flightcache.Results[string, string], 1)
		go func() { first <- l.GetMany(ctx, []string{"a", "b"}) }()
		synctest.Wait()
		second := make(chan flightcache.Results[string, string], 1)
		go func() { second <- l.GetMany(context.Background(), []string{"a", "b"}) }()
		synctest.Wait()
		cancel()
		r1 := <-first
		for _, k := range []string{"a", "b"} {
			_, err := r1.Get(k)
			require.ErrorIs(t, err, context.Canceled)
		}
		close(db.hold)
		r2 := <-second
		require.NoError(t, r2.Err(), "the other caller still gets the batch's values")
		require.Len(t, r2.Values(), 2)
		_, batches := db.queries()
		require.Len(t, batches, 1)
	})
}

func TestBatchPanicReachesEveryKey(t *testing.T) {
	l := mustNew(t, (&batchDB{}).one, cacheCfg, flightcache.WithBatch(func(ctx context.Context, keys []string) (map[string]string, error) {
		panic("batch exploded")
	}))
	res := l.GetMany(context.Background(), []string{"a", "b"})
	for _, k := range []string{"a", "b"} {
		_, err := res.Get(k)
		require.ErrorIs(t, err, flightcache.ErrPanic)
	}
	require.Zero(t, l.Len())
	require.EqualValues(t, 2, l.Stats().Panics)
}

func TestMicroBatchWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := &batchDB{}
		cfg := cacheCfg
		cfg.BatchWindow, cfg.MaxBatchSize = 10*time.Millisecond, 3
		l := newBatchLoader(t, db, cfg)
		ctx := context.Background()

		start := time.Now()
		v, err := l.Get(ctx, "lone")
		require.NoError(t, err)
		require.Equal(t, "v:lone", v)
		require.Equal(t, 10*time.Millisecond, time.Since(start), "a lone Get waits exactly the window")

		start = time.Now()
		var wg sync.WaitGroup
		for _, k := range []string{"a", "b"} {
			wg.Go(func() {
				v, err := l.Get(ctx, k)
				if err != nil || v != "v:"+k {
					t.Errorf("Get(%s) = %q, %v", k, v, err)
				}
			})
		}
		wg.Wait()
		require.Equal(t, 10*time.Millisecond, time.Since(start))

		start = time.Now()
		for _, k := range []string{"c", "d", "e"} { // MaxBatchSize reached: no wait
			wg.Go(func() {
				_, err := l.Get(ctx, k)
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		require.Zero(t, time.Since(start), "a full batch goes at once")

		singles, batches := db.queries()
		require.Empty(t, singles, "every load went through the batch fetch")
		require.Equal(t, [][]string{{"lone"}, {"a", "b"}, {"c", "d", "e"}}, batches)
		requireBalanced(t, l.Stats(), 6)
	})
}

func TestCloseWithPendingMicroBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := &batchDB{}
		cfg := cacheCfg
		cfg.BatchWindow = time.Hour
		l, err := flightcache.New(db.one, cfg, flightcache.WithBatch(db.many))
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() {
			_, err := l.Get(context.Background(), "k")
			errc <- err
		}()
		synctest.Wait()
		require.NoError(t, l.Close())
		require.ErrorIs(t, <-errc, flightcache.ErrClosed)
		res := l.GetMany(context.Background(), []string{"x"})
		_, err = res.Get("x")
		require.ErrorIs(t, err, flightcache.ErrClosed)
	})
}

func TestGetManyWithoutBatchFunc(t *testing.T) {
	db := &batchDB{missing: map[string]bool{"ghost": true}}
	l := mustNew(t, db.one, cacheCfg)
	res := l.GetMany(context.Background(), []string{"a", "b", "a", "ghost"})
	require.Equal(t, map[string]string{"a": "v:a", "b": "v:b"}, res.Values())
	_, err := res.Get("ghost")
	require.ErrorIs(t, err, flightcache.ErrNotFound)
	singles, _ := db.queries()
	require.ElementsMatch(t, []string{"a", "b", "ghost"}, singles)
}

func TestBatchWindowNeedsBatchFunc(t *testing.T) {
	_, err := flightcache.New((&batchDB{}).one, flightcache.Config{BatchWindow: time.Millisecond})
	require.ErrorIs(t, err, flightcache.ErrInvalidConfig)
	require.ErrorContains(t, err, "BatchWindow needs a batch fetch (WithBatch)")
	require.ErrorContains(t, flightcache.Config{MaxBatchSize: -1}.Validate(), "MaxBatchSize must not be negative")
}

func TestBatchCancelledOnceEveryCallerLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cancelled := make(chan error, 1)
		l := mustNew(t, (&batchDB{}).one, flightcache.Config{}, flightcache.WithBatch(func(ctx context.Context, keys []string) (map[string]string, error) {
			<-ctx.Done()
			cancelled <- ctx.Err()
			return nil, ctx.Err()
		}))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan flightcache.Results[string, string], 1)
		go func() { done <- l.GetMany(ctx, []string{"a", "b", "c"}) }()
		synctest.Wait()
		cancel()
		res := <-done
		require.ErrorIs(t, res.Err(), context.Canceled)
		require.ErrorIs(t, <-cancelled, context.Canceled, "in flight mode the batch ends once no key is wanted")
	})
}
