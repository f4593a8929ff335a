// Package redistier is a Redis implementation of [flightcache.Remote]: the
// tier that every instance of a service shares, consulted by a
// [flightcache.Loader] between its local cache and its fetch, and through
// which one instance fetches a key for the whole fleet while the others
// wait ([Tier.Lease], [Tier.Await]) and invalidations reach every instance
// ([Tier.Invalidate], [Tier.Watch]).
//
// It works with any [redis.UniversalClient] (single node, Sentinel,
// Cluster) created with ContextTimeoutEnabled, which the caller owns:
//
//	client := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
//	tier, err := redistier.New[string, User](client, redistier.Options[string]{Prefix: "users"})
//	...
//	loader, err := flightcache.New(fetch, cfg, flightcache.WithRemote[string, User](tier))
//	...
//	defer tier.Close()
//
// # Storage
//
// A record lives at the key <prefix>:<schema version>:v=<key> (the key
// escaped so that no two keys meet, hashed with SHA-256 when long, see
// [Options.Prefix] and [Options.SchemaVersion]) as a small binary envelope
// (format version, absolute expiry, negative flag) around the bytes of the
// [Codec], JSON by default. Bytes that are not such an envelope, too large,
// or rejected by the Codec are a miss counted in [flightcache.RemoteStats]
// Corrupt: never returned, never a panic.
//
// # Faults
//
// Every Redis call is bounded by [Options.Timeout]; after
// [Options.BreakerFailures] consecutive failures a circuit breaker skips
// Redis ([ErrCircuitOpen]) for [Options.BreakerCooldown], then lets one
// probe through. Failures are returned as errors, which a Loader takes as
// "the shared tier is unavailable": it carries on with its local flight and
// fetch. Writes that fail are dropped and counted.
//
// # Goroutines
//
// A Tier runs a goroutine per [Tier.Watch] (until its stop function is
// called), one for the lease notifications of [Tier.Await] (from the first
// Await) and, while failed invalidations are being sent again, one for
// that; [Tier.Close] stops them all and waits for them.
package redistier
