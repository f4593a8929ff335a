package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flightcache/flightcache"
	"github.com/flightcache/flightcache/examples/internal/testdb"
	"github.com/flightcache/flightcache/examples/internal/userdb"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSettingsDefaults(t *testing.T) {
	s, err := loadSettings(nil, mapEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := settings{
		addr: "127.0.0.1:8080", table: "flightcache_users", users: 1000, shutdownTimeout: 10 * time.Second,
		loader: flightcache.Config{Name: "users", Mode: flightcache.ModeFlight, MaxEntries: 10_000, TTL: 30 * time.Second, NegativeTTL: 5 * time.Second, MaxBatchSize: 100},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", s, want)
	}
}

// TestSettingsPrecedence: defaults < config file < environment < flags, for
// JSON and YAML files alike.
func TestSettingsPrecedence(t *testing.T) {
	files := map[string]string{
		"cfg.json": `{"mode": "cache", "ttl": "1m", "max_entries": 50, "negative_ttl": "2s", "jitter": 0.1, "max_batch_size": 20, "batch_window": "1ms"}`,
		"cfg.yaml": "mode: cache\nttl: 1m\nmax_entries: 50\nnegative_ttl: 2s\njitter: 0.1\nmax_batch_size: 20\nbatch_window: 1ms\n",
	}
	for name, content := range files {
		t.Run(name, func(t *testing.T) {
			path := writeFile(t, name, content)
			env := map[string]string{
				"FLIGHTCACHE_CONFIG":       path,
				"FLIGHTCACHE_TTL":          "2m",  // beats the file
				"FLIGHTCACHE_MAX_ENTRIES":  "60",  // beaten by the flag
				"FLIGHTCACHE_ADDR":         ":81", // beaten by the flag
				"FLIGHTCACHE_USERS":        "5",
				"FLIGHTCACHE_BATCH_WINDOW": "2ms", // beats the file
			}
			args := []string{"-max-entries", "70", "-addr", ":82", "-early-refresh", "-fetch-timeout", "3s", "-max-batch-size", "30"}
			s, err := loadSettings(args, mapEnv(env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			want := flightcache.Config{
				Name: "users", Mode: flightcache.ModeCache, MaxEntries: 70, TTL: 2 * time.Minute,
				NegativeTTL: 2 * time.Second, Jitter: 0.1, EarlyRefresh: true, FetchTimeout: 3 * time.Second,
				MaxBatchSize: 30, BatchWindow: 2 * time.Millisecond,
			}
			if !reflect.DeepEqual(s.loader, want) {
				t.Errorf("loader config:\n got %+v\nwant %+v", s.loader, want)
			}
			if s.addr != ":82" || s.users != 5 || s.configFile != path {
				t.Errorf("addr %q users %d config %q; want :82, 5, %q", s.addr, s.users, s.configFile, path)
			}
		})
	}
}

func TestSettingsErrors(t *testing.T) {
	bad := writeFile(t, "bad.json", `{"mode": "turbo"}`)
	typo := writeFile(t, "typo.json", `{"mode": "cache", "max_entry": 5}`)
	yamlTypo := writeFile(t, "typo.yaml", "mode: cache\nmax_entry: 5\n")
	yamlNumber := writeFile(t, "n.yml", "ttl: 30\n")
	toml := writeFile(t, "c.toml", "mode = 'cache'")
	tests := []struct {
		args []string
		env  map[string]string
		want []string
	}{
		{[]string{"-mode", "turbo"}, nil, []string{`-mode "turbo": flightcache: unknown mode "turbo"`}},
		{nil, map[string]string{"FLIGHTCACHE_TTL": "soon"}, []string{`FLIGHTCACHE_TTL="soon": flightcache: ttl: time: invalid duration "soon"`}},
		{[]string{"-max-entries", "many"}, nil, []string{`-max-entries "many": want an integer`}},
		{[]string{"-jitter", "lots"}, nil, []string{`-jitter "lots": want a number`}},
		{[]string{"-early-refresh=maybe"}, nil, []string{`-early-refresh "maybe": want true or false`}},
		{[]string{"-users", "x", "-latency", "-1s"}, nil, []string{`-users "x": want an integer, got "x"`}},
		{[]string{"-latency", "-1s", "-shutdown-timeout", "0s"}, nil, []string{"-latency must not be negative (got -1s)", "-shutdown-timeout must be > 0 (got 0s)"}},
		{[]string{"-mode", "cache", "-max-entries", "0"}, nil, []string{"flightcache: invalid config: MaxEntries must be > 0 in cache mode (got 0)"}},
		{[]string{"-jitter", "2", "-ttl", "-1s"}, nil, []string{"Jitter must be a fraction in [0, 1] (got 2)", "TTL must not be negative (got -1s)"}},
		{[]string{"-max-batch-size", "-1"}, map[string]string{"FLIGHTCACHE_BATCH_WINDOW": "-1ms"}, []string{"MaxBatchSize must not be negative (got -1)", "BatchWindow must not be negative (got -1ms)"}},
		{nil, map[string]string{"FLIGHTCACHE_MAX_BATCH_SIZE": "lots"}, []string{`FLIGHTCACHE_MAX_BATCH_SIZE="lots": want an integer`}},
		{[]string{"-config", bad}, nil, []string{"config file " + bad + `: flightcache: unknown mode "turbo"`}},
		{[]string{"-config", typo}, nil, []string{"config file " + typo + `: unknown key "max_entry" (known: name, mode, max_entries,`}},
		{[]string{"-config", yamlTypo}, nil, []string{"config file " + yamlTypo + ": yaml: unmarshal errors:", "field max_entry not found"}},
		{[]string{"-config", yamlNumber}, nil, []string{"config file " + yamlNumber + ": yaml: unmarshal errors:"}},
		{[]string{"-config", toml}, nil, []string{"config file " + toml + `: want a .json, .yaml or .yml file, not ".toml"`}},
		{nil, map[string]string{"FLIGHTCACHE_CONFIG": "/no/such/file.json"}, []string{"config file: open /no/such/file.json: no such file or directory"}},
		{[]string{"serve"}, nil, []string{`unexpected argument "serve"`}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.args, tt.env), func(t *testing.T) {
			_, err := loadSettings(tt.args, mapEnv(tt.env), io.Discard)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	if _, err := loadSettings([]string{"-h"}, mapEnv(nil), &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: error %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{
		"Usage: httpservice [flags]",
		"GET /users/{id}",
		"-mode mode\n",
		"(env FLIGHTCACHE_MODE) (default flight)",
		"-negative-ttl duration",
		"(env FLIGHTCACHE_NEGATIVE_TTL) (default 5s)",
		"GET /users?ids=1,2,3",
		"more than 100 ids",
		"-max-batch-size n",
		"(env FLIGHTCACHE_MAX_BATCH_SIZE) (default 100)",
		"-batch-window duration",
		"(env FLIGHTCACHE_BATCH_WINDOW)",
		"-config file",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, stderr.String())
		}
	}
	if code := run(t.Context(), []string{"-help"}, mapEnv(nil), io.Discard, nil); code != 0 {
		t.Errorf("run -help: exit status %d, want 0", code)
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-mode", "turbo"}, 2, `httpservice: -mode "turbo": flightcache: unknown mode "turbo"`},
		{[]string{"-dsn", "postgres://postgres:secret@127.0.0.1:1/test"}, 1, "httpservice: userdb: PostgreSQL postgres://postgres:xxxxx@127.0.0.1:1/test is unreachable"},
		{[]string{"-addr", "127.0.0.1:-1"}, 1, "httpservice: -addr 127.0.0.1:-1: listen tcp"},
		{[]string{"-table", "users;"}, 1, `httpservice: userdb: table name "users;" is not a plain SQL identifier`},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		if code := run(t.Context(), tt.args, mapEnv(nil), &stderr, nil); code != tt.code {
			t.Errorf("%v: exit status %d, want %d", tt.args, code, tt.code)
		}
		if got := stderr.String(); !strings.Contains(got, tt.want) || strings.Contains(got, "secret") || strings.Contains(got, "goroutine ") {
			t.Errorf("%v: stderr %q, want %q and no password nor stack", tt.args, got, tt.want)
		}
	}
}

// TestRun starts the whole program on each backend with its configuration
// in the environment, asks it for users over HTTP, and stops it by
// cancelling its context, as SIGTERM does.
func TestRun(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		env := map[string]string{"FLIGHTCACHE_MODE": "cache", "FLIGHTCACHE_USERS": "20"}
		args := []string{"-addr", "127.0.0.1:0"}
		if backend == "postgres" {
			table := testdb.UniqueTable(t, "fc_test_httpservice")
			dsn := testdb.PostgresDSN(t)
			args = append(args, "-dsn", dsn, "-table", table)
			t.Cleanup(func() { dropTable(t, dsn, table) })
		} else {
			args = append(args, "-dsn", filepath.Join(t.TempDir(), "users.db"))
		}
		ctx, cancel := context.WithCancel(t.Context())
		addrs := make(chan net.Addr, 1)
		exited := make(chan int, 1)
		var stderr bytes.Buffer
		go func() { exited <- run(ctx, args, mapEnv(env), &stderr, func(a net.Addr) { addrs <- a }) }()
		var base string
		select {
		case a := <-addrs:
			base = "http://" + a.String()
		case code := <-exited:
			t.Fatalf("exited with %d before listening: %s", code, stderr.String())
		}

		client := &http.Client{Transport: &http.Transport{}}
		defer client.CloseIdleConnections()
		fetch := func(path string) (int, string) {
			resp, err := client.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body)
		}
		for range 2 {
			if code, body := fetch("/users/20"); code != http.StatusOK || !strings.Contains(body, `"email":"user20@example.com"`) {
				t.Errorf("GET /users/20 = %d %q", code, body)
			}
		}
		if code, _ := fetch("/users/21"); code != http.StatusNotFound {
			t.Errorf("GET /users/21 = %d, want 404", code)
		}
		// 20 is cached, 21 cached as missing: only 19 is queried.
		if code, body := fetch("/users?ids=19,20,21"); code != http.StatusOK ||
			!strings.Contains(body, `"19":{"id":19,`) || !strings.Contains(body, `"20":{"id":20,`) || !strings.HasSuffix(body, `"missing":[21]}`+"\n") {
			t.Errorf("GET /users?ids=19,20,21 = %d %q", code, body)
		}
		_, metrics := fetch("/metrics")
		for _, want := range []string{`flightcache_loads_total{loader="users"} 3`, `flightcache_hits_total{loader="users"} 3`, `flightcache_batch_loads_total{loader="users"} 1`} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
		client.CloseIdleConnections()

		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("exit status %d after a clean shutdown; stderr:\n%s", code, stderr.String())
		}
		for _, want := range []string{"msg=\"serving users\"", "mode=cache", "msg=\"shutting down", "msg=stopped"} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, stderr.String())
			}
		}
	})
}

// dropTable removes a table that run created in the test PostgreSQL.
func dropTable(t *testing.T, dsn, table string) {
	ctx := context.Background() // t.Context() has ended by cleanup time
	store, err := userdb.Open(ctx, userdb.Options{DSN: dsn, Table: table})
	if err != nil {
		t.Error(err)
		return
	}
	defer store.Close()
	if err := store.Drop(ctx); err != nil {
		t.Error(err)
	}
}
