// Package flightcache deduplicates and optionally caches calls to a slow
// fetch function, such as a database lookup or a call to an identity
// provider.
//
// A [Loader] wraps a [FetchFunc]. Its mode is a configuration switch:
//
//   - In flight mode ([ModeFlight], the zero [Config]), concurrent
//     [Loader.Get] calls for one key share a single fetch and its result;
//     nothing is kept once it returns, so the next Get fetches again. This
//     is what golang.org/x/sync/singleflight does, with every caller waiting
//     on its own context and panics turned into errors.
//   - In cache mode ([ModeCache]), results are also kept in a bounded
//     cache of at most [Config.MaxEntries] entries ([Config.Policy]: SIEVE
//     by default, whose hits take no lock; an exact LRU; or 2Q), with TTL
//     tiers: fresh for [Config.TTL], then served stale for
//     [Config.StaleTTL] while one background refresh runs, and not-found
//     answers ([ErrNotFound]) kept for [Config.NegativeTTL]. A fetch can
//     choose its entry's lifetime with [SetTTL].
//
// A fetch runs on a context that keeps the first caller's values but not
// its cancellation: a caller that gives up returns ctx.Err() at once and the
// others keep waiting. A panic in a fetch reaches every waiter as a
// [*PanicError] (matching [ErrPanic]) and never crashes the process.
//
// [WithBatch] adds a batch fetch: [Loader.GetMany] loads the keys it misses
// with one query, and [Config.BatchWindow] coalesces single Gets into
// batches. [WithRemote] adds a tier shared by every instance of a service
// (the redistier module implements it on Redis): one fetch per key for the
// whole fleet, and fleet-wide invalidation.
//
// [Config.InlineFetch] runs a load on the goroutine of the Get that starts
// it when that Get's context cannot be cancelled, as singleflight's Do
// does, saving a goroutine per miss. In flight mode such loads reuse their
// bookkeeping and allocate nothing; with [Config.DisableLoadTiming] too,
// an uncontended load costs less than singleflight's Do.
//
// [Loader.Stats] returns counters (hits, misses, shared, loads, ...), and a
// [Collector] exports them to Prometheus from a registry of your own.
// Counting hits is one atomic add per hit; [Config.DisableHitCounting]
// leaves it out for a service that does not read the hit count.
package flightcache
