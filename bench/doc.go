// Package bench runs flightcache and the libraries a user would otherwise
// pick through the same workloads, side by side in one process (issue 7).
//
// Every library sits behind one small adapter ([Library], [Cache]): a
// constructor taking a capacity, a TTL and the fetch function, and a Get that
// calls the library's own load-through entry point and nothing else. The
// workloads ([MissStorm], [Stampede], [Cancellation], [Memory], and the hit
// path and mixed zipf benchmarks in bench_test.go) take a [Library] and
// report what they measured.
//
// It is its own module, so that the peers never enter flightcache's
// requirements. The whole run, with the results table and chart, is one
// command (see README.md in this directory):
//
//	cd bench && go run ./cmd/report
package bench
