package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/flightcache/flightcache"
)

// envPrefix starts the environment variable of every flag: -negative-ttl
// is FLIGHTCACHE_NEGATIVE_TTL.
const envPrefix = "FLIGHTCACHE_"

// settings is the service's whole configuration.
type settings struct {
	addr            string
	dsn             string
	table           string
	users           int
	latency         time.Duration
	shutdownTimeout time.Duration
	configFile      string

	// loader goes to flightcache.New as it is: the mode and every TTL are
	// configuration, not code.
	loader flightcache.Config
}

// defaultLoaderConfig is the Loader configuration before the config file,
// the environment and the flags. Its mode is the zero value, flight; the
// sizes and TTLs take effect once the mode is switched to cache.
func defaultLoaderConfig() flightcache.Config {
	return flightcache.Config{
		Name:         "users",
		MaxEntries:   10_000,
		TTL:          30 * time.Second,
		NegativeTTL:  5 * time.Second,
		MaxBatchSize: maxIDs, // one query for the ids of a GET /users the Loader lacks
	}
}

// kind tells how a setting's text becomes JSON for flightcache.Config.
type kind int

const (
	text    kind = iota // strings, durations, the mode: a JSON string
	integer             // a JSON number with no fraction
	number              // any JSON number
	boolean             // true or false
)

// setting is one flag with its environment variable.
type setting struct {
	name  string // the flag name; the variable is envPrefix + NAME with _ for -
	usage string
	def   string // the default, for the help only

	// Exactly one of these is set. service fields are parsed by apply;
	// loader fields are written into flightcache.Config through its own
	// JSON decoding, under the key jsonKey, exactly as a config file is.
	apply   func(s *settings, v string) error
	jsonKey string
	kind    kind

	value string // from the command line
	set   bool   // the flag was given
}

func (st *setting) env() string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(st.name, "-", "_"))
}

// String and Set implement flag.Value. String reports the default, which
// is what flag.PrintDefaults shows.
func (st *setting) String() string { return st.def }

// IsBoolFlag lets a boolean flag stand alone: -early-refresh is
// -early-refresh=true.
func (st *setting) IsBoolFlag() bool { return st.kind == boolean }

func (st *setting) Set(v string) error {
	st.value, st.set = v, true
	return nil
}

// newSettings lists every setting. The loader ones mirror the fields of
// flightcache.Config that a configuration file may hold.
func newSettings() []*setting {
	d := defaultLoaderConfig()
	return []*setting{
		{name: "addr", def: "127.0.0.1:8080", usage: "listen on this `address`",
			apply: func(s *settings, v string) error { s.addr = v; return nil }},
		{name: "dsn", usage: "the `database`: empty for SQLite in a temporary file, postgres://... for PostgreSQL,\nor the path of a SQLite file",
			apply: func(s *settings, v string) error { s.dsn = v; return nil }},
		{name: "table", def: "flightcache_users", usage: "the users `table`, created if missing",
			apply: func(s *settings, v string) error { s.table = v; return nil }},
		{name: "users", def: "1000", usage: "make sure users 1 to `n` exist (0: seed nothing)",
			apply: func(s *settings, v string) (err error) { s.users, err = parseInt(v); return err }},
		{name: "latency", usage: "add this `duration` to every database query (a demo of a slow database)",
			apply: func(s *settings, v string) (err error) { s.latency, err = time.ParseDuration(v); return err }},
		{name: "shutdown-timeout", def: "10s", usage: "on SIGINT or SIGTERM, let in-flight requests run for this `duration`",
			apply: func(s *settings, v string) (err error) { s.shutdownTimeout, err = time.ParseDuration(v); return err }},
		{name: "config", usage: "read the Loader configuration from this JSON or YAML `file` (flightcache.Config keys:\nmode, ttl, max_entries, ...); the environment and the flags override it",
			apply: func(s *settings, v string) error { s.configFile = v; return nil }},

		{name: "name", jsonKey: "name", def: d.Name, usage: "the Loader's `name`, the loader label of its metrics"},
		{name: "mode", jsonKey: "mode", def: d.Mode.String(), usage: "the Loader's `mode`: flight (share concurrent lookups, keep nothing) or cache (also keep results)"},
		{name: "max-entries", jsonKey: "max_entries", kind: integer, def: strconv.Itoa(d.MaxEntries), usage: "cache mode: keep at most `n` users"},
		{name: "ttl", jsonKey: "ttl", def: d.TTL.String(), usage: "cache mode: serve a user from the cache for this `duration` (0: until evicted)"},
		{name: "stale-ttl", jsonKey: "stale_ttl", usage: "cache mode: after the TTL, serve the old user for this `duration` while it is refreshed"},
		{name: "negative-ttl", jsonKey: "negative_ttl", def: d.NegativeTTL.String(), usage: "cache mode: answer a missing user 404 without a query for this `duration`"},
		{name: "jitter", jsonKey: "jitter", kind: number, usage: "cache mode: spread each TTL by ± this `fraction` of it"},
		{name: "early-refresh", jsonKey: "early_refresh", kind: boolean, usage: "cache mode: refresh hot users shortly before they expire"},
		{name: "fetch-timeout", jsonKey: "fetch_timeout", usage: "bound each database lookup to this `duration` (0: no bound)"},
		{name: "max-concurrent-fetches", jsonKey: "max_concurrent_fetches", kind: integer, usage: "run at most `n` database lookups at once (0: no bound)"},
		{name: "max-batch-size", jsonKey: "max_batch_size", kind: integer, def: strconv.Itoa(d.MaxBatchSize), usage: "ask the database for at most `n` users per batch query (0: no bound)"},
		{name: "batch-window", jsonKey: "batch_window", usage: "collect single-user lookups that start within this `duration` into one batch query (0: off)"},
	}
}

func parseInt(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("want an integer, got %q", v)
	}
	return n, nil
}

// loadSettings builds the configuration from, in increasing precedence,
// the defaults, the config file (-config or FLIGHTCACHE_CONFIG), the
// environment (getenv) and the flags (args). Every error names where the
// bad value came from. -h prints the help and returns flag.ErrHelp.
func loadSettings(args []string, getenv func(string) string, stderr io.Writer) (settings, error) {
	list := newSettings()
	fs := flag.NewFlagSet("httpservice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, st := range list {
		usage := st.usage + " (env " + st.env() + ")"
		fs.Var(st, st.name, usage)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: httpservice [flags]

httpservice serves users from a database through a flightcache Loader:

  GET /users/{id}  the user as JSON; 404 if there is none, 400 for a malformed
                   id, 503 when the database does not answer
  GET /users?ids=1,2,3
                   {"users": {...}, "missing": [...]}: the users found and the
                   ids with none, with one database query for the ids not
                   cached; 400 for a malformed id or more than %d ids, 503
                   when the database does not answer
  GET /metrics     Prometheus metrics: the Loader's, Go's and the process's
  GET /healthz     200 when the database answers a ping, 503 when not

Every flag can also be set by the environment variable named after it
(FLIGHTCACHE_MODE=cache is -mode cache). Precedence, lowest first: defaults,
the -config file, the environment, the flags. Switching between flight and
cache mode is a configuration change: FLIGHTCACHE_MODE=cache.

It stops on SIGINT or SIGTERM, letting the requests in flight finish.

Flags:
`, maxIDs)
		fs.PrintDefaults()
	}

	s := settings{loader: defaultLoaderConfig()}
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("unexpected argument %q (every setting is a flag; see -h)", fs.Arg(0))
	}

	// The service settings' defaults, then the config file the environment
	// or a flag names.
	for _, st := range list {
		if st.apply != nil && st.def != "" {
			if err := st.apply(&s, st.def); err != nil {
				panic(fmt.Sprintf("bad default of -%s: %v", st.name, err)) // a bug in this file
			}
		}
	}
	configFile := getenv(envPrefix + "CONFIG")
	for _, st := range list {
		if st.name == "config" && st.set {
			configFile = st.value
		}
	}
	if configFile != "" {
		if err := readConfigFile(configFile, &s.loader); err != nil {
			return s, err
		}
	}

	var errs []error
	for _, layer := range []string{"env", "flag"} {
		for _, st := range list {
			v, source, ok := "", "", false
			if layer == "env" {
				v = getenv(st.env())
				source, ok = st.env()+"="+strconv.Quote(v), v != ""
			} else {
				v, ok = st.value, st.set
				source = "-" + st.name + " " + strconv.Quote(v)
			}
			if !ok {
				continue
			}
			if err := st.assign(&s, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", source, err))
			}
		}
	}
	s.configFile = configFile
	if err := errors.Join(errs...); err != nil {
		return s, err
	}

	if s.users < 0 {
		errs = append(errs, fmt.Errorf("-users must not be negative (got %d)", s.users))
	}
	if s.latency < 0 {
		errs = append(errs, fmt.Errorf("-latency must not be negative (got %v)", s.latency))
	}
	if s.shutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("-shutdown-timeout must be > 0 (got %v)", s.shutdownTimeout))
	}
	if err := s.loader.Validate(); err != nil {
		errs = append(errs, err)
	}
	return s, errors.Join(errs...)
}

// assign sets the setting to v: a service field through apply, a Loader
// field through flightcache.Config's JSON decoding, so that a flag, a
// variable and a config file accept the same values.
func (st *setting) assign(s *settings, v string) error {
	if st.apply != nil {
		return st.apply(s, v)
	}
	var raw []byte
	switch st.kind {
	case text:
		raw, _ = json.Marshal(v)
	case integer:
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return fmt.Errorf("want an integer")
		}
		raw = []byte(v)
	case number:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("want a number")
		}
		raw, _ = json.Marshal(f)
	case boolean:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		raw, _ = json.Marshal(b)
	}
	doc, _ := json.Marshal(map[string]json.RawMessage{st.jsonKey: raw})
	return json.Unmarshal(doc, &s.loader)
}

// readConfigFile decodes a JSON (.json) or YAML (.yaml, .yml) file into
// cfg. Keys it does not hold keep their values; an unknown key is an error,
// so that a misspelt setting is not silently ignored.
func readConfigFile(path string, cfg *flightcache.Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".json":
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(data, &keys); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
		known := configKeys()
		for k := range keys {
			if !slices.Contains(known, k) {
				return fmt.Errorf("config file %s: unknown key %q (known: %s)", path, k, strings.Join(known, ", "))
			}
		}
		if err := json.Unmarshal(data, cfg); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
	case ".yaml", ".yml":
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("config file %s: %w", path, err)
		}
	default:
		return fmt.Errorf("config file %s: want a .json, .yaml or .yml file, not %q", path, ext)
	}
	return nil
}

// configKeys returns the JSON keys of flightcache.Config, read from its
// struct tags.
func configKeys() []string {
	var keys []string
	t := reflect.TypeFor[flightcache.Config]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}
