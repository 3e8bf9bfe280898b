package testenv

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// Fault is what an S3Proxy does to one request.
type Fault int

const (
	// Pass forwards the request.
	Pass Fault = iota
	// SlowDown answers 503 SlowDown without forwarding.
	SlowDown
	// Reset forwards the request, sends the response's headers and half
	// its body, then resets the connection (TCP RST).
	Reset
)

// S3Proxy is a reverse proxy in front of an S3 server that counts requests
// and injects faults: real network failures, seen by the real SDK.
type S3Proxy struct {
	// Env reaches the server through the proxy.
	Env S3Env

	mu     sync.Mutex
	fault  func(*http.Request) Fault
	counts map[string]int // by method
	total  atomic.Int64
}

// NewS3Proxy starts a proxy in front of env, stopped at the end of the test.
func NewS3Proxy(t testing.TB, env S3Env) *S3Proxy {
	t.Helper()
	target, err := url.Parse(env.Endpoint)
	if err != nil {
		t.Fatalf("testenv: S3 endpoint %q: %v", env.Endpoint, err)
	}
	p := &S3Proxy{counts: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.total.Add(1)
		p.mu.Lock()
		p.counts[r.Method]++
		f := Pass
		if p.fault != nil {
			f = p.fault(r)
		}
		p.mu.Unlock()
		switch f {
		case SlowDown:
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`))
		case Reset:
			rp.ServeHTTP(&resetWriter{ResponseWriter: w}, r)
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	p.Env = env
	p.Env.Endpoint = srv.URL
	return p
}

// SetFault decides the fault for each following request; nil passes all.
func (p *S3Proxy) SetFault(f func(*http.Request) Fault) {
	p.mu.Lock()
	p.fault = f
	p.mu.Unlock()
}

// Requests returns the number of requests seen, and by method.
func (p *S3Proxy) Requests() (total int, byMethod map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[string]int, len(p.counts))
	for k, v := range p.counts {
		m[k] = v
	}
	return int(p.total.Load()), m
}

// Reset zeroes the counts.
func (p *S3Proxy) ResetCounts() {
	p.mu.Lock()
	p.counts = map[string]int{}
	p.total.Store(0)
	p.mu.Unlock()
}

// resetWriter passes the headers and half of the declared body on, then
// resets the client's connection.
type resetWriter struct {
	http.ResponseWriter
	limit, written int
	done           bool
}

func (w *resetWriter) WriteHeader(code int) {
	n, _ := strconv.Atoi(w.Header().Get("Content-Length"))
	w.limit = n / 2
	w.ResponseWriter.WriteHeader(code)
}

func (w *resetWriter) Write(b []byte) (int, error) {
	if w.done {
		return 0, http.ErrHandlerTimeout
	}
	if w.written+len(b) < w.limit {
		w.written += len(b)
		return w.ResponseWriter.Write(b)
	}
	w.ResponseWriter.Write(b[:w.limit-w.written])
	w.ResponseWriter.(http.Flusher).Flush()
	w.done = true
	conn, _, err := w.ResponseWriter.(http.Hijacker).Hijack()
	if err == nil {
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST, not FIN
		}
		conn.Close()
	}
	return 0, http.ErrHandlerTimeout
}
