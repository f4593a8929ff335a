package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/flightcache/flightcache"
)

// errInvalidToken is the answer for a token the provider does not vouch
// for. It wraps flightcache.ErrNotFound, so that a Loader in cache mode
// remembers it for Config.NegativeTTL: a flood of one bad token reaches
// the provider once per NegativeTTL.
var errInvalidToken = fmt.Errorf("invalid or expired token: %w", flightcache.ErrNotFound)

// Session is a row of the sessions table: what a validated token opens.
type Session struct {
	ID        int64     `json:"session_id"`
	Subject   string    `json:"subject"`
	ExpiresAt time.Time `json:"expires_at"`
}

// sessionStore keeps sessions in SQLite.
type sessionStore struct {
	db      *sql.DB
	tempDir string // removed by close; "" for a file of the user's
}

// openSessions opens (creating it if needed) the SQLite database at path,
// or a temporary one when path is empty, with its sessions table.
func openSessions(ctx context.Context, path string) (*sessionStore, error) {
	s := &sessionStore{}
	if path == "" {
		dir, err := os.MkdirTemp("", "flightcache-idptoken-")
		if err != nil {
			return nil, fmt.Errorf("sessions: creating a temporary directory: %w", err)
		}
		s.tempDir, path = dir, filepath.Join(dir, "sessions.db")
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err == nil {
		// SQLite writes one transaction at a time: queue the writers in
		// the pool rather than in SQLite's sleeping busy handler.
		db.SetMaxOpenConns(1)
		_, err = db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS sessions (
			id INTEGER PRIMARY KEY AUTOINCREMENT,
			subject TEXT NOT NULL,
			token_sha256 TEXT NOT NULL,
			expires_at INTEGER NOT NULL,
			created_at INTEGER NOT NULL)`)
	}
	if err != nil {
		if db != nil {
			_ = db.Close()
		}
		s.removeTemp()
		return nil, fmt.Errorf("sessions: opening SQLite database %s: %w", path, err)
	}
	s.db = db
	return s, nil
}

// create inserts a session for subject. The token itself is never stored,
// only its SHA-256.
func (s *sessionStore) create(ctx context.Context, subject, token string, expires, now time.Time) (Session, error) {
	sum := sha256.Sum256([]byte(token))
	var id int64
	err := s.db.QueryRowContext(ctx,
		`INSERT INTO sessions (subject, token_sha256, expires_at, created_at) VALUES (?, ?, ?, ?) RETURNING id`,
		subject, hex.EncodeToString(sum[:]), expires.Unix(), now.Unix()).Scan(&id)
	if err != nil {
		return Session{}, fmt.Errorf("sessions: creating a session: %w", err)
	}
	return Session{ID: id, Subject: subject, ExpiresAt: expires.UTC()}, nil
}

// count returns the number of sessions rows.
func (s *sessionStore) count(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sessions`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sessions: counting: %w", err)
	}
	return n, nil
}

func (s *sessionStore) close() error {
	err := s.db.Close()
	s.removeTemp()
	return err
}

func (s *sessionStore) removeTemp() {
	if s.tempDir != "" {
		_ = os.RemoveAll(s.tempDir)
		s.tempDir = ""
	}
}

// authenticator turns a bearer token into a session: it asks the identity
// provider about the token and, when it is valid, creates a session row.
// Behind a flightcache Loader keyed by token, a burst of requests with one
// token does this once, and later requests reuse the session until the
// token expires.
type authenticator struct {
	idp      *idpClient
	sessions *sessionStore
	now      func() time.Time
	logger   *slog.Logger

	// byToken is the Loader; nil validates every request (direct).
	byToken *flightcache.Loader[string, Session]
}

// defaultSessionTTL is how long a session lives when the provider gives
// its token no expiry.
const defaultSessionTTL = 5 * time.Minute

// authConfig is the Loader configuration of the sessions: cache mode keyed
// by token. Each valid session is kept until its token expires (SetTTL in
// validate); an invalid token is remembered for negativeTTL; Config.TTL is
// only for tokens that come with no expiry.
func authConfig(negativeTTL time.Duration, clock flightcache.Clock) flightcache.Config {
	return flightcache.Config{
		Name:        "sessions",
		Mode:        flightcache.ModeCache,
		MaxEntries:  100_000,
		TTL:         defaultSessionTTL,
		NegativeTTL: negativeTTL,
		Clock:       clock,
	}
}

// newAuthenticator returns an authenticator; with a nil cfg it validates
// every request itself. Close it to stop its Loader.
func newAuthenticator(idp *idpClient, sessions *sessionStore, cfg *flightcache.Config, now func() time.Time, logger *slog.Logger) (*authenticator, error) {
	a := &authenticator{idp: idp, sessions: sessions, now: now, logger: logger}
	if cfg != nil {
		l, err := flightcache.New(a.validate, *cfg)
		if err != nil {
			return nil, err
		}
		a.byToken = l
	}
	return a, nil
}

// Close stops the Loader, if any.
func (a *authenticator) Close() error {
	if a.byToken != nil {
		return a.byToken.Close()
	}
	return nil
}

// session returns the session of token.
func (a *authenticator) session(ctx context.Context, token string) (Session, error) {
	if a.byToken == nil {
		return a.validate(ctx, token)
	}
	return a.byToken.Get(ctx, token)
}

// validate is the fetch function: one call to the provider and, for a
// valid token, one new session row, kept by the Loader until the token
// expires.
func (a *authenticator) validate(ctx context.Context, token string) (Session, error) {
	answer, err := a.idp.introspect(ctx, token)
	if err != nil {
		return Session{}, err
	}
	now := a.now()
	if !answer.Active {
		return Session{}, errInvalidToken
	}
	expires := time.Unix(answer.Expiry, 0)
	if answer.Expiry != 0 {
		if !expires.After(now) {
			return Session{}, errInvalidToken
		}
		// The cached session must not outlive the token it was made from.
		flightcache.SetTTL(ctx, expires.Sub(now))
	} else {
		expires = now.Add(defaultSessionTTL) // and Config.TTL applies
	}
	return a.sessions.create(ctx, answer.Subject, token, expires, now)
}

// ServeHTTP answers GET /me with the session of the request's bearer token.
func (a *authenticator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.URL.Path != "/me" {
		writeError(w, http.StatusNotFound, "GET /me only")
		return
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || strings.TrimSpace(token) == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="idptoken"`)
		writeError(w, http.StatusUnauthorized, "missing bearer token")
		return
	}
	s, err := a.session(r.Context(), strings.TrimSpace(token))
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, s)
	case errors.Is(err, errInvalidToken):
		w.Header().Set("WWW-Authenticate", `Bearer realm="idptoken", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "invalid or expired token")
	case r.Context().Err() != nil:
		// The client has gone.
	default:
		a.logger.Warn("token validation failed", "error", err) // never the token
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "cannot validate the token now; try again later")
	}
}
