package redistier

import (
	"context"
	"io"
	"net"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is a redis-server process of the test's own, on a free port,
// killed at cleanup.
type redisServer struct {
	t    testing.TB
	bin  string
	addr string
	dir  string

	cmd    *exec.Cmd
	paused bool
}

// startRedisServer starts a redis-server, skipping the test when there is
// no binary (failing it under CI=true).
func startRedisServer(t testing.TB) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		unavailable(t, "no redis-server binary to start: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	s := &redisServer{t: t, bin: bin, addr: addr, dir: t.TempDir()}
	t.Cleanup(s.kill)
	s.start()
	return s
}

// start runs the server and waits until it answers.
func (s *redisServer) start() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.addr)
	s.cmd = exec.Command(s.bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--daemonize", "no", "--loglevel", "warning")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.addr, ContextTimeoutEnabled: true, MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer c.Close()
	waitUntil(s.t, 10*time.Second, "redis-server answers", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		return c.Ping(ctx).Err() == nil
	})
}

// kill ends the server at once (SIGKILL), as a crash would.
func (s *redisServer) kill() {
	if s.cmd == nil {
		return
	}
	if s.paused {
		s.resume()
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// pause stops the process (SIGSTOP): connections stay open and nothing
// answers, a blackhole.
func (s *redisServer) pause() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatal(err)
	}
	s.paused = true
}

// resume continues a paused server (SIGCONT).
func (s *redisServer) resume() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.t.Fatal(err)
	}
	s.paused = false
}

// waitUntil polls cond every few milliseconds until it holds, failing the
// test after timeout: for states of an external process.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", timeout, what)
		}
		<-tick.C
	}
}

// proxy is a TCP proxy in front of a Redis that can delay its answers.
type proxy struct {
	ln       net.Listener
	upstream string
	delay    atomic.Int64 // added before every chunk sent back to the client
	done     chan struct{}
	wg       sync.WaitGroup

	mu    sync.Mutex // guards conns
	conns map[net.Conn]struct{}
}

func startProxy(t testing.TB, upstream string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: upstream, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// setDelay delays every answer by d from now on.
func (p *proxy) setDelay(d time.Duration) { p.delay.Store(int64(d)) }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return false
	default:
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) serve(client net.Conn) {
	defer p.wg.Done()
	defer client.Close()
	if !p.track(client) {
		return
	}
	up, err := net.DialTimeout("tcp", p.upstream, time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	if !p.track(up) {
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(up, client)
		_ = up.Close()
	}()
	p.pipeBack(client, up)
	_ = client.Close()
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, up)
	p.mu.Unlock()
}

// pipeBack copies the upstream's answers to the client, each chunk after
// the current delay.
func (p *proxy) pipeBack(client, up net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			if d := time.Duration(p.delay.Load()); d > 0 {
				timer := time.NewTimer(d) // simulated latency, not a wait for a goroutine
				select {
				case <-timer.C:
				case <-p.done:
					timer.Stop()
					return
				}
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	close(p.done)
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// closeBreaker lets the breaker's cooldown pass on clock and runs probe, a
// call that reaches Redis once the cooldown is over and reports whether the
// breaker is closed after it, until it is; it returns the number of probes.
// A probe opens a new connection (four round trips) within the Timeout: on
// a loaded machine it can miss, which opens the breaker for another
// cooldown. It fails the test after 10s.
func closeBreaker(t testing.TB, clock *fakeClock, probe func() bool) (probes int) {
	t.Helper()
	waitUntil(t, 10*time.Second, "a probe closes the breaker", func() bool {
		probes++
		clock.Add(faultCooldown)
		return probe()
	})
	return probes
}
