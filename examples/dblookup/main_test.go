package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
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
				rep, err := replay(t.Context(), get, workload, n, &progressCounter{})
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
// flight mode once per load, whatever the overlap was.
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
			for _, setup := range []string{"flight", "cache"} {
				r := rows[setup]
				s := r.stats
				if r.queries != int64(s.Loads) {
					t.Errorf("%s: %d database queries but %d loads: every load is one query", setup, r.queries, s.Loads)
				}
				if s.Hits+s.Misses != uint64(len(workload)) || s.Misses != s.Loads+s.Shared {
					t.Errorf("%s: hits=%d misses=%d loads=%d shared=%d do not add up to %d requests", setup, s.Hits, s.Misses, s.Loads, s.Shared, len(workload))
				}
			}
			if s := rows["flight"].stats; s.Hits != 0 {
				t.Errorf("flight: %d hits, want 0 (nothing is kept)", s.Hits)
			}
		})
	}
}

// tableRow matches a data row of the printed table.
var tableRow = regexp.MustCompile(`(?m)^(direct|flight|cache)\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+\s+\S+\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$`)

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
			if len(rows) != 3 {
				t.Fatalf("table has %d rows, want direct, flight and cache:\n%s", len(rows), out)
			}
			if rows["direct"] != [2]int{600, 600} {
				t.Errorf("direct row: requests, queries = %v, want 600, 600", rows["direct"])
			}
			if rows["cache"] != [2]int{600, wantDistinct} {
				t.Errorf("cache row: requests, queries = %v, want 600, %d", rows["cache"], wantDistinct)
			}
			if f := rows["flight"]; f[1] < 1 || f[1] > 600 {
				t.Errorf("flight row: %d queries", f[1])
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
		{[]string{"-mode", "turbo"}, []string{`-mode must be direct, flight or cache (got "turbo")`}},
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
	for _, want := range []string{"Usage: dblookup [flags]", "-dsn database", "-mode setup", "-metrics address"} {
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
	_, err := replay(t.Context(), get, []int64{1, 2, 3, 4}, 1, &progressCounter{})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "request 3 (id 3)") {
		t.Errorf("error = %v, want one naming request 3 and wrapping %v", err, boom)
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
		time.Sleep(999 * time.Millisecond)
		stop()
		if buf.Len() != 0 {
			t.Errorf("a run under a second printed %q", buf.String())
		}

		// Longer: a line at 1s, updated every 250ms, erased at the end.
		stop = startProgress(&buf, true, "cache", 10, &done, time.Second)
		time.Sleep(time.Second)
		synctest.Wait()
		done.n.Store(4)
		time.Sleep(250 * time.Millisecond)
		synctest.Wait()
		stop()
		if want := "\rcache: 0/10 requests\rcache: 4/10 requests\r\033[K"; buf.String() != want {
			t.Errorf("progress output %q, want %q", buf.String(), want)
		}

		// Not a terminal: nothing, however long.
		buf.Reset()
		stop = startProgress(&buf, false, "cache", 10, &done, time.Second)
		time.Sleep(time.Minute)
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
	if rows["direct"] != [2]int{o.requests, o.requests} || rows["cache"] != [2]int{o.requests, distinct(workload)} || len(rows) != 3 {
		t.Errorf("README sample rows %v do not add up for %d requests over %d distinct ids", rows, o.requests, distinct(workload))
	}
}
