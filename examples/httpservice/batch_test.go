package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/flightcache/flightcache"
	"github.com/flightcache/flightcache/examples/internal/testdb"
	"github.com/flightcache/flightcache/examples/internal/userdb"
)

// idsQuery returns "ids=1,2,3" for ids.
func idsQuery(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return "ids=" + strings.Join(s, ",")
}

// getUsers sends GET /users?ids=... and decodes a 200 answer; it fails the
// test on any other status.
func getUsers(t *testing.T, a *app, ids []int64) usersAnswer {
	t.Helper()
	code, body := get(t, a, "/users?"+idsQuery(ids))
	if code != http.StatusOK {
		t.Fatalf("GET /users?%s = %d %q, want 200", idsQuery(ids), code, body)
	}
	return decodeUsers(t, body)
}

func decodeUsers(t *testing.T, body string) usersAnswer {
	t.Helper()
	var ans usersAnswer
	if err := json.Unmarshal([]byte(body), &ans); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	for id, u := range ans.Users {
		if u != (userdb.User{ID: id, Name: fmt.Sprintf("user-%d", id), Email: fmt.Sprintf("user%d@example.com", id)}) {
			t.Errorf("users[%d] = %+v", id, u)
		}
	}
	return ans
}

// newBatchTestApp builds the service on a users table of backend with
// users 1 to users, recording (and, with hold, holding) every query.
func newBatchTestApp(t *testing.T, backend string, cfg flightcache.Config, users int, hold *testdb.Hold) (*app, *testdb.Recorder) {
	t.Helper()
	rec := testdb.NewRecorder(hold)
	store := testdb.OpenStore(t, backend, rec.Options(userdb.Options{}), users)
	return newTestAppOn(t, store, cfg), rec
}

// TestGetUsersOneQuery: 30 ids are one query; asked again, none in cache
// mode and one more in flight mode.
func TestGetUsersOneQuery(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		for _, cfg := range []flightcache.Config{defaultLoaderConfig(), cacheConfig()} {
			a, rec := newBatchTestApp(t, backend, cfg, 100, nil)
			ids := testdb.IDs(1, 30)
			for round := 1; round <= 2; round++ {
				ans := getUsers(t, a, ids)
				if len(ans.Users) != 30 || len(ans.Missing) != 0 {
					t.Errorf("%v mode, round %d: %d users, missing %v; want 30 users, none missing", cfg.Mode, round, len(ans.Users), ans.Missing)
				}
			}
			want := [][]int64{ids, ids} // flight mode keeps nothing
			if cfg.Mode == flightcache.ModeCache {
				want = want[:1]
			}
			if q := rec.Queries(); !slices.EqualFunc(q, want, slices.Equal) {
				t.Errorf("%v mode: queries %v for two GET /users of ids 1..30, want %v", cfg.Mode, q, want)
			}
			if q := a.store.Queries(); q != int64(len(want)) {
				t.Errorf("%v mode: the store counted %d queries, want %d", cfg.Mode, q, len(want))
			}
		}
	})
}

// TestGetUsersBody pins the JSON of an answer: users by id, missing ids in
// the order asked, an empty list (not null) when none is missing.
func TestGetUsersBody(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		a, _ := newBatchTestApp(t, backend, cacheConfig(), 10, nil)
		for path, want := range map[string]string{
			"/users?ids=2,1":         `{"users":{"1":{"id":1,"name":"user-1","email":"user1@example.com"},"2":{"id":2,"name":"user-2","email":"user2@example.com"}},"missing":[]}`,
			"/users?ids=12,3,11,12":  `{"users":{"3":{"id":3,"name":"user-3","email":"user3@example.com"}},"missing":[12,11]}`,
			"/users?ids=13&ids=3,14": `{"users":{"3":{"id":3,"name":"user-3","email":"user3@example.com"}},"missing":[13,14]}`,
			"/users?ids=20":          `{"users":{},"missing":[20]}`,
		} {
			code, body := get(t, a, path)
			if code != http.StatusOK || body != want+"\n" {
				t.Errorf("GET %s = %d %s, want 200 %s", path, code, body, want)
			}
		}
	})
}

// TestGetUsersPartlyCached: of 50 ids, the 10 cached are answered from
// the cache and the other 40 with exactly one query.
func TestGetUsersPartlyCached(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		a, rec := newBatchTestApp(t, backend, cacheConfig(), 100, nil)
		for id := 1; id <= 10; id++ {
			if code, _ := get(t, a, fmt.Sprintf("/users/%d", id)); code != http.StatusOK {
				t.Fatalf("GET /users/%d = %d", id, code)
			}
		}
		ans := getUsers(t, a, testdb.IDs(1, 50))
		if len(ans.Users) != 50 {
			t.Errorf("%d users, want 50", len(ans.Users))
		}
		q := rec.Queries()
		if len(q) != 11 || !slices.Equal(q[10], testdb.IDs(11, 50)) {
			t.Errorf("queries %v, want 10 single ones then one for ids 11..50", q)
		}
		if s := a.users.Stats(); s.Hits != 10 || s.BatchLoads != 1 || s.Loads != 50 {
			t.Errorf("stats: hits=%d batch loads=%d loads=%d, want 10, 1, 50", s.Hits, s.BatchLoads, s.Loads)
		}
	})
}

// TestGetUsersMissing: ids with no user are listed in "missing" with a 200
// for the request; in cache mode with a NegativeTTL they are remembered, so
// asking again (in a batch or alone) makes no query.
func TestGetUsersMissing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		noNegative := cacheConfig()
		noNegative.NegativeTTL = 0
		for _, tt := range []struct {
			name         string
			cfg          flightcache.Config
			wantRepeated int // queries when the same request comes again
		}{
			{"flight", defaultLoaderConfig(), 1},
			{"cache", cacheConfig(), 0},
			{"cache without negative TTL", noNegative, 1},
		} {
			a, rec := newBatchTestApp(t, backend, tt.cfg, 10, nil)
			ids := []int64{3, 11, 4, 12}
			for round := range 2 {
				ans := getUsers(t, a, ids)
				if !slices.Equal(slices.Sorted(maps.Keys(ans.Users)), []int64{3, 4}) || !slices.Equal(ans.Missing, []int64{11, 12}) {
					t.Errorf("%s, round %d: users %v, missing %v; want users 3 and 4, 11 and 12 missing", tt.name, round, ans.Users, ans.Missing)
				}
			}
			if q := len(rec.Queries()); q != 1+tt.wantRepeated {
				t.Errorf("%s: %d queries (%v), want %d", tt.name, q, rec.Queries(), 1+tt.wantRepeated)
			}
			q0 := len(rec.Queries())
			if code, body := get(t, a, "/users/11"); code != http.StatusNotFound || body != `{"error":"user 11 not found"}`+"\n" {
				t.Errorf("%s: GET /users/11 = %d %q, want 404", tt.name, code, body)
			}
			if q := len(rec.Queries()) - q0; q != tt.wantRepeated {
				t.Errorf("%s: GET /users/11 after the batch made %d queries, want %d", tt.name, q, tt.wantRepeated)
			}
		}
	})
}

// TestGetUsersSharesLoads: a GET /users/5 and two overlapping GET /users
// requests run at once, every query held until all of them have joined
// the loads already running: each id reaches the database exactly once.
func TestGetUsersSharesLoads(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := testdb.NewHold()
		a, rec := newBatchTestApp(t, backend, defaultLoaderConfig(), 10, h)
		paths := []string{"/users/5", "/users?ids=1,2,3,4,5,6", "/users?ids=4,5,6,7,8,9"}
		codes, bodies := make([]int, len(paths)), make([]string, len(paths))
		var wg sync.WaitGroup
		wg.Go(func() { codes[0], bodies[0] = get(t, a, paths[0]) })
		<-h.Entered() // the load of user 5 runs
		for i := 1; i < len(paths); i++ {
			wg.Go(func() { codes[i], bodies[i] = get(t, a, paths[i]) })
		}
		// The first GET /users to arrive joins the load of 5; the second
		// joins 5 and the three ids it shares with the first.
		testdb.WaitForShared(t, a.users.Stats, 4)
		h.Release()
		wg.Wait()

		if codes[0] != http.StatusOK || !strings.Contains(bodies[0], `"name":"user-5"`) {
			t.Errorf("GET %s = %d %q", paths[0], codes[0], bodies[0])
		}
		for i, want := range [][]int64{nil, testdb.IDs(1, 6), testdb.IDs(4, 9)} {
			if i == 0 {
				continue
			}
			if codes[i] != http.StatusOK {
				t.Fatalf("GET %s = %d %q", paths[i], codes[i], bodies[i])
			}
			if got := slices.Sorted(maps.Keys(decodeUsers(t, bodies[i]).Users)); !slices.Equal(got, want) {
				t.Errorf("GET %s: users %v, want %v", paths[i], got, want)
			}
		}
		if got, want := rec.QueriedIDs(), countIDs(testdb.IDs(1, 9)); !maps.Equal(got, want) {
			t.Errorf("ids queried (id: times) %v, want each of 1..9 once; queries %v", got, rec.Queries())
		}
		if q := a.store.Queries(); q != 3 {
			t.Errorf("%d queries, want 3: user 5, then one batch per GET /users of the ids not yet being loaded", q)
		}
	})
}

// TestGetUsersMaxBatchSize: more ids than FLIGHTCACHE_MAX_BATCH_SIZE are
// split into ceil(n / max) queries.
func TestGetUsersMaxBatchSize(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		s, err := loadSettings(nil, mapEnv(map[string]string{"FLIGHTCACHE_MAX_BATCH_SIZE": "7"}), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		a, rec := newBatchTestApp(t, backend, s.loader, 50, nil)
		ans := getUsers(t, a, testdb.IDs(1, 30))
		if len(ans.Users) != 30 {
			t.Errorf("%d users, want 30", len(ans.Users))
		}
		q := rec.Queries()
		if len(q) != 5 { // ceil(30/7)
			t.Errorf("%d queries for 30 ids at most 7 a query, want 5: %v", len(q), q)
		}
		for _, ids := range q {
			if len(ids) > 7 {
				t.Errorf("a query asked for %d ids, more than 7: %v", len(ids), ids)
			}
		}
		if got, want := rec.QueriedIDs(), countIDs(testdb.IDs(1, 30)); !maps.Equal(got, want) {
			t.Errorf("ids queried (id: times) %v, want each of 1..30 once", got)
		}
	})
}

// TestMicroBatching: with FLIGHTCACHE_BATCH_WINDOW set, concurrent
// GET /users/{id} of different users share one batch query. The window is
// an hour, so the batch goes when it is full (FLIGHTCACHE_MAX_BATCH_SIZE
// requests), not by timing.
func TestMicroBatching(t *testing.T) {
	const n = 20
	forEachBackend(t, func(t *testing.T, backend string) {
		env := map[string]string{"FLIGHTCACHE_BATCH_WINDOW": "1h", "FLIGHTCACHE_MAX_BATCH_SIZE": fmt.Sprint(n)}
		s, err := loadSettings(nil, mapEnv(env), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		a, rec := newBatchTestApp(t, backend, s.loader, n, nil)
		codes, bodies := make([]int, n), make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { codes[i], bodies[i] = get(t, a, fmt.Sprintf("/users/%d", i+1)) })
		}
		wg.Wait()
		for i := range n {
			if codes[i] != http.StatusOK || !strings.Contains(bodies[i], fmt.Sprintf(`"name":"user-%d"`, i+1)) {
				t.Errorf("GET /users/%d = %d %q", i+1, codes[i], bodies[i])
			}
		}
		if q := rec.Queries(); len(q) != 1 || !slices.Equal(q[0], testdb.IDs(1, n)) {
			t.Errorf("queries %v, want one for ids 1..%d", q, n)
		}
	})
}

func TestGetUsersBadRequest(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		a, rec := newBatchTestApp(t, backend, cacheConfig(), 10, nil)
		tooMany := idsQuery(slices.Repeat([]int64{1}, maxIDs+1)) // repeats count too
		for query, want := range map[string]string{
			"":                          "no user ids: want ids=1,2,3",
			"?id=1":                     "no user ids: want ids=1,2,3",
			"?ids=":                     `malformed user id "": want ids=1,2,3 with positive integers`,
			"?ids=1,,2":                 `malformed user id "": want ids=1,2,3`,
			"?ids=1,abc":                `malformed user id "abc": want ids=1,2,3`,
			"?ids=0":                    `malformed user id "0"`,
			"?ids=-3":                   `malformed user id "-3"`,
			"?ids=1%202":                `malformed user id "1 2"`,
			"?ids=1;2":                  "want ids=1,2,3", // net/url drops a pair with a semicolon
			"?ids=99999999999999999999": `malformed user id "99999999999999999999"`,
			"?" + tooMany:               "too many ids: at most 100 per request",
			"?ids=1&ids=" + strings.TrimPrefix(idsQuery(testdb.IDs(2, maxIDs+1)), "ids="): "too many ids",
		} {
			code, body := get(t, a, "/users"+query)
			var e struct{ Error string }
			_ = json.Unmarshal([]byte(body), &e)
			if code != http.StatusBadRequest || !strings.Contains(e.Error, want) {
				t.Errorf("GET /users%s = %d %q, want 400 with %q", query, code, body, want)
			}
		}
		if q := rec.Queries(); len(q) != 0 {
			t.Errorf("queries %v for bad requests, want none", q)
		}
		// The bound itself is fine: one query.
		ans := getUsers(t, a, testdb.IDs(1, maxIDs))
		if len(ans.Users) != 10 || len(ans.Missing) != maxIDs-10 {
			t.Errorf("%d ids: %d users, %d missing; want 10, %d", maxIDs, len(ans.Users), len(ans.Missing), maxIDs-10)
		}
		if q := rec.Queries(); len(q) != 1 {
			t.Errorf("%d queries for %d ids, want 1", len(q), maxIDs)
		}
	})
}

// countIDs returns id → 1 for each of ids.
func countIDs(ids []int64) map[int64]int {
	m := make(map[int64]int, len(ids))
	for _, id := range ids {
		m[id]++
	}
	return m
}
