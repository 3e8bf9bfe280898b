package cli

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/backproof/backproof/engine/mysql"
	"github.com/backproof/backproof/internal/testenv"
)

// mysqlSeed fills a MySQL/MariaDB database: 1,200 orders, a view and a
// MyISAM table, whose copy the manifest must call not point-in-time.
const mysqlSeed = `
CREATE TABLE orders (id INT PRIMARY KEY, status VARCHAR(10), total DECIMAL(10,2), created_at DATETIME(3) NOT NULL, KEY by_status (status));
INSERT INTO orders WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 1200)
  SELECT n, IF(n % 3 = 0, 'paid', 'new'), n / 7, UTC_TIMESTAMP(3) - INTERVAL n MINUTE FROM seq;
CREATE VIEW paid_orders AS SELECT id, total FROM orders WHERE status = 'paid';
CREATE TABLE audit (id INT PRIMARY KEY, what VARCHAR(20)) ENGINE=MyISAM;
INSERT INTO audit VALUES (1, 'created'), (2, 'paid');
`

const mysqlChecks = `
    verify:
      checks:
        - {name: paid, query: "SELECT count(*) FROM paid_orders", expect: "= 400"}
        - {name: fresh, query: "SELECT max(created_at) FROM orders", max_age: 26h}
`

// mysqlCounts are the row counts of a database's tables.
func mysqlCounts(t *testing.T, dsn string) map[string]int64 {
	t.Helper()
	db := testenv.MySQLConn(t, dsn)
	out := map[string]int64{}
	for _, tb := range []string{"orders", "audit"} {
		var n int64
		if err := db.QueryRow("SELECT COUNT(*) FROM " + tb).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", tb, err)
		}
		out[tb] = n
	}
	return out
}

// backup -> list -> verify on both destinations -> restore --to (empty,
// refused, --force) -> restore --sandbox -> a flipped byte, on every
// MySQL/MariaDB server, as a user with exactly the README's grants whose
// password is the sentinel.
func TestMySQLEndToEnd(t *testing.T) {
	for _, s := range testenv.MySQLServers {
		t.Run(s.Name, func(t *testing.T) {
			image := s.Image(t)
			testenv.NoSandboxesLeft(t)
			ctx := context.Background()
			src := s.NewDB(t)
			limit := "SET SESSION cte_max_recursion_depth = 5000;"
			if s.Flavor == mysql.MariaDB {
				limit = "SET SESSION max_recursive_iterations = 5000;"
			}
			testenv.MySQLSeed(t, src, limit+mysqlSeed)
			u, _ := url.Parse(src)
			db := strings.TrimPrefix(u.Path, "/")
			admin := testenv.MySQLConn(t, s.AdminDSN(t))
			user := "app_" + db[len(db)-8:]
			t.Cleanup(func() { admin.Exec("DROP USER IF EXISTS '" + user + "'@'%'") })
			for _, q := range append([]string{"CREATE USER '" + user + "'@'%' IDENTIFIED BY '" + sentinel + "'"}, mysql.Grants(s.Flavor, user, db)...) {
				if _, err := admin.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			u.User = url.UserPassword(user, sentinel)
			top := fmt.Sprintf("sandbox:\n  images: {%s: %q}\n  timeout: 5m", s.Flavor, image)
			cfg := twoDestConfig(t, testenv.S3(t).SecretKey, top, "shop", s.Flavor, u.String(), mysqlChecks)
			want := mysqlCounts(t, src)

			id := backupCommitted(t, cfg)
			m, dir := localManifestFor(t, cfg, "shop", id)
			if m.Engine != s.Flavor || m.Source.Position["binlog_file"] == "" || len(m.Source.Notes) != 1 {
				t.Errorf("manifest: engine %q, position %v, notes %q", m.Engine, m.Source.Position, m.Source.Notes)
			}
			r := runCLI(t, ctx, "list", "-c", cfg, "--json")
			if l := decode[listDoc](t, r.stdout); r.code != 0 || len(l.Backups) != 2 {
				t.Fatalf("list exit %d: %s", r.code, r.stdout)
			}
			for _, dest := range []string{"local", "offsite"} {
				r := runCLI(t, ctx, "verify", "-c", cfg, "--destination", dest)
				if r.code != 0 {
					t.Fatalf("verify on %s: exit %d\n%s\n%s", dest, r.code, r.stdout, r.stderr)
				}
				if !strings.Contains(r.stdout, "not point-in-time") || !strings.Contains(r.stdout, "tables") {
					t.Errorf("verify output does not say the MyISAM copy is not point-in-time:\n%s", r.stdout)
				}
			}

			target := s.NewDB(t)
			if r := runCLI(t, ctx, "restore", "shop", "-c", cfg, "--to", target); r.code != 0 {
				t.Fatalf("restore --to: exit %d: %s", r.code, r.stderr)
			}
			if got := mysqlCounts(t, target); !reflect.DeepEqual(got, want) {
				t.Errorf("restored counts %v, want %v", got, want)
			}
			if r := runCLI(t, ctx, "restore", "shop", "-c", cfg, "--to", target); r.code != 1 || !strings.Contains(r.stderr, "not empty") {
				t.Errorf("restore into a non-empty target: exit %d: %s", r.code, r.stderr)
			}
			testenv.MySQLConn(t, target).Exec("DELETE FROM orders")
			if r := runCLI(t, ctx, "restore", "shop", "-c", cfg, "--to", target, "--force"); r.code != 0 {
				t.Fatalf("restore --force: exit %d: %s", r.code, r.stderr)
			}
			if got := mysqlCounts(t, target); !reflect.DeepEqual(got, want) {
				t.Errorf("counts after --force %v, want %v", got, want)
			}

			dsn, stop := holdSandbox(t, "restore", "shop", "-c", cfg, "--sandbox")
			su, err := url.Parse(dsn)
			if err != nil || !strings.HasPrefix(su.Host, "127.0.0.1:") {
				t.Fatalf("sandbox DSN %q", dsn)
			}
			su.Path = "/" + db
			if got := mysqlCounts(t, su.String()); !reflect.DeepEqual(got, want) {
				t.Errorf("sandbox counts %v, want %v", got, want)
			}
			if code := stop(); code != 0 {
				t.Errorf("restore --sandbox: exit %d after Ctrl-C", code)
			}

			// A flipped byte in the stored artifact is a bad backup.
			art := filepath.Join(dir, m.Artifacts[0].Name)
			data, err := os.ReadFile(art)
			if err != nil {
				t.Fatal(err)
			}
			data[len(data)/2] ^= 0xff
			if err := os.WriteFile(art, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if r := runCLI(t, ctx, "verify", "-c", cfg, "--destination", "local"); r.code != 3 {
				t.Errorf("verify of a flipped byte: exit %d, want 3\n%s", r.code, r.stdout)
			}
		})
	}
}
