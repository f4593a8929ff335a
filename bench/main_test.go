package bench

import (
	"fmt"
	"os"
	"testing"
)

// TestMain turns the test binary into a memory child when MemoryEnv is set
// (see Memory): a fresh process per library.
func TestMain(m *testing.M) {
	if ran, err := RunMemoryChild(); ran {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
