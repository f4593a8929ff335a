package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/flightcache/flightcache/examples/internal/testdb"
	"github.com/flightcache/flightcache/examples/internal/userdb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testOptions are small defaults for tests: no added latency, a generous
// TTL so that nothing expires during a test.
func testOptions() options {
	return options{
		users: 100, requests: 2000, ids: 100, keys: "zipf", zipfS: 1.1, seed: 7,
		concurrency: 16, conns: 8, maxEntries: 10_000, ttl: time.Hour, negativeTTL: time.Hour,
		batch: 1, batchWindow: 500 * time.Microsecond, maxBatch: 100,
	}
}

// TestFlightModeOneQueryForConcurrentRequests: 1,000 concurrent requests
// for one id in flight mode reach the database exactly once. The query is
// held until every other request has joined it, so the overlap is certain.
func TestFlightModeOneQueryForConcurrentRequests(t *testing.T) {
	const n = 1000
	for _, backend := range testdb.Backends {
		t.Run(backend, func(t *testing.T) {
			h := testdb.NewHold()
			store := testdb.OpenStore(t, backend, userdb.Options{BeforeQuery: h.BeforeQuery, MaxConns: 8}, 10)
			get, loader, err := newGetter("flight", testOptions(), store)
			if err != nil {
				t.Fatal(err)
			}
			defer loader.Close()

			workload := make([]int64, n)
			for i := range workload {
				workload[i] = 7
			}
			type outcome struct {
				rep report
				err error
			}
			done := make(chan outcome, 1)
			go func() {
				rep, err := replay(t.Context(), get, workload, 1, n, &progressCounter{})
				done <- outcome{rep, err}
			}()
			<-h.Entered()
			testdb.WaitForShared(t, loader.Stats, n-1)
			h.Release()
			out := <-done
			if out.err != nil {
				t.Fatal(out.err)
			}

			if got := store.Queries(); got != 1 {
				t.Errorf("database queries = %d for %d concurrent requests of one id, want exactly 1", got, n)
			}
			s := loader.Stats()
			if s.Loads != 1 || s.Shared != n-1 || s.Misses != n || s.Hits != 0 {
				t.Errorf("stats: loads=%d shared=%d misses=%d hits=%d, want 1, %d, %d, 0", s.Loads, s.Shared, s.Misses, s.Hits, n-1, n)
			}
			if out.rep.requests != n || out.rep.notFound != 0 {
				t.Errorf("report: %d requests, %d not found; want %d, 0", out.rep.requests, out.rep.notFound, n)
			}
		})
	}
}

// TestQueryCounts replays one repeated workload, with some ids that have no
// user, through each setup: direct queries once per request, cache mode
// once per distinct id (not-found ids included, thanks to NegativeTTL), and
// flight mode once per load, whatever the overlap was. The +batch setups
// make one query per batch fetch, which loads several ids: cache+batch
// still loads each distinct id once, in fewer queries.
func TestQueryCounts(t *testing.T) {
	o := testOptions()
	o.users = 80 // ids 81 to 100 are missing
	workload := makeWorkload(o)
	wantDistinct := distinct(workload)
	if wantDistinct >= len(workload)/2 {
		t.Fatalf("workload of %d requests has %d distinct ids: not repeated enough to test caching", len(workload), wantDistinct)
	}
	var wantNotFound int
	for _, id := range workload {
		if id > int64(o.users) {
			wantNotFound++
		}
	}
	if wantNotFound == 0 {
		t.Fatal("workload asks for no missing id")
	}

	for _, backend := range testdb.Backends {
		t.Run(backend, func(t *testing.T) {
			store := testdb.OpenStore(t, backend, userdb.Options{MaxConns: o.conns}, o.users)
			reg := prometheus.NewRegistry()
			rows := map[string]result{}
			for _, setup := range setups {
				r, err := runSetup(t.Context(), setup, o, store, workload, reg, io.Discard)
				if err != nil {
					t.Fatal(err)
				}
				rows[setup] = r
				if r.report.requests != len(workload) || r.report.notFound != wantNotFound {
					t.Errorf("%s: %d requests, %d not found; want %d, %d", setup, r.report.requests, r.report.notFound, len(workload), wantNotFound)
				}
			}
			if got := rows["direct"].queries; got != int64(len(workload)) {
				t.Errorf("direct: %d database queries for %d requests, want one per request", got, len(workload))
			}
			if got := rows["cache"].queries; got != int64(wantDistinct) {
				t.Errorf("cache: %d database queries, want %d (one per distinct id)", got, wantDistinct)
			}
			checkLoaderRows(t, rows, len(workload))
			if s := rows["cache+batch"].stats; s.Loads != uint64(wantDistinct) {
				t.Errorf("cache+batch: %d ids loaded, want %d (each distinct id once)", s.Loads, wantDistinct)
			}

		})
	}
}

// checkLoaderRows checks the counters of the Loader rows against the
// queries the database received: one per load without a batch fetch, one
// per batch fetch with one, and hits + misses = the ids asked for
// (lookups), misses = loads + shared.
func checkLoaderRows(t *testing.T, rows map[string]result, lookups int) {
	t.Helper()
	for _, setup := range setups[1:] {
		r, ok := rows[setup]
		if !ok {
			t.Errorf("no %s row", setup)
			continue
		}
		s := r.stats
		if !isBatchSetup(setup) && (r.queries != int64(s.Loads) || s.BatchLoads != 0) {
			t.Errorf("%s: %d database queries but %d loads, %d batch loads: every load is one query", setup, r.queries, s.Loads, s.BatchLoads)
		}
		if isBatchSetup(setup) && (r.queries != int64(s.BatchLoads) || s.BatchSize.Sum != s.Loads) {
			t.Errorf("%s: %d database queries, %d batch loads of %d ids in all, %d loads: every batch load is one query and loads every id of the setup", setup, r.queries, s.BatchLoads, s.BatchSize.Sum, s.Loads)
		}
		if s.Hits+s.Misses != uint64(lookups) || s.Misses != s.Loads+s.Shared {
			t.Errorf("%s: hits=%d misses=%d loads=%d shared=%d do not add up to %d lookups", setup, s.Hits, s.Misses, s.Loads, s.Shared, lookups)
		}
		if strings.HasPrefix(setup, "flight") && s.Hits != 0 {
			t.Errorf("%s: %d hits, want 0 (nothing is kept)", setup, s.Hits)
		}
	}
}

// TestBatchRequests replays requests of 5 ids each (-batch 5): direct
// makes one IN (...) query per request; the Loaders count every distinct id
// of a request as a Get, load each id once in cache mode, and with a batch
// fetch make at most one query per request.
func TestBatchRequests(t *testing.T) {
	o := testOptions()
	o.users, o.requests, o.batch = 80, 200, 5 // ids 81 to 100 are missing
	workload := makeWorkload(o)
	wantDistinct := distinct(workload)
	wantLookups, wantNotFound := 0, 0
	for ids := range slices.Chunk(workload, o.batch) {
		for _, id := range unique(ids) {
			wantLookups++
			if id > int64(o.users) {
				wantNotFound++
			}
		}
	}
	if wantLookups == len(workload) || wantNotFound == 0 {
		t.Fatalf("workload: %d lookups of %d ids, %d not found: want some repeats within requests, and missing ids", wantLookups, len(workload), wantNotFound)
	}
	for _, backend := range testdb.Backends {
		t.Run(backend, func(t *testing.T) {
			store := testdb.OpenStore(t, backend, userdb.Options{MaxConns: o.conns}, o.users)
			rows := map[string]result{}
			for _, setup := range setups {
				r, err := runSetup(t.Context(), setup, o, store, workload, prometheus.NewRegistry(), io.Discard)
				if err != nil {
					t.Fatal(err)
				}
				rows[setup] = r
				if r.report.requests != o.requests || r.report.lookups != wantLookups || r.report.notFound != wantNotFound {
					t.Errorf("%s: %d requests, %d lookups, %d not found; want %d, %d, %d", setup,
						r.report.requests, r.report.lookups, r.report.notFound, o.requests, wantLookups, wantNotFound)
				}
			}
			if got := rows["direct"].queries; got != int64(o.requests) {
				t.Errorf("direct: %d queries for %d requests, want one per request", got, o.requests)
			}
			checkLoaderRows(t, rows, wantLookups)
			for _, setup := range []string{"cache", "cache+batch"} {
				if s := rows[setup].stats; s.Loads != uint64(wantDistinct) {
					t.Errorf("%s: %d ids loaded, want %d (each distinct id once)", setup, s.Loads, wantDistinct)
				}
			}
			for _, setup := range []string{"flight+batch", "cache+batch"} {
				if r := rows[setup]; r.queries > int64(o.requests) {
					t.Errorf("%s: %d queries for %d requests, want at most one per request", setup, r.queries, o.requests)
				}
			}
		})
	}
}

// TestGetManyOneQueryForMisses: a request of 50 ids of which 10 are cached
// makes exactly one query, for the other 40.
func TestGetManyOneQueryForMisses(t *testing.T) {
	for _, backend := range testdb.Backends {
		t.Run(backend, func(t *testing.T) {
			rec := testdb.NewRecorder(nil)
			store := testdb.OpenStore(t, backend, rec.Options(userdb.Options{}), 100)
			o := testOptions()
			o.batch = 50
			get, loader, err := newGetter("cache+batch", o, store)
			if err != nil {
				t.Fatal(err)
			}
			defer loader.Close()
			if res := loader.GetMany(t.Context(), testdb.IDs(1, 10)); res.Err() != nil || res.Len() != 10 {
				t.Fatalf("GetMany(1..10): %d keys, error %v", res.Len(), res.Err())
			}
			rep, err := replay(t.Context(), get, testdb.IDs(1, 50), o.batch, 1, &progressCounter{})
			if err != nil || rep.requests != 1 || rep.lookups != 50 || rep.notFound != 0 {
				t.Fatalf("replay: %+v, %v", rep, err)
			}
			want := [][]int64{testdb.IDs(1, 10), testdb.IDs(11, 50)}
			if q := rec.Queries(); !slices.EqualFunc(q, want, slices.Equal) {
				t.Errorf("queries %v, want one for 1..10, then one for 11..50", q)
			}
			if q := store.Queries(); q != 2 {
				t.Errorf("the store counted %d queries, want 2", q)
			}
		})
	}
}

// TestMaxBatchSizeSplits: a request of 250 ids with -max-batch-size 100 is
// ceil(250/100) = 3 queries.
func TestMaxBatchSizeSplits(t *testing.T) {
	rec := testdb.NewRecorder(nil)
	store := testdb.OpenStore(t, "sqlite", rec.Options(userdb.Options{}), 300)
	o := testOptions()
	o.batch, o.maxBatch = 250, 100
	get, loader, err := newGetter("flight+batch", o, store)
	if err != nil {
		t.Fatal(err)
	}
	defer loader.Close()
	if _, err := replay(t.Context(), get, testdb.IDs(1, 250), o.batch, 1, &progressCounter{}); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, q := range rec.Queries() {
		sizes = append(sizes, len(q))
	}
	if slices.Sort(sizes); !slices.Equal(sizes, []int{50, 100, 100}) {
		t.Errorf("query sizes %v, want 100, 100 and 50", sizes)
	}
	if got := rec.QueriedIDs(); len(got) != 250 || slices.ContainsFunc(slices.Collect(maps.Values(got)), func(n int) bool { return n != 1 }) {
		t.Errorf("ids queried: %d distinct, want each of 1..250 once", len(got))
	}
}

// TestMicroBatchOneQuery: in the +batch setups, concurrent single lookups
// of different ids share one query. The window is an hour, so the batch
// goes when -max-batch-size lookups have joined it, not by timing.
func TestMicroBatchOneQuery(t *testing.T) {
	const n = 32
	for _, backend := range testdb.Backends {
		for _, setup := range []string{"flight+batch", "cache+batch"} {
			t.Run(backend+"/"+setup, func(t *testing.T) {
				rec := testdb.NewRecorder(nil)
				store := testdb.OpenStore(t, backend, rec.Options(userdb.Options{}), n)
				o := testOptions()
				o.batchWindow, o.maxBatch, o.concurrency = time.Hour, n, n
				r, err := runSetup(t.Context(), setup, o, store, testdb.IDs(1, n), prometheus.NewRegistry(), io.Discard)
				if err != nil {
					t.Fatal(err)
				}
				if q := rec.Queries(); len(q) != 1 || !slices.Equal(q[0], testdb.IDs(1, n)) {
					t.Errorf("queries %v, want one for ids 1..%d", q, n)
				}
				if r.queries != 1 || r.stats.BatchLoads != 1 || r.stats.Loads != n {
					t.Errorf("row: %d queries, %d batch loads, %d loads; want 1, 1, %d", r.queries, r.stats.BatchLoads, r.stats.Loads, n)
				}
			})
		}
	}
}

// TestRunBatch runs the program with -batch: requests of several ids.
func TestRunBatch(t *testing.T) {
	args := []string{"-batch", "4", "-requests", "150", "-ids", "40", "-users", "30", "-concurrency", "8", "-latency", "1ms", "-seed", "3",
		"-dsn", t.TempDir() + "/users.db"}
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	o := testOptions()
	o.requests, o.ids, o.seed, o.batch = 150, 40, 3, 4
	workload := makeWorkload(o)
	if want := fmt.Sprintf("150 requests of 4 ids (600 ids, %d distinct; zipf s=1.1, seed 3), concurrency 8, +1ms per query\n", distinct(workload)); !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	rows := parseTable(t, out)
	if len(rows) != len(setups) || rows["direct"] != [2]int{150, 150} || rows["cache"] != [2]int{150, distinct(workload)} {
		t.Errorf("rows %v, want %d with direct 150 queries and cache %d:\n%s", rows, len(setups), distinct(workload), out)
	}
	if !regexp.MustCompile(`\nthe 150 requests asked for \d+ ids in all, counting the distinct ids of each \(hits \+ misses\); \d+ had no user: answered not found\n`).MatchString(out) {
		t.Errorf("output lacks the lookups line:\n%s", out)
	}
}

// tableRow matches a data row of the printed table.
var tableRow = regexp.MustCompile(`(?m)^(direct|flight|cache|flight\+batch|cache\+batch)\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+\s+\S+\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$`)

// parseTable returns setup → [requests, db queries] of the table in out.
func parseTable(t *testing.T, out string) map[string][2]int {
	t.Helper()
	rows := map[string][2]int{}
	for _, m := range tableRow.FindAllStringSubmatch(out, -1) {
		req, _ := strconv.Atoi(m[2])
		q, _ := strconv.Atoi(m[3])
		rows[m[1]] = [2]int{req, q}
	}
	return rows
}

func TestRun(t *testing.T) {
	for _, backend := range testdb.Backends {
		t.Run(backend, func(t *testing.T) {
			args := []string{"-requests", "600", "-ids", "40", "-users", "50", "-concurrency", "8", "-latency", "1ms", "-seed", "3"}
			if backend == "postgres" {
				args = append(args, "-dsn", testdb.PostgresDSN(t))
			} else {
				args = append(args, "-dsn", t.TempDir()+"/users.db")
			}
			var stdout, stderr bytes.Buffer
			if code := run(t.Context(), args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit status %d; stderr:\n%s", code, stderr.String())
			}
			out := stdout.String()
			o := testOptions()
			o.requests, o.ids, o.seed = 600, 40, 3
			wantDistinct := distinct(makeWorkload(o))
			if want := fmt.Sprintf("600 requests for %d distinct ids (zipf s=1.1, seed 3), concurrency 8, +1ms per query", wantDistinct); !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
			rows := parseTable(t, out)
			if len(rows) != len(setups) {
				t.Fatalf("table has %d rows, want %v:\n%s", len(rows), setups, out)
			}
			if rows["direct"] != [2]int{600, 600} {
				t.Errorf("direct row: requests, queries = %v, want 600, 600", rows["direct"])
			}
			if rows["cache"] != [2]int{600, wantDistinct} {
				t.Errorf("cache row: requests, queries = %v, want 600, %d", rows["cache"], wantDistinct)
			}
			for _, setup := range []string{"flight", "flight+batch"} {
				if f := rows[setup]; f[1] < 1 || f[1] > 600 {
					t.Errorf("%s row: %d queries", setup, f[1])
				}
			}
			if f := rows["cache+batch"]; f[0] != 600 || f[1] < 1 || f[1] > wantDistinct {
				t.Errorf("cache+batch row: requests, queries = %v, want 600 and 1 to %d", f, wantDistinct)
			}
			if strings.Contains(out, "\r") || strings.Contains(out, "\033") {
				t.Errorf("output to a non-terminal has progress control characters: %q", out)
			}
			if stderr.Len() > 0 {
				t.Errorf("unexpected stderr: %s", stderr.String())
			}
		})
	}
}

func TestRunOneModeWithMetrics(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"-mode", "cache", "-requests", "100", "-ids", "10", "-users", "10", "-latency", "0", "-metrics", "127.0.0.1:0"}
	if code := run(t.Context(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, stderr.String())
	}
	rows := parseTable(t, stdout.String())
	if len(rows) != 1 || rows["cache"][0] != 100 {
		t.Errorf("-mode cache: rows %v, want only cache with 100 requests:\n%s", rows, stdout.String())
	}
	if !strings.Contains(stderr.String(), "serving metrics on http://127.0.0.1:") {
		t.Errorf("stderr does not say where metrics are served: %q", stderr.String())
	}
}

func TestServeMetrics(t *testing.T) {
	store := testdb.OpenStore(t, "sqlite", userdb.Options{}, 10)
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dblookup_db_queries_total", Help: "h"},
		func() float64 { return float64(store.Queries()) }))
	o := testOptions()
	o.requests, o.ids = 50, 5
	if _, err := runSetup(t.Context(), "cache", o, store, makeWorkload(o), reg, io.Discard); err != nil {
		t.Fatal(err)
	}

	var stderr bytes.Buffer
	stop, err := serveMetrics("127.0.0.1:0", reg, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	url := strings.TrimSpace(strings.TrimPrefix(stderr.String(), "dblookup: serving metrics on "))
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"dblookup_db_queries_total 5", `flightcache_loads_total{loader="cache"} 5`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	if _, err := serveMetrics("127.0.0.1:-1", reg, io.Discard); err == nil || !strings.HasPrefix(err.Error(), "-metrics 127.0.0.1:-1: ") {
		t.Errorf("bad address: error %v, want one naming the flag", err)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"-requests", "0", "-ids", "-3"}, []string{"dblookup: -requests must be > 0 (got 0)", "dblookup: -ids must be > 0 (got -3)"}},
		{[]string{"-mode", "turbo"}, []string{`-mode must be direct, flight, cache, flight+batch or cache+batch (got "turbo")`}},
		{[]string{"-batch", "0"}, []string{"-batch must be > 0 (got 0)"}},
		{[]string{"-max-batch-size", "-1", "-batch-window", "-1ms"}, []string{"MaxBatchSize must not be negative (got -1)", "BatchWindow must not be negative (got -1ms)"}},
		{[]string{"-keys", "pareto"}, []string{`-keys must be uniform or zipf (got "pareto")`}},
		{[]string{"-zipf-s", "1"}, []string{"-zipf-s must be > 1 (got 1)"}},
		{[]string{"-max-entries", "0"}, []string{"MaxEntries must be > 0 in cache mode (got 0)"}},
		{[]string{"-latency", "fast"}, []string{`invalid value "fast" for flag -latency`}},
		{[]string{"-nosuchflag"}, []string{"flag provided but not defined: -nosuchflag"}},
		{[]string{"extra"}, []string{`unexpected argument "extra"`}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(t.Context(), tt.args, &stdout, &stderr); code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			for _, want := range tt.want {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			if strings.Contains(stderr.String(), "goroutine") || stdout.Len() > 0 {
				t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
			}
		})
	}

	// -max-entries only matters when cache mode runs.
	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"-mode", "direct", "-max-entries", "0", "-requests", "10", "-users", "10", "-latency", "0"}, io.Discard, &stderr); code != 0 {
		t.Errorf("-mode direct -max-entries 0: exit status %d: %s", code, stderr.String())
	}
}

func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"-h"}, io.Discard, &stderr); code != 0 {
		t.Errorf("-h: exit status %d, want 0", code)
	}
	for _, want := range []string{"Usage: dblookup [flags]", "-dsn database", "-mode setup", "-metrics address", "-batch int", "-batch-window duration", "-max-batch-size n"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		dsn, want string
	}{
		{"postgres://postgres:secret@127.0.0.1:1/test?sslmode=disable", "dblookup: userdb: PostgreSQL postgres://postgres:xxxxx@127.0.0.1:1/test?sslmode=disable is unreachable"},
		{"mysql://localhost/db", "dblookup: userdb: unsupported DSN mysql://localhost/db"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), []string{"-dsn", tt.dsn}, &stdout, &stderr); code != 1 {
			t.Errorf("-dsn %s: exit status %d, want 1", tt.dsn, code)
		}
		if got := stderr.String(); !strings.HasPrefix(got, tt.want) || strings.Contains(got, "secret") {
			t.Errorf("-dsn %s: stderr %q, want it to start with %q and hide the password", tt.dsn, got, tt.want)
		}
	}
}

// TestInterrupted cancels the run's context while queries are held: the
// run stops with a named error instead of hanging or panicking.
func TestInterrupted(t *testing.T) {
	h := testdb.NewHold()
	store := testdb.OpenStore(t, "sqlite", userdb.Options{BeforeQuery: h.BeforeQuery}, 10)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		o := testOptions()
		_, err := runSetup(ctx, "direct", o, store, makeWorkload(o), prometheus.NewRegistry(), io.Discard)
		errc <- err
	}()
	<-h.Entered()
	cancel()
	if err := <-errc; err == nil || err.Error() != "direct: interrupted" {
		t.Errorf("error = %v, want \"direct: interrupted\"", err)
	}
}

// TestReplayStopsOnError: an error other than not-found stops the replay
// and names the request.
func TestReplayStopsOnError(t *testing.T) {
	boom := errors.New("connection reset")
	get := func(ctx context.Context, id int64) (userdb.User, error) {
		if id == 3 {
			return userdb.User{}, boom
		}
		return userdb.User{ID: id}, nil
	}
	_, err := replay(t.Context(), single(get), []int64{1, 2, 3, 4}, 1, 1, &progressCounter{})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "request 3 (id 3)") {
		t.Errorf("error = %v, want one naming request 3 and wrapping %v", err, boom)
	}
	getMany := func(ctx context.Context, ids []int64) (map[int64]userdb.User, error) {
		if slices.Contains(ids, 3) {
			return nil, boom
		}
		return map[int64]userdb.User{}, nil
	}
	_, err = replay(t.Context(), batch(getMany), []int64{1, 2, 2, 3, 4, 5}, 2, 1, &progressCounter{})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "request 2 (ids [2 3])") {
		t.Errorf("batch: error = %v, want one naming request 2 and its distinct ids, wrapping %v", err, boom)
	}
	wrong := func(ctx context.Context, ids []int64) (map[int64]userdb.User, error) {
		return map[int64]userdb.User{ids[0]: {ID: ids[0] + 1}}, nil
	}
	if _, err := replay(t.Context(), batch(wrong), []int64{1, 2}, 2, 1, &progressCounter{}); err == nil || !strings.Contains(err.Error(), "asked for id 1 and got user 2") {
		t.Errorf("batch answering the wrong user: error = %v", err)
	}
	extra := func(ctx context.Context, ids []int64) (map[int64]userdb.User, error) {
		return map[int64]userdb.User{7: {ID: 7}}, nil
	}
	if _, err := replay(t.Context(), batch(extra), []int64{1, 2}, 2, 1, &progressCounter{}); err == nil || !strings.Contains(err.Error(), "asked for 2 ids and got 1 users, 1 of them not asked for") {
		t.Errorf("batch answering a user not asked for: error = %v", err)
	}
}

func TestWorkload(t *testing.T) {
	o := testOptions()
	a, b := makeWorkload(o), makeWorkload(o)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Error("one seed gave two workloads")
	}
	counts := map[int64]int{}
	for _, id := range a {
		if id < 1 || id > int64(o.ids) {
			t.Fatalf("id %d outside 1..%d", id, o.ids)
		}
		counts[id]++
	}
	if counts[1] < counts[int64(o.ids/2)]*5 {
		t.Errorf("zipf: id 1 drawn %d times, id %d %d times: not skewed", counts[1], o.ids/2, counts[int64(o.ids/2)])
	}
	o.keys, o.ids = "uniform", 1
	for _, id := range makeWorkload(o) {
		if id != 1 {
			t.Fatalf("uniform over 1 id drew %d", id)
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	if p50, p99 := percentile(d, 0.5), percentile(d, 0.99); p50 != 50 || p99 != 99 {
		t.Errorf("p50, p99 of 1..100 = %v, %v; want 50, 99", p50, p99)
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile of nothing = %v", got)
	}
}

// TestProgress runs in a synctest bubble: time only passes when every
// goroutine waits, so "runs longer than a second" is exact and instant.
func TestProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var done progressCounter
		var buf bytes.Buffer

		// Shorter than the delay: nothing at all.
		stop := startProgress(&buf, true, "cache", 10, &done, time.Second)
		<-time.After(999 * time.Millisecond) // fake time: the bubble advances at once
		stop()
		if buf.Len() != 0 {
			t.Errorf("a run under a second printed %q", buf.String())
		}

		// Longer: a line at 1s, updated every 250ms, erased at the end.
		stop = startProgress(&buf, true, "cache", 10, &done, time.Second)
		<-time.After(time.Second) // fake time: the bubble advances at once
		synctest.Wait()
		done.n.Store(4)
		<-time.After(250 * time.Millisecond) // fake time: the bubble advances at once
		synctest.Wait()
		stop()
		if want := "\rcache: 0/10 requests\rcache: 4/10 requests\r\033[K"; buf.String() != want {
			t.Errorf("progress output %q, want %q", buf.String(), want)
		}

		// Not a terminal: nothing, however long.
		buf.Reset()
		stop = startProgress(&buf, false, "cache", 10, &done, time.Second)
		<-time.After(time.Minute) // fake time: the bubble advances at once
		stop()
		if buf.Len() != 0 {
			t.Errorf("progress to a non-terminal printed %q", buf.String())
		}
	})
}

// TestReadme checks that the sample run in ../README.md is what a default
// run prints today: the same workload line, the same table columns, and the
// counts that do not depend on timing.
func TestReadme(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sample, ok := strings.Cut(string(readme), "$ go run ./examples/dblookup\n")
	sample, _, _ = strings.Cut(sample, "```")
	if !ok || sample == "" {
		t.Fatal("README.md has no sample of a default run (\"$ go run ./examples/dblookup\" in a code block)")
	}
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	workload := makeWorkload(o)
	var header bytes.Buffer
	printTable(&header, nil)
	for _, want := range []string{describeWorkload(o, workload) + "\n", header.String()} {
		if !strings.Contains(sample, want) {
			t.Errorf("README sample lacks the line %q; run go run ./examples/dblookup and paste its output", want)
		}
	}
	rows := parseTable(t, sample)
	if rows["direct"] != [2]int{o.requests, o.requests} || rows["cache"] != [2]int{o.requests, distinct(workload)} || len(rows) != len(setups) {
		t.Errorf("README sample rows %v do not add up for %d requests over %d distinct ids", rows, o.requests, distinct(workload))
	}
	if cb := rows["cache+batch"]; cb[1] >= distinct(workload) || cb[1] < 1 {
		t.Errorf("README sample: cache+batch made %d queries, want fewer than the %d distinct ids", cb[1], distinct(workload))
	}
}
