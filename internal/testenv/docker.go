package testenv

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// RequireDocker checks that a Docker engine answers at DOCKER_HOST (default
// unix:///var/run/docker.sock); otherwise the test is skipped (strict mode:
// fails). It also sets TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 and
// TESTCONTAINERS_RYUK_DISABLED=true in the process environment when they are
// unset: mapped ports are reached on 127.0.0.1 only, and Ryuk cannot be pulled.
func RequireDocker(t testing.TB) {
	t.Helper()
	for k, v := range map[string]string{
		"TESTCONTAINERS_HOST_OVERRIDE": "127.0.0.1",
		"TESTCONTAINERS_RYUK_DISABLED": "true",
	} {
		if os.Getenv(k) == "" {
			_ = os.Setenv(k, v)
		}
	}

	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		host = "unix:///var/run/docker.sock"
	}
	u, err := url.Parse(host)
	if err != nil {
		t.Fatalf("testenv: DOCKER_HOST=%q: %v", host, err)
	}
	var dial func(ctx context.Context) (net.Conn, error)
	switch u.Scheme {
	case "unix":
		dial = func(ctx context.Context) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", u.Path)
		}
	case "tcp":
		if !isLoopback(u.Hostname()) {
			t.Fatalf("testenv: DOCKER_HOST=%s: tests may only talk to 127.0.0.1 or ::1", host)
		}
		dial = func(ctx context.Context) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", u.Host)
		}
	default:
		t.Fatalf("testenv: DOCKER_HOST=%s: unsupported scheme", host)
	}

	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dial(ctx)
		}},
	}
	resp, err := client.Get("http://docker/_ping")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return
		}
		err = &url.Error{Op: "GET", URL: "/_ping", Err: errStatus(resp.Status)}
	}
	Unavailable(t, "no Docker engine at %s (%v); scripts/testenv.sh up starts one", host, err)
}

type errStatus string

func (e errStatus) Error() string { return "status " + strings.TrimSpace(string(e)) }
