package redistier_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/flightcache/flightcache"
	"github.com/flightcache/flightcache/redistier"
	"github.com/redis/go-redis/v9"
)

type User struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

// A Loader whose local cache is backed by a Redis tier shared by every
// instance of the service: a miss on one instance is fetched once for the
// whole fleet, and Invalidate reaches every instance. (It needs a Redis at
// localhost:6379, so it is compiled but not run by go test.)
func Example() {
	// The client is yours: the Tier never closes it. ContextTimeoutEnabled
	// lets Options.Timeout bound every call.
	client := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
	defer client.Close()

	tier, err := redistier.New[int, User](client, redistier.Options[int]{
		Prefix:        "myservice:users",
		SchemaVersion: 1, // bump when User's encoding changes
		Timeout:       50 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer tier.Close() // after the Loader's Close

	fetch := func(ctx context.Context, id int) (User, error) {
		return User{ID: id, Name: "from the database"}, nil // SELECT ... WHERE id = $1
	}
	users, err := flightcache.New(fetch, flightcache.Config{
		Mode:        flightcache.ModeCache,
		MaxEntries:  10_000,
		TTL:         time.Minute,      // local copies
		RemoteTTL:   10 * time.Minute, // the shared copy
		NegativeTTL: 10 * time.Second,
	}, flightcache.WithRemote[int, User](tier))
	if err != nil {
		log.Fatal(err)
	}
	defer users.Close()

	u, err := users.Get(context.Background(), 42) // local → Redis → fetch
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.Name)
	users.Invalidate(42) // deleted in Redis; every instance drops its copy
}

// A Tier used directly, as a flightcache.Remote: records carry their
// remaining lifetime, and bytes that do not decode are misses.
func ExampleTier_Get() {
	client := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
	defer client.Close()
	tier, err := redistier.New[string, User](client, redistier.Options[string]{Prefix: "example"})
	if err != nil {
		log.Fatal(err)
	}
	defer tier.Close()

	ctx := context.Background()
	err = tier.Set(ctx, "ada", flightcache.RemoteRecord[User]{Value: User{ID: 1, Name: "Ada"}, TTL: time.Minute})
	if err != nil {
		log.Printf("not stored (counted in Stats().WritesDropped): %v", err)
	}
	rec, ok, err := tier.Get(ctx, "ada")
	switch {
	case err != nil:
		log.Printf("Redis unavailable: %v", err) // fetch from the source instead
	case ok:
		fmt.Println(rec.Value.Name, rec.TTL <= time.Minute)
	}
}
