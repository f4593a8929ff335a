package bench

import "time"

// epoch is the origin of monotonic timestamps.
var epoch = time.Now()

// nanotime returns monotonic nanoseconds since epoch.
func nanotime() int64 { return int64(time.Since(epoch)) }

// wait blocks for d on a timer, or until done is closed, and reports
// whether the whole of d passed. Simulated fetch latency uses it: a timer,
// never time.Sleep.
func wait(d time.Duration, done <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}
