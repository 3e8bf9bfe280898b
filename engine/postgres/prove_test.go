package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/internal/sample"
	"github.com/backproof/backproof/internal/testenv"
)

// extraSchema adds the object kinds the sample lacks, with awkward names.
const extraSchema = `
CREATE TYPE "Mood" AS ENUM ('ok', 'sad');
CREATE DOMAIN positive AS int CHECK (VALUE > 0);
CREATE TYPE pair AS (a int, b text);
CREATE FUNCTION "Billing"."total of"(o bigint, "x y" int DEFAULT 1) RETURNS bigint LANGUAGE sql AS 'SELECT o * "x y"';
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch();
CREATE MATERIALIZED VIEW order_count AS SELECT count(*) AS n FROM orders;
CREATE UNIQUE INDEX "Odd ""index""" ON customers (lower(email));
ALTER TABLE order_items ADD CONSTRAINT qty_positive CHECK (quantity > 0);
CREATE EXTENSION IF NOT EXISTS pg_trgm;
`

// What a dump records and what Observe sees in its restored copy must be
// identical: the same queries, on the source snapshot and on the copy.
func TestObserveMatchesDump(t *testing.T) {
	ctx := context.Background()
	src := testenv.NewPostgresDB(t)
	if err := sample.Seed(ctx, src, 300); err != nil {
		t.Fatal(err)
	}
	testenv.Exec(t, src, extraSchema)
	bin := testenv.PostgresBin(t)

	var dump bytes.Buffer
	info, err := New(src, WithBinDirs(bin)).Dump(ctx, &dump)
	if err != nil {
		t.Fatal(err)
	}
	for kind, name := range map[string]string{
		"table": `public.events_2026_10`, "index": `public."Odd ""index"""`, "view": "public.order_totals",
		"materialized view": "public.order_count", "function": `"Billing"."total of"(o bigint, "x y" integer)`,
		"trigger": "public.orders.orders_touch", "constraint": "public.order_items.qty_positive",
		"type": `public."Mood"`, "schema": `"Billing"`, "extension": "pg_trgm", "sequence": "public.orders_id_seq",
	} {
		if !contains(info.Source.Objects[kind], name) {
			t.Errorf("dump inventory lacks %s %s: %q", kind, name, info.Source.Objects[kind])
		}
	}
	for _, fn := range info.Source.Objects["function"] {
		if strings.Contains(fn, "similarity") {
			t.Errorf("extension member %s listed as the database's own", fn)
		}
	}

	path := filepath.Join(t.TempDir(), "dump.pgdump")
	if err := os.WriteFile(path, dump.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		jobs     int
		progress bool
	}{{1, false}, {1, true}, {3, false}} {
		t.Run(fmt.Sprintf("jobs=%d,progress=%v", tc.jobs, tc.progress), func(t *testing.T) {
			into := testenv.NewPostgresDB(t)
			var counted countingWriter
			opts := engine.RestoreOptions{Jobs: tc.jobs}
			if tc.progress {
				opts.Progress = &counted
			}
			if err := New("", WithBinDirs(bin)).RestoreInto(ctx, into, path, pg15, opts); err != nil {
				t.Fatal(err)
			}
			if tc.progress && int(counted) != dump.Len() {
				t.Errorf("progress counted %d bytes of a %d-byte archive", counted, dump.Len())
			}
			srv := serverOf(t, into)
			c, err := New("").Open(ctx, srv)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			got, err := c.Observe(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Tables, info.Source.Tables) {
				t.Errorf("tables differ:\ndump %v\ncopy %v", info.Source.Tables, got.Tables)
			}
			if !reflect.DeepEqual(got.Objects, info.Source.Objects) {
				t.Errorf("objects differ:\ndump %v\ncopy %v", info.Source.Objects, got.Objects)
			}
			n, err := c.Integrity(ctx)
			if err != nil || n == "" {
				t.Errorf("amcheck: %s, %v", n, err)
			}
		})
	}
}

// A restore that the server rejects is ErrRestore (the backup is bad); a
// server that cannot be reached is not.
func TestRestoreErrors(t *testing.T) {
	ctx := context.Background()
	bin := testenv.PostgresBin(t)
	garbage := filepath.Join(t.TempDir(), "dump.pgdump")
	if err := os.WriteFile(garbage, []byte("PGDMP not really an archive"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := New("", WithBinDirs(bin)).RestoreInto(ctx, testenv.NewPostgresDB(t), garbage, pg15, engine.RestoreOptions{})
	if !errors.Is(err, engine.ErrRestore) {
		t.Errorf("garbage archive: %v, want ErrRestore", err)
	}
	var dump bytes.Buffer
	if _, err := New(testenv.NewPostgresDB(t), WithBinDirs(bin)).Dump(ctx, &dump); err != nil {
		t.Fatal(err)
	}
	valid := filepath.Join(t.TempDir(), "dump.pgdump")
	if err := os.WriteFile(valid, dump.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	closed := "postgres://postgres:x@127.0.0.1:1/db?sslmode=disable"
	err = New("", WithBinDirs(bin)).RestoreInto(ctx, closed, valid, pg15, engine.RestoreOptions{})
	if err == nil || errors.Is(err, engine.ErrRestore) {
		t.Errorf("unreachable server: %v, want an operational error", err)
	}
}

func TestQuery(t *testing.T) {
	ctx := context.Background()
	db := testenv.NewPostgresDB(t)
	c, err := New("").Open(ctx, serverOf(t, db))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	cases := []struct {
		sql, text string
		null      bool
		time      bool
		err       string
	}{
		{sql: "SELECT 42", text: "42"},
		{sql: "SELECT 12345678901234567890.50::numeric", text: "12345678901234567890.50"},
		{sql: "SELECT 1.5::float8", text: "1.5"},
		{sql: "SELECT true", text: "true"},
		{sql: "SELECT 'x'::text", text: "x"},
		{sql: "SELECT NULL::int", null: true},
		{sql: "SELECT timestamptz '2026-11-22 02:00:00+00'", text: "2026-11-22T02:00:00Z", time: true},
		{sql: "SELECT date '2026-11-21'", text: "2026-11-21T00:00:00Z", time: true},
		{sql: "SELECT 1 WHERE false", err: "returned 0 rows"},
		{sql: "SELECT generate_series(1, 3)", err: "returned 3 rows"},
		{sql: "SELECT 1, 2", err: "returned 2 columns"},
		{sql: "SELECT * FROM nowhere", err: `relation "nowhere" does not exist`},
		{sql: "CREATE TABLE t (a int)", err: "read-only transaction"},
	}
	for _, tc := range cases {
		v, err := c.Query(ctx, tc.sql)
		if tc.err != "" {
			if !errors.Is(err, engine.ErrQuery) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want ErrQuery with %q", tc.sql, err, tc.err)
			}
			continue
		}
		if err != nil || v.Text != tc.text || v.Null != tc.null || (v.Time != nil) != tc.time {
			t.Errorf("%s: %+v %v, want %q null=%v time=%v", tc.sql, v, err, tc.text, tc.null, tc.time)
		}
	}
}

// A check query runs under a statement_timeout: the server stops it when its
// check gives up, and a stopped query is no verdict on the backup.
func TestQueryStatementTimeout(t *testing.T) {
	ctx := context.Background()
	c, err := New("").Open(ctx, serverOf(t, testenv.NewPostgresDB(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	v, err := c.Query(ctx, "SELECT current_setting('statement_timeout')")
	if err != nil || v.Text != "10min" {
		t.Errorf("statement_timeout of a check: %q %v, want 10min (engine.MaxQueryTime)", v.Text, err)
	}
	dctx, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	v, err = c.Query(dctx, "SELECT current_setting('statement_timeout')")
	if err != nil || v.Text != "10min" {
		t.Errorf("statement_timeout under a later deadline: %q %v, want 10min", v.Text, err)
	}
	dctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err = c.Query(dctx, "SELECT current_setting('statement_timeout', true)::interval < interval '29.5s'")
	if err != nil || v.Text != "true" {
		t.Errorf("statement_timeout under a 30s deadline below 29.5s: %q %v", v.Text, err)
	}
	// A query the server stopped (57014, as statement_timeout does) is an
	// error, not a failed check.
	_, err = c.Query(ctx, "SELECT pg_cancel_backend(pg_backend_pid())")
	if err == nil || errors.Is(err, engine.ErrQuery) || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("a stopped query: %v, want an error that is not ErrQuery", err)
	}
}

func TestNumericText(t *testing.T) {
	cases := map[string]pgtype.Numeric{
		"1200":   {Int: big.NewInt(12), Exp: 2, Valid: true},
		"-0.005": {Int: big.NewInt(-5), Exp: -3, Valid: true},
		"3.10":   {Int: big.NewInt(310), Exp: -2, Valid: true},
		"NaN":    {NaN: true, Valid: true},
	}
	for want, n := range cases {
		if got := numericText(n); got != want {
			t.Errorf("numericText(%+v) = %q, want %q", n, got, want)
		}
	}
}

// pg15 is the dump info of a backup written by pg_dump 15.
var pg15 = &engine.DumpInfo{Tools: map[string]string{"pg_dump": "15"}}

func serverOf(t *testing.T, dsn string) engine.Server {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return engine.Server{Host: cfg.Host, Port: int(cfg.Port), User: cfg.User, Password: cfg.Password, Database: cfg.Database}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type countingWriter int

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// A stream that fails after pg_restore has read the whole archive: pg_restore
// has committed, and the error says so instead of "rolled back".
func TestRestoreStreamFailsAfterCommit(t *testing.T) {
	ctx := context.Background()
	bin := testenv.PostgresBin(t)
	src := testenv.NewPostgresDB(t)
	testenv.Exec(t, src, "CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 1000)")
	var dump bytes.Buffer
	info, err := New(src, WithBinDirs(bin)).Dump(ctx, &dump)
	if err != nil {
		t.Fatal(err)
	}
	broken := errors.New("the stream's last frame does not decode")
	target := testenv.NewPostgresDB(t)
	open := func() (io.Reader, error) { return io.MultiReader(&dump, failingReader{broken}), nil }
	err = New("", WithBinDirs(bin)).RestoreStream(ctx, target, open, info, engine.RestoreOptions{})
	if !errors.Is(err, broken) || !strings.Contains(err.Error(), "committed") || strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("got %v, want the stream's error saying pg_restore committed", err)
	}
	if n := countsOf(t, target)[tableKey{"public", "t"}]; n != 1000 {
		t.Fatalf("the target holds %d rows, want the 1000 pg_restore committed", n)
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }
