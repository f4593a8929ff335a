// Package userdb is the users table behind the dblookup and httpservice
// examples. It opens an embedded SQLite database (the default: no server
// needed) or PostgreSQL, creates and seeds the table, looks users up by id
// (one at a time, or a set at once with one query), and counts every lookup
// it sends to the database, so that the examples report queries that were
// executed rather than queries they assume.
package userdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver

	"github.com/flightcache/flightcache"
)

// DefaultTable is the table used when Options.Table is empty.
const DefaultTable = "flightcache_users"

// ErrUnsupportedDSN is returned by Open for a DSN it cannot use.
var ErrUnsupportedDSN = errors.New("userdb: unsupported DSN")

// User is one row of the users table.
type User struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// Options says which database Open connects to and how lookups behave.
type Options struct {
	// DSN names the database: empty for SQLite in a temporary file that
	// Close removes; postgres://... or postgresql://... for PostgreSQL
	// (through pgx); anything else is the path of a SQLite file, created
	// if it does not exist.
	DSN string

	// Table is the users table; DefaultTable when empty. It must be a plain
	// SQL identifier (letters, digits, underscores).
	Table string

	// Latency is added to every lookup (single or batch), so that the effect of sharing and
	// caching is visible on a fast local database. On PostgreSQL the query
	// itself runs pg_sleep; on SQLite the lookup waits on a timer (or until
	// its context ends) holding its connection, as a slow query would.
	Latency time.Duration

	// MaxConns bounds the open connections; zero means no bound.
	MaxConns int

	// BeforeQuery, when set, is called at the start of every lookup with
	// the lookup's context; an error it returns is the lookup's error. It
	// is a hook for tests, which use it to hold a query until they have
	// seen every request arrive.
	BeforeQuery func(ctx context.Context, id int64) error

	// BeforeBatchQuery is BeforeQuery for batch lookups (Users): called at
	// the start of each, with the ids it will ask for.
	BeforeBatchQuery func(ctx context.Context, ids []int64) error
}

// Store is an open users table. It is safe for concurrent use.
type Store struct {
	db          *sql.DB
	postgres    bool
	table       string
	latency     time.Duration
	lookup      string // the lookup statement
	beforeQuery func(context.Context, int64) error
	beforeBatch func(context.Context, []int64) error
	tempDir     string // removed by Close; "" when the database is not temporary
	desc        string

	queries atomic.Int64 // lookups handed to the database driver
}

// identifier matches the table names Open accepts.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Open connects to the database that opts.DSN names and checks that it
// answers. It creates nothing: call Setup for that.
func Open(ctx context.Context, opts Options) (*Store, error) {
	s := &Store{
		table:       opts.Table,
		latency:     opts.Latency,
		beforeQuery: opts.BeforeQuery,
		beforeBatch: opts.BeforeBatchQuery,
	}
	if s.table == "" {
		s.table = DefaultTable
	}
	if !identifier.MatchString(s.table) {
		return nil, fmt.Errorf("userdb: table name %q is not a plain SQL identifier (letters, digits and underscores)", s.table)
	}
	if opts.Latency < 0 {
		return nil, fmt.Errorf("userdb: latency must not be negative (got %v)", opts.Latency)
	}

	var driver, dsn string
	switch {
	case strings.HasPrefix(opts.DSN, "postgres://"), strings.HasPrefix(opts.DSN, "postgresql://"):
		if _, err := pgx.ParseConfig(opts.DSN); err != nil {
			return nil, fmt.Errorf("userdb: bad PostgreSQL DSN %s: %w", Redact(opts.DSN), err)
		}
		driver, dsn, s.postgres = "pgx", opts.DSN, true
		s.desc = "PostgreSQL " + Redact(opts.DSN)
	case strings.Contains(opts.DSN, "://") || looksLikeKeywordDSN(opts.DSN):
		return nil, fmt.Errorf("%w %s: want postgres://..., a SQLite file path, or nothing for a temporary SQLite database",
			ErrUnsupportedDSN, Redact(opts.DSN))
	default:
		path := opts.DSN
		if path == "" {
			dir, err := os.MkdirTemp("", "flightcache-example-")
			if err != nil {
				return nil, fmt.Errorf("userdb: creating a temporary directory for SQLite: %w", err)
			}
			s.tempDir = dir
			path = filepath.Join(dir, "users.db")
			s.desc = "SQLite (temporary file)"
		} else {
			s.desc = "SQLite " + path
		}
		// WAL lets lookups on many connections read at once; the busy
		// timeout makes a writer wait for the file instead of failing.
		driver = "sqlite"
		dsn = "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
	}

	db, err := sql.Open(driver, dsn)
	if err != nil {
		s.removeTemp()
		return nil, fmt.Errorf("userdb: opening %s: %w", s.desc, err)
	}
	if opts.MaxConns > 0 {
		db.SetMaxOpenConns(opts.MaxConns)
		db.SetMaxIdleConns(opts.MaxConns)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		_ = db.Close()
		s.removeTemp()
		if s.postgres {
			return nil, fmt.Errorf("userdb: %s is unreachable: %w", s.desc, err)
		}
		return nil, fmt.Errorf("userdb: cannot open %s: %w", s.desc, err)
	}
	s.db = db
	s.lookup = s.lookupStatement()
	return s, nil
}

// lookupStatement returns the statement that reads one user. On
// PostgreSQL with a latency, the pause is part of the query: the left join
// returns one row (of NULLs when the user is missing), so pg_sleep runs
// whether or not the user exists.
func (s *Store) lookupStatement() string {
	switch {
	case s.postgres && s.latency > 0:
		return `SELECT u.id, u.name, u.email FROM (SELECT pg_sleep($2)) AS pause LEFT JOIN ` + s.table + ` AS u ON u.id = $1`
	case s.postgres:
		return `SELECT id, name, email FROM ` + s.table + ` WHERE id = $1`
	default:
		return `SELECT id, name, email FROM ` + s.table + ` WHERE id = ?`
	}
}

// Setup creates the table if it does not exist and makes sure users 1 to n
// are in it (existing rows are kept).
func (s *Store) Setup(ctx context.Context, n int) error {
	if n < 0 {
		return fmt.Errorf("userdb: number of users must not be negative (got %d)", n)
	}
	idType, seed := "INTEGER", `WITH RECURSIVE seq(i) AS (SELECT 1 WHERE ? >= 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
		INSERT INTO `+s.table+` (id, name, email)
		SELECT i, 'user-' || i, 'user' || i || '@example.com' FROM seq WHERE true
		ON CONFLICT (id) DO NOTHING`
	args := []any{n, n}
	if s.postgres {
		idType, seed = "BIGINT", `INSERT INTO `+s.table+` (id, name, email)
			SELECT i, 'user-' || i, 'user' || i || '@example.com' FROM generate_series(1, $1::bigint) AS i
			ON CONFLICT (id) DO NOTHING`
		args = []any{n}
	}
	create := `CREATE TABLE IF NOT EXISTS ` + s.table + ` (id ` + idType + ` PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL)`
	if _, err := s.db.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("userdb: creating table %s: %w", s.table, err)
	}
	if _, err := s.db.ExecContext(ctx, seed, args...); err != nil {
		return fmt.Errorf("userdb: seeding table %s: %w", s.table, err)
	}
	return nil
}

// Drop removes the table.
func (s *Store) Drop(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `DROP TABLE IF EXISTS `+s.table); err != nil {
		return fmt.Errorf("userdb: dropping table %s: %w", s.table, err)
	}
	return nil
}

// User looks up one user: one query, counted in Queries. A missing user is
// an error wrapping flightcache.ErrNotFound, so that a Loader can cache it
// as not-found. Its signature is a flightcache.FetchFunc.
func (s *Store) User(ctx context.Context, id int64) (User, error) {
	if s.beforeQuery != nil {
		if err := s.beforeQuery(ctx, id); err != nil {
			return User{}, err
		}
	}
	var q interface {
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	} = s.db
	args := []any{id}
	switch {
	case s.latency > 0 && s.postgres:
		args = append(args, s.latency.Seconds()) // the query runs pg_sleep
	case s.latency > 0:
		// As a slow query would, the pause keeps a connection busy: with
		// more requests than connections, requests queue for one.
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return User{}, fmt.Errorf("userdb: looking up user %d: %w", id, err)
		}
		defer conn.Close()
		if err := pause(ctx, s.latency); err != nil {
			return User{}, err
		}
		q = conn
	}
	var (
		uid         sql.NullInt64
		name, email sql.NullString
	)
	s.queries.Add(1)
	err := q.QueryRowContext(ctx, s.lookup, args...).Scan(&uid, &name, &email)
	switch {
	case errors.Is(err, sql.ErrNoRows) || err == nil && !uid.Valid:
		return User{}, fmt.Errorf("userdb: user %d: %w", id, flightcache.ErrNotFound)
	case err != nil:
		return User{}, fmt.Errorf("userdb: looking up user %d: %w", id, err)
	}
	return User{ID: uid.Int64, Name: name.String, Email: email.String}, nil
}

// MaxBatchSQLite is the most ids one batch lookup (Users) may ask for on
// SQLite: its statement has one parameter per id, and SQLite allows 32,766
// parameters by default. PostgreSQL sends the ids as one array parameter and
// has no such limit.
const MaxBatchSQLite = 32_766

// Users looks up several users with one query, counted in Queries like a
// single lookup and slowed by the same Latency: WHERE id IN (?, ?, ...) on
// SQLite, WHERE id = ANY($1) on PostgreSQL. It returns the users found,
// by id; an id with no user is simply absent from the map. Duplicate ids are
// asked for once; no ids at all make no query. Its signature is a
// flightcache.BatchFunc, for flightcache.WithBatch.
func (s *Store) Users(ctx context.Context, ids []int64) (map[int64]User, error) {
	ids = unique(ids)
	found := make(map[int64]User, len(ids))
	if len(ids) == 0 {
		return found, nil
	}
	if !s.postgres && len(ids) > MaxBatchSQLite {
		return nil, fmt.Errorf("userdb: looking up %d users at once: SQLite takes at most %d ids per query", len(ids), MaxBatchSQLite)
	}
	if s.beforeBatch != nil {
		if err := s.beforeBatch(ctx, ids); err != nil {
			return nil, err
		}
	}
	var q interface {
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	} = s.db
	var (
		stmt string
		args []any
	)
	switch {
	case s.postgres && s.latency > 0:
		// As for one user: the pause is part of the query, whose left join
		// returns the users found, or one row of NULLs when there is none.
		stmt = `SELECT u.id, u.name, u.email FROM (SELECT pg_sleep($2)) AS pause LEFT JOIN ` + s.table + ` AS u ON u.id = ANY($1)`
		args = []any{ids, s.latency.Seconds()}
	case s.postgres:
		stmt = `SELECT id, name, email FROM ` + s.table + ` WHERE id = ANY($1)`
		args = []any{ids}
	default:
		stmt = `SELECT id, name, email FROM ` + s.table + ` WHERE id IN (?` + strings.Repeat(", ?", len(ids)-1) + `)`
		args = make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		if s.latency > 0 {
			conn, err := s.db.Conn(ctx)
			if err != nil {
				return nil, fmt.Errorf("userdb: looking up %d users: %w", len(ids), err)
			}
			defer conn.Close()
			if err := pause(ctx, s.latency); err != nil {
				return nil, err
			}
			q = conn
		}
	}
	s.queries.Add(1)
	rows, err := q.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("userdb: looking up %d users: %w", len(ids), err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			uid         sql.NullInt64
			name, email sql.NullString
		)
		if err := rows.Scan(&uid, &name, &email); err != nil {
			return nil, fmt.Errorf("userdb: looking up %d users: %w", len(ids), err)
		}
		if uid.Valid { // not the row of NULLs of the PostgreSQL pause
			found[uid.Int64] = User{ID: uid.Int64, Name: name.String, Email: email.String}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("userdb: looking up %d users: %w", len(ids), err)
	}
	return found, nil
}

// unique returns a copy of ids without repeats, in their order.
func unique(ids []int64) []int64 {
	seen := make(map[int64]struct{}, len(ids))
	out := make([]int64, 0, len(ids))
	for _, id := range ids {
		if _, ok := seen[id]; !ok {
			seen[id] = struct{}{}
			out = append(out, id)
		}
	}
	return out
}

// pause waits for d or until ctx ends, whichever comes first.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Queries returns the number of lookups handed to the database so far: one
// per User call, and one per Users call (whatever its number of ids).
func (s *Store) Queries() int64 { return s.queries.Load() }

// Postgres reports whether the store is on PostgreSQL.
func (s *Store) Postgres() bool { return s.postgres }

// Table returns the name of the users table.
func (s *Store) Table() string { return s.table }

// DB returns the underlying database handle.
func (s *Store) DB() *sql.DB { return s.db }

// String describes the database, without any password.
func (s *Store) String() string { return s.desc }

// Close closes the database and removes a temporary SQLite file.
func (s *Store) Close() error {
	err := s.db.Close()
	s.removeTemp()
	if err != nil {
		return fmt.Errorf("userdb: closing %s: %w", s.desc, err)
	}
	return nil
}

func (s *Store) removeTemp() {
	if s.tempDir != "" {
		_ = os.RemoveAll(s.tempDir)
		s.tempDir = ""
	}
}

// looksLikeKeywordDSN reports whether dsn is a PostgreSQL keyword/value
// string ("host=... dbname=..."), which would otherwise be taken for a
// SQLite file name.
func looksLikeKeywordDSN(dsn string) bool {
	for _, kw := range []string{"host=", "dbname=", "user=", "port=", "sslmode="} {
		if strings.HasPrefix(dsn, kw) || strings.Contains(dsn, " "+kw) {
			return true
		}
	}
	return false
}

// Redact returns dsn with any password replaced by "xxxxx", for messages.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		if strings.Contains(dsn, "://") {
			return "(unparsable DSN)"
		}
		return dsn
	}
	return u.Redacted()
}
