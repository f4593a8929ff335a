package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fakeIdP stands in for an identity provider: an OAuth 2.0 token
// introspection endpoint (RFC 7662) at POST /introspect that knows the
// tokens it issued, takes latency to answer each call, and counts the
// calls. A real provider is a network hop away and rate-limits its
// clients, which is why a service should not ask it 200 times about one
// token.
type fakeIdP struct {
	latency time.Duration
	now     func() time.Time

	mu     sync.Mutex       // guards grants
	grants map[string]grant // token → what it grants

	calls atomic.Int64 // introspection requests received
	down  atomic.Bool  // answer every call with 503, as during an outage

	// hold, when set (by tests), is called at the start of every call; the
	// call waits for it to return.
	hold func(ctx context.Context)
}

// grant is what a token stands for.
type grant struct {
	subject string
	expires time.Time
}

func newFakeIdP(latency time.Duration, now func() time.Time) *fakeIdP {
	return &fakeIdP{latency: latency, now: now, grants: make(map[string]grant)}
}

// issue makes token valid for subject until expires.
func (p *fakeIdP) issue(token, subject string, expires time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.grants[token] = grant{subject: subject, expires: expires}
}

// introspection is the provider's answer about one token (RFC 7662).
type introspection struct {
	Active  bool   `json:"active"`
	Subject string `json:"sub,omitempty"`
	Expiry  int64  `json:"exp,omitempty"` // Unix seconds
}

// ServeHTTP answers POST /introspect with form field token.
func (p *fakeIdP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/introspect" {
		http.Error(w, "POST /introspect only", http.StatusNotFound)
		return
	}
	p.calls.Add(1)
	if p.hold != nil {
		p.hold(r.Context())
	}
	t := time.NewTimer(p.latency)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		return
	}
	if p.down.Load() {
		http.Error(w, "identity provider unavailable", http.StatusServiceUnavailable)
		return
	}
	p.mu.Lock()
	g, ok := p.grants[r.PostFormValue("token")]
	p.mu.Unlock()
	answer := introspection{}
	if ok && p.now().Before(g.expires) {
		answer = introspection{Active: true, Subject: g.subject, Expiry: g.expires.Unix()}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(answer)
}

// idpClient asks an identity provider about tokens.
type idpClient struct {
	url  string // the introspection endpoint
	http *http.Client
}

// introspect asks the provider about token. An error means the provider
// could not answer (down, unreachable, garbled); an inactive token is an
// answer, not an error.
func (c *idpClient) introspect(ctx context.Context, token string) (introspection, error) {
	form := url.Values{"token": {token}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, strings.NewReader(form))
	if err != nil {
		return introspection{}, fmt.Errorf("identity provider: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return introspection{}, fmt.Errorf("identity provider: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return introspection{}, fmt.Errorf("identity provider answered %s", resp.Status)
	}
	var answer introspection
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return introspection{}, fmt.Errorf("identity provider: reading its answer: %w", err)
	}
	return answer, nil
}
