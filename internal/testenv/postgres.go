package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresDSN returns the admin (superuser) DSN of the shared PostgreSQL 15
// test server. Prefer NewPostgresDB: tests should not share a database.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	dsn := Require(t, EnvPostgresDSN)
	requireLoopbackURL(t, EnvPostgresDSN, dsn)
	return dsn
}

// PostgresBin returns the directory holding the PostgreSQL 15 client and
// server programs (pg_dump, pg_restore, psql, initdb, postgres).
func PostgresBin(t testing.TB) string {
	t.Helper()
	dir := Require(t, EnvPostgresBin)
	if _, err := os.Stat(filepath.Join(dir, "pg_dump")); err != nil {
		Unavailable(t, "%s=%s has no pg_dump: %v", EnvPostgresBin, dir, err)
	}
	return dir
}

// Admin DSNs of the PostgreSQL 17 and 18 test servers (scripts/testenv.sh runs
// them as containers of the sandbox images: Debian trixie's and sid's packages).
const (
	EnvPG17DSN = "BACKPROOF_TEST_PG17_DSN"
	EnvPG18DSN = "BACKPROOF_TEST_PG18_DSN"
)

// PostgresServer is one of the PostgreSQL test servers.
type PostgresServer struct {
	Major int
	Env   string // variable holding its admin DSN
}

// PostgresServers are the PostgreSQL test servers, oldest first: 15 (the
// host's, shared) and 17, 18 (containers).
var PostgresServers = []PostgresServer{
	{Major: 15, Env: EnvPostgresDSN},
	{Major: 17, Env: EnvPG17DSN},
	{Major: 18, Env: EnvPG18DSN},
}

// Name is "postgres-N".
func (s PostgresServer) Name() string { return "postgres-" + strconv.Itoa(s.Major) }

// NewDB creates a fresh database on the server, as NewPostgresDB does on
// the PostgreSQL 15 one.
func (s PostgresServer) NewDB(t testing.TB) string {
	t.Helper()
	admin := Require(t, s.Env)
	requireLoopbackURL(t, s.Env, admin)
	return newPostgresDB(t, s.Env, admin)
}

// NewPostgresDB creates a fresh, uniquely named database on the shared test
// server and returns a DSN for it (same superuser as PostgresDSN). The
// database is dropped WITH (FORCE) when the test ends.
func NewPostgresDB(t testing.TB) string {
	t.Helper()
	return newPostgresDB(t, EnvPostgresDSN, PostgresDSN(t))
}

func newPostgresDB(t testing.TB, env, admin string) string {
	t.Helper()
	name := uniqueName(t, "bp_", '_', 63)

	exec := func(ctx context.Context, sql string) error {
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		_, err = conn.Exec(ctx, sql)
		return err
	}
	ident := pgx.Identifier{name}.Sanitize()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := exec(ctx, "CREATE DATABASE "+ident); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})

	u := requireLoopbackURL(t, env, admin)
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// Exec runs SQL statements on the database at dsn, failing the test on error.
func Exec(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

// Image returns the sandbox image of the server's major: the
// BACKPROOF_TEST_PG_IMAGE template with "{major}" replaced, or its tag
// replaced when it names one version. It requires Docker too.
func (s PostgresServer) Image(t testing.TB) string {
	t.Helper()
	return strings.ReplaceAll(PostgresImageTemplate(t), "{major}", strconv.Itoa(s.Major))
}

// PostgresImageTemplate returns BACKPROOF_TEST_PG_IMAGE as a template with
// "{major}" (scripts/testenv.sh names the 15 image; its siblings differ in
// the tag). It requires Docker too.
func PostgresImageTemplate(t testing.TB) string {
	t.Helper()
	img := PostgresImage(t)
	if strings.Contains(img, "{major}") {
		return img
	}
	if i := strings.LastIndexByte(img, ':'); i > strings.LastIndexByte(img, '/') {
		img = img[:i]
	}
	return img + ":{major}"
}

// Tools returns a directory holding pg_dump and pg_restore of the server's
// major: the host's for 15; for the others, scripts that run them in a
// throwaway container of the server's image on the host's network (the
// servers are on 127.0.0.1), with PGPASSWORD passed in the environment only
// and the temporary directory at its own path, for files named in argv.
func (s PostgresServer) Tools(t testing.TB) string {
	t.Helper()
	if s.Major == 15 {
		return PostgresBin(t)
	}
	image := s.Image(t)
	docker, err := exec.LookPath("docker")
	if err != nil {
		Unavailable(t, "no docker CLI: %v", err)
	}
	dir, tmp := t.TempDir(), os.TempDir()
	for _, tool := range []string{"pg_dump", "pg_restore"} {
		script := fmt.Sprintf("#!/bin/sh\nexec %s run --rm -i --network host -e PGPASSWORD -v %s:%[2]s --entrypoint %s %s \"$@\"\n", docker, tmp, tool, image)
		if err := os.WriteFile(filepath.Join(dir, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
