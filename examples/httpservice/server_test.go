package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/flightcache/flightcache"
	"github.com/flightcache/flightcache/examples/internal/testdb"
	"github.com/flightcache/flightcache/examples/internal/userdb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newTestApp builds the service on a users table of backend (users 1 to
// 10) with the Loader configuration cfg.
func newTestApp(t *testing.T, backend string, cfg flightcache.Config, opts userdb.Options) *app {
	t.Helper()
	store := testdb.OpenStore(t, backend, opts, 10)
	return newTestAppOn(t, store, cfg)
}

func newTestAppOn(t *testing.T, store *userdb.Store, cfg flightcache.Config) *app {
	t.Helper()
	a, err := newApp(store, cfg, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// get sends GET path to the app's handler and returns the status and body.
func get(t *testing.T, a *app, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

// cacheConfig is the default configuration switched to cache mode, as
// FLIGHTCACHE_MODE=cache would.
func cacheConfig() flightcache.Config {
	cfg := defaultLoaderConfig()
	cfg.Mode = flightcache.ModeCache
	return cfg
}

// forEachBackend runs test on SQLite and on PostgreSQL; the PostgreSQL run
// is skipped when none answers, except under CI=true.
func forEachBackend(t *testing.T, test func(t *testing.T, backend string)) {
	for _, backend := range testdb.Backends {
		t.Run(backend, func(t *testing.T) { test(t, backend) })
	}
}

func TestGetUser(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		a := newTestApp(t, backend, defaultLoaderConfig(), userdb.Options{})
		code, body := get(t, a, "/users/7")
		if code != http.StatusOK || body != `{"id":7,"name":"user-7","email":"user7@example.com"}`+"\n" {
			t.Errorf("GET /users/7 = %d %q", code, body)
		}
		// Flight mode keeps nothing: a second request queries again.
		get(t, a, "/users/7")
		if q := a.store.Queries(); q != 2 {
			t.Errorf("flight mode: %d queries for 2 requests one after the other, want 2", q)
		}
	})
}

func TestNotFound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		for _, cfg := range []flightcache.Config{defaultLoaderConfig(), cacheConfig()} {
			a := newTestApp(t, backend, cfg, userdb.Options{})
			for range 3 {
				code, body := get(t, a, "/users/11")
				if code != http.StatusNotFound || body != `{"error":"user 11 not found"}`+"\n" {
					t.Errorf("%v mode: GET /users/11 = %d %q, want 404", cfg.Mode, code, body)
				}
			}
			want := int64(3) // flight mode: one query per request
			if cfg.Mode == flightcache.ModeCache {
				want = 1 // cached as not-found for NegativeTTL
				if s := a.users.Stats(); s.NegativeHits != 2 {
					t.Errorf("cache mode: %d negative hits, want 2", s.NegativeHits)
				}
			}
			if q := a.store.Queries(); q != want {
				t.Errorf("%v mode: %d queries for 3 requests of a missing user, want %d", cfg.Mode, q, want)
			}
		}
	})
}

func TestMalformedID(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		a := newTestApp(t, backend, cacheConfig(), userdb.Options{})
		for _, id := range []string{"abc", "0", "-4", "1.5", "0x10", "99999999999999999999", "%20"} {
			code, body := get(t, a, "/users/"+id)
			if code != http.StatusBadRequest || !strings.Contains(body, "want a positive integer") {
				t.Errorf("GET /users/%s = %d %q, want 400 saying what is wanted", id, code, body)
			}
		}
		if q := a.store.Queries(); q != 0 {
			t.Errorf("%d queries for malformed ids, want 0", q)
		}
		if code, _ := get(t, a, "/users/"); code != http.StatusNotFound {
			t.Errorf("GET /users/ = %d, want 404 (no such route)", code)
		}
	})
}

// TestDatabaseUnavailable takes the database away under a running service:
// requests get a 503 with a clear body, never a 500 or a stack trace, and
// errors are not cached.
func TestDatabaseUnavailable(t *testing.T) {
	check := func(t *testing.T, a *app) {
		t.Helper()
		q0 := a.store.Queries()
		for range 2 {
			code, body := get(t, a, "/users/3")
			if code != http.StatusServiceUnavailable || body != `{"error":"the user database is unavailable; try again later"}`+"\n" {
				t.Errorf("GET /users/3 with the database gone = %d %q, want 503", code, body)
			}
		}
		if q := a.store.Queries() - q0; q != 2 {
			t.Errorf("%d queries for 2 requests while the database is gone, want 2 (errors are not cached)", q)
		}
		q0 = a.store.Queries()
		for range 2 {
			code, body := get(t, a, "/users?ids=3,4")
			if code != http.StatusServiceUnavailable || body != `{"error":"the user database is unavailable; try again later"}`+"\n" {
				t.Errorf("GET /users?ids=3,4 with the database gone = %d %q, want 503", code, body)
			}
		}
		if q := a.store.Queries() - q0; q != 2 {
			t.Errorf("%d batch queries for 2 requests while the database is gone, want 2 (errors are not cached)", q)
		}
		if code, body := get(t, a, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "database unavailable") {
			t.Errorf("GET /healthz with the database gone = %d %q, want 503", code, body)
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		a := newTestApp(t, "sqlite", cacheConfig(), userdb.Options{})
		if code, _ := get(t, a, "/healthz"); code != http.StatusOK {
			t.Fatalf("GET /healthz = %d, want 200", code)
		}
		_ = a.store.DB().Close()
		check(t, a)
	})
	t.Run("postgres", func(t *testing.T) {
		// The service reaches PostgreSQL through a proxy that the test cuts.
		direct := testdb.OpenStore(t, "postgres", userdb.Options{}, 10)
		u, err := url.Parse(testdb.PostgresDSN(t))
		if err != nil {
			t.Fatal(err)
		}
		p := startProxy(t, u.Host)
		u.Host = p.addr()
		store, err := userdb.Open(t.Context(), userdb.Options{DSN: u.String(), Table: direct.Table()})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		a := newTestAppOn(t, store, cacheConfig())
		if code, _ := get(t, a, "/users/2"); code != http.StatusOK {
			t.Fatalf("GET /users/2 through the proxy = %d, want 200", code)
		}
		p.cut()
		check(t, a)
		// A cached user is still served, alone or in a batch of cached users.
		if code, _ := get(t, a, "/users/2"); code != http.StatusOK {
			t.Errorf("GET /users/2 (cached) with the database gone = %d, want 200", code)
		}
		if code, body := get(t, a, "/users?ids=2"); code != http.StatusOK {
			t.Errorf("GET /users?ids=2 (cached) with the database gone = %d %q, want 200", code, body)
		}
		// One id the database must answer fails the request.
		if code, _ := get(t, a, "/users?ids=2,5"); code != http.StatusServiceUnavailable {
			t.Errorf("GET /users?ids=2,5 (2 cached, 5 not) with the database gone = %d, want 503", code)
		}
	})
}

// TestFetchTimeout: a database slower than FetchTimeout gets a 503 too.
func TestFetchTimeout(t *testing.T) {
	cfg := defaultLoaderConfig()
	cfg.FetchTimeout = 20 * time.Millisecond
	a := newTestApp(t, "sqlite", cfg, userdb.Options{Latency: time.Hour})
	if code, _ := get(t, a, "/users/1"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /users/1 past FetchTimeout = %d, want 503", code)
	}
}

// TestConcurrentRequestsShareOneQuery: 200 concurrent requests for one
// user in flight mode, held until all have joined, make one query and get
// one answer.
func TestConcurrentRequestsShareOneQuery(t *testing.T) {
	const n = 200
	forEachBackend(t, func(t *testing.T, backend string) {
		h := testdb.NewHold()
		a := newTestApp(t, backend, defaultLoaderConfig(), userdb.Options{BeforeQuery: h.BeforeQuery})
		var wg sync.WaitGroup
		codes, bodies := make([]int, n), make([]string, n)
		for i := range n {
			wg.Go(func() { codes[i], bodies[i] = get(t, a, "/users/5") })
		}
		<-h.Entered()
		testdb.WaitForShared(t, a.users.Stats, n-1)
		h.Release()
		wg.Wait()
		for i := range n {
			if codes[i] != http.StatusOK || bodies[i] != bodies[0] {
				t.Fatalf("request %d: %d %q; request 0: %d %q", i, codes[i], bodies[i], codes[0], bodies[0])
			}
		}
		if q := a.store.Queries(); q != 1 {
			t.Errorf("%d queries for %d concurrent requests of one user, want exactly 1", q, n)
		}
	})
}

// TestModeIsConfiguration: the same code in flight mode and, with only
// FLIGHTCACHE_MODE=cache in the environment, in cache mode.
func TestModeIsConfiguration(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		for _, tt := range []struct {
			env         map[string]string
			wantQueries int64
		}{
			{nil, 3},
			{map[string]string{"FLIGHTCACHE_MODE": "cache"}, 1},
			{map[string]string{"FLIGHTCACHE_MODE": "cache", "FLIGHTCACHE_TTL": "0s"}, 1}, // 0: never expires
		} {
			s, err := loadSettings(nil, mapEnv(tt.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			a := newTestApp(t, backend, s.loader, userdb.Options{})
			for range 3 {
				if code, _ := get(t, a, "/users/4"); code != http.StatusOK {
					t.Fatalf("env %v: GET /users/4 = %d", tt.env, code)
				}
			}
			if q := a.store.Queries(); q != tt.wantQueries {
				t.Errorf("env %v: %d queries for 3 requests, want %d", tt.env, q, tt.wantQueries)
			}
		}
	})
}

func TestMetrics(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		a := newTestApp(t, backend, cacheConfig(), userdb.Options{})
		for _, path := range []string{"/users/1", "/users/1", "/users/2", "/users/99"} {
			get(t, a, path)
		}
		code, body := get(t, a, "/metrics")
		if code != http.StatusOK {
			t.Fatalf("GET /metrics = %d", code)
		}
		for _, want := range []string{
			`flightcache_loads_total{loader="users"} 3`,
			`flightcache_hits_total{loader="users"} 1`,
			`flightcache_load_errors_total{loader="users"} 1`,
			`flightcache_entries{loader="users"} 3`,
			"go_goroutines ",
			"process_cpu_seconds_total ",
			`go_sql_open_connections{db_name="users"} `,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
	})
}

func TestHealthz(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		a := newTestApp(t, backend, defaultLoaderConfig(), userdb.Options{})
		if code, body := get(t, a, "/healthz"); code != http.StatusOK || body != `{"status":"ok"}`+"\n" {
			t.Errorf("GET /healthz = %d %q", code, body)
		}
	})
}

// TestGracefulShutdown cancels the serving context while a request is held
// in the database: the request still gets its answer, serve returns nil,
// and the listener no longer accepts.
func TestGracefulShutdown(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := testdb.NewHold()
		a := newTestApp(t, backend, defaultLoaderConfig(), userdb.Options{BeforeQuery: h.BeforeQuery})
		shutdownBegun := make(chan struct{})
		a.onShutdown = func() { close(shutdownBegun) }

		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		served := make(chan error, 1)
		go func() { served <- a.serve(ctx, ln, 30*time.Second) }()

		client := &http.Client{Transport: &http.Transport{}}
		defer client.CloseIdleConnections()
		type response struct {
			code int
			body string
			err  error
		}
		responses := make(chan response, 1)
		go func() {
			resp, err := client.Get("http://" + ln.Addr().String() + "/users/9")
			if err != nil {
				responses <- response{err: err}
				return
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			responses <- response{resp.StatusCode, string(body), err}
		}()

		<-h.Entered()   // the request is in the database
		cancel()        // SIGINT or SIGTERM in main
		<-shutdownBegun // Shutdown has closed the listener and waits for the request
		h.Release()     // the query finishes
		r := <-responses
		if r.err != nil || r.code != http.StatusOK || !strings.Contains(r.body, `"name":"user-9"`) {
			t.Errorf("in-flight request during shutdown: %d %q %v, want 200 with user 9", r.code, r.body, r.err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve returned %v after a clean shutdown", err)
		}
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			c.Close()
			t.Error("the listener still accepts connections after shutdown")
		}
	})
}

// TestShutdownTimeout: a request that outlives the shutdown timeout is cut
// off and serve says so.
func TestShutdownTimeout(t *testing.T) {
	h := testdb.NewHold()
	a := newTestApp(t, "sqlite", defaultLoaderConfig(), userdb.Options{BeforeQuery: h.BeforeQuery})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- a.serve(ctx, ln, time.Millisecond) }()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	requested := make(chan error, 1)
	go func() {
		resp, err := client.Get("http://" + ln.Addr().String() + "/users/1")
		if err == nil {
			resp.Body.Close()
		}
		requested <- err
	}()
	<-h.Entered()
	cancel()
	err = <-served
	if err == nil || !strings.Contains(err.Error(), "still running after the 1ms shutdown timeout") {
		t.Errorf("serve error = %v, want one about the shutdown timeout", err)
	}
	if err := <-requested; err == nil {
		t.Error("the request that outlived the shutdown got an answer")
	}
	h.Release()
}

// proxy forwards TCP connections to a target until cut, which closes the
// listener and every connection: the database "goes away".
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex // guards conns and closed
	conns  []net.Conn
	closed bool
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return // cut
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			down.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			down.Close()
			up.Close()
			return
		}
		p.conns = append(p.conns, down, up)
		p.mu.Unlock()
		p.wg.Go(func() { _, _ = io.Copy(up, down); up.Close() })
		p.wg.Go(func() { _, _ = io.Copy(down, up); down.Close() })
	}
}

func (p *proxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// mapEnv is a getenv over m.
func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}
