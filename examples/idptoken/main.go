// Command idptoken tells the story that started flightcache: a burst of
// requests carrying the same identity-provider token must validate the
// token and create the session once, not once per request.
//
// It starts a fake identity provider (a token introspection endpoint that
// takes -idp-latency to answer and counts its calls) and a small service
// whose GET /me turns the request's bearer token into a session row in
// SQLite. Then it fires bursts of concurrent requests at the service, over
// real HTTP, in two setups: direct (every request validates the token and
// creates a session) and cache (a flightcache Loader keyed by token, each
// session kept until its token expires, invalid tokens remembered for
// -negative-ttl), and prints what each burst cost.
//
//	go run ./examples/idptoken
//	go run ./examples/idptoken -requests 1000 -idp-latency 200ms
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flightcache/flightcache"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// The tokens of the demo. Only validToken is known to the provider.
const (
	validToken   = "tok-alice-7f3a9c"
	invalidToken = "tok-forged-000000"
)

// options are the command-line settings.
type options struct {
	requests      int
	idpLatency    time.Duration
	tokenLifetime time.Duration
	negativeTTL   time.Duration
	db            string
	mode          string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("idptoken", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: idptoken [flags]

idptoken fires bursts of concurrent requests that carry one bearer token at a
small service, which validates the token with a (fake, in-process) identity
provider and creates a session row in SQLite. It runs the bursts with every
request validating on its own (direct) and through a flightcache Loader
keyed by token (cache), and prints the provider calls and session rows each
burst cost.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.IntVar(&o.requests, "requests", 200, "concurrent requests in each burst")
	fs.DurationVar(&o.idpLatency, "idp-latency", 50*time.Millisecond, "how long the identity provider takes to answer")
	fs.DurationVar(&o.tokenLifetime, "token-lifetime", time.Hour, "how long the valid token stays valid; its session is cached that long")
	fs.DurationVar(&o.negativeTTL, "negative-ttl", 10*time.Second, "how long an invalid token is remembered as invalid")
	fs.StringVar(&o.db, "db", "", "SQLite `file` for the sessions table (default: a temporary file)")
	fs.StringVar(&o.mode, "mode", "", "run one `setup` only: direct or cache (default: both)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (every setting is a flag; see -h)", fs.Arg(0))
	}
	var errs []error
	if o.requests <= 0 {
		errs = append(errs, fmt.Errorf("-requests must be > 0 (got %d)", o.requests))
	}
	if o.idpLatency < 0 {
		errs = append(errs, fmt.Errorf("-idp-latency must not be negative (got %v)", o.idpLatency))
	}
	if o.tokenLifetime < time.Second {
		errs = append(errs, fmt.Errorf("-token-lifetime must be at least 1s (got %v): token expiry is in whole seconds", o.tokenLifetime))
	}
	if o.negativeTTL < 0 {
		errs = append(errs, fmt.Errorf("-negative-ttl must not be negative (got %v)", o.negativeTTL))
	}
	if o.mode != "" && o.mode != "direct" && o.mode != "cache" {
		errs = append(errs, fmt.Errorf("-mode must be direct or cache (got %q)", o.mode))
	}
	return o, errors.Join(errs...)
}

// run is the whole program; it returns the exit status: 0, 1 for a failed
// run, 2 for a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "idptoken: %s\n", strings.ReplaceAll(err.Error(), "\n", "\nidptoken: "))
		fmt.Fprintln(stderr, "Run idptoken -h for the flags.")
		return 2
	}
	if err := demo(ctx, o, stdout, slog.New(slog.NewTextHandler(stderr, nil))); err != nil {
		fmt.Fprintf(stderr, "idptoken: %v\n", err)
		return 1
	}
	return 0
}

// burstSpec is one burst of the demo.
type burstSpec struct {
	label string
	token string
}

var bursts = []burstSpec{
	{"valid", validToken},
	{"valid, again", validToken},
	{"invalid", invalidToken},
}

// demo runs the bursts through the setups and prints the table.
func demo(ctx context.Context, o options, stdout io.Writer, logger *slog.Logger) error {
	idp := newFakeIdP(o.idpLatency, time.Now)
	idp.issue(validToken, "alice", time.Now().Add(o.tokenLifetime))
	idpServer, err := startServer(idp, logger)
	if err != nil {
		return fmt.Errorf("starting the identity provider: %w", err)
	}
	defer idpServer.stop()

	sessions, err := openSessions(ctx, o.db)
	if err != nil {
		return err
	}
	defer sessions.close()

	// Enough idle connections that a burst reuses them rather than opening
	// new ones each time.
	transport := &http.Transport{MaxIdleConnsPerHost: o.requests}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	idp2 := &idpClient{url: idpServer.url + "/introspect", http: client}

	fmt.Fprintf(stdout, "bursts of %d concurrent GET /me, one bearer token each; the identity provider takes %v a call\n\n",
		o.requests, o.idpLatency)
	setups := []string{"direct", "cache"}
	if o.mode != "" {
		setups = []string{o.mode}
	}
	var rows []row
	for _, setup := range setups {
		var cfg *flightcache.Config
		if setup == "cache" {
			c := authConfig(o.negativeTTL, nil)
			cfg = &c
		}
		r, err := runSetup(ctx, setup, cfg, idp, idp2, sessions, client, o.requests, logger)
		if err != nil {
			return err
		}
		rows = append(rows, r...)
	}
	printTable(stdout, rows)
	return nil
}

// runSetup starts the service in one setup and fires the bursts at it.
func runSetup(ctx context.Context, setup string, cfg *flightcache.Config, idp *fakeIdP, idpc *idpClient,
	sessions *sessionStore, client *http.Client, requests int, logger *slog.Logger) ([]row, error) {
	auth, err := newAuthenticator(idpc, sessions, cfg, time.Now, logger)
	if err != nil {
		return nil, err
	}
	defer auth.Close()
	service, err := startServer(auth, logger)
	if err != nil {
		return nil, fmt.Errorf("starting the service: %w", err)
	}
	defer service.stop()

	var rows []row
	for _, b := range bursts {
		calls0 := idp.calls.Load()
		sessions0, err := sessions.count(ctx)
		if err != nil {
			return nil, err
		}
		res, err := burst(ctx, client, service.url+"/me", b.token, requests)
		if err != nil {
			return nil, fmt.Errorf("%s, %s token: %w", setup, b.label, err)
		}
		sessions1, err := sessions.count(ctx)
		if err != nil {
			return nil, err
		}
		rows = append(rows, row{
			setup: setup, token: b.label, result: res,
			idpCalls: idp.calls.Load() - calls0, newSessions: sessions1 - sessions0,
		})
	}
	return rows, nil
}

// burstResult is what one burst measured.
type burstResult struct {
	requests   int
	codes      map[int]int // status → responses
	sessionIDs int         // distinct session ids in the answers
	p50, p99   time.Duration
}

// burst sends n concurrent GETs of url with the bearer token. The
// goroutines are all started before any sends, so the requests overlap.
func burst(ctx context.Context, client *http.Client, url, token string, n int) (burstResult, error) {
	type answer struct {
		code    int
		session int64
		took    time.Duration
		err     error
	}
	answers := make([]answer, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			a := &answers[i]
			t0 := time.Now()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				a.err = err
				return
			}
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err != nil {
				a.err = err
				return
			}
			defer resp.Body.Close()
			var s Session
			if resp.StatusCode == http.StatusOK {
				a.err = json.NewDecoder(resp.Body).Decode(&s)
			} else {
				_, _ = io.Copy(io.Discard, resp.Body)
			}
			a.code, a.session, a.took = resp.StatusCode, s.ID, time.Since(t0)
		})
	}
	close(start)
	wg.Wait()

	res := burstResult{requests: n, codes: map[int]int{}}
	ids := map[int64]bool{}
	var took []time.Duration
	for _, a := range answers {
		if a.err != nil {
			return res, a.err
		}
		res.codes[a.code]++
		if a.session != 0 {
			ids[a.session] = true
		}
		took = append(took, a.took)
	}
	res.sessionIDs = len(ids)
	slices.Sort(took)
	res.p50, res.p99 = took[(len(took)-1)/2], took[(len(took)*99+99)/100-1]
	return res, nil
}

// row is one line of the table.
type row struct {
	setup, token string
	result       burstResult
	idpCalls     int64
	newSessions  int
}

func printTable(w io.Writer, rows []row) {
	const format = "%-6s %-13s %8v %9v %12v %11v %-9s %8v %8v\n"
	fmt.Fprintf(w, format, "setup", "token", "requests", "idp calls", "new sessions", "session ids", "answers", "p50", "p99")
	for _, r := range rows {
		var answers []string
		for _, code := range slices.Sorted(maps.Keys(r.result.codes)) {
			answers = append(answers, fmt.Sprintf("%d×%d", code, r.result.codes[code]))
		}
		fmt.Fprintf(w, format, r.setup, r.token, r.result.requests, r.idpCalls, r.newSessions, r.result.sessionIDs,
			strings.Join(answers, " "), r.result.p50.Round(100*time.Microsecond), r.result.p99.Round(100*time.Microsecond))
	}
}

// server is an HTTP server on a loopback port.
type server struct {
	url    string
	srv    *http.Server
	served chan struct{}
}

func startServer(h http.Handler, logger *slog.Logger) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{
		url:    "http://" + ln.Addr().String(),
		srv:    &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)},
		served: make(chan struct{}),
	}
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln) // http.ErrServerClosed once stopped
	}()
	return s, nil
}

// stop closes the server and waits for it.
func (s *server) stop() {
	_ = s.srv.Close()
	<-s.served
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
