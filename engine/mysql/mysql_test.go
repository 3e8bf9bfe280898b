package mysql

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/internal/testenv"
)

// fixtureSQL has a bit of everything a dump must carry: awkward values,
// generated and invisible-to-INSERT columns, a foreign key, a MyISAM
// table, an awkward name, views on views (named so that the outer one
// sorts first), a trigger, routines and an event.
const fixtureSQL = "" +
	"CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(200), note TEXT," +
	" created TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), UNIQUE KEY email (email)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n" +
	"CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id INT NOT NULL, amount DECIMAL(12,2), qty SMALLINT, ratio DOUBLE," +
	" flags BIT(5), data BLOB, doc JSON, status ENUM('new','paid','shipped'), tags SET('a','b','c'), d DATE, t TIME(3), y YEAR," +
	" total DECIMAL(14,2) AS (amount*qty) STORED, half DOUBLE AS (ratio/2) VIRTUAL, KEY cust (customer_id)," +
	" CONSTRAINT fk_cust FOREIGN KEY (customer_id) REFERENCES customers(id)) ENGINE=InnoDB;\n" +
	"CREATE TABLE legacy (k VARCHAR(20) PRIMARY KEY, v VARCHAR(20)) ENGINE=MyISAM;\n" +
	"CREATE TABLE `we``ird tab` (`col ``x` INT, latin VARCHAR(10) CHARACTER SET latin1);\n" +
	"CREATE TABLE empty_t (id INT PRIMARY KEY);\n" +
	"CREATE VIEW v_base AS SELECT id, name FROM customers;\n" +
	"CREATE VIEW a_on_view AS SELECT COUNT(*) AS n FROM v_base;\n" +
	"CREATE TRIGGER trg_orders BEFORE INSERT ON orders FOR EACH ROW SET NEW.qty = COALESCE(NEW.qty, 1);\n" +
	"CREATE PROCEDURE p_count(OUT n INT) BEGIN SELECT COUNT(*) INTO n FROM customers; END;\n" +
	"CREATE FUNCTION f_double(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;\n" +
	"CREATE EVENT ev_cleanup ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM legacy WHERE k = 'x';\n" +
	"INSERT INTO customers (name, email, note) WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 500)" +
	" SELECT CONCAT('c', n), CONCAT('c', n, '@x'), CASE n % 3 WHEN 0 THEN NULL WHEN 1 THEN '' ELSE CONCAT('it''s \\\\ \"q\"\\n;\\0 é😀 ', n) END FROM seq;\n" +
	"INSERT INTO orders (id, customer_id, amount, qty, ratio, flags, data, doc, status, tags, d, t, y)" +
	" SELECT id, id, id * 1.25, NULL, id / 3, id % 32, UNHEX(REPEAT(HEX(id % 256), 40)), JSON_OBJECT('k', id, 's', 'x\"y'), 'paid', 'a,c'," +
	" '2024-02-29', '12:34:56.789', 2024 FROM customers;\n" +
	"INSERT INTO orders (id, customer_id, data) VALUES (100000, 1, ''), (100001, 2, UNHEX('00FF275C0A0D1A22'));\n" +
	"INSERT INTO legacy VALUES ('a', NULL), ('b', ''), ('c', 'x');\n" +
	"INSERT INTO `we``ird tab` VALUES (1, 'caf\xc3\xa9'), (NULL, NULL);\n"

// fixture fills the database at dsn.
func fixture(t *testing.T, dsn string) {
	t.Helper()
	testenv.MySQLSeed(t, dsn, fixtureSQL)
}

func dbName(t *testing.T, dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// dumpTo dumps dsn into a file and returns its path.
func dumpTo(t *testing.T, e *Engine) (string, *engine.DumpInfo) {
	t.Helper()
	var buf bytes.Buffer
	info, err := e.Dump(context.Background(), &buf)
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	path := filepath.Join(t.TempDir(), "dump.sql")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, info
}

// checksums is CHECKSUM TABLE of every base table of the database.
func checksums(t *testing.T, dsn string) map[string]string {
	t.Helper()
	db := testenv.MySQLConn(t, dsn)
	names, err := queryStrings(context.Background(), db, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range names {
		var tn, sum string
		if err := db.QueryRow("CHECKSUM TABLE "+quote(n)).Scan(&tn, &sum); err != nil {
			t.Fatal(err)
		}
		out[n] = sum
	}
	return out
}

// renamed is stats with every schema name replaced.
func renamed(s engine.SourceStats, to string) engine.SourceStats {
	out := engine.SourceStats{Objects: map[string][]string{}}
	for _, tb := range s.Tables {
		tb.Schema = to
		out.Tables = append(out.Tables, tb)
	}
	for k, v := range s.Objects {
		for _, n := range v {
			_, rest, _ := strings.Cut(n, ".")
			out.Objects[k] = append(out.Objects[k], to+"."+rest)
		}
	}
	return out
}

// Dump -> restore into an empty database -> dumped again: the same rows
// (by CHECKSUM TABLE), the same counts and objects, on every server.
func TestDumpRestore(t *testing.T) {
	for _, s := range testenv.MySQLServers {
		t.Run(s.Name, func(t *testing.T) {
			ctx := context.Background()
			src := s.NewDB(t)
			fixture(t, src)
			e := New(s.Flavor, src)
			path, info := dumpTo(t, e)
			db := dbName(t, src)

			rows := map[string]int64{}
			for _, tb := range info.Source.Tables {
				if tb.Schema != db {
					t.Errorf("table %s.%s: schema, want %s", tb.Schema, tb.Name, db)
				}
				rows[tb.Name] = tb.Rows
			}
			want := map[string]int64{"customers": 500, "orders": 502, "legacy": 3, "we`ird tab": 2, "empty_t": 0}
			if !reflect.DeepEqual(rows, want) {
				t.Errorf("rows %v, want %v", rows, want)
			}
			for kind, name := range map[string]string{
				kindView: "a_on_view", kindTrigger: "trg_orders", kindProcedure: "p_count",
				kindFunction: "f_double", kindEvent: "ev_cleanup", kindIndex: "orders.cust",
			} {
				if !contains(info.Source.Objects[kind], db+"."+name) {
					t.Errorf("objects[%s] = %v, want %s.%s", kind, info.Source.Objects[kind], db, name)
				}
			}
			if info.Source.Position["binlog_file"] == "" || info.Source.Position["binlog_position"] == "" {
				t.Errorf("no binlog position recorded: %v", info.Source.Position)
			}
			if len(info.Source.Notes) != 1 || !strings.Contains(info.Source.Notes[0], "legacy") || !strings.Contains(info.Source.Notes[0], "not point-in-time") {
				t.Errorf("notes %q, want one about the MyISAM table legacy", info.Source.Notes)
			}
			raw, _ := os.ReadFile(path)
			for _, bad := range []string{"DEFINER=", "GTID_PURGED", "COLUMN_STATISTICS"} {
				if bytes.Contains(raw, []byte(bad)) {
					t.Errorf("the dump holds %s", bad)
				}
			}

			dst := s.NewDB(t)
			if n, err := e.Objects(ctx, dst); err != nil || n != 0 {
				t.Fatalf("Objects(empty) = %d, %v", n, err)
			}
			if err := e.RestoreInto(ctx, dst, path, info, engine.RestoreOptions{}); err != nil {
				t.Fatalf("restore: %v", err)
			}
			if n, err := e.Objects(ctx, dst); err != nil || n != 10 {
				t.Errorf("Objects(restored) = %d, %v; want 10 (5 tables, 2 views, 2 routines, 1 event)", n, err)
			}
			if got, want := checksums(t, dst), checksums(t, src); !reflect.DeepEqual(got, want) {
				t.Errorf("checksums differ:\nsource %v\ncopy   %v", want, got)
			}
			_, again := dumpTo(t, New(s.Flavor, dst))
			if got, want := renamed(again.Source, "x"), renamed(info.Source, "x"); !reflect.DeepEqual(got.Tables, want.Tables) || !reflect.DeepEqual(got.Objects, want.Objects) {
				t.Errorf("restored copy differs:\ndump %v\ncopy %v", want, got)
			}

			// --force replaces what the backup holds.
			testenv.MySQLConn(t, dst).Exec("DELETE FROM legacy; DROP VIEW a_on_view")
			if err := e.RestoreInto(ctx, dst, path, info, engine.RestoreOptions{Clean: true}); err != nil {
				t.Fatalf("restore --force: %v", err)
			}
			if got, want := checksums(t, dst), checksums(t, src); !reflect.DeepEqual(got, want) {
				t.Errorf("after --force, checksums differ:\nsource %v\ncopy   %v", want, got)
			}
		})
	}
}

// A truncated or damaged dump is a bad backup (ErrRestore), and a failed
// restore leaves nothing of itself on the target.
func TestRestoreBadDump(t *testing.T) {
	for _, s := range testenv.MySQLServers {
		t.Run(s.Name, func(t *testing.T) {
			ctx := context.Background()
			src := s.NewDB(t)
			fixture(t, src)
			e := New(s.Flavor, src)
			path, info := dumpTo(t, e)
			raw, _ := os.ReadFile(path)

			for name, bad := range map[string][]byte{
				"truncated": raw[:len(raw)*2/3],
				"garbled":   bytes.Replace(raw, []byte("CREATE TABLE `orders`"), []byte("CREATE TABLE `orders` ("), 1),
			} {
				t.Run(name, func(t *testing.T) {
					p := filepath.Join(t.TempDir(), "bad.sql")
					os.WriteFile(p, bad, 0o600)
					dst := s.NewDB(t)
					err := e.RestoreInto(ctx, dst, p, info, engine.RestoreOptions{})
					if !errors.Is(err, engine.ErrRestore) {
						t.Fatalf("restore = %v, want ErrRestore", err)
					}
					if !strings.Contains(err.Error(), "dropped again") {
						t.Errorf("the error does not say what the failed restore left: %v", err)
					}
					if n, err := e.Objects(ctx, dst); err != nil || n != 0 {
						t.Errorf("after a failed restore the target holds %d objects (%v), want 0", n, err)
					}
				})
			}
		})
	}
}

// Operational failures are errors naming the server, never the password;
// a server of the other flavor is refused.
func TestDumpFailures(t *testing.T) {
	for _, s := range testenv.MySQLServers {
		t.Run(s.Name, func(t *testing.T) {
			ctx := context.Background()
			src := s.NewDB(t)
			u, _ := url.Parse(src)
			pass, _ := u.User.Password()

			wrong := *u
			wrong.User = url.UserPassword(u.User.Username(), "Sentinel-Wrong-Pw-1")
			down := *u
			down.Host = "127.0.0.1:1"
			other := MySQL
			if s.Flavor == MySQL {
				other = MariaDB
			}
			for name, c := range map[string]struct {
				e    *Engine
				want string
			}{
				"wrong password": {New(s.Flavor, wrong.String()), "authentication failed"},
				"server down":    {New(s.Flavor, down.String()), "127.0.0.1:1"},
				"other flavor":   {New(other, src), "set engine: " + s.Flavor},
				"no database":    {New(s.Flavor, strings.Replace(src, u.Path, "/bp_missing_db", 1)), "bp_missing_db"},
			} {
				t.Run(name, func(t *testing.T) {
					_, err := c.e.Dump(ctx, &bytes.Buffer{})
					if err == nil || !strings.Contains(err.Error(), c.want) {
						t.Fatalf("dump = %v, want an error with %q", err, c.want)
					}
					for _, secret := range []string{pass, "Sentinel-Wrong-Pw-1"} {
						if strings.Contains(err.Error(), secret) {
							t.Errorf("the error holds the password: %v", err)
						}
					}
				})
			}
		})
	}
}

// A cancelled dump returns the context's error.
func TestDumpCancelled(t *testing.T) {
	for _, s := range testenv.MySQLServers {
		t.Run(s.Name, func(t *testing.T) {
			src := s.NewDB(t)
			fixture(t, src)
			big := "CREATE TABLE big (id INT PRIMARY KEY, pad CHAR(200));" +
				" INSERT INTO big WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 20000) SELECT n, REPEAT('x', 200) FROM seq"
			limit := "SET SESSION cte_max_recursion_depth = 100000; "
			if s.Flavor == MariaDB {
				limit = "SET SESSION max_recursive_iterations = 100000; "
			}
			testenv.MySQLSeed(t, src, limit+big)
			ctx, cancel := context.WithCancelCause(context.Background())
			cause := errors.New("stop here")
			w := &cancelAfter{n: 1000, cancel: func() { cancel(cause) }}
			_, err := New(s.Flavor, src).Dump(ctx, w)
			if !errors.Is(err, cause) {
				t.Fatalf("dump = %v, want the context's cause", err)
			}
		})
	}
}

// cancelAfter cancels once n bytes were written to it.
type cancelAfter struct {
	n      int
	cancel func()
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.n -= len(p)
	if c.n <= 0 {
		c.cancel()
	}
	return len(p), nil
}

// The README's GRANTs are enough for a backup; without EVENT the dump
// fails naming it rather than leaving the events out.
func TestLeastPrivilege(t *testing.T) {
	for _, s := range testenv.MySQLServers {
		t.Run(s.Name, func(t *testing.T) {
			src := s.NewDB(t)
			fixture(t, src)
			db := dbName(t, src)
			admin := testenv.MySQLConn(t, s.AdminDSN(t))
			user := "bp_least_" + db[len(db)-8:]
			t.Cleanup(func() { admin.Exec("DROP USER IF EXISTS " + literal(user) + "@'%'") })
			grants := Grants(s.Flavor, user, db)
			stmts := append([]string{"CREATE USER " + literal(user) + "@'%' IDENTIFIED BY 'Least-Pw-1'"}, grants...)
			for _, q := range stmts {
				if _, err := admin.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			u, _ := url.Parse(src)
			u.User = url.UserPassword(user, "Least-Pw-1")
			e := New(s.Flavor, u.String())
			if _, err := e.Dump(context.Background(), &bytes.Buffer{}); err != nil {
				t.Fatalf("dump with the README's grants: %v", err)
			}
			if _, err := admin.Exec("REVOKE EVENT ON " + quote(db) + ".* FROM " + literal(user) + "@'%'"); err != nil {
				t.Fatal(err)
			}
			_, err := e.Dump(context.Background(), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), "EVENT privilege") {
				t.Fatalf("dump without EVENT = %v, want an error naming the EVENT privilege", err)
			}
		})
	}
}

// A table rebuilt by DDL after the snapshot started fails the dump with an
// error that says so, rather than dumping it empty.
func TestDumpDDLDuringDump(t *testing.T) {
	for _, s := range testenv.MySQLServers {
		t.Run(s.Name, func(t *testing.T) {
			src := s.NewDB(t)
			limit := "SET SESSION cte_max_recursion_depth = 100000; "
			if s.Flavor == MariaDB {
				limit = "SET SESSION max_recursive_iterations = 100000; "
			}
			db := testenv.MySQLConn(t, src)
			if _, err := db.Exec(limit + "CREATE TABLE a_big (id INT PRIMARY KEY, pad CHAR(200));" +
				" INSERT INTO a_big WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 20000) SELECT n, REPEAT('x', 200) FROM seq;" +
				" CREATE TABLE z_small (id INT PRIMARY KEY); INSERT INTO z_small VALUES (1), (2), (3)"); err != nil {
				t.Fatal(err)
			}
			// At the dump's first bytes (a_big is being read), rebuild z_small.
			var ddlErr error
			w := &onFirstWrite{fn: func() { _, ddlErr = db.Exec("ALTER TABLE z_small FORCE") }}
			_, err := New(s.Flavor, src).Dump(context.Background(), w)
			if ddlErr != nil {
				t.Fatalf("DDL: %v", ddlErr)
			}
			if err == nil || !strings.Contains(err.Error(), "changed during the dump") {
				t.Fatalf("dump with DDL during it = %v, want an error saying a table changed", err)
			}
		})
	}
}

type onFirstWrite struct {
	fn   func()
	done bool
}

func (o *onFirstWrite) Write(p []byte) (int, error) {
	if !o.done {
		o.done = true
		o.fn()
	}
	return len(p), nil
}
