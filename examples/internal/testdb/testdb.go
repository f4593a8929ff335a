// Package testdb holds what the examples' tests share: a PostgreSQL
// database, or a skip with a message when none answers (under CI=true an
// unreachable PostgreSQL fails the test instead: CI promises one), users
// tables of their own, a hook that holds queries so that requests overlap
// for certain, and one that records the ids of every query.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/flightcache/flightcache"
	"github.com/flightcache/flightcache/examples/internal/userdb"
)

// EnvDSN is the environment variable that holds the PostgreSQL DSN of the
// tests.
const EnvDSN = "FLIGHTCACHE_TEST_POSTGRES_DSN"

// DefaultDSN is used when EnvDSN is not set.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// PostgresDSN returns the DSN of a PostgreSQL that answers a ping. When
// none answers it skips the test, or fails it if CI=true.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		dsn = DefaultDSN
	}
	db, err := sql.Open("pgx", dsn)
	if err == nil {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
		_ = db.Close()
	}
	if err != nil {
		msg := "PostgreSQL at " + userdb.Redact(dsn) + " is unreachable (" + err.Error() + "); set " + EnvDSN + " to a reachable database to run this test"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (required under CI=true)")
		}
		t.Skip(msg)
	}
	return dsn
}

// UniqueTable returns a table name that no other test, nor another run of
// this one, uses at the same time: prefix, then random hex.
func UniqueTable(t testing.TB, prefix string) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return strings.ToLower(prefix) + "_" + hex.EncodeToString(b[:])
}

// Backends lists the databases that OpenStore knows: "sqlite" always
// works, "postgres" skips (or fails under CI=true) when PostgreSQL does not
// answer.
var Backends = []string{"sqlite", "postgres"}

// OpenStore opens a users table on backend, seeded with users 1 to users:
// a SQLite file in the test's temporary directory, or a table of its own in
// PostgreSQL. opts.DSN and opts.Table are filled in. The table is dropped
// and the store closed when the test ends.
func OpenStore(t testing.TB, backend string, opts userdb.Options, users int) *userdb.Store {
	t.Helper()
	switch backend {
	case "sqlite":
		opts.DSN = filepath.Join(t.TempDir(), "users.db")
	case "postgres":
		opts.DSN = PostgresDSN(t)
		opts.Table = UniqueTable(t, "fc_test_users")
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	s, err := userdb.Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.Postgres() {
			if err := s.Drop(context.Background()); err != nil {
				t.Error(err)
			}
		}
		_ = s.Close()
	})
	if err := s.Setup(t.Context(), users); err != nil {
		t.Fatal(err)
	}
	return s
}

// Hold is a userdb BeforeQuery hook that keeps every query waiting until
// the test releases them, so that a test can make requests overlap for
// certain instead of by luck. A Recorder built on a Hold holds batch
// queries too.
type Hold struct {
	entered chan struct{} // closed when the first query arrives
	release chan struct{} // closed by Release
	once    sync.Once
}

// NewHold returns a Hold that holds queries until Release.
func NewHold() *Hold {
	return &Hold{entered: make(chan struct{}), release: make(chan struct{})}
}

// BeforeQuery is the hook: it waits for Release or for ctx to end.
func (h *Hold) BeforeQuery(ctx context.Context, id int64) error {
	h.once.Do(func() { close(h.entered) })
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Entered is closed once the first query has arrived.
func (h *Hold) Entered() <-chan struct{} { return h.entered }

// Release lets every held query, and every later one, run. Call it once.
func (h *Hold) Release() { close(h.release) }

// WaitForShared waits until stats reports want Gets that joined a running
// load. A Get that has joined is committed to that load, so once all have
// joined the test may let the load finish knowing that every request
// shares it. Stats is the only public signal of a join, so this polls it,
// yielding the processor in between; it never sleeps. It fails the test
// after 30 seconds.
func WaitForShared(t testing.TB, stats func() flightcache.Stats, want uint64) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for stats().Shared < want {
		select {
		case <-deadline:
			t.Fatalf("after 30s only %d of %d requests joined the running load", stats().Shared, want)
		default:
			runtime.Gosched()
		}
	}
}

// Recorder records the ids of every query a store sends, single or batch,
// so that a test can check which ids reached the database and how they
// were grouped, not only how many queries there were. It can hold the
// queries too.
type Recorder struct {
	hold    *Hold // nil: queries are not held
	mu      sync.Mutex
	queries [][]int64
}

// NewRecorder returns a Recorder whose hooks also wait on hold, when not
// nil.
func NewRecorder(hold *Hold) *Recorder { return &Recorder{hold: hold} }

// Options returns opts with r's hooks for single and batch lookups.
func (r *Recorder) Options(opts userdb.Options) userdb.Options {
	opts.BeforeQuery = func(ctx context.Context, id int64) error {
		return r.record(ctx, []int64{id})
	}
	opts.BeforeBatchQuery = r.record
	return opts
}

func (r *Recorder) record(ctx context.Context, ids []int64) error {
	r.mu.Lock()
	r.queries = append(r.queries, slices.Sorted(slices.Values(ids)))
	r.mu.Unlock()
	if r.hold != nil {
		return r.hold.BeforeQuery(ctx, 0)
	}
	return nil
}

// Queries returns the ids of each query so far, each sorted, in the order
// the queries arrived.
func (r *Recorder) Queries() [][]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([][]int64, len(r.queries))
	for i, q := range r.queries {
		out[i] = slices.Clone(q)
	}
	return out
}

// QueriedIDs returns how many times each id was asked of the database.
func (r *Recorder) QueriedIDs() map[int64]int {
	n := make(map[int64]int)
	for _, q := range r.Queries() {
		for _, id := range q {
			n[id]++
		}
	}
	return n
}

// IDs returns the ids from to to, in order: test input.
func IDs(from, to int64) []int64 {
	var ids []int64
	for id := from; id <= to; id++ {
		ids = append(ids, id)
	}
	return ids
}
