// Command httpservice is a small HTTP service that serves users from a
// database through a flightcache Loader, with Prometheus metrics from a
// registry of its own, a health check and graceful shutdown. It answers one
// user (GET /users/{id}) or a set of users (GET /users?ids=1,2,3: one
// Loader.GetMany, with one WHERE id IN (...) query for the ids the Loader
// does not hold).
//
// Its Loader configuration comes from flags, FLIGHTCACHE_* environment
// variables and an optional JSON or YAML file, and goes into
// flightcache.Config as it is: switching between flight and cache mode is a
// configuration change, not a code change.
//
//	go run ./examples/httpservice                       # flight mode, SQLite
//	FLIGHTCACHE_MODE=cache FLIGHTCACHE_TTL=1m go run ./examples/httpservice
//	go run ./examples/httpservice -dsn 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
//	curl localhost:8080/users/42; curl 'localhost:8080/users?ids=1,2,3'; curl localhost:8080/metrics
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/flightcache/flightcache/examples/internal/userdb"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil)
	stop()
	os.Exit(code)
}

// run is the whole program: it serves until ctx ends and returns the exit
// status: 0 after a clean shutdown, 1 for a failure, 2 for a usage error.
// listening, when not nil, is told the address once the service accepts
// connections (tests).
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, listening func(net.Addr)) int {
	s, err := loadSettings(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "httpservice: %s\n", strings.ReplaceAll(err.Error(), "\n", "\nhttpservice: "))
		fmt.Fprintln(stderr, "Run httpservice -h for the flags.")
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	if err := serve(ctx, s, logger, listening); err != nil {
		fmt.Fprintf(stderr, "httpservice: %v\n", err)
		return 1
	}
	return 0
}

// serve opens the database, builds the app and serves until ctx ends.
func serve(ctx context.Context, s settings, logger *slog.Logger, listening func(net.Addr)) error {
	store, err := userdb.Open(ctx, userdb.Options{DSN: s.dsn, Table: s.table, Latency: s.latency})
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Setup(ctx, s.users); err != nil {
		return err
	}
	a, err := newApp(store, s.loader, logger)
	if err != nil {
		return err
	}
	defer a.Close()

	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("-addr %s: %w", s.addr, err)
	}
	attrs := []any{"url", "http://" + ln.Addr().String(), "database", store.String(), "table", store.Table(),
		"mode", s.loader.Mode, "max_batch_size", s.loader.MaxBatchSize}
	if s.loader.BatchWindow > 0 {
		attrs = append(attrs, "batch_window", s.loader.BatchWindow)
	}
	if s.configFile != "" {
		attrs = append(attrs, "config", s.configFile)
	}
	logger.Info("serving users", attrs...)
	if listening != nil {
		listening(ln.Addr())
	}
	if err := a.serve(ctx, ln, s.shutdownTimeout); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}
