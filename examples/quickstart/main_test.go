package main

import (
	"io"
	"os"
	"regexp"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestQuickstart runs the program and checks the counts of its table that
// do not depend on scheduling: direct queries once per request, flight
// mode at least once, and a second burst in cache mode never.
func TestQuickstart(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	out := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		out <- b
	}()
	func() {
		defer func() { os.Stdout = stdout }()
		main()
	}()
	w.Close()
	got := string(<-out)
	r.Close()

	for _, want := range []string{
		`(?m)^direct\s+200\s+200\s+-\s+-\s+-\s+-$`,
		`(?m)^flight\s+200\s+[1-9]\d*\s+0\s+200\s+\d+\s+[1-9]\d*$`,
		`(?m)^cache, burst 2\s+200\s+0\s+200\s+0\s+0\s+0$`,
	} {
		if !regexp.MustCompile(want).MatchString(got) {
			t.Errorf("output does not match %s:\n%s", want, got)
		}
	}
}
