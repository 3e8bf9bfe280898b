package mysql_test

import (
	"database/sql"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/backproof/backproof/engine/enginetest"
	"github.com/backproof/backproof/engine/mysql"
	"github.com/backproof/backproof/internal/testenv"
)

// Each test's databases have one name, the first on a server and the
// second on its twin, so a source and its restored copy name their tables
// alike.
func TestConformance(t *testing.T) {
	for _, s := range testenv.MySQLServers {
		t.Run(s.Name, func(t *testing.T) {
			kind := mysql.Kind
			if s.Flavor == mysql.MariaDB {
				kind = mysql.MariaDBKind
			}
			calls := map[string]int{}
			enginetest.Run(t, enginetest.Harness{
				Kind: kind,
				NewDatabase: func(t testing.TB) string {
					calls[t.Name()]++
					return s.TwinDB(t, calls[t.Name()] > 1)
				},
				Seed:         seed,
				Extra:        extra,
				Content:      content,
				WritingQuery: "DELETE FROM orders",
			})
		})
	}
}

func exec(t testing.TB, dsn string, stmts ...string) {
	t.Helper()
	testenv.MySQLExec(t, dsn, stmts...)
}

// seed: variant 2 has fewer orders, with other values under the same ids.
// Variant 1 dumps to about 250 KiB.
func seed(t testing.TB, dsn string, variant int) {
	t.Helper()
	n := 2000 - 100*(variant-1)
	exec(t, dsn,
		"CREATE TABLE customers (id VARCHAR(10) PRIMARY KEY, tier INT) ENGINE=InnoDB",
		"CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR(10), total DECIMAL(10,2), note TEXT, KEY by_customer (customer)) ENGINE=InnoDB",
		"CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 10",
	)
	var b strings.Builder
	b.WriteString("INSERT INTO orders VALUES ")
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteString(",")
		}
		b.WriteString("(" + itoa(i) + ", 'c" + itoa(i*variant%13) + "', " + itoa(i*variant) + "/4, CONCAT('it''s\\n', REPEAT('" + itoa(variant) + "', 100)))")
	}
	exec(t, dsn, b.String())
	b.Reset()
	b.WriteString("INSERT INTO customers VALUES ")
	for i := 1; i <= 30; i++ {
		if i > 1 {
			b.WriteString(",")
		}
		b.WriteString("('c" + itoa(i) + "', " + itoa(i*variant%3) + ")")
	}
	exec(t, dsn, b.String())
}

func itoa(i int) string { return strconv.Itoa(i) }

func extra(t testing.TB, dsn string) string {
	t.Helper()
	exec(t, dsn, "CREATE TABLE extra (id INT PRIMARY KEY)", "INSERT INTO extra VALUES (1), (2)")
	return dbOf(t, dsn) + ".extra"
}

func dbOf(t testing.TB, dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// content reads every table of the database as first column -> all
// columns, as the server prints them.
func content(t testing.TB, dsn string) enginetest.Content {
	t.Helper()
	db := testenv.MySQLConn(t, dsn)
	name := dbOf(t, dsn)
	rows, err := db.Query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'", name)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		tables = append(tables, s)
	}
	rows.Close()
	c := enginetest.Content{}
	for _, tb := range tables {
		rows, err := db.Query("SELECT * FROM `" + tb + "`")
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		items := map[string]string{}
		for rows.Next() {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, v := range vals {
				if v.Valid {
					parts = append(parts, "'"+v.String+"'")
				} else {
					parts = append(parts, "NULL")
				}
			}
			items[vals[0].String] = strings.Join(parts, ",")
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		c[name+"."+tb] = items
	}
	return c
}
