package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
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

// newApp wraps store's lookup in a Loader configured by cfg, exactly as
// given, and builds the routes. Close the app to stop the Loader.
func newApp(store *userdb.Store, cfg flightcache.Config, logger *slog.Logger) (*app, error) {
	cfg.Logger = logger // fetch panics and failed refreshes are logged
	users, err := flightcache.New(store.User, cfg)
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
