package testenv

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/backproof/backproof/sandbox"
	"github.com/backproof/backproof/sandbox/docker"
)

// Images of the Redis 8 and Valkey 8 and 9 test servers (scripts/testenv.sh
// exports them; scripts/sandbox-images.sh builds them from Debian trixie's
// and sid's packages). Redis 7 is EnvRedisImage.
const (
	EnvRedis8Image  = "BACKPROOF_TEST_REDIS8_IMAGE"
	EnvValkey8Image = "BACKPROOF_TEST_VALKEY8_IMAGE"
	EnvValkey9Image = "BACKPROOF_TEST_VALKEY9_IMAGE"
)

// RedisServer is one of the Redis and Valkey versions tests run against.
type RedisServer struct {
	Name   string // e.g. "valkey-9.1"
	Flavor string // engine name: redis or valkey
	Major  int
	Env    string // variable holding its image
}

// RedisServers are the Redis and Valkey test versions, Redis first, each
// flavor oldest first.
var RedisServers = []RedisServer{
	{Name: "redis-7.0", Flavor: "redis", Major: 7, Env: EnvRedisImage},
	{Name: "redis-8.0", Flavor: "redis", Major: 8, Env: EnvRedis8Image},
	{Name: "valkey-8.1", Flavor: "valkey", Major: 8, Env: EnvValkey8Image},
	{Name: "valkey-9.1", Flavor: "valkey", Major: 9, Env: EnvValkey9Image},
}

// Image returns the server's image; it requires Docker too.
func (s RedisServer) Image(t testing.TB) string {
	t.Helper()
	RequireDocker(t)
	return Require(t, s.Env)
}

// Start runs a private server of this version in a container of its image,
// published on 127.0.0.1 only, with no persistence and the given config
// lines ("requirepass x", "repl-diskless-sync yes"). It is removed when the
// test ends. Redis.Dir is empty: the server's files are in the container.
func (s RedisServer) Start(t testing.TB, conf ...string) *Redis {
	t.Helper()
	image := s.Image(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := docker.New(ctx, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("docker: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	r := &Redis{}
	cmd := []string{"redis-server", "--port", "6379", "--save", "", "--appendonly", "no"}
	for _, l := range conf {
		k, v, _ := strings.Cut(l, " ")
		v = strings.Trim(v, `"`)
		if k == "requirepass" {
			r.Password = v
		}
		cmd = append(cmd, "--"+k, v)
	}
	inst, err := d.Start(ctx, sandbox.Spec{
		Image: image, Cmd: cmd, Port: "6379/tcp",
		Ready: "Ready to accept connections", ReadyCount: 1,
		Deadline: time.Now().Add(time.Hour),
	})
	if err != nil {
		t.Fatalf("start %s from %s: %v", s.Name, image, err)
	}
	t.Cleanup(func() { inst.Close(context.Background()) })
	host, port := inst.Addr()
	if !isLoopback(host) {
		t.Fatalf("%s listens on %s, not on loopback", s.Name, host)
	}
	r.Port = port
	return r
}
