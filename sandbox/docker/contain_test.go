package docker_test

import (
	"context"
	"fmt"
	"github.com/backproof/backproof/sandbox"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/moby/moby/client"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/postgres"
	"github.com/backproof/backproof/internal/testenv"
)

// hostListener listens on the host's address on Docker's default bridge,
// the address a container on that bridge reaches the host by (only
// containers reach it), and counts the connections it accepts.
func hostListener(t *testing.T, e *env) (addr string, accepted *atomic.Int32) {
	t.Helper()
	gw, err := bridgeGateway(e)
	if err != nil {
		testenv.Unavailable(t, "no default bridge gateway to listen on: %v", err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(gw, "0"))
	if err != nil {
		testenv.Unavailable(t, "listen on the default bridge's gateway: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = &atomic.Int32{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), accepted
}

// bridgeGateway is the host's address on Docker's default bridge. A freshly
// started engine may leave the gateway out of the network's IPAM config:
// then it is the bridge interface's own address.
func bridgeGateway(e *env) (string, error) {
	res, err := e.cli.NetworkInspect(context.Background(), "bridge", client.NetworkInspectOptions{})
	if err != nil {
		return "", err
	}
	if c := res.Network.IPAM.Config; len(c) > 0 && c[0].Gateway.IsValid() {
		return c[0].Gateway.String(), nil
	}
	name := res.Network.Options["com.docker.network.bridge.name"]
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return "", fmt.Errorf("default bridge interface %q: %w", name, err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.String(), nil
		}
	}
	return "", fmt.Errorf("default bridge interface %s has no IPv4 address", name)
}

// A restored dump's code runs in the sandbox's server: here a CHECK
// constraint whose function, as the superuser restoring it, runs a program
// that connects to a listener on the host. The sandbox has no route to it,
// and its root filesystem takes no writes outside the server's volume and
// tmpfs.
func TestSandboxContainsRestoredCode(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	addr, accepted := hostListener(t, e)
	host, port, _ := net.SplitHostPort(addr)

	// The source: the function does nothing there, only in the sandbox's
	// database ("postgres").
	src := testenv.NewPostgresDB(t)
	testenv.Exec(t, src, fmt.Sprintf(`
CREATE TABLE escape (result text);
CREATE FUNCTION phone_home(v int) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
  IF current_database() = 'postgres' THEN
    EXECUTE $c$COPY public.escape FROM PROGRAM 'bash -c "(exec 3<>/dev/tcp/%s/%s && echo reached) 2>/dev/null || echo blocked"'$c$;
  END IF;
  RETURN true;
END $f$;
CREATE TABLE orders (id int PRIMARY KEY CHECK (phone_home(id)));
INSERT INTO orders VALUES (1);`, host, port))
	dump := filepath.Join(t.TempDir(), "dump.pgdump")
	f, err := os.Create(dump)
	if err != nil {
		t.Fatal(err)
	}
	eng := postgres.New(src, postgres.WithBinDirs(testenv.PostgresBin(t)))
	info, err := eng.Dump(ctx, f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}

	spec, srv := e.spec(t)
	inst := e.start(t, spec)
	srv.Host, srv.Port = inst.Addr()
	if err := eng.Restore(ctx, srv, dump, info, engine.RestoreOptions{Jobs: 1}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	conn := connect(t, inst, srv)
	var result string
	if err := conn.QueryRow(ctx, "SELECT string_agg(result, ',') FROM escape").Scan(&result); err != nil {
		t.Fatal(err)
	}
	if result != "blocked" || accepted.Load() != 0 {
		t.Errorf("the restored dump's program: %q, host listener at %s accepted %d connections; want blocked, none", result, addr, accepted.Load())
	}

	// Writes: the root filesystem refuses them; /tmp (tmpfs) and the data
	// volume take them.
	_, err = conn.Exec(ctx, "COPY (SELECT 1) TO '/var/lib/postgresql/outside'")
	if err == nil || !strings.Contains(err.Error(), "Read-only file system") {
		t.Errorf("write to the root filesystem: %v, want Read-only file system", err)
	}
	for _, path := range []string{"/tmp/inside", "/var/lib/postgresql/data/inside"} {
		if _, err := conn.Exec(ctx, "COPY (SELECT 1) TO '"+path+"'"); err != nil {
			t.Errorf("write to %s: %v", path, err)
		}
	}
}

// The relay signals nothing in the sandbox: many short connections, each
// committing a row, leave every row and a server that never restarted. (The
// relay once killed its helper by PID after the copy ended; the PID was by
// then a server process's, and PostgreSQL's crash restart lost what had
// just been committed.)
func TestRelayKillsNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	spec, srv := e.spec(t)
	inst := e.start(t, spec)
	testenv.Exec(t, postgresDSN(inst, srv), "CREATE TABLE hits (n int)")
	const n = 40
	for i := range n {
		testenv.Exec(t, postgresDSN(inst, srv), fmt.Sprintf("INSERT INTO hits VALUES (%d)", i))
	}
	var got int
	if err := connect(t, inst, srv).QueryRow(ctx, "SELECT count(*) FROM hits").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if logs := inst.Logs(ctx); got != n || strings.Contains(logs, "terminated by signal") {
		t.Errorf("%d of %d committed rows left; server log:\n%s", got, n, logs)
	}
}

func postgresDSN(inst sandbox.Instance, srv engine.Server) string {
	srv.Host, srv.Port = inst.Addr()
	return postgres.ConnString(srv)
}
