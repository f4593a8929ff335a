package userdb_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/flightcache/flightcache"
	"github.com/flightcache/flightcache/examples/internal/testdb"
	"github.com/flightcache/flightcache/examples/internal/userdb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLookup(t *testing.T) {
	for _, backend := range testdb.Backends {
		t.Run(backend, func(t *testing.T) {
			for _, latency := range []time.Duration{0, time.Millisecond} {
				s := testdb.OpenStore(t, backend, userdb.Options{Latency: latency}, 5)
				ctx := t.Context()

				u, err := s.User(ctx, 3)
				if err != nil {
					t.Fatal(err)
				}
				if want := (userdb.User{ID: 3, Name: "user-3", Email: "user3@example.com"}); u != want {
					t.Errorf("latency %v: User(3) = %+v, want %+v", latency, u, want)
				}
				_, err = s.User(ctx, 6)
				if !errors.Is(err, flightcache.ErrNotFound) {
					t.Errorf("latency %v: User(6) error = %v, want one wrapping flightcache.ErrNotFound", latency, err)
				}
				if got := s.Queries(); got != 2 {
					t.Errorf("latency %v: Queries() = %d after 2 lookups", latency, got)
				}
			}
		})
	}
}

// TestUsers: a batch lookup is one query, counted like a single one,
// returns the users found and leaves the missing ids out, on both
// databases, with and without the added latency.
func TestUsers(t *testing.T) {
	for _, backend := range testdb.Backends {
		t.Run(backend, func(t *testing.T) {
			for _, latency := range []time.Duration{0, time.Millisecond} {
				rec := testdb.NewRecorder(nil)
				s := testdb.OpenStore(t, backend, rec.Options(userdb.Options{Latency: latency}), 5)
				ctx := t.Context()

				got, err := s.Users(ctx, []int64{3, 6, 1, 3, 99})
				if err != nil {
					t.Fatal(err)
				}
				want := map[int64]userdb.User{
					1: {ID: 1, Name: "user-1", Email: "user1@example.com"},
					3: {ID: 3, Name: "user-3", Email: "user3@example.com"},
				}
				if !maps.Equal(got, want) {
					t.Errorf("latency %v: Users(3, 6, 1, 3, 99) = %v, want %v", latency, got, want)
				}
				if q := s.Queries(); q != 1 {
					t.Errorf("latency %v: Queries() = %d after one batch lookup, want 1", latency, q)
				}
				if q := rec.Queries(); len(q) != 1 || !slices.Equal(q[0], []int64{1, 3, 6, 99}) {
					t.Errorf("latency %v: queries %v, want one for 1, 3, 6, 99 (duplicates asked once)", latency, q)
				}

				// Nothing found: an empty map, no error (on PostgreSQL with a
				// latency, the row of NULLs is not a user).
				got, err = s.Users(ctx, []int64{7, 8})
				if err != nil || len(got) != 0 {
					t.Errorf("latency %v: Users(7, 8) = %v, %v; want an empty map", latency, got, err)
				}
				// No ids: no query.
				if got, err := s.Users(ctx, nil); err != nil || len(got) != 0 {
					t.Errorf("latency %v: Users() = %v, %v", latency, got, err)
				}
				if q := s.Queries(); q != 2 {
					t.Errorf("latency %v: Queries() = %d, want 2 (none for an empty batch)", latency, q)
				}
			}
		})
	}
}

// TestUsersLargeBatch: a batch of thousands of ids is still one query.
func TestUsersLargeBatch(t *testing.T) {
	for _, backend := range testdb.Backends {
		t.Run(backend, func(t *testing.T) {
			s := testdb.OpenStore(t, backend, userdb.Options{}, 3000)
			got, err := s.Users(t.Context(), testdb.IDs(1, 5000))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3000 || got[3000].Email != "user3000@example.com" {
				t.Errorf("Users(1..5000) found %d users (user 3000: %+v), want 3000", len(got), got[3000])
			}
			if q := s.Queries(); q != 1 {
				t.Errorf("Queries() = %d, want 1", q)
			}
		})
	}
	s := testdb.OpenStore(t, "sqlite", userdb.Options{}, 1)
	_, err := s.Users(t.Context(), testdb.IDs(1, userdb.MaxBatchSQLite+1))
	if err == nil || !strings.Contains(err.Error(), "SQLite takes at most 32766 ids per query") {
		t.Errorf("SQLite batch over the parameter limit: error %v", err)
	}
	if _, err := s.Users(t.Context(), testdb.IDs(1, userdb.MaxBatchSQLite)); err != nil {
		t.Errorf("SQLite batch at the parameter limit: %v", err)
	}
	if q := s.Queries(); q != 1 {
		t.Errorf("Queries() = %d, want 1 (none for the batch refused)", q)
	}
}

func TestSetupKeepsRowsAndZeroUsers(t *testing.T) {
	s := testdb.OpenStore(t, "sqlite", userdb.Options{}, 0)
	if _, err := s.User(t.Context(), 1); !errors.Is(err, flightcache.ErrNotFound) {
		t.Fatalf("empty table: User(1) error = %v, want not found", err)
	}
	if err := s.Setup(t.Context(), 3); err != nil {
		t.Fatal(err)
	}
	if err := s.Setup(t.Context(), 2); err != nil { // a second Setup keeps what is there
		t.Fatal(err)
	}
	var n int
	if err := s.DB().QueryRowContext(t.Context(), "SELECT count(*) FROM "+s.Table()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("rows after Setup(3), Setup(2) = %d, want 3", n)
	}
}

// TestLatencyHonoursContext checks that the added latency is a wait that
// ends with the lookup's context, on both databases.
func TestLatencyHonoursContext(t *testing.T) {
	for _, backend := range testdb.Backends {
		t.Run(backend, func(t *testing.T) {
			s := testdb.OpenStore(t, backend, userdb.Options{Latency: time.Hour}, 1)
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if _, err := s.User(ctx, 1); !errors.Is(err, context.Canceled) {
				t.Errorf("User with a cancelled context: error = %v, want context.Canceled", err)
			}
			if _, err := s.Users(ctx, []int64{1, 2}); !errors.Is(err, context.Canceled) {
				t.Errorf("Users with a cancelled context: error = %v, want context.Canceled", err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	tests := []struct {
		name string
		opts userdb.Options
		want string
	}{
		{"bad table", userdb.Options{DSN: t.TempDir() + "/x.db", Table: "users; drop"}, `table name "users; drop" is not a plain SQL identifier`},
		{"negative latency", userdb.Options{DSN: t.TempDir() + "/x.db", Latency: -time.Second}, "latency must not be negative"},
		{"unknown scheme", userdb.Options{DSN: "mysql://root:secret@localhost/db"}, "unsupported DSN mysql://root:xxxxx@localhost/db"},
		{"keyword dsn", userdb.Options{DSN: "host=localhost dbname=test"}, "unsupported DSN host=localhost dbname=test: want postgres://..."},
		{"bad postgres dsn", userdb.Options{DSN: "postgres://127.0.0.1:notaport/x"}, "bad PostgreSQL DSN"},
		{"no directory", userdb.Options{DSN: t.TempDir() + "/missing/dir/x.db"}, "cannot open SQLite "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := userdb.Open(ctx, tt.opts)
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open succeeded, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "secret") {
				t.Errorf("Open error = %q, want it to contain %q and no password", err, tt.want)
			}
		})
	}
	if _, err := userdb.Open(ctx, userdb.Options{DSN: "mysql://x"}); !errors.Is(err, userdb.ErrUnsupportedDSN) {
		t.Errorf("Open(mysql://x) error = %v, want ErrUnsupportedDSN", err)
	}
}

func TestOpenUnreachablePostgres(t *testing.T) {
	// Port 1 on the loopback interface: nothing listens there, so the
	// connection is refused at once.
	_, err := userdb.Open(t.Context(), userdb.Options{DSN: "postgres://postgres:secret@127.0.0.1:1/test?sslmode=disable"})
	if err == nil || !strings.Contains(err.Error(), "PostgreSQL postgres://postgres:xxxxx@127.0.0.1:1/test?sslmode=disable is unreachable") {
		t.Errorf("Open error = %v, want it to say the database is unreachable, without the password", err)
	}
}
