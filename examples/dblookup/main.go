// Command dblookup replays one workload of user lookups against a real
// database through three setups in turn — direct (every request queries),
// a flightcache Loader in flight mode, and one in cache mode — and prints
// what each cost: the database queries actually executed, requests per
// second, latency percentiles and the Loader's counters.
//
// It needs no server: by default the users table lives in an embedded
// SQLite database in a temporary file. With -dsn postgres://... it runs
// against PostgreSQL, in a table of its own that it drops when it is done.
//
//	go run ./examples/dblookup
//	go run ./examples/dblookup -dsn 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
//	go run ./examples/dblookup -mode cache -requests 100000 -metrics :9100
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flightcache/flightcache"
	"github.com/flightcache/flightcache/examples/internal/userdb"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// setups are the three ways of answering a lookup, in the order they run.
var setups = []string{"direct", "flight", "cache"}

// options are the command-line settings.
type options struct {
	dsn         string
	users       int
	requests    int
	ids         int
	keys        string
	zipfS       float64
	seed        uint64
	concurrency int
	conns       int
	latency     time.Duration
	mode        string
	metrics     string
	maxEntries  int
	ttl         time.Duration
	staleTTL    time.Duration
	negativeTTL time.Duration
}

// parseFlags reads args. A usage error names the flag; -h prints the help
// and returns flag.ErrHelp.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("dblookup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: dblookup [flags]

dblookup replays one workload of user lookups (SELECT ... WHERE id = ?)
through three setups — direct (every request queries the database),
flightcache in flight mode, and flightcache in cache mode — and prints one
table comparing them. Database queries are counted where they are sent to
the database, not inferred from the Loader.

With no flags it seeds an embedded SQLite database in a temporary file and
needs no server.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.dsn, "dsn", "", "the `database`: empty for an embedded SQLite database in a temporary file,\npostgres://user@host:port/db for PostgreSQL (a table of its own, dropped at the end),\nor the path of a SQLite file")
	fs.IntVar(&o.users, "users", 10_000, "users to seed: ids 1 to `n` exist, higher ids are not found")
	fs.IntVar(&o.requests, "requests", 5_000, "lookups in the workload")
	fs.IntVar(&o.ids, "ids", 1_000, "distinct ids the workload draws from (1 to `n`)")
	fs.StringVar(&o.keys, "keys", "zipf", "`distribution` of the ids: uniform or zipf (a few hot ids)")
	fs.Float64Var(&o.zipfS, "zipf-s", 1.1, "skew of the zipf distribution, > 1: higher is hotter")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed of the workload: one seed, one workload")
	fs.IntVar(&o.concurrency, "concurrency", 64, "requests in flight at once")
	fs.IntVar(&o.conns, "conns", 16, "database connections, at most")
	fs.DurationVar(&o.latency, "latency", 2*time.Millisecond, "added to every query, holding its connection (SQLite: a timer; PostgreSQL: pg_sleep),\nso the effect shows on a fast local database")
	fs.StringVar(&o.mode, "mode", "", "run one `setup` only: direct, flight or cache (default: all three)")
	fs.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics on this `address` (such as :9100) at /metrics while running")
	fs.IntVar(&o.maxEntries, "max-entries", 10_000, "cache mode: entries kept, at most")
	fs.DurationVar(&o.ttl, "ttl", 30*time.Second, "cache mode: how long a user is served from the cache")
	fs.DurationVar(&o.staleTTL, "stale-ttl", 0, "cache mode: how long an expired user is still served while it is refreshed")
	fs.DurationVar(&o.negativeTTL, "negative-ttl", 5*time.Second, "cache mode: how long a missing user is remembered as missing")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (every setting is a flag; see -h)", fs.Arg(0))
	}
	var errs []error
	positive := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("-%s must be > 0 (got %d)", name, v))
		}
	}
	positive("requests", o.requests)
	positive("ids", o.ids)
	positive("concurrency", o.concurrency)
	positive("conns", o.conns)
	if o.users < 0 {
		errs = append(errs, fmt.Errorf("-users must not be negative (got %d)", o.users))
	}
	if o.keys != "uniform" && o.keys != "zipf" {
		errs = append(errs, fmt.Errorf("-keys must be uniform or zipf (got %q)", o.keys))
	}
	if o.keys == "zipf" && !(o.zipfS > 1) {
		errs = append(errs, fmt.Errorf("-zipf-s must be > 1 (got %v)", o.zipfS))
	}
	if o.latency < 0 {
		errs = append(errs, fmt.Errorf("-latency must not be negative (got %v)", o.latency))
	}
	if o.mode != "" && o.mode != "direct" && o.mode != "flight" && o.mode != "cache" {
		errs = append(errs, fmt.Errorf("-mode must be direct, flight or cache (got %q)", o.mode))
	}
	if err := cacheConfig(o).Validate(); err != nil && (o.mode == "" || o.mode == "cache") {
		errs = append(errs, err)
	}
	return o, errors.Join(errs...)
}

// cacheConfig is the Config of the cache-mode setup.
func cacheConfig(o options) flightcache.Config {
	return flightcache.Config{
		Name:        "cache",
		Mode:        flightcache.ModeCache,
		MaxEntries:  o.maxEntries,
		TTL:         o.ttl,
		StaleTTL:    o.staleTTL,
		NegativeTTL: o.negativeTTL,
	}
}

// run is the whole program; it returns the exit status: 0, 1 for a failed
// run, 2 for a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "dblookup: %v\n", strings.ReplaceAll(err.Error(), "\n", "\ndblookup: "))
		fmt.Fprintln(stderr, "Run dblookup -h for the flags.")
		return 2
	}
	if err := lookup(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "dblookup: %v\n", err)
		return 1
	}
	return 0
}

// lookup opens the database, replays the workload through the setups
// chosen and prints the table.
func lookup(ctx context.Context, o options, stdout, stderr io.Writer) error {
	dbOpts := userdb.Options{DSN: o.dsn, Latency: o.latency, MaxConns: o.conns}
	if strings.Contains(o.dsn, "://") {
		// A shared server: a table of this run's own, dropped at the end.
		var b [4]byte
		_, _ = rand.Read(b[:])
		dbOpts.Table = "flightcache_dblookup_" + hex.EncodeToString(b[:])
	}
	store, err := userdb.Open(ctx, dbOpts)
	if err != nil {
		return err
	}
	defer store.Close()
	if store.Postgres() {
		defer func() { _ = store.Drop(context.Background()) }()
	}
	if err := store.Setup(ctx, o.users); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "dblookup_db_queries_total",
		Help: "User lookups sent to the database, all setups together.",
	}, func() float64 { return float64(store.Queries()) }))
	if o.metrics != "" {
		stopMetrics, err := serveMetrics(o.metrics, reg, stderr)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}

	workload := makeWorkload(o)
	fmt.Fprintln(stdout, describeWorkload(o, workload))
	fmt.Fprintf(stdout, "database: %s, %d users, at most %d connections\n\n", store, o.users, o.conns)

	chosen := setups
	if o.mode != "" {
		chosen = []string{o.mode}
	}
	var rows []result
	for _, setup := range chosen {
		r, err := runSetup(ctx, setup, o, store, workload, reg, stdout)
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	printTable(stdout, rows)
	return nil
}

// describeWorkload is the first line of the output.
func describeWorkload(o options, workload []int64) string {
	keys := o.keys
	if keys == "zipf" {
		keys = fmt.Sprintf("zipf s=%g", o.zipfS)
	}
	return fmt.Sprintf("%d requests for %d distinct ids (%s, seed %d), concurrency %d, +%v per query",
		len(workload), distinct(workload), keys, o.seed, o.concurrency, o.latency)
}

// runSetup replays workload through one setup and measures it.
func runSetup(ctx context.Context, setup string, o options, store *userdb.Store, workload []int64, reg *prometheus.Registry, stdout io.Writer) (result, error) {
	get, loader, err := newGetter(setup, o, store)
	if err != nil {
		return result{}, err
	}
	if loader != nil {
		defer loader.Close()
		if err := reg.Register(flightcache.NewCollector(loader)); err != nil {
			return result{}, fmt.Errorf("registering the metrics of the %s loader: %w", setup, err)
		}
	}

	before := store.Queries()
	var done progressCounter
	stopProgress := startProgress(stdout, isTerminal(stdout), setup, len(workload), &done, time.Second)
	rep, err := replay(ctx, get, workload, o.concurrency, &done)
	stopProgress()
	if err != nil {
		return result{}, fmt.Errorf("%s: %w", setup, err)
	}
	r := result{setup: setup, report: rep, queries: store.Queries() - before}
	if loader != nil {
		s := loader.Stats()
		r.stats = &s
	}
	return r, nil
}

// newGetter returns the lookup function of setup: the store's own for
// direct, or the Get of a new Loader (also returned) wrapping it.
func newGetter(setup string, o options, store *userdb.Store) (func(context.Context, int64) (userdb.User, error), *flightcache.Loader[int64, userdb.User], error) {
	var cfg flightcache.Config
	switch setup {
	case "direct":
		return store.User, nil, nil
	case "flight":
		cfg = flightcache.Config{Name: "flight"} // the zero Config is flight mode
	case "cache":
		cfg = cacheConfig(o)
	default:
		return nil, nil, fmt.Errorf("unknown setup %q", setup)
	}
	l, err := flightcache.New(store.User, cfg)
	if err != nil {
		return nil, nil, err
	}
	return l.Get, l, nil
}

// serveMetrics serves reg at /metrics on addr until the returned function
// is called.
func serveMetrics(addr string, reg *prometheus.Registry, stderr io.Writer) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-metrics %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln) // returns http.ErrServerClosed on Close
	}()
	fmt.Fprintf(stderr, "dblookup: serving metrics on http://%s/metrics\n", ln.Addr())
	return func() {
		_ = srv.Close()
		<-served
	}, nil
}

// isTerminal reports whether w is a terminal, where a progress line helps;
// a pipe or a file gets none.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
