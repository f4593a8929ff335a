package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// stormRounds holds every round of the round-robin miss storms
// (bench.WriteStormRounds), one file per pass: release[lib][i] is the
// release time, in ns, of lib's round i over all passes, so that the
// rounds of one index ran in the same cycle, within a second of each
// other, for every library.
type stormRounds struct {
	libs    []string // in the order of the first file
	release map[string][]float64
}

// readStormRounds reads the passes' files, in order. Every file must hold
// the same libraries with the same number of rounds.
func readStormRounds(paths []string) (*stormRounds, error) {
	s := &stormRounds{release: make(map[string][]float64)}
	for _, path := range paths {
		pass, libs, err := readStormFile(path)
		if err != nil {
			return nil, err
		}
		if s.libs == nil {
			s.libs = libs
		} else if !slices.Equal(libs, s.libs) {
			return nil, fmt.Errorf("%s: libraries %v, the first pass had %v", path, libs, s.libs)
		}
		n := len(pass[libs[0]])
		for _, lib := range libs {
			if len(pass[lib]) != n {
				return nil, fmt.Errorf("%s: %s has %d rounds, %s has %d", path, lib, len(pass[lib]), libs[0], n)
			}
			s.release[lib] = append(s.release[lib], pass[lib]...)
		}
	}
	return s, nil
}

// readStormFile reads one pass: each library's release times by round, and
// the libraries in the order they first appear.
func readStormFile(path string) (map[string][]float64, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	pass := make(map[string][]float64)
	var libs []string
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		if line == 1 {
			if sc.Text() != "round,library,release_ns" {
				return nil, nil, fmt.Errorf("%s: header %q, want round,library,release_ns", path, sc.Text())
			}
			continue
		}
		fields := strings.Split(sc.Text(), ",")
		if len(fields) != 3 {
			return nil, nil, fmt.Errorf("%s:%d: %d fields, want 3", path, line, len(fields))
		}
		round, err1 := strconv.Atoi(fields[0])
		v, err2 := strconv.ParseFloat(fields[2], 64)
		lib := fields[1]
		if err1 != nil || err2 != nil || round != len(pass[lib]) {
			return nil, nil, fmt.Errorf("%s:%d: %q is not round %d of %s with a release time", path, line, sc.Text(), len(pass[lib]), lib)
		}
		if pass[lib] == nil {
			libs = append(libs, lib)
		}
		pass[lib] = append(pass[lib], v)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	if len(libs) == 0 {
		return nil, nil, fmt.Errorf("%s: no rounds", path)
	}
	return pass, libs, nil
}

// median returns lib's median release time over every round, with the 95%
// confidence interval of the median (order statistics); n is 0 when lib
// has no rounds.
func (s *stormRounds) median(lib string) stat {
	if s == nil {
		return stat{}
	}
	return medianCI(s.release[lib])
}

// paired returns the median, over the rounds, of the ratio of a's release
// time to b's in the same round (same pass, same cycle), with its 95%
// confidence interval: the comparison the round-robin makes fair, since the
// two ran within a second of each other. n is 0 without rounds of both.
func (s *stormRounds) paired(a, b string) stat {
	if s == nil {
		return stat{}
	}
	ra, rb := s.release[a], s.release[b]
	if len(ra) == 0 || len(ra) != len(rb) {
		return stat{}
	}
	r := make([]float64, 0, len(ra))
	for i := range ra {
		if rb[i] > 0 {
			r = append(r, ra[i]/rb[i])
		}
	}
	return medianCI(r)
}

// medianCI returns the median of xs and its distribution-free 95%
// confidence interval: the order statistics ranked 1.96·√n/2 either side of
// the middle (the whole range when n is too small for one).
func medianCI(xs []float64) stat {
	n := len(xs)
	if n == 0 {
		return stat{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	k := int(math.Floor((float64(n) - 1.96*math.Sqrt(float64(n))) / 2))
	k = max(k, 0)
	return stat{center: med, lo: s[k], hi: s[n-1-k], n: n}
}

// writeStormCSV joins the passes' files into one at path, with the pass
// (from 0) as a first column.
func writeStormCSV(path string, passes []string) error {
	var out strings.Builder
	out.WriteString("pass,round,library,release_ns\n")
	for i, p := range passes {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		for _, l := range lines[1:] { // past the header
			fmt.Fprintf(&out, "%d,%s\n", i, l)
		}
	}
	return os.WriteFile(path, []byte(out.String()), 0o644)
}
