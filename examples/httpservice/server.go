package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flightcache/flightcache"
	"github.com/flightcache/flightcache/examples/internal/userdb"
)

// app is the service: a users Loader in front of the database, its
// metrics registry and its routes.
type app struct {
	store   *userdb.Store
	users   *flightcache.Loader[int64, userdb.User]
	reg     *prometheus.Registry
	logger  *slog.Logger
	handler http.Handler

	// onShutdown, when set (by tests), is called once a graceful shutdown
	// has begun.
	onShutdown func()
}

// maxIDs bounds the ids one GET /users?ids=... may ask for.
const maxIDs = 100

// newApp wraps store's lookups in a Loader configured by cfg, exactly as
// given, and builds the routes. The Loader loads one user with store.User
// and a set of users with store.Users: one query per set of ids it does not
// hold (per MaxBatchSize ids at most), and with BatchWindow set, single
// lookups arriving together too. Close the app to stop the Loader.
func newApp(store *userdb.Store, cfg flightcache.Config, logger *slog.Logger) (*app, error) {
	cfg.Logger = logger // fetch panics and failed refreshes are logged
	users, err := flightcache.New(store.User, cfg, flightcache.WithBatch(store.Users))
	if err != nil {
		return nil, err
	}
	a := &app{store: store, users: users, logger: logger, reg: prometheus.NewRegistry()}

	// A registry of the service's own, never the global one.
	if err := a.reg.Register(flightcache.NewCollector(users)); err != nil {
		users.Close()
		return nil, fmt.Errorf("registering the Loader's metrics: %w", err)
	}
	a.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewDBStatsCollector(store.DB(), "users"),
	)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", a.getUser)
	mux.HandleFunc("GET /users", a.getUsers)
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}))
	a.handler = a.recoverer(mux)
	return a, nil
}

// Close stops the Loader: running lookups are cancelled and waited for.
func (a *app) Close() error { return a.users.Close() }

// getUser answers GET /users/{id}.
func (a *app) getUser(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("id")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("malformed user id %q: want a positive integer", raw))
		return
	}
	u, err := a.users.Get(r.Context(), id)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, u)
	case errors.Is(err, flightcache.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("user %d not found", id))
	case r.Context().Err() != nil:
		// The client has gone: nobody reads an answer.
	case errors.Is(err, flightcache.ErrClosed):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "the service is shutting down; try again")
	case errors.Is(err, flightcache.ErrPanic):
		a.logger.Error("user lookup failed", "id", id, "error", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	default:
		// The database did not answer: unreachable, too slow
		// (FetchTimeout) or failing. The details go to the log.
		a.logger.Warn("user lookup failed", "id", id, "error", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "the user database is unavailable; try again later")
	}
}

// usersAnswer is the body of a GET /users?ids=... answer.
type usersAnswer struct {
	// Users holds the users found, by id (JSON object keys are strings).
	Users map[int64]userdb.User `json:"users"`
	// Missing lists the ids with no user, in the order asked: each is a
	// 404 of its own, not the whole request's.
	Missing []int64 `json:"missing"`
}

// getUsers answers GET /users?ids=1,2,3: the users found and the ids with
// none, looked up with one Loader.GetMany, hence at most one database query
// per MaxBatchSize ids that the Loader does not hold. The ids may also come
// in several ids parameters (ids=1,2&ids=3). A malformed id, no id, or more
// than maxIDs is a 400; a database that does not answer for any of the ids
// is a 503 for the whole request, as it would be for one id.
func (a *app) getUsers(w http.ResponseWriter, r *http.Request) {
	ids, msg := parseIDs(r.URL.Query()["ids"])
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	res := a.users.GetMany(r.Context(), ids)
	answer := usersAnswer{Users: make(map[int64]userdb.User, len(ids)), Missing: []int64{}}
	var failed []error
	for _, id := range ids {
		u, err := res.Get(id)
		switch {
		case err == nil:
			answer.Users[id] = u
		case errors.Is(err, flightcache.ErrNotFound):
			answer.Missing = append(answer.Missing, id)
		default:
			failed = append(failed, err)
		}
	}
	switch {
	case len(failed) == 0:
		writeJSON(w, http.StatusOK, answer)
	case r.Context().Err() != nil:
		// The client has gone: nobody reads an answer.
	case slices.ContainsFunc(failed, func(err error) bool { return errors.Is(err, flightcache.ErrPanic) }):
		a.logger.Error("user lookup failed", "ids", len(ids), "failed", len(failed), "error", res.Err())
		writeError(w, http.StatusInternalServerError, "internal error")
	case slices.ContainsFunc(failed, func(err error) bool { return errors.Is(err, flightcache.ErrClosed) }):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "the service is shutting down; try again")
	default:
		a.logger.Warn("user lookup failed", "ids", len(ids), "failed", len(failed), "error", res.Err())
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "the user database is unavailable; try again later")
	}
}

// parseIDs reads the ids of GET /users: comma-separated positive integers,
// at most maxIDs of them, in one or more ids parameters. It returns them
// without repeats, in their order, or a message for a 400.
func parseIDs(params []string) (ids []int64, msg string) {
	var n int
	seen := make(map[int64]bool)
	for _, p := range params {
		for raw := range strings.SplitSeq(p, ",") {
			n++
			if n > maxIDs {
				return nil, fmt.Sprintf("too many ids: at most %d per request", maxIDs)
			}
			id, err := strconv.ParseInt(raw, 10, 64)
			if err != nil || id <= 0 {
				if len(raw) > 32 { // never echo a huge query back
					raw = raw[:32] + "..."
				}
				return nil, fmt.Sprintf("malformed user id %q: want ids=1,2,3 with positive integers", raw)
			}
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil, "no user ids: want ids=1,2,3"
	}
	return ids, ""
}

// healthz answers 200 when the database answers a ping within a second.
func (a *app) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if err := a.store.DB().PingContext(ctx); err != nil {
		a.logger.Warn("health check: database ping failed", "error", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "database unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// recoverer turns a panic in a handler into a logged 500 with a one-line
// body, instead of net/http's dropped connection and stack on stderr.
func (a *app) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.logger.Error("handler panicked", "path", r.URL.Path, "panic", v)
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// serve answers requests on ln until ctx ends, then shuts down
// gracefully: it stops accepting, lets the requests in flight finish (for
// up to timeout) and returns. It returns nil after a clean shutdown.
func (a *app) serve(ctx context.Context, ln net.Listener, timeout time.Duration) error {
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn),
	}
	if a.onShutdown != nil {
		srv.RegisterOnShutdown(a.onShutdown)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	a.logger.Info("shutting down: letting the requests in flight finish", "timeout", timeout)
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		_ = srv.Close() // the stragglers' connections are cut
		err = fmt.Errorf("requests still running after the %v shutdown timeout were cut off", timeout)
	}
	<-served // http.ErrServerClosed
	return err
}
