package testenv

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"
)

// Environment variables of the MySQL and MariaDB test servers
// (scripts/testenv.sh runs them from the sandbox images, binlog on) and of
// their sandbox images. Each server has a twin of the same version, whose
// DSN is in the same variable with "_B" appended, for tests that need the
// same database name on two servers (engine/enginetest).
const (
	EnvMariaDBDSN   = "BACKPROOF_TEST_MARIADB_DSN"   // mysql://root:...@127.0.0.1:PORT/, MariaDB 10.11 (Debian 12)
	EnvMariaDB11DSN = "BACKPROOF_TEST_MARIADB11_DSN" // MariaDB 11.8 (Debian trixie)
	EnvMySQLDSN     = "BACKPROOF_TEST_MYSQL_DSN"     // MySQL 9.7 (Debian sid)
	EnvMariaDBImage = "BACKPROOF_TEST_MARIADB_IMAGE" // local sandbox image template, "{version}" allowed
	EnvMySQLImage   = "BACKPROOF_TEST_MYSQL_IMAGE"
)

// MySQLServer is one of the MySQL/MariaDB test servers.
type MySQLServer struct {
	Name   string // e.g. "mariadb-10.11"
	Flavor string // engine name: mysql or mariadb
	Env    string // variable holding its admin DSN
}

// MySQLServers are the test servers every MySQL/MariaDB test runs against.
var MySQLServers = []MySQLServer{
	{Name: "mariadb-10.11", Flavor: "mariadb", Env: EnvMariaDBDSN},
	{Name: "mariadb-11.8", Flavor: "mariadb", Env: EnvMariaDB11DSN},
	{Name: "mysql-9.7", Flavor: "mysql", Env: EnvMySQLDSN},
}

// AdminDSN returns the server's admin DSN (user root, no database).
func (s MySQLServer) AdminDSN(t testing.TB) string {
	t.Helper()
	dsn := Require(t, s.Env)
	requireLoopbackURL(t, s.Env, dsn)
	return dsn
}

// Image returns the sandbox image template of the server's flavor; it
// requires Docker too.
func (s MySQLServer) Image(t testing.TB) string {
	t.Helper()
	RequireDocker(t)
	if s.Flavor == "mysql" {
		return Require(t, EnvMySQLImage)
	}
	return Require(t, EnvMariaDBImage)
}

// NewDB creates a fresh, uniquely named database on the server and returns
// a DSN naming it (same admin user). It is dropped when the test ends.
func (s MySQLServer) NewDB(t testing.TB) string {
	t.Helper()
	admin := s.AdminDSN(t)
	name := uniqueName(t, "bp_", '_', 60)
	return createMySQLDB(t, admin, s.Name, name)
}

// mysqlRun is random per test process: database names derived from a
// test's name differ between processes sharing the servers.
var mysqlRun = randHex(3)

// TwinDB creates a database named after the test (the same name for every
// call in one test) on the server, or with twin on its twin, and returns a
// DSN naming it. It is dropped when the test ends.
func (s MySQLServer) TwinDB(t testing.TB, twin bool) string {
	t.Helper()
	env := s.Env
	if twin {
		env += "_B"
	}
	admin := Require(t, env)
	requireLoopbackURL(t, env, admin)
	sum := sha256.Sum256([]byte(t.Name()))
	name := "bp_" + mysqlRun + "_" + hex.EncodeToString(sum[:8])
	return createMySQLDB(t, admin, env, name)
}

// createMySQLDB creates database name on the server at admin (called server
// in errors), drops it when the test ends, and returns a DSN naming it.
func createMySQLDB(t testing.TB, admin, server, name string) string {
	t.Helper()
	db := MySQLConn(t, admin)
	if _, err := db.Exec("CREATE DATABASE `" + name + "`"); err != nil {
		t.Fatalf("create database %s on %s: %v", name, server, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, _ := url.Parse(admin)
	u.Path = "/" + name
	return u.String()
}

// MySQLConn opens a pool for a mysql:// DSN (multi-statements allowed, for
// fixtures); it is closed when the test ends.
func MySQLConn(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	u := requireLoopbackURL(t, "dsn", dsn)
	cfg := driver.NewConfig()
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	cfg.MultiStatements = true
	cfg.Logger = &driver.NopLogger{}
	c, err := driver.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db
}

// MySQLSeed runs a fixture script in the database at dsn. DDL on a server
// other tests share can fail with a deadlock (1213) or a lock wait timeout
// (1205) that says nothing about the test; then the database is emptied
// and the script run again, up to five times.
func MySQLSeed(t testing.TB, dsn, script string) {
	t.Helper()
	db := MySQLConn(t, dsn)
	name := "`" + strings.ReplaceAll(strings.TrimPrefix(requireLoopbackURL(t, "dsn", dsn).Path, "/"), "`", "``") + "`"
	for attempt := 1; ; attempt++ {
		_, err := db.Exec(script)
		if err == nil {
			return
		}
		if !lockConflict(err) || attempt == 5 {
			t.Fatalf("seed %s (attempt %d): %v", name, attempt, err)
		}
		t.Logf("seed %s: %v; emptying the database and trying again", name, err)
		if _, err := db.Exec("DROP DATABASE " + name + "; CREATE DATABASE " + name); err != nil {
			t.Fatalf("empty %s: %v", name, err)
		}
	}
}

// MySQLExec runs single statements in the database at dsn, each tried again
// on a deadlock or lock wait timeout (the server rolled it back).
func MySQLExec(t testing.TB, dsn string, stmts ...string) {
	t.Helper()
	db := MySQLConn(t, dsn)
	for _, q := range stmts {
		for attempt := 1; ; attempt++ {
			_, err := db.Exec(q)
			if err == nil {
				break
			}
			if !lockConflict(err) || attempt == 5 {
				t.Fatalf("%.80s (attempt %d): %v", q, attempt, err)
			}
		}
	}
}

func lockConflict(err error) bool {
	var me *driver.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}
