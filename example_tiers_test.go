package flightcache_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/flightcache/flightcache"
)

// manualClock is a Clock for examples: time moves only when told to.
type manualClock struct{ now atomic.Int64 }

func (c *manualClock) Now() time.Time          { return time.Unix(0, c.now.Load()) }
func (c *manualClock) Advance(d time.Duration) { c.now.Add(int64(d)) }

// Example_ttlTiers walks one entry through its life: fresh for TTL, then
// stale for StaleTTL (served at once while one background refresh runs),
// then gone. A not-found answer is kept for NegativeTTL.
func Example_ttlTiers() {
	clock := &manualClock{}
	var version atomic.Int64
	backendSlow := make(chan struct{}) // holds the refresh until closed
	fetch := func(ctx context.Context, id string) (string, error) {
		if id == "nobody" {
			return "", flightcache.ErrNotFound
		}
		v := version.Add(1)
		if v > 1 {
			<-backendSlow
		}
		return fmt.Sprintf("%s v%d", id, v), nil
	}
	users, err := flightcache.New(fetch, flightcache.Config{
		Mode:        flightcache.ModeCache,
		MaxEntries:  1000,
		TTL:         30 * time.Second,
		StaleTTL:    time.Minute,
		NegativeTTL: 5 * time.Second,
		Clock:       clock,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer users.Close()
	ctx := context.Background()

	v, _ := users.Get(ctx, "ada") // miss: fetched
	fmt.Println("fresh:", v)
	clock.Advance(30 * time.Second)
	v, _ = users.Get(ctx, "ada") // stale: the old value at once, a refresh starts
	fmt.Println("stale:", v)
	refreshed := users.Refresh(ctx, "ada") // joins the running refresh
	close(backendSlow)
	<-refreshed
	v, _ = users.Get(ctx, "ada")
	fmt.Println("refreshed:", v)

	_, err = users.Get(ctx, "nobody") // not found: kept for NegativeTTL
	_, err2 := users.Get(ctx, "nobody")
	fmt.Println(err, "|", err2)

	s := users.Stats()
	fmt.Printf("hits=%d stale=%d negative=%d loads=%d refreshes=%d\n",
		s.Hits, s.StaleHits, s.NegativeHits, s.Loads, s.Refreshes)
	// Output:
	// fresh: ada v1
	// stale: ada v1
	// refreshed: ada v2
	// flightcache: not found | flightcache: not found
	// hits=3 stale=1 negative=1 loads=2 refreshes=1
}

// ExampleSetTTL keeps each session exactly as long as the identity
// provider's token it was made from is valid, and never serves it stale.
func ExampleSetTTL() {
	type session struct {
		User    string
		Expires time.Time
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	validate := func(ctx context.Context, token string) (session, error) {
		// A real fetch would call the identity provider here.
		s := session{User: "ada", Expires: now.Add(90 * time.Second)}
		flightcache.SetTTL(ctx, s.Expires.Sub(now)) // live until the token expires
		flightcache.SetStaleTTL(ctx, 0)             // and not a moment longer
		return s, nil
	}
	sessions, err := flightcache.New(validate, flightcache.Config{
		Mode: flightcache.ModeCache, MaxEntries: 10_000,
		TTL: time.Hour, StaleTTL: time.Minute, // defaults for fetches that choose nothing
		Clock: flightcache.ClockFunc(func() time.Time { return now }),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sessions.Close()

	s, _ := sessions.Get(context.Background(), "token-abc")
	fmt.Println(s.User, "until", s.Expires.Format(time.TimeOnly))
	now = now.Add(90 * time.Second)
	_, _ = sessions.Get(context.Background(), "token-abc") // expired with the token
	fmt.Println("validations:", sessions.Stats().Loads)
	// Output:
	// ada until 12:01:30
	// validations: 2
}
