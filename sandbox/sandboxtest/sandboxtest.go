// Package sandboxtest is the conformance suite every sandbox driver passes
// (sandbox/docker and sandbox/kubernetes run it): the same Spec gives a
// server that serves, files in place before it starts, errors that name
// ErrUnavailable, and nothing left behind.
package sandboxtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/postgres"
	"github.com/backproof/backproof/internal/testenv"
	"github.com/backproof/backproof/sandbox"
)

// Driver is what the suite needs from a driver's test.
type Driver struct {
	// Provider starts sandboxes the test can find with Leftovers.
	Provider sandbox.Provider
	// Leftovers names this test's sandboxes that still exist, in any state.
	Leftovers func(t *testing.T) []string
	// PostgresImage and RedisImage behave like the official images.
	PostgresImage, RedisImage string
}

// Run runs the suite.
func Run(t *testing.T, d Driver) {
	t.Run("Postgres", func(t *testing.T) { testPostgres(t, d) })
	t.Run("FilesBeforeStart", func(t *testing.T) { testFiles(t, d) })
	t.Run("OwnData", func(t *testing.T) { testOwnData(t, d) })
	t.Run("OtherUser", func(t *testing.T) { testOtherUser(t, d) })
	t.Run("ImageMissing", func(t *testing.T) { testImageMissing(t, d) })
	t.Run("NeverReady", func(t *testing.T) { testNeverReady(t, d) })
}

func noneLeft(t *testing.T, d Driver) {
	t.Helper()
	if left := d.Leftovers(t); len(left) > 0 {
		t.Errorf("sandboxes left behind: %v", left)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// A PostgreSQL server that serves with the generated password, reports its
// image, passes Check, and is gone after Close (twice is fine).
func testPostgres(t *testing.T, d Driver) {
	ctx := context.Background()
	spec, srv, inst, conn := startPostgres(t, d)
	var user string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil || user != srv.User {
		t.Errorf("current_user = %q, %v", user, err)
	}
	conn.Close(ctx)
	if ref, id := inst.Image(); ref != spec.Image || id == "" {
		t.Errorf("Image() = %q, %q; want %q and an id", ref, id, spec.Image)
	}
	if err := inst.Check(ctx); err != nil {
		t.Errorf("Check on a running server: %v", err)
	}
	if logs := inst.Logs(ctx); !strings.Contains(logs, "ready to accept connections") {
		t.Errorf("Logs = %q", logs)
	}
	if err := inst.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := inst.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	noneLeft(t, d)
}

// startPostgres starts the postgres engine's sandbox and connects to it;
// both end with the test.
func startPostgres(t *testing.T, d Driver) (sandbox.Spec, engine.Server, sandbox.Instance, *pgx.Conn) {
	t.Helper()
	spec, srv := postgres.New("").Sandbox(d.PostgresImage, randHex(12), nil)
	spec.Memory, spec.CPUs = 512<<20, 1
	spec.Deadline = time.Now().Add(5 * time.Minute)
	ctx := context.Background()
	inst, err := d.Provider.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { inst.Close(ctx) })
	srv.Host, srv.Port = inst.Addr()
	conn, err := pgx.Connect(ctx, postgres.ConnString(srv))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return spec, srv, inst, conn
}

// Sandboxes of one spec (with its Seed, so one may start from data
// prepared by the other) each have their own data.
func testOwnData(t *testing.T, d Driver) {
	ctx := context.Background()
	var conns []*pgx.Conn
	for range 2 {
		_, _, _, conn := startPostgres(t, d)
		conns = append(conns, conn)
	}
	if _, err := conns[0].Exec(ctx, "CREATE TABLE mine (x int)"); err != nil {
		t.Fatal(err)
	}
	var missing bool
	if err := conns[1].QueryRow(ctx, "SELECT to_regclass('mine') IS NULL").Scan(&missing); err != nil || !missing {
		t.Errorf("a sandbox sees a table created in another (%v)", err)
	}
}

// Only this process's user reaches a sandbox: another local user's client
// is refused, though the server trusts what comes through the relay.
func testOtherUser(t *testing.T, d Driver) {
	if runtime.GOOS != "linux" {
		t.Skip("the relay tells a connection's user only on Linux")
	}
	if os.Getuid() != 0 {
		testenv.Unavailable(t, "running a client as another user needs root")
	}
	psql := filepath.Join(testenv.PostgresBin(t), "psql")
	_, srv, _, _ := startPostgres(t, d)
	conninfo := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable connect_timeout=60", srv.Host, srv.Port)
	as := func(uid uint32, env ...string) (string, error) {
		cmd := exec.Command(psql, "-XAtq", "-w", "-d", conninfo, "-c", "SELECT 'in'")
		cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=/"}, env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := as(65534); err == nil {
		t.Errorf("user 65534 reached the sandbox's server without its password: %s", out)
	}
	// This process's user gets in with the same client.
	if out, err := as(0, "PGPASSWORD="+srv.Password); err != nil || out != "in" {
		t.Errorf("this process's user, with the same client: %v: %s", err, out)
	}
}

// Files are in place when the server starts: Redis loads an RDB and its
// config (password) from them, as engine/redis's Preload arranges.
func testFiles(t *testing.T, d Driver) {
	dir := t.TempDir()
	pass := randHex(12)
	value := randHex(8)
	conf := filepath.Join(dir, "backproof.conf")
	if err := os.WriteFile(conf, []byte("port 6379\nprotected-mode no\ndir /data\ndbfilename dump.rdb\nappendonly no\nsave \"\"\nrequirepass "+pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rdb := filepath.Join(dir, "dump.rdb")
	if err := os.WriteFile(rdb, tinyRDB("k", value), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := sandbox.Spec{
		Image: d.RedisImage, Cmd: []string{"redis-server", "/data/backproof.conf"},
		Port: "6379/tcp", DataDir: "/data", Ready: "Ready to accept connections", ReadyCount: 1,
		Memory: 256 << 20, CPUs: 1, Deadline: time.Now().Add(5 * time.Minute),
		Files: []sandbox.File{
			{HostPath: rdb, Path: "/data/dump.rdb", Mode: 0o600},
			{HostPath: conf, Path: "/data/backproof.conf", Mode: 0o600},
		},
	}
	ctx := context.Background()
	inst, err := d.Provider.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer inst.Close(ctx)
	host, port := inst.Addr()
	got, err := redisGet(net.JoinHostPort(host, strconv.Itoa(port)), pass, "k")
	if err != nil || got != value {
		t.Errorf("GET k = %q, %v; want %q", got, err, value)
	}
	inst.Close(ctx)

	// A file that cannot be read fails the start and leaves nothing.
	spec.Files = []sandbox.File{{HostPath: filepath.Join(dir, "missing"), Path: "/data/missing"}}
	if _, err := d.Provider.Start(ctx, spec); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}
	noneLeft(t, d)
}

// tinyRDB is an RDB file (version 9, checksum disabled) holding one string.
func tinyRDB(key, value string) []byte {
	b := []byte("REDIS0009")
	b = append(b, 0xFE, 0x00, 0x00) // SELECTDB 0, type string
	b = append(b, byte(len(key)))
	b = append(b, key...)
	b = append(b, byte(len(value)))
	b = append(b, value...)
	b = append(b, 0xFF)
	return append(b, make([]byte, 8)...) // no checksum
}

func redisGet(addr, pass, key string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "AUTH %s\r\nGET %s\r\n", pass, key)
	r := bufio.NewReader(c)
	if l, err := r.ReadString('\n'); err != nil || l != "+OK\r\n" {
		return "", fmt.Errorf("AUTH: %q %v", l, err)
	}
	l, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(l, "$") {
		return "", fmt.Errorf("GET: %q %v", l, err)
	}
	v, err := r.ReadString('\n')
	return strings.TrimSuffix(v, "\r\n"), err
}

// An image that is nowhere is ErrUnavailable (no bad backup), at once.
func testImageMissing(t *testing.T, d Driver) {
	spec, _ := postgres.New("").Sandbox("backproof-test/no-such-image:"+randHex(4), randHex(12), nil)
	spec.Deadline = time.Now().Add(2 * time.Minute)
	_, err := d.Provider.Start(context.Background(), spec)
	if !errors.Is(err, sandbox.ErrUnavailable) {
		t.Errorf("Start of a missing image: %v; want ErrUnavailable", err)
	}
	noneLeft(t, d)
}

// A server that never logs its ready line fails at the deadline, and its
// sandbox is removed.
func testNeverReady(t *testing.T, d Driver) {
	spec, _ := postgres.New("").Sandbox(d.PostgresImage, randHex(12), nil)
	spec.Ready = "a line no server prints " + randHex(4)
	spec.Deadline = time.Now().Add(20 * time.Second)
	_, err := d.Provider.Start(context.Background(), spec)
	if err == nil {
		t.Fatal("Start succeeded without the ready line")
	}
	noneLeft(t, d)
}
