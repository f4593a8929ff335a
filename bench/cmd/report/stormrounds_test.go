package main

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// stormPass writes one pass's rounds as bench.WriteStormRounds does.
func stormPass(t *testing.T, dir, name string, rows map[string][]int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("round,library,release_ns\n")
	for _, lib := range []string{"flightcache-flight", "flightcache", "singleflight", "ristretto+sf"} {
		for i, v := range rows[lib] {
			b.WriteString(strings.Join([]string{strconv.Itoa(i), lib, strconv.Itoa(v)}, ",") + "\n")
		}
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// testStorm is two passes of three rounds: singleflight is 10% slower
// than flightcache in every round; ristretto+sf is ahead in some rounds
// and behind in others (ratios 1.111, 0.952, 0.968 / 1.053, 0.962, 1.017).
func testStorm(t *testing.T, dir string) []string {
	return []string{
		stormPass(t, dir, "p0.csv", map[string][]int{
			"flightcache-flight": {100, 200, 300}, "flightcache": {100, 200, 300},
			"singleflight": {110, 220, 330}, "ristretto+sf": {90, 210, 310},
		}),
		stormPass(t, dir, "p1.csv", map[string][]int{
			"flightcache-flight": {400, 500, 600}, "flightcache": {400, 500, 600},
			"singleflight": {440, 550, 660}, "ristretto+sf": {380, 520, 590},
		}),
	}
}

func TestStormRounds(t *testing.T) {
	dir := t.TempDir()
	s, err := readStormRounds(testStorm(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if m := s.median("flightcache"); m.n != 6 || m.center != 350 || m.lo != 100 || m.hi != 600 {
		t.Errorf("median of flightcache: %+v, want 350 over 6 rounds, interval 100–600", m)
	}
	if p := s.paired("flightcache", "singleflight"); p.n != 6 || math.Abs(p.center-1/1.1) > 1e-9 {
		t.Errorf("flightcache / singleflight: %+v, want 0.909 over 6 rounds", p)
	}
	p := s.paired("flightcache", "ristretto+sf")
	if want := (300.0/310 + 600.0/590) / 2; p.n != 6 || math.Abs(p.center-want) > 1e-9 || p.lo != 200.0/210 || p.hi != 100.0/90 {
		t.Errorf("flightcache / ristretto+sf: %+v, want median %.4f, interval %.4f–%.4f", p, want, 200.0/210, 100.0/90)
	}
	if p := s.paired("flightcache", "otter"); p.ok() {
		t.Errorf("a ratio to a library with no rounds: %+v", p)
	}
	var nilRounds *stormRounds
	if nilRounds.median("flightcache").ok() || nilRounds.paired("flightcache", "otter").ok() {
		t.Error("no storm, yet a median or a ratio")
	}

	joined := filepath.Join(dir, "storm-rounds.csv")
	if err := writeStormCSV(joined, testStorm(t, dir)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(joined)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 1+2*12 || lines[0] != "pass,round,library,release_ns" || !strings.Contains(string(b), "\n1,2,ristretto+sf,590\n") {
		t.Errorf("joined CSV:\n%s", b)
	}
}

func TestStormRoundsBadInput(t *testing.T) {
	dir := t.TempDir()
	good := testStorm(t, dir)
	for name, body := range map[string]string{
		"header":    "round,lib,ns\n0,flightcache,100\n",
		"fields":    "round,library,release_ns\n0,flightcache\n",
		"order":     "round,library,release_ns\n1,flightcache,100\n",
		"number":    "round,library,release_ns\n0,flightcache,fast\n",
		"empty":     "round,library,release_ns\n",
		"unequal":   "round,library,release_ns\n0,flightcache,100\n1,flightcache,100\n0,singleflight,100\n",
		"otherlibs": "round,library,release_ns\n0,flightcache,100\n",
	} {
		path := filepath.Join(dir, name+".csv")
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		paths := []string{path}
		if name == "otherlibs" {
			paths = []string{good[0], path}
		}
		if _, err := readStormRounds(paths); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := readStormRounds([]string{filepath.Join(dir, "missing.csv")}); err == nil {
		t.Error("a missing file: no error")
	}
}
