package cli

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/engine/mysql"
	"github.com/backproof/backproof/internal/sample"
	"github.com/backproof/backproof/internal/testenv"
)

// engineCase is one engine's row in TestEndToEnd: only what differs between
// engines. Every source's password is the sentinel, which runCLI looks for
// in every output.
type engineCase struct {
	name, engine, artifact string
	image                  func(t *testing.T) string
	source                 func(t *testing.T) string // a seeded source's DSN
	checks                 string                    // the target's verify block
	// snapshot reads what a database holds; same fails the test unless the
	// database at dsn holds want.
	snapshot func(t *testing.T, dsn string) any
	same     func(t *testing.T, want any, dsn string)
	empty    func(t *testing.T) string                                  // a new, empty restore target
	dirty    func(t *testing.T, dsn string)                             // change what a restore put there
	sandbox  func(dsn, source string) string                            // restore --sandbox's DSN -> the restored database
	down     string                                                     // a server that is down, with the sentinel password
	more     func(t *testing.T, m *catalog.Manifest, verifyJSON string) // engine-specific checks
}

func sameDeep(snapshot func(*testing.T, string) any) func(*testing.T, any, string) {
	return func(t *testing.T, want any, dsn string) {
		t.Helper()
		if got := snapshot(t, dsn); !reflect.DeepEqual(got, want) {
			t.Errorf("content differs:\n got %v\nwant %v", got, want)
		}
	}
}

func engineCases() []engineCase {
	pg := engineCase{
		name: "postgres", engine: "postgres", artifact: "dump.pgdump.zst",
		image: func(t *testing.T) string { return testenv.PostgresImage(t) }, source: appDB,
		checks: `
    verify:
      checks:
        - {name: orders-present, query: SELECT count(*) FROM orders, expect: "> 0"}
        - {name: orders-fresh, query: SELECT max(created_at) FROM orders, max_age: 26h}`,
		snapshot: func(t *testing.T, dsn string) any { return pgContent(t, dsn) },
		empty:    func(t *testing.T) string { return testenv.NewPostgresDB(t) },
		dirty:    func(t *testing.T, dsn string) { testenv.Exec(t, dsn, "TRUNCATE orders CASCADE") },
		sandbox:  func(dsn, _ string) string { return dsn },
		down:     "postgres://nobody:" + sentinel + "@127.0.0.1:1/x?connect_timeout=2",
	}
	mongo := engineCase{
		name: "mongodb", engine: "mongodb", artifact: "dump.archive.zst",
		image: func(t *testing.T) string { return testenv.MongoImage(t) },
		source: func(t *testing.T) string {
			app, _ := mongoAppDB(t)
			return app
		},
		checks:   mongoChecks,
		snapshot: func(t *testing.T, dsn string) any { return mongoContent(t, dsn) },
		empty:    func(t *testing.T) string { return testenv.NewMongoDB(t) },
		dirty: func(t *testing.T, dsn string) {
			c := testenv.MongoClient(t, dsn).Database(mustPath(t, dsn)[1:]).Collection("orders")
			if _, err := c.DeleteMany(context.Background(), bson.D{{Key: "status", Value: "paid"}}); err != nil {
				t.Fatal(err)
			}
		},
		sandbox: func(dsn, source string) string {
			u, _ := url.Parse(dsn)
			s, _ := url.Parse(source)
			u.Path = s.Path
			return u.String()
		},
		down: "mongodb://nobody:" + sentinel + "@127.0.0.1:1/x?serverSelectionTimeoutMS=500",
		more: mongoMore,
	}
	cases := []engineCase{pg, mongo}
	for _, diskless := range []string{"yes", "no"} {
		cases = append(cases, engineCase{
			name: "redis-diskless-" + diskless, engine: "redis", artifact: "dump.rdb.zst",
			image: func(t *testing.T) string { return testenv.RedisImage(t) },
			source: func(t *testing.T) string {
				return redisSource(t, "repl-diskless-sync "+diskless).DSN("", sentinel)
			},
			checks: `
    verify:
      checks:
        - {name: session-present, query: "db0: EXISTS ttl:session", expect: "= 1"}
        - {name: big-hash, query: "db0: HLEN hash:big", expect: ">= 1000"}
        - {name: db5-keys, query: "db5: DBSIZE", expect: "= 3"}`,
			snapshot: func(t *testing.T, dsn string) any {
				s, err := sample.RedisSnapshot(redisAt(t, dsn).Conn(t), 0, 5)
				if err != nil {
					t.Fatal(err)
				}
				return s
			},
			same: func(t *testing.T, want any, dsn string) {
				t.Helper()
				got, err := sample.RedisSnapshot(redisAt(t, dsn).Conn(t), 0, 5)
				if err != nil {
					t.Fatal(err)
				}
				if diffs := sample.DiffRedis(want.(map[string]sample.RedisItem), got, 1000); len(diffs) > 0 {
					t.Errorf("content differs:\n%s", strings.Join(diffs, "\n"))
				}
			},
			empty: func(t *testing.T) string { return testenv.StartRedis(t, "requirepass "+sentinel).DSN("", sentinel) },
			dirty: func(t *testing.T, dsn string) {
				if _, err := redisAt(t, dsn).Conn(t).Do("DEL", "hash:big"); err != nil {
					t.Fatal(err)
				}
			},
			sandbox: func(dsn, _ string) string { return dsn },
			down:    "redis://:" + sentinel + "@127.0.0.1:1",
			more: func(t *testing.T, m *catalog.Manifest, _ string) {
				if m.Tools["rdb"] != "10" || len(m.Source.Tables) != 2 || m.Source.Tables[0].Rows != sample.Redis[0] || m.Source.Tables[1].Rows != sample.Redis[5] {
					t.Errorf("manifest: tools %v, keys %+v", m.Tools, m.Source.Tables)
				}
			},
		})
	}
	for _, s := range testenv.MySQLServers {
		cases = append(cases, engineCase{
			name: s.Name, engine: s.Flavor, artifact: "dump.sql.zst",
			image:    func(t *testing.T) string { return s.Image(t) },
			source:   func(t *testing.T) string { return mysqlSource(t, s) },
			checks:   mysqlChecks,
			snapshot: func(t *testing.T, dsn string) any { return mysqlContent(t, dsn) },
			empty:    func(t *testing.T) string { return s.NewDB(t) },
			dirty:    func(t *testing.T, dsn string) { testenv.MySQLExec(t, dsn, "DELETE FROM orders WHERE status = 'paid'") },
			sandbox: func(dsn, source string) string {
				u, _ := url.Parse(dsn)
				src, _ := url.Parse(source)
				u.Path = src.Path
				return u.String()
			},
			down: "mysql://nobody:" + sentinel + "@127.0.0.1:1/x",
			more: func(t *testing.T, m *catalog.Manifest, verifyJSON string) {
				if m.Source.Position["binlog_file"] == "" || len(m.Source.Notes) != 1 {
					t.Errorf("manifest: position %v, notes %q", m.Source.Position, m.Source.Notes)
				}
				if !strings.Contains(verifyJSON, "not point-in-time") {
					t.Errorf("verify does not say the MyISAM copy is not point-in-time:\n%s", verifyJSON)
				}
			},
		})
	}
	for i := range cases {
		if cases[i].same == nil {
			cases[i].same = sameDeep(cases[i].snapshot)
		}
	}
	return cases
}

// The life of a backup, the same for every engine: backup to a local folder
// and MinIO -> list -> verify on each destination -> restore --to an empty
// target, refused on a non-empty one, --force -> restore --sandbox and
// Ctrl-C -> a target that is down -> a flipped byte (verify and restore
// exit 3, the target untouched).
func TestEndToEnd(t *testing.T) {
	for _, e := range engineCases() {
		t.Run(e.name, func(t *testing.T) {
			image := e.image(t)
			testenv.NoSandboxesLeft(t)
			ctx := context.Background()
			src := e.source(t)
			top := fmt.Sprintf("sandbox:\n  images: {%s: %q}\n  memory: 1GiB\n  cpus: 1\n  timeout: 5m", e.engine, image)
			cfg := twoDestConfig(t, testenv.S3(t).SecretKey, top, "app", e.engine, src, e.checks)
			want := e.snapshot(t, src)

			id := backupCommitted(t, cfg)
			m, dir := localManifestFor(t, cfg, "app", id)
			if m.Engine != e.engine || len(m.Artifacts) != 1 || m.Artifacts[0].Name != e.artifact {
				t.Errorf("manifest: engine %s, artifacts %+v", m.Engine, m.Artifacts)
			}
			r := runCLI(t, ctx, "list", "-c", cfg, "--json")
			l := decode[listDoc](t, r.stdout)
			if r.code != 0 || len(l.Backups) != 2 {
				t.Fatalf("list exit %d: %s", r.code, r.stdout)
			}
			for _, b := range l.Backups {
				if b.ID != id || b.State != "committed" {
					t.Errorf("listed %+v", b)
				}
			}

			var verifyJSON string
			for _, dest := range []string{"local", "offsite"} {
				r := runCLI(t, ctx, "verify", "-c", cfg, "--destination", dest, "--json")
				doc := decode[verifyDoc](t, r.stdout)
				if r.code != 0 || len(doc.Verifications) != 1 {
					t.Fatalf("verify on %s: exit %d\n%s\n%s", dest, r.code, r.stdout, r.stderr)
				}
				v := doc.Verifications[0]
				if v.Destination != dest || v.BackupID != id || v.Outcome != "pass" || v.RestoreSeconds <= 0 || v.Record == "" {
					t.Errorf("verification %+v", v)
				}
				outcomes := map[string]string{}
				for _, c := range v.Checks {
					outcomes[c.Name] = c.Outcome
					if c.Outcome != "pass" && c.Outcome != "skipped" {
						t.Errorf("%s: check %s: %s (%s)", dest, c.Name, c.Outcome, c.Observed)
					}
				}
				for _, name := range append([]string{"checksum", "restore", "tables"}, checkNames(e.checks)...) {
					if outcomes[name] != "pass" {
						t.Errorf("%s: check %s is %q, want pass", dest, name, outcomes[name])
					}
				}
				verifyJSON = r.stdout
			}

			into := e.empty(t)
			if r := runCLI(t, ctx, "restore", "app", "-c", cfg, "--to", into, "--json"); r.code != 0 {
				t.Fatalf("restore --to: exit %d: %s", r.code, r.stderr)
			} else if doc := decode[restoreDoc](t, r.stdout); doc.BackupID != id || doc.Destination != "local" {
				t.Errorf("restore result %+v", doc)
			}
			e.same(t, want, into)
			r = runCLI(t, ctx, "restore", "app", "-c", cfg, "--to", into)
			if r.code != ExitError || !strings.Contains(r.stderr, "not empty") || !strings.Contains(r.stderr, "nothing was changed") {
				t.Fatalf("restore into a non-empty target: exit %d: %s", r.code, r.stderr)
			}
			e.dirty(t, into)
			if r := runCLI(t, ctx, "restore", "app", "-c", cfg, "--to", into, "--force", "--from", "offsite"); r.code != 0 {
				t.Fatalf("restore --force: exit %d: %s", r.code, r.stderr)
			}
			e.same(t, want, into)

			dsn, stop := holdSandbox(t, "restore", "app", "-c", cfg, "--sandbox", "--from", "offsite")
			if !strings.Contains(dsn, "@127.0.0.1:") {
				t.Errorf("sandbox DSN %q is not on loopback", dsn)
			}
			e.same(t, want, e.sandbox(dsn, src))
			if code := stop(); code != 0 {
				t.Errorf("restore --sandbox: exit %d after Ctrl-C", code)
			}
			if left := testenv.OwnSandboxes(t); len(left) != 0 {
				t.Errorf("sandboxes left after Ctrl-C: %v", left)
			}

			r = runCLI(t, ctx, "restore", "app", "-c", cfg, "--to", e.down)
			if r.code != ExitError {
				t.Errorf("restore to a server that is down: exit %d: %s", r.code, r.stderr)
			}

			art := filepath.Join(dir, e.artifact)
			data, err := os.ReadFile(art)
			if err != nil {
				t.Fatal(err)
			}
			data[len(data)/2] ^= 0x40
			if err := os.WriteFile(art, data, 0o600); err != nil {
				t.Fatal(err)
			}
			r = runCLI(t, ctx, "verify", "-c", cfg, "--destination", "local")
			if r.code != ExitBadBackup || !strings.Contains(r.stderr+r.stdout, "checksum mismatch") {
				t.Errorf("verify of a flipped byte: exit %d, want 3\n%s%s", r.code, r.stdout, r.stderr)
			}
			fresh := e.empty(t)
			if r := runCLI(t, ctx, "restore", "app", "-c", cfg, "--to", fresh, "--from", "local"); r.code != ExitBadBackup {
				t.Errorf("restore of a flipped byte: exit %d, want 3: %s", r.code, r.stderr)
			}
			// Untouched: still empty, so a good copy restores without --force.
			if r := runCLI(t, ctx, "restore", "app", "-c", cfg, "--to", fresh, "--from", "offsite"); r.code != 0 {
				t.Errorf("restore after the refused one: exit %d: %s", r.code, r.stderr)
			}

			if e.more != nil {
				e.more(t, m, verifyJSON)
			}
		})
	}
}

// checkNames are the names in a verify block's checks.
func checkNames(block string) []string {
	var out []string
	for _, l := range strings.Split(block, "\n") {
		_, rest, ok := strings.Cut(l, "name: ")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, ",")
		out = append(out, strings.TrimSpace(name))
	}
	return out
}

// pgContent maps each table of a database to its row count and a digest of
// its rows.
func pgContent(t *testing.T, dsn string) map[string]string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT c.relispartition`)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, tb := range tables {
		var n int64
		var sum string
		if err := conn.QueryRow(ctx, "SELECT count(*), coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM "+tb+" x").Scan(&n, &sum); err != nil {
			t.Fatal(err)
		}
		out[tb] = fmt.Sprintf("%d rows %s", n, sum)
	}
	return out
}

// mongoContent maps each collection to its documents (by _id) and index names.
func mongoContent(t *testing.T, uri string) map[string][]string {
	t.Helper()
	db := testenv.MongoClient(t, uri).Database(mustPath(t, uri)[1:])
	names, err := db.ListCollectionNames(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, n := range names {
		var docs []string
		for _, d := range mongoDocs(t, db.Collection(n)) {
			docs = append(docs, d.String())
		}
		out[n] = append(docs, "indexes: "+strings.Join(mongoIndexNames(t, db.Collection(n)), ","))
	}
	return out
}

func mongoMore(t *testing.T, m *catalog.Manifest, verifyJSON string) {
	t.Helper()
	var docs int64
	for _, tb := range m.Source.Tables {
		docs += tb.Rows
	}
	if docs != 3500 || !slices.ContainsFunc(m.Source.Objects["index"], func(s string) bool { return strings.HasSuffix(s, ".customers.email_unique") }) {
		t.Errorf("manifest: %d documents, indexes %v", docs, m.Source.Objects["index"])
	}
	if !strings.Contains(verifyJSON, `"4 collections, 3500 documents"`) {
		t.Errorf("verify does not report the documents:\n%s", verifyJSON)
	}
}

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

// mysqlSource creates a seeded database and a user with exactly the README's
// grants whose password is the sentinel, and returns that user's DSN.
func mysqlSource(t *testing.T, s testenv.MySQLServer) string {
	t.Helper()
	src := s.NewDB(t)
	limit := "SET SESSION cte_max_recursion_depth = 5000;"
	if s.Flavor == mysql.MariaDB {
		limit = "SET SESSION max_recursive_iterations = 5000;"
	}
	testenv.MySQLSeed(t, src, limit+mysqlSeed)
	u, _ := url.Parse(src)
	db := strings.TrimPrefix(u.Path, "/")
	user := "app_" + db[len(db)-8:]
	admin := testenv.MySQLConn(t, s.AdminDSN(t))
	t.Cleanup(func() { admin.Exec("DROP USER IF EXISTS '" + user + "'@'%'") })
	testenv.MySQLExec(t, s.AdminDSN(t), append([]string{"CREATE USER '" + user + "'@'%' IDENTIFIED BY '" + sentinel + "'"}, mysql.Grants(s.Flavor, user, db)...)...)
	u.User = url.UserPassword(user, sentinel)
	return u.String()
}

// mysqlContent is each table's row count and a sum of its rows' CRC32s.
func mysqlContent(t *testing.T, dsn string) map[string]string {
	t.Helper()
	db := testenv.MySQLConn(t, dsn)
	out := map[string]string{}
	for tb, cols := range map[string]string{"orders": "id, status, total, created_at", "audit": "id, what"} {
		var n, sum int64
		if err := db.QueryRow("SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', "+cols+"))), 0) FROM "+tb).Scan(&n, &sum); err != nil {
			t.Fatalf("%s: %v", tb, err)
		}
		out[tb] = fmt.Sprintf("%d rows %d", n, sum)
	}
	return out
}
