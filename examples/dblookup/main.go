// Command dblookup replays one workload of user lookups against a real
// database through five setups in turn — direct (every request queries),
// a flightcache Loader in flight mode, one in cache mode, and the same two
// with a batch fetch (flightcache.WithBatch: one WHERE id IN (...) query
// for many ids) — and prints what each cost: the database queries actually
// executed, requests per second, latency percentiles and the Loader's
// counters.
//
// Requests ask for one id each, and the +batch setups coalesce the single
// lookups that start together into one batch query (Config.BatchWindow,
// DataLoader-style micro-batching). With -batch N, requests ask for N ids
// each, through Loader.GetMany.
//
// It needs no server: by default the users table lives in an embedded
// SQLite database in a temporary file. With -dsn postgres://... it runs
// against PostgreSQL, in a table of its own that it drops when it is done.
//
//	go run ./examples/dblookup
//	go run ./examples/dblookup -dsn 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
//	go run ./examples/dblookup -mode cache -requests 100000 -metrics :9100
//	go run ./examples/dblookup -batch 20
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
	"slices"
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

// setups are the ways of answering a lookup, in the order they run.
var setups = []string{"direct", "flight", "cache", "flight+batch", "cache+batch"}

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
	batch       int // ids per request
	batchWindow time.Duration
	maxBatch    int
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
through five setups — direct (every request queries the database),
flightcache in flight mode, flightcache in cache mode, and both modes with a
batch fetch (SELECT ... WHERE id IN (...): flight+batch, cache+batch) — and
prints one table comparing them. Database queries are counted where they
are sent to the database, not inferred from the Loader.

Each request asks for one id; the +batch setups collect the lookups that
start within -batch-window into one query. With -batch N each request asks
for N ids at once: direct runs one IN (...) query per request, the Loaders
answer it with GetMany (one query per missing id without a batch fetch,
one per request's missing ids with it).

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
	fs.StringVar(&o.mode, "mode", "", "run one `setup` only: direct, flight, cache, flight+batch or cache+batch (default: all)")
	fs.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics on this `address` (such as :9100) at /metrics while running")
	fs.IntVar(&o.maxEntries, "max-entries", 10_000, "cache mode: entries kept, at most")
	fs.DurationVar(&o.ttl, "ttl", 30*time.Second, "cache mode: how long a user is served from the cache")
	fs.DurationVar(&o.staleTTL, "stale-ttl", 0, "cache mode: how long an expired user is still served while it is refreshed")
	fs.DurationVar(&o.negativeTTL, "negative-ttl", 5*time.Second, "cache mode: how long a missing user is remembered as missing")
	fs.IntVar(&o.batch, "batch", 1, "ids each request asks for: above 1, requests go through GetMany")
	fs.DurationVar(&o.batchWindow, "batch-window", 500*time.Microsecond, "+batch setups: single lookups starting within this `duration` share one query (0: off)")
	fs.IntVar(&o.maxBatch, "max-batch-size", 100, "+batch setups: at most `n` ids per batch query (0: no bound)")
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
	positive("batch", o.batch)
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
	if o.mode != "" && !slices.Contains(setups, o.mode) {
		errs = append(errs, fmt.Errorf("-mode must be direct, flight, cache, flight+batch or cache+batch (got %q)", o.mode))
	} else {
		// The Configs of the setups that will run; one error each.
		seen := map[string]bool{}
		for _, setup := range chosenSetups(o) {
			if cfg, ok := loaderConfig(setup, o); ok {
				if err := cfg.Validate(); err != nil && !seen[err.Error()] {
					seen[err.Error()] = true
					errs = append(errs, err)
				}
			}
		}
	}
	return o, errors.Join(errs...)
}

// chosenSetups returns the setups that -mode selects.
func chosenSetups(o options) []string {
	if o.mode != "" {
		return []string{o.mode}
	}
	return setups
}

// loaderConfig is the Config of the Loader of setup; false for direct,
// which has none.
func loaderConfig(setup string, o options) (flightcache.Config, bool) {
	cfg := flightcache.Config{Name: setup} // the zero Config is flight mode
	switch setup {
	case "flight", "flight+batch":
	case "cache", "cache+batch":
		cfg.Mode = flightcache.ModeCache
		cfg.MaxEntries = o.maxEntries
		cfg.TTL, cfg.StaleTTL, cfg.NegativeTTL = o.ttl, o.staleTTL, o.negativeTTL
	default:
		return cfg, false
	}
	if strings.HasSuffix(setup, "+batch") {
		cfg.MaxBatchSize, cfg.BatchWindow = o.maxBatch, o.batchWindow
	}
	return cfg, true
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

	var rows []result
	for _, setup := range chosenSetups(o) {
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
	window := "" // the micro-batching of the +batch setups, when they run
	if o.batchWindow > 0 && o.batch == 1 && slices.ContainsFunc(chosenSetups(o), isBatchSetup) {
		window = fmt.Sprintf(", +batch window %v", o.batchWindow)
	}
	if o.batch == 1 {
		return fmt.Sprintf("%d requests for %d distinct ids (%s, seed %d), concurrency %d, +%v per query%s",
			len(workload), distinct(workload), keys, o.seed, o.concurrency, o.latency, window)
	}
	return fmt.Sprintf("%d requests of %d ids (%d ids, %d distinct; %s, seed %d), concurrency %d, +%v per query",
		len(workload)/o.batch, o.batch, len(workload), distinct(workload), keys, o.seed, o.concurrency, o.latency)
}

// isBatchSetup reports whether setup's Loader has a batch fetch.
func isBatchSetup(setup string) bool { return strings.HasSuffix(setup, "+batch") }

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
	stopProgress := startProgress(stdout, isTerminal(stdout), setup, len(workload)/o.batch, &done, time.Second)
	rep, err := replay(ctx, get, workload, o.batch, o.concurrency, &done)
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

// newGetter returns how setup answers a request: with the store's own
// lookups for direct, or through a new Loader (also returned) wrapping
// them. Requests of one id use User or Loader.Get, requests of several
// (-batch) Users or Loader.GetMany. The +batch setups' Loaders have a batch
// fetch, store.Users.
func newGetter(setup string, o options, store *userdb.Store) (request, *flightcache.Loader[int64, userdb.User], error) {
	cfg, ok := loaderConfig(setup, o)
	switch {
	case !ok && setup != "direct":
		return nil, nil, fmt.Errorf("unknown setup %q", setup)
	case !ok && o.batch == 1:
		return single(store.User), nil, nil
	case !ok:
		return batch(store.Users), nil, nil
	}
	var opts []flightcache.Option[int64, userdb.User]
	if isBatchSetup(setup) {
		opts = append(opts, flightcache.WithBatch(store.Users))
	}
	l, err := flightcache.New(store.User, cfg, opts...)
	if err != nil {
		return nil, nil, err
	}
	if o.batch == 1 {
		return single(l.Get), l, nil
	}
	return many(l), l, nil
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
