package main

import (
	"time"

	"github.com/flightcache/flightcache/bench"
)

// behaviour is one row of the cancellation table: what trials of
// bench.DefaultCancel did with one library.
type behaviour struct {
	lib                 bench.Library
	trials              int
	failedMin, failedMx int    // waiters (of 99) that did not get the value
	waiterErr           string // what the failing waiters got
	firstErr            string // what the cancelled first caller got
	fetches             int    // most fetches in a trial
	fetchCancelled      bool   // a fetch saw the first caller's cancellation
	first, last         time.Duration
}

// cancelBehaviour runs the cancellation scenario trials times per library,
// in this process (it is not a speed figure).
func cancelBehaviour(trials int) ([]behaviour, error) {
	var rows []behaviour
	for _, lib := range bench.Select(bench.Loaders) {
		b := behaviour{lib: lib, trials: trials, failedMin: -1, waiterErr: "–"}
		for range trials {
			res, err := bench.Cancellation(lib, bench.DefaultCancel)
			if err != nil {
				return nil, err
			}
			if b.failedMin < 0 || res.Failed < b.failedMin {
				b.failedMin = res.Failed
			}
			b.failedMx = max(b.failedMx, res.Failed)
			if res.WaiterErr != nil {
				b.waiterErr = bench.ErrorKind(res.WaiterErr)
			}
			b.firstErr = bench.ErrorKind(res.FirstErr)
			b.fetches = max(b.fetches, int(res.Fetches))
			b.fetchCancelled = b.fetchCancelled || res.FetchCancelled
			b.first += res.FirstReturned / time.Duration(trials)
			b.last += res.LastReturned / time.Duration(trials)
		}
		rows = append(rows, b)
	}
	return rows, nil
}
