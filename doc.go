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
//   - In cache mode ([ModeCache]), results are also kept in an LRU of at
//     most [Config.MaxEntries] entries for [Config.TTL], and Gets of a fresh
//     entry return at once.
//
// A fetch runs on a context that keeps the first caller's values but not
// its cancellation: a caller that gives up returns ctx.Err() at once and the
// others keep waiting. A panic in a fetch reaches every waiter as a
// [*PanicError] (matching [ErrPanic]) and never crashes the process.
//
// [Loader.Stats] returns counters (hits, misses, shared, loads, ...), and a
// [Collector] exports them to Prometheus from a registry of your own.
package flightcache
