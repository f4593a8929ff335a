package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/flightcache/flightcache"
	"github.com/flightcache/flightcache/examples/internal/testdb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a settable clock shared by the provider and the Loader, so
// that token expiry is tested exactly and without waiting.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fixture is the service in front of a fake provider over real HTTP, with
// sessions in a SQLite file of the test's own.
type fixture struct {
	clock    *fakeClock
	idp      *fakeIdP
	sessions *sessionStore
	auth     *authenticator
}

const negativeTTL = 30 * time.Second

// newFixture builds the service; cached selects the Loader (cache mode)
// over direct validation. hold, if not nil, is the provider's hold hook.
func newFixture(t *testing.T, cached bool, hold func(context.Context)) *fixture {
	t.Helper()
	f := &fixture{clock: newFakeClock()}
	f.idp = newFakeIdP(0, f.clock.Now)
	f.idp.hold = hold
	idpServer := httptest.NewServer(f.idp)
	t.Cleanup(idpServer.Close)

	var err error
	f.sessions, err = openSessions(t.Context(), filepath.Join(t.TempDir(), "sessions.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.sessions.close() })

	var cfg *flightcache.Config
	if cached {
		c := authConfig(negativeTTL, f.clock)
		cfg = &c
	}
	client := &idpClient{url: idpServer.URL + "/introspect", http: idpServer.Client()}
	f.auth, err = newAuthenticator(client, f.sessions, cfg, f.clock.Now, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.auth.Close() }) // runs before the servers close
	return f
}

// me sends GET /me with the token to the service's handler.
func (f *fixture) me(t *testing.T, token string) (int, Session) {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/me", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	f.auth.ServeHTTP(rec, req)
	var s Session
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
			t.Fatalf("body %q: %v", rec.Body.String(), err)
		}
	}
	return rec.Code, s
}

func (f *fixture) sessionRows(t *testing.T) int {
	t.Helper()
	n, err := f.sessions.count(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// holdCalls is a provider hook that keeps calls waiting until release is
// closed and tells entered about the first one.
type holdCalls struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newHoldCalls() *holdCalls {
	return &holdCalls{entered: make(chan struct{}), release: make(chan struct{})}
}

func (h *holdCalls) hold(ctx context.Context) {
	h.once.Do(func() { close(h.entered) })
	select {
	case <-h.release:
	case <-ctx.Done():
	}
}

// concurrently sends n requests with token at once and returns their
// answers.
func (f *fixture) concurrently(t *testing.T, n int, token string) ([]int, []Session) {
	codes, sessions := make([]int, n), make([]Session, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { codes[i], sessions[i] = f.me(t, token) })
	}
	wg.Wait()
	return codes, sessions
}

// TestBurstOneValidationOneSession: 200 concurrent requests with one token
// make one call to the provider and one session row, and every request
// gets that session. The provider holds its answer until all 200 have
// joined, so the requests certainly overlap.
func TestBurstOneValidationOneSession(t *testing.T) {
	const n = 200
	h := newHoldCalls()
	f := newFixture(t, true, h.hold)
	f.idp.issue("tok", "alice", f.clock.Now().Add(time.Hour))

	type answers struct {
		codes    []int
		sessions []Session
	}
	done := make(chan answers, 1)
	go func() {
		codes, sessions := f.concurrently(t, n, "tok")
		done <- answers{codes, sessions}
	}()
	<-h.entered
	testdb.WaitForShared(t, f.auth.byToken.Stats, n-1)
	close(h.release)
	a := <-done

	for i := range n {
		if a.codes[i] != http.StatusOK || a.sessions[i] != a.sessions[0] {
			t.Fatalf("request %d: %d %+v; request 0: %d %+v", i, a.codes[i], a.sessions[i], a.codes[0], a.sessions[0])
		}
	}
	if want := (Session{ID: 1, Subject: "alice", ExpiresAt: f.clock.Now().Add(time.Hour).UTC()}); a.sessions[0] != want {
		t.Errorf("session %+v, want %+v", a.sessions[0], want)
	}
	if calls := f.idp.calls.Load(); calls != 1 {
		t.Errorf("%d calls to the provider for %d concurrent requests with one token, want exactly 1", calls, n)
	}
	if rows := f.sessionRows(t); rows != 1 {
		t.Errorf("%d session rows, want exactly 1", rows)
	}
	if s := f.auth.byToken.Stats(); s.Loads != 1 || s.Shared != n-1 {
		t.Errorf("loads=%d shared=%d, want 1 and %d", s.Loads, s.Shared, n-1)
	}
}

// TestDirectValidatesEveryRequest is the problem flightcache solves: without
// it, every request asks the provider and creates a session.
func TestDirectValidatesEveryRequest(t *testing.T) {
	const n = 50
	f := newFixture(t, false, nil)
	f.idp.issue("tok", "alice", f.clock.Now().Add(time.Hour))
	codes, _ := f.concurrently(t, n, "tok")
	for i, c := range codes {
		if c != http.StatusOK {
			t.Fatalf("request %d: %d", i, c)
		}
	}
	if calls, rows := f.idp.calls.Load(), f.sessionRows(t); calls != n || rows != n {
		t.Errorf("direct: %d provider calls and %d session rows for %d requests, want %d each", calls, rows, n, n)
	}
}

// TestSessionLivesUntilTokenExpiry: the session entry's TTL is the token's
// expiry, set per entry with flightcache.SetTTL: two tokens with different
// lifetimes are re-validated exactly when each expires.
func TestSessionLivesUntilTokenExpiry(t *testing.T) {
	f := newFixture(t, true, nil)
	t0 := f.clock.Now()
	f.idp.issue("short", "alice", t0.Add(time.Minute))
	f.idp.issue("long", "bob", t0.Add(time.Hour))
	for _, tok := range []string{"short", "long"} {
		if code, _ := f.me(t, tok); code != http.StatusOK {
			t.Fatalf("%s token: %d", tok, code)
		}
	}

	f.clock.Advance(time.Minute - time.Nanosecond) // the last instant of the short token
	for _, tok := range []string{"short", "long"} {
		if code, s := f.me(t, tok); code != http.StatusOK || s.ExpiresAt.IsZero() {
			t.Fatalf("%s token just before the short one expires: %d", tok, code)
		}
	}
	if calls := f.idp.calls.Load(); calls != 2 {
		t.Fatalf("%d provider calls before any expiry, want 2 (one per token)", calls)
	}

	f.clock.Advance(time.Nanosecond) // the short token expires now
	if code, _ := f.me(t, "short"); code != http.StatusUnauthorized {
		t.Errorf("expired token: %d, want 401", code)
	}
	if code, _ := f.me(t, "long"); code != http.StatusOK {
		t.Errorf("long token after the short one expired: %d, want 200", code)
	}
	if calls := f.idp.calls.Load(); calls != 3 {
		t.Errorf("%d provider calls, want 3: the expired session is re-validated, the live one is not", calls)
	}

	f.clock.Advance(time.Hour - time.Minute) // the long token expires now
	if code, _ := f.me(t, "long"); code != http.StatusUnauthorized {
		t.Errorf("long token at its expiry: %d, want 401", code)
	}
	if calls, rows := f.idp.calls.Load(), f.sessionRows(t); calls != 4 || rows != 2 {
		t.Errorf("%d provider calls and %d session rows, want 4 and 2", calls, rows)
	}
}

// TestInvalidTokenIsNegativelyCached: a flood of one bad token reaches the
// provider once per NegativeTTL.
func TestInvalidTokenIsNegativelyCached(t *testing.T) {
	f := newFixture(t, true, nil)
	for round := 1; round <= 3; round++ {
		codes, _ := f.concurrently(t, 200, "forged")
		for i := range 20 { // and some after the burst
			if code, _ := f.me(t, "forged"); code != http.StatusUnauthorized {
				t.Fatalf("round %d, request %d after the burst: %d, want 401", round, i, code)
			}
		}
		for i, c := range codes {
			if c != http.StatusUnauthorized {
				t.Fatalf("round %d, request %d: %d, want 401", round, i, c)
			}
		}
		if calls := f.idp.calls.Load(); calls != int64(round) {
			t.Errorf("round %d: %d provider calls for 220 requests with a bad token, want %d (one per NegativeTTL)", round, calls, round)
		}
		f.clock.Advance(negativeTTL - time.Nanosecond)
		if code, _ := f.me(t, "forged"); code != http.StatusUnauthorized || f.idp.calls.Load() != int64(round) {
			t.Errorf("round %d: just before NegativeTTL ends: %d, %d calls", round, code, f.idp.calls.Load())
		}
		f.clock.Advance(time.Nanosecond)
	}
	if rows := f.sessionRows(t); rows != 0 {
		t.Errorf("%d session rows for a bad token, want 0", rows)
	}
}

// TestProviderOutage: when the provider fails, requests get a 503 and the
// failure is not cached: the next request asks again.
func TestProviderOutage(t *testing.T) {
	f := newFixture(t, true, nil)
	f.idp.issue("tok", "alice", f.clock.Now().Add(time.Hour))
	f.idp.down.Store(true)
	for range 2 {
		if code, _ := f.me(t, "tok"); code != http.StatusServiceUnavailable {
			t.Errorf("provider down: %d, want 503", code)
		}
	}
	f.idp.down.Store(false)
	if code, _ := f.me(t, "tok"); code != http.StatusOK {
		t.Errorf("provider back: %d, want 200", code)
	}
	if calls := f.idp.calls.Load(); calls != 3 {
		t.Errorf("%d provider calls, want 3 (failures are not cached)", calls)
	}
}

func TestMissingToken(t *testing.T) {
	f := newFixture(t, true, nil)
	for _, token := range []string{"", " "} {
		if code, _ := f.me(t, token); code != http.StatusUnauthorized {
			t.Errorf("token %q: %d, want 401", token, code)
		}
	}
	rec := httptest.NewRecorder()
	f.auth.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/me", nil))
	if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("WWW-Authenticate = %q", got)
	}
	if calls := f.idp.calls.Load(); calls != 0 {
		t.Errorf("%d provider calls without a token, want 0", calls)
	}
}

// TestTokenNotStored: the sessions table holds a hash, never the token.
func TestTokenNotStored(t *testing.T) {
	f := newFixture(t, true, nil)
	f.idp.issue("secret-token-value", "alice", f.clock.Now().Add(time.Hour))
	if code, _ := f.me(t, "secret-token-value"); code != http.StatusOK {
		t.Fatal(code)
	}
	var stored string
	if err := f.sessions.db.QueryRowContext(t.Context(), "SELECT token_sha256 FROM sessions").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored, "secret") || len(stored) != 64 {
		t.Errorf("stored token column %q, want a SHA-256 in hex", stored)
	}
}

// tableRow matches a row of the demo's table.
var tableRow = regexp.MustCompile(`(?m)^(direct|cache)\s+(valid, again|valid|invalid)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)`)

// TestRun runs the demo program on a small burst and checks every count
// in its table, which do not depend on timing.
func TestRun(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"-requests", "40", "-idp-latency", "5ms", "-db", filepath.Join(t.TempDir(), "s.db")}
	if code := run(t.Context(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit status %d: %s", code, stderr.String())
	}
	got := map[string]string{}
	for _, m := range tableRow.FindAllStringSubmatch(stdout.String(), -1) {
		got[m[1]+"/"+m[2]] = strings.Join(m[3:], " ")
	}
	want := map[string]string{
		"direct/valid":        "40 40 40 40 200×40",
		"direct/valid, again": "40 40 40 40 200×40",
		"direct/invalid":      "40 40 0 0 401×40",
		"cache/valid":         "40 1 1 1 200×40",
		"cache/valid, again":  "40 0 0 1 200×40",
		"cache/invalid":       "40 1 0 0 401×40",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("table rows (requests, idp calls, new sessions, session ids, answers):\n got %v\nwant %v\noutput:\n%s", got, want, stdout.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("stderr: %s", stderr.String())
	}
}

// TestReadme checks the counts of the sample run in ../README.md.
func TestReadme(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sample, ok := strings.Cut(string(readme), "$ go run ./examples/idptoken\n")
	sample, _, _ = strings.Cut(sample, "```")
	if !ok {
		t.Fatal("README.md has no sample of a default run")
	}
	got := map[string]string{}
	for _, m := range tableRow.FindAllStringSubmatch(sample, -1) {
		got[m[1]+"/"+m[2]] = strings.Join(m[3:], " ")
	}
	want := map[string]string{
		"direct/valid":        "200 200 200 200 200×200",
		"direct/valid, again": "200 200 200 200 200×200",
		"direct/invalid":      "200 200 0 0 401×200",
		"cache/valid":         "200 1 1 1 200×200",
		"cache/valid, again":  "200 0 0 1 200×200",
		"cache/invalid":       "200 1 0 0 401×200",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("README sample rows:\n got %v\nwant %v", got, want)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-requests", "0"}, "idptoken: -requests must be > 0 (got 0)"},
		{[]string{"-token-lifetime", "10ms"}, "idptoken: -token-lifetime must be at least 1s (got 10ms)"},
		{[]string{"-mode", "flight"}, `idptoken: -mode must be direct or cache (got "flight")`},
		{[]string{"-negative-ttl", "-1s"}, "idptoken: -negative-ttl must not be negative (got -1s)"},
		{[]string{"-idp-latency", "slow"}, `invalid value "slow" for flag -idp-latency`},
		{[]string{"now"}, `idptoken: unexpected argument "now"`},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		if code := run(t.Context(), tt.args, io.Discard, &stderr); code != 2 {
			t.Errorf("%v: exit status %d, want 2", tt.args, code)
		}
		if !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%v: stderr %q lacks %q", tt.args, stderr.String(), tt.want)
		}
	}
	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"-h"}, io.Discard, &stderr); code != 0 || !strings.Contains(stderr.String(), "Usage: idptoken [flags]") {
		t.Errorf("-h: exit status %d, help %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run(t.Context(), []string{"-db", filepath.Join(t.TempDir(), "no", "dir", "s.db")}, io.Discard, &stderr); code != 1 ||
		!strings.HasPrefix(stderr.String(), "idptoken: sessions: opening SQLite database") {
		t.Errorf("-db in a missing directory: exit status %d, stderr %q", code, stderr.String())
	}
}
