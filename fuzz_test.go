package flightcache_test

// Fuzz tests of the reliability suite. Their seed corpora (the f.Add calls
// and testdata/fuzz/<name>/) run as ordinary tests with go test; longer
// runs (see RELIABILITY.md):
//
//	go test -run '^$' -fuzz '^FuzzConfigJSON$' -fuzztime 5m .
//	go test -run '^$' -fuzz '^FuzzNoCrossTalk$' -fuzztime 5m .

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flightcache/flightcache"
)

// FuzzNoCrossTalk (promise 5) checks that for two different keys a Loader
// never returns one's value (or not-found answer) for the other: plain
// strings, struct keys split at fuzzed points, keys of different types with
// equal string forms, and two Loaders named after the inputs sharing one
// store.
func FuzzNoCrossTalk(f *testing.F) {
	f.Add("a", "b", uint8(1), uint8(1), int64(1))
	f.Add("abc", "abc", uint8(1), uint8(2), int64(0)) // {"a","bc"} vs {"ab","c"}
	f.Add("1", "01", uint8(0), uint8(0), int64(1))
	f.Add("", "\x00", uint8(0), uint8(1), int64(-1))
	f.Add("a:b", "a", uint8(1), uint8(1), int64(7))
	f.Add("é", "\xc3\xa9", uint8(1), uint8(1), int64(233))
	f.Fuzz(func(t *testing.T, a, b string, i, j uint8, n int64) {
		notFound := func(k string) bool { return len(k)%4 == 0 }
		if a != b {
			relCrossTalkCheck(t, []string{a, b}, notFound)
		}
		pa := relPair{a[:int(i)%(len(a)+1)], a[int(i)%(len(a)+1):]}
		pb := relPair{b[:int(j)%(len(b)+1)], b[int(j)%(len(b)+1):]}
		if pa != pb {
			relCrossTalkCheck(t, []relPair{pa, pb}, func(k relPair) bool { return notFound(k.A + k.B) })
		}
		var anys []any
		for _, k := range []any{a, b, relName(a), n, uint64(n), float64(n), strconv.FormatInt(n, 10), pa, pb} {
			if !slices.Contains(anys, k) {
				anys = append(anys, k)
			}
		}
		relCrossTalkCheck(t, anys, func(k any) bool { return notFound(relRender(k)) })

		if a != b { // two Loaders named a and b over one store
			store := newSharedStore(newClock())
			var loaders []*flightcache.Loader[string, string]
			for id, name := range []string{a, b} {
				l, err := flightcache.New(func(ctx context.Context, key string) (string, error) {
					return name + "/" + key, nil
				}, flightcache.Config{Name: name, Mode: flightcache.ModeCache, MaxEntries: 10, TTL: time.Hour, Clock: store.clock},
					flightcache.WithRemote[string, string](&relNSRemote{fakeRemote: &fakeRemote{s: store, id: id}, ns: name}))
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				loaders = append(loaders, l)
			}
			for round := range 2 {
				for k, l := range loaders {
					name := []string{a, b}[k]
					for _, key := range []string{a, b, ""} {
						if v, err := l.Get(context.Background(), key); err != nil || v != name+"/"+key {
							t.Fatalf("round %d: Loader %q Get(%q) = %q, %v", round, name, key, v, err)
						}
					}
				}
				loaders[0].Invalidate(b)
			}
		}
	})
}

// relConfigNames are the names an error about a Config may use for a field:
// the Go field names and their JSON keys.
func relConfigNames() []string {
	var names []string
	rt := reflect.TypeFor[flightcache.Config]()
	for i := range rt.NumField() {
		names = append(names, rt.Field(i).Name)
		if tag, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ","); tag != "" && tag != "-" {
			names = append(names, tag)
		}
	}
	return names
}

// relNamesField reports whether msg names a Config field.
func relNamesField(msg string, names []string) bool {
	for _, n := range names {
		if strings.Contains(msg, n) {
			return true
		}
	}
	return false
}

// FuzzConfigJSON (promise 9) decodes arbitrary bytes into a Config: never a
// panic; a decoding error is an encoding/json syntax error or starts with
// "flightcache:" and names the field; a decoded Config that Validate
// rejects gets an error wrapping ErrInvalidConfig for each problem, naming
// its field; one it accepts is accepted by New (or rejected with an error
// naming a field), works, closes, and survives a JSON round trip unchanged.
func FuzzConfigJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `null`, `[]`, `"cache"`, `0`,
		`{"mode": "cache", "max_entries": 10000, "ttl": "30s"}`,
		`{"mode":"cache","max_entries":1,"ttl":"1ns","stale_ttl":"2562047h47m16.854775807s","negative_ttl":"5s","jitter":1,"early_refresh":true,"early_refresh_beta":0.5}`,
		`{"mode":"flight","fetch_timeout":"1ns","max_concurrent_fetches":1,"max_batch_size":3,"batch_window":"1ms"}`,
		`{"mode":"cache","max_entries":9223372036854775807,"remote_ttl":"1h","remote_negative_ttl":"1m","remote_lease_timeout":"1s","disable_remote":true}`,
		`{"mode":"CACHE","max_entries":-1,"ttl":"-1s","jitter":1.5,"early_refresh_beta":-1}`,
		`{"mode":"lru"}`, `{"mode":5}`, `{"ttl":30}`, `{"ttl":0}`, `{"ttl":"30"}`, `{"ttl":null}`,
		`{"max_entries":1e300}`, `{"max_entries":"10"}`, `{"name":["x"]}`, `{"jitter":"0.1"}`,
		`{"ttl":"9223372036854775807ns"}`, `{"ttl":"9223372036854775808ns"}`, `{"ttl":"-9223372036854775808ns"}`,
		`{"TTL":"1s","Mode":"cache","MaxEntries":3}`, `{"name":"\u00e9\ud800"}`, `{"mode":"cache"`,
	} {
		f.Add([]byte(s))
	}
	names := relConfigNames()
	f.Fuzz(func(t *testing.T, data []byte) {
		var cfg flightcache.Config
		if err := json.Unmarshal(data, &cfg); err != nil {
			var syntax *json.SyntaxError
			switch {
			case errors.As(err, &syntax):
			case !strings.HasPrefix(err.Error(), "flightcache:"):
				t.Fatalf("decoding %q: error %q neither starts with \"flightcache:\" nor is a syntax error", data, err)
			case isJSONObject(data) && !relNamesField(err.Error(), names):
				t.Fatalf("decoding %q: error %q names no field", data, err)
			}
			return
		}
		verr := cfg.Validate()
		if verr != nil {
			if !errors.Is(verr, flightcache.ErrInvalidConfig) {
				t.Fatalf("Validate(%q) = %v: does not wrap ErrInvalidConfig", data, verr)
			}
			for line := range strings.Lines(verr.Error()) {
				if !strings.HasPrefix(line, "flightcache: invalid config: ") || !relNamesField(line, names) {
					t.Fatalf("Validate(%q): problem %q does not start with \"flightcache: invalid config: \" or names no field", data, line)
				}
			}
		}
		fetch := func(ctx context.Context, key string) (string, error) { return "v:" + key, nil }
		batch := func(ctx context.Context, keys []string) (map[string]string, error) {
			out := map[string]string{}
			for _, k := range keys {
				out[k] = "v:" + k
			}
			return out, nil
		}
		for _, opts := range [][]flightcache.Option[string, string]{
			nil,
			{flightcache.WithBatch(batch)},
			{flightcache.WithRemote[string, string](&fakeRemote{s: newSharedStore(newClock())})},
		} {
			l, err := flightcache.New(fetch, cfg, opts...)
			if err != nil {
				if verr == nil && (!errors.Is(err, flightcache.ErrInvalidConfig) || !relNamesField(err.Error(), names)) {
					t.Fatalf("New(%q) rejected a valid Config with %q, which names no field", data, err)
				}
				if verr != nil && !errors.Is(err, flightcache.ErrInvalidConfig) {
					t.Fatalf("New(%q) = %v, want ErrInvalidConfig", data, err)
				}
				continue
			}
			if verr != nil {
				t.Fatalf("New(%q) accepted a Config that Validate rejects: %v", data, verr)
			}
			if cfg.BatchWindow <= 10*time.Millisecond { // a lone Get waits up to the window
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				v, err := l.Get(ctx, "k")
				cancel()
				if err == nil && v != "v:k" || err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
					t.Fatalf("New(%q): Get = %q, %v", data, v, err)
				}
				l.GetMany(context.Background(), []string{"a", "b"})
			}
			l.Set("k", "w")
			l.Invalidate("k")
			reg := prometheus.NewPedanticRegistry()
			if err := reg.Register(flightcache.NewCollector(l)); err != nil {
				t.Fatalf("New(%q): registering its collector: %v", data, err)
			}
			if _, err := reg.Gather(); err != nil {
				t.Fatalf("New(%q): gathering its metrics: %v", data, err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if verr != nil {
			return
		}
		out, err := json.Marshal(cfg)
		if err != nil {
			t.Fatalf("Marshal of the Config decoded from %q: %v", data, err)
		}
		var back flightcache.Config
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q decoded, encoded as %s, which does not decode: %v", data, out, err)
		}
		if !reflect.DeepEqual(cfg, back) {
			t.Fatalf("round trip of %q through %s: %+v became %+v", data, out, cfg, back)
		}
	})
}

// isJSONObject reports whether data is a JSON object (after white space).
func isJSONObject(data []byte) bool {
	s := strings.TrimLeft(string(data), " \t\r\n")
	return strings.HasPrefix(s, "{")
}

// TestConfigJSONNonObject: a configuration that is not a JSON object at
// all (a list, a string, a number) is rejected with a message that says so
// in the Config's terms: not an empty field name and the name of an
// unexported type ("flightcache: : cannot use a JSON array as
// flightcache.configJSON").
func TestConfigJSONNonObject(t *testing.T) {
	relSkipKnown(t, "config-json-non-object")
	for _, in := range []string{`[]`, `["cache"]`, `"cache"`, `10000`, `true`} {
		var cfg flightcache.Config
		err := json.Unmarshal([]byte(in), &cfg)
		if err == nil {
			t.Errorf("%s: accepted", in)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "flightcache: ") || strings.HasPrefix(msg, "flightcache: : ") || strings.Contains(msg, "configJSON") {
			t.Errorf("%s: error %q: want a flightcache message that names no internal type and no empty field", in, msg)
		}
	}
}
