// Command report runs every workload of the flightcache benchmark harness
// against flightcache and its peers, in one go, and writes the results:
//
//	cd bench && go run ./cmd/report          # 7–8 minutes on 2 cores
//	go run ./bench/cmd/report                # the same, from the repository root (go.work)
//
// It builds the bench package's test binary once, runs the benchmarks
// phase by phase (printing the raw `go test -bench` lines as they come and
// keeping them in results/bench.txt, which benchstat reads), summarises them
// with benchstat (results/benchstat.txt), and writes RESULTS.md, with a
// verdict on each target of issue 7, and results/hit-path.png.
//
// Flags:
//
//	-count N       samples of the timed benchmarks (default 6, benchstat's minimum for a confidence interval)
//	-benchtime D   length of each timed sample (default 500ms)
//	-stampede D    timed length of each expiry stampede (default 3s)
//	-quick         a fast trial run (a minute): fewer, shorter samples
//	-profile       also write CPU profiles of flightcache's hit, miss and flight paths to results/
//	-only REGEXP   run only the phases whose names match (hit, overhead, mixed, ratio, storm, stampede, memory, cancel)
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// phase is one run of the test binary.
type phase struct {
	name string
	runs [][]string // the test binary's arguments, one process each
}

func main() {
	var (
		count     = flag.Int("count", 6, "samples of each timed benchmark")
		benchtime = flag.Duration("benchtime", 500*time.Millisecond, "length of each timed sample")
		stampede  = flag.Duration("stampede", 3*time.Second, "timed length of each expiry stampede")
		quick     = flag.Bool("quick", false, "a fast trial run: fewer and shorter samples")
		profile   = flag.Bool("profile", false, "also write CPU profiles of flightcache's hit, miss and flight paths")
		only      = flag.String("only", "", "run only the phases whose names match this regexp")
	)
	flag.Parse()
	if err := run(*count, *benchtime, *stampede, *quick, *profile, *only); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(count int, benchtime, stampedeFor time.Duration, quick, profile bool, only string) error {
	began := time.Now()
	loadBefore := loadAvg()
	dir, err := benchDir()
	if err != nil {
		return err
	}
	stormRounds, stormPasses, memCount, cancelCount := 20, 9, 3, 5
	if quick {
		count, benchtime, stampedeFor = 1, 100*time.Millisecond, 500*time.Millisecond
		stormRounds, stormPasses, memCount, cancelCount = 3, 1, 1, 1
	}
	keep, err := regexp.Compile(only)
	if err != nil {
		return err
	}
	out := filepath.Join(dir, "results")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "flightcache-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	exe := filepath.Join(tmp, "bench.test")
	fmt.Fprintf(os.Stderr, "report: building the test binary of %s\n", dir)
	if err := goCmd(dir, os.Stderr, "test", "-c", "-o", exe, "."); err != nil {
		return fmt.Errorf("building the benchmarks: %w", err)
	}

	c, bt := fmt.Sprint(count), benchtime.String()
	timed := func(bench, cpu string) []string {
		return []string{"-test.bench", bench, "-test.cpu", cpu, "-test.count", c, "-test.benchtime", bt}
	}
	// The miss storm runs stormPasses processes, each running every
	// library's rounds round-robin (bench.MissStormRoundRobin): the
	// release time drifts with the machine's state over seconds, and
	// libraries measured in turn, a round each, meet the same drift.
	var storm [][]string
	var stormFiles []string // each pass's rounds (-storm.out)
	for i := range stormPasses {
		f := filepath.Join(tmp, fmt.Sprintf("storm-%d.csv", i))
		stormFiles = append(stormFiles, f)
		storm = append(storm, []string{"-test.bench", "^BenchmarkMissStorm$", "-test.benchtime", "1x",
			"-storm.roundrobin", fmt.Sprint(stormRounds), "-storm.out", f})
	}
	phases := []phase{
		{"hit", [][]string{timed("^BenchmarkHit$", "1,2")}},
		{"overhead", [][]string{timed("^BenchmarkFlightOverhead$", "1,2")}},
		{"mixed", [][]string{timed("^BenchmarkMixedZipf$", "2")}},
		{"ratio", [][]string{{"-test.bench", "^BenchmarkHitRatio$", "-test.benchtime", "1x"}}},
		{"storm", storm},
		{"stampede", [][]string{{"-test.bench", "^BenchmarkExpiryStampede$", "-test.benchtime", "1x", "-stampede", stampedeFor.String()}}},
		{"memory", [][]string{{"-test.bench", "^BenchmarkMemory$", "-test.benchtime", "1x", "-test.count", fmt.Sprint(memCount)}}},
		{"cancel", [][]string{{"-test.bench", "^BenchmarkCancel$", "-test.benchtime", fmt.Sprintf("%dx", cancelCount)}}},
	}
	rawPath := filepath.Join(out, "bench.txt")
	raw, err := os.Create(rawPath)
	if err != nil {
		return err
	}
	defer raw.Close()
	for _, p := range phases {
		if !keep.MatchString(p.name) {
			continue
		}
		fmt.Fprintf(os.Stderr, "report: phase %s (%v so far)\n", p.name, time.Since(began).Round(time.Second))
		for _, r := range p.runs {
			args := append([]string{"-test.run", "^$", "-test.timeout", "0"}, r...)
			if err := runTest(dir, exe, io.MultiWriter(os.Stdout, raw), args...); err != nil {
				return fmt.Errorf("phase %s: %w", p.name, err)
			}
		}
	}
	if err := raw.Close(); err != nil {
		return err
	}

	var stat bytes.Buffer
	if err := goCmd(dir, &stat, "tool", "benchstat", filepath.Join("results", "bench.txt")); err != nil {
		fmt.Fprintf(os.Stderr, "report: benchstat: %v\n", err)
	} else {
		fmt.Print(stat.String())
		if err := os.WriteFile(filepath.Join(out, "benchstat.txt"), stat.Bytes(), 0o644); err != nil {
			return err
		}
	}

	var profiles []string
	if profile {
		if profiles, err = writeProfiles(dir, exe, out); err != nil {
			return err
		}
	}

	res, err := parseResults(rawPath)
	if err != nil {
		return err
	}
	if keep.MatchString("storm") {
		if res.storm, err = readStormRounds(stormFiles); err != nil {
			return fmt.Errorf("the miss storm's rounds: %w", err)
		}
		if err := writeStormCSV(filepath.Join(out, "storm-rounds.csv"), stormFiles); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "report: cancellation behaviour\n")
	behaviour, err := cancelBehaviour(cancelCount)
	if err != nil {
		return err
	}
	chart := filepath.Join(out, "hit-path.png")
	if err := hitChart(res, chart); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	took := time.Since(began)
	md := filepath.Join(dir, "RESULTS.md")
	if err := writeMarkdown(md, res, behaviour, reportInfo{
		Began: began, Took: took, Quick: quick, Count: count, Benchtime: benchtime,
		Stampede: stampedeFor, StormRounds: stormRounds, StormPasses: stormPasses, Profiles: profiles, Only: only,
		LoadBefore: loadBefore, LoadAfter: loadAvg(), Args: os.Args[1:],
	}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "report: wrote %s, %s and %s in %v\n", md, rawPath, chart, took.Round(time.Second))
	return nil
}

// benchDir finds the bench module: the working directory, its bench/
// subdirectory, or wherever the go command resolves the package.
func benchDir() (string, error) {
	const mod = "module github.com/flightcache/flightcache/bench"
	for _, d := range []string{".", "bench"} {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && bytes.Contains(b, []byte(mod+"\n")) {
			return filepath.Abs(d)
		}
	}
	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", "github.com/flightcache/flightcache/bench").Output()
	if err != nil {
		return "", fmt.Errorf("cannot find the bench module (run from the repository root or bench/): %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// goCmd runs the go command in dir with the bench module's own go.mod
// (GOWORK=off), so that the result does not depend on the workspace.
func goCmd(dir string, stdout io.Writer, args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	cmd.Stdout, cmd.Stderr = stdout, os.Stderr
	return cmd.Run()
}

// runTest runs the test binary in dir.
func runTest(dir, exe string, stdout io.Writer, args ...string) error {
	cmd := exec.Command(exe, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = stdout, os.Stderr
	return cmd.Run()
}

// writeProfiles profiles flightcache's hit path (zipf, 2 Ps), its miss
// path (the mixed workload) and its flight path (flight overhead), and
// prints the top of each.
func writeProfiles(dir, exe, out string) ([]string, error) {
	runs := []struct{ name, bench, cpu string }{
		{"hit", "^BenchmarkHit$/^dist=zipf$/^lib=flightcache$", "2"},
		{"mixed", "^BenchmarkMixedZipf$/^lib=flightcache$", "2"},
		{"flight", "^BenchmarkFlightOverhead$/^lib=flightcache-flight$", "1"},
	}
	var files []string
	for _, r := range runs {
		prof := filepath.Join(out, "cpu-"+r.name+".pprof")
		fmt.Fprintf(os.Stderr, "report: profiling flightcache's %s path\n", r.name)
		err := runTest(dir, exe, io.Discard, "-test.run", "^$", "-test.bench", r.bench, "-test.cpu", r.cpu,
			"-test.benchtime", "3s", "-test.cpuprofile", prof)
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", r.name, err)
		}
		fmt.Printf("\nflightcache %s path, top of the CPU profile (%s):\n", r.name, prof)
		if err := goCmd(dir, os.Stdout, "tool", "pprof", "-top", "-nodecount=20", exe, prof); err != nil {
			return nil, err
		}
		files = append(files, filepath.Join("results", filepath.Base(prof)))
	}
	return files, nil
}

// loadAvg returns the 1, 5 and 15 minute load averages (Linux), or "" when
// they cannot be read: other work on the machine skews the numbers.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
