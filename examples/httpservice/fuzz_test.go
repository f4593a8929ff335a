package main

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseIDs feeds arbitrary query strings to the GET /users id parser:
// it never panics, and either returns 1 to maxIDs distinct positive ids or
// a short message for a 400 (a huge query is never echoed back).
func FuzzParseIDs(f *testing.F) {
	for _, seed := range []string{
		"ids=1,2,3", "ids=1&ids=2", "ids=", "ids=0", "ids=-1", "ids=1,,2", "ids=9223372036854775808",
		"ids=" + strings.Repeat("1,", 200), "ids=" + strings.Repeat("x", 10000), "ids=%zz", "ids=1%2C2",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return // net/http answers 400 before the handler for these
		}
		ids, msg := parseIDs(q["ids"])
		if msg != "" {
			if ids != nil {
				t.Fatalf("both ids %v and message %q", ids, msg)
			}
			if len(msg) > 200 {
				t.Fatalf("message of %d bytes echoes the input", len(msg))
			}
			return
		}
		if len(ids) == 0 || len(ids) > maxIDs {
			t.Fatalf("%d ids", len(ids))
		}
		seen := map[int64]bool{}
		for _, id := range ids {
			if id <= 0 || seen[id] {
				t.Fatalf("bad or repeated id %d in %v", id, ids)
			}
			seen[id] = true
		}
	})
}
