package main

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"
)

// id names one benchmark configuration: BenchmarkHit/dist=zipf/lib=otter-2
// is {"Hit", "zipf", "otter", 2}.
type id struct {
	bench string
	dist  string
	lib   string
	procs int
}

// results holds every sample of a run, by configuration and unit.
type results struct {
	samples map[id]map[string][]float64
	cpu     string
	goos    string
	goarch  string
	storm   *stormRounds // the miss storm's rounds; nil when it did not run
}

// parseResults reads the raw benchmark output.
func parseResults(path string) (*results, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res := &results{samples: make(map[id]map[string][]float64)}
	r := benchfmt.NewReader(f, path)
	for r.Scan() {
		rec, ok := r.Result().(*benchfmt.Result)
		if !ok {
			continue
		}
		base, parts := rec.Name.Parts()
		k := id{bench: string(base), procs: 1}
		for _, p := range parts {
			s := string(p)
			switch {
			case strings.HasPrefix(s, "/dist="):
				k.dist = s[len("/dist="):]
			case strings.HasPrefix(s, "/lib="):
				k.lib = s[len("/lib="):]
			case strings.HasPrefix(s, "-"):
				if n, err := strconv.Atoi(s[1:]); err == nil {
					k.procs = n
				}
			}
		}
		if res.samples[k] == nil {
			res.samples[k] = make(map[string][]float64)
		}
		for _, v := range rec.Values {
			unit, val := v.Unit, v.Value
			if v.OrigUnit != "" { // keep the units as written: ns/op, not sec/op
				unit, val = v.OrigUnit, v.OrigValue
			}
			res.samples[k][unit] = append(res.samples[k][unit], val)
		}
		res.cpu, res.goos, res.goarch = rec.GetConfig("cpu"), rec.GetConfig("goos"), rec.GetConfig("goarch")
	}
	return res, r.Err()
}

// stat is the summary of one metric: the median and its 95% confidence
// interval (benchstat's), over n samples.
type stat struct {
	center, lo, hi float64
	n              int
}

func (s stat) ok() bool { return s.n > 0 }

// get summarises unit for k; stat.n is 0 when there is no sample.
func (r *results) get(k id, unit string) stat {
	vals := r.samples[k][unit]
	if len(vals) == 0 {
		return stat{}
	}
	sum := benchmath.AssumeNothing.Summary(benchmath.NewSample(vals, &benchmath.DefaultThresholds), 0.95)
	return stat{center: sum.Center, lo: sum.Lo, hi: sum.Hi, n: len(vals)}
}

// max returns the largest sample of unit for k (0 without one).
func (r *results) max(k id, unit string) float64 {
	var m float64
	for _, v := range r.samples[k][unit] {
		m = max(m, v)
	}
	return m
}

// pm returns the half-width of the interval as a percentage of the
// median, or -1 when benchstat would not give one (too few samples).
func (s stat) pm() float64 {
	if s.n < 6 || s.center == 0 || math.IsInf(s.lo, 0) || math.IsInf(s.hi, 0) {
		return -1
	}
	return 100 * max(s.center-s.lo, s.hi-s.center) / s.center
}

// ns formats a duration in nanoseconds for humans.
func ns(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2f s", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.2f ms", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1f µs", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.2f µs", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f ns", v)
	}
	return fmt.Sprintf("%.1f ns", v)
}

// nsPM formats a duration stat with its interval.
func nsPM(s stat) string {
	if !s.ok() {
		return "–"
	}
	if p := s.pm(); p >= 0 {
		return fmt.Sprintf("%s ±%.0f%%", ns(s.center), p)
	}
	return ns(s.center)
}
