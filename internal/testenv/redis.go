package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Environment variables for Redis tests, written by scripts/testenv.sh up.
const (
	EnvRedisServer = "BACKPROOF_TEST_REDIS_SERVER" // Debian's redis-server binary; tests start their own servers
	EnvRedisImage  = "BACKPROOF_TEST_REDIS_IMAGE"  // local sandbox image for redis (scripts/sandbox-images.sh)
)

// RedisImage returns the redis sandbox image built by
// scripts/sandbox-images.sh. It requires Docker too.
func RedisImage(t testing.TB) string {
	t.Helper()
	RequireDocker(t)
	return Require(t, EnvRedisImage)
}

// Redis is a private redis-server process on 127.0.0.1.
type Redis struct {
	Port     int
	Dir      string // its working directory (dump.rdb, redis.log)
	Password string // requirepass, or ""
}

// StartRedis starts redis-server on a free loopback port, in a temporary
// directory, with no persistence of its own, plus the given config lines
// (e.g. "repl-diskless-sync yes", "requirepass x"). It is killed when the
// test ends.
func StartRedis(t testing.TB, conf ...string) *Redis {
	t.Helper()
	bin := Require(t, EnvRedisServer)
	dir := t.TempDir()
	r := &Redis{Dir: dir}
	for _, l := range conf {
		if p, ok := strings.CutPrefix(l, "requirepass "); ok {
			r.Password = strings.Trim(p, `"`)
		}
	}
	for attempt := 0; ; attempt++ {
		r.Port = FreePort(t)
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\nsave \"\"\nappendonly no\ndaemonize no\n%s\n",
			r.Port, dir, filepath.Join(dir, "redis.log"), strings.Join(conf, "\n"))
		cfgPath := filepath.Join(dir, "redis.conf")
		if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, cfgPath)
		if err := cmd.Start(); err != nil {
			t.Fatalf("start redis-server: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if r.waitReady(exited) {
			t.Cleanup(func() {
				cmd.Process.Signal(syscall.SIGKILL)
				<-exited
			})
			return r
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
		if attempt == 2 || !strings.Contains(string(log), "Address already in use") {
			t.Fatalf("redis-server did not start:\n%s", log)
		}
	}
}

func (r *Redis) waitReady(exited chan struct{}) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if c, err := r.dial(); err == nil {
			_, err := c.Do("PING")
			c.Close()
			if err == nil {
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// FreePort returns a TCP port nothing listens on at 127.0.0.1 right now.
func FreePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr is host:port.
func (r *Redis) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Port)) }

// DSN is a redis:// URL for user and password ("" for none).
func (r *Redis) DSN(user, password string) string {
	u := url.URL{Scheme: "redis", Host: r.Addr()}
	if password != "" {
		u.User = url.UserPassword(user, password)
	}
	return u.String()
}

// Conn connects as the default user, failing the test on error, and closes
// the connection when the test ends.
func (r *Redis) Conn(t testing.TB) *RedisConn {
	t.Helper()
	c, err := r.dial()
	if err != nil {
		t.Fatalf("connect to redis: %v", err)
	}
	c.t = t
	t.Cleanup(func() { c.Close() })
	return c
}

func (r *Redis) dial() (*RedisConn, error) {
	nc, err := net.DialTimeout("tcp", r.Addr(), 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &RedisConn{nc: nc, r: bufio.NewReader(nc), w: bufio.NewWriter(nc)}
	if r.Password != "" {
		if _, err := c.Do("AUTH", r.Password); err != nil {
			nc.Close()
			return nil, err
		}
	}
	return c, nil
}

// RedisConn is a minimal RESP2 client for tests.
type RedisConn struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
	w  *bufio.Writer
}

// RedisError is an error reply.
type RedisError string

func (e RedisError) Error() string { return string(e) }

func (c *RedisConn) Close() error { return c.nc.Close() }

// Do runs a command. Replies: string (simple and bulk), int64, nil, []any.
func (c *RedisConn) Do(args ...string) (any, error) {
	c.Send(args...)
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	return c.Receive()
}

// Must runs a command and fails the test on any error.
func (c *RedisConn) Must(args ...string) any {
	c.t.Helper()
	v, err := c.Do(args...)
	if err != nil {
		c.t.Fatalf("redis %s: %v", args[0], err)
	}
	return v
}

// Send buffers a command; Flush sends; Receive reads one reply (pipelining).
func (c *RedisConn) Send(args ...string) {
	fmt.Fprintf(c.w, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(c.w, "$%d\r\n%s\r\n", len(a), a)
	}
}

func (c *RedisConn) Flush() error { return c.w.Flush() }

func (c *RedisConn) Receive() (any, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, RedisError(line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return nil, nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, b); err != nil {
			return nil, err
		}
		return string(b[:n]), nil
	case '*':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return nil, nil
		}
		out := make([]any, n)
		for i := range out {
			v, err := c.Receive()
			if err != nil {
				var re RedisError
				if !errors.As(err, &re) {
					return nil, err
				}
				v = re
			}
			out[i] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", line)
}
