package postgres

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/backproof/backproof/internal/sample"
	"github.com/backproof/backproof/internal/testenv"
)

func TestSplitPassword(t *testing.T) {
	cases := []struct{ in, rest, pw string }{
		{"postgres://app:s3cr%40t@db:5432/orders?sslmode=require", "postgres://app@db:5432/orders?sslmode=require", "s3cr@t"},
		{"postgresql://app@db/orders?password=pw1&sslmode=disable", "postgresql://app@db/orders?sslmode=disable", "pw1"},
		{"postgres://db/orders", "postgres://db/orders", ""},
		// libpq's reading: the userinfo ends at the first '@' before a '/',
		// so '#' and '?' belong to the password (net/url would cut there).
		{"postgres://app:pa#ss?w@db/orders", "postgres://app@db/orders", "pa#ss?w"},
		{"postgres://:a+b@db/o?password=x%2By&password=z", "postgres://@db/o", "z"},
		{"host=db user=app password=pw2 dbname=orders", "host=db user=app dbname=orders", "pw2"},
		{"host=db password='it''s' dbname=o", "", ""}, // libpq has no '' escape: rejected below
		{`host=db password='p w\'x' dbname='my db'`, `host=db dbname='my db'`, `p w'x`},
	}
	for _, c := range cases {
		rest, pw, err := splitPassword(c.in)
		if c.rest == "" {
			continue
		}
		if err != nil || rest != c.rest || pw != c.pw {
			t.Errorf("splitPassword(%q) = %q, %q, %v; want %q, %q", c.in, rest, pw, err, c.rest, c.pw)
		}
	}
	if _, _, err := splitPassword("host=db password='unterminated"); err == nil || strings.Contains(err.Error(), "unterminated'") {
		t.Errorf("unterminated quote: %v", err)
	}
}

func TestPickTool(t *testing.T) {
	tools := []Tool{{Path: "/a/pg_dump", Version: "15.18", Major: 15}, {Path: "/b/pg_dump", Version: "16.4", Major: 16}}
	if got, err := pickTool("pg_dump", tools, 15); err != nil || got.Major != 16 {
		t.Errorf("server 15: got %+v %v, want the newest (16)", got, err)
	}
	if got, err := pickTool("pg_dump", tools, 16); err != nil || got.Major != 16 {
		t.Errorf("server 16: got %+v %v", got, err)
	}
	_, err := pickTool("pg_dump", tools, 17)
	if err == nil || !strings.Contains(err.Error(), "pg_dump 16.4 (/b/pg_dump) is older than the server (PostgreSQL 17)") {
		t.Errorf("server 17: %v", err)
	}
	if _, err := pickTool("pg_dump", nil, 15); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("no tools: %v", err)
	}
}

// The password reaches pg_dump only through its environment, never argv, and
// pg_dump sees none of backproof's other secrets (other targets' DSNs, keys).
func TestPasswordNotOnArgv(t *testing.T) {
	const sentinel = "ArgvSentinel-71c"
	const other = "OtherTargetSentinel-0b3"
	t.Setenv("BILLING_DSN", "postgres://app:"+other+"@db/billing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", other)
	admin := testenv.NewPostgresDB(t)
	ctx := context.Background()
	if err := sample.Seed(ctx, admin, 100); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	role := cfg.Database + "_argv"
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, sentinel),
		"GRANT pg_read_all_data TO " + role,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	defer conn.Exec(ctx, "DROP OWNED BY "+role+"; DROP ROLE "+role)

	// A pg_dump that records its argv and PGPASSWORD, then runs the real one.
	dir := t.TempDir()
	record := filepath.Join(dir, "record")
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$@\" > %s.argv\nprintf '%%s' \"$PGPASSWORD\" > %s.env\nenv > %s.all\nexec %s \"$@\"\n",
		record, record, record, filepath.Join(testenv.PostgresBin(t), "pg_dump"))
	if err := os.WriteFile(filepath.Join(dir, "pg_dump"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	dsn := fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable", cfg.Host, cfg.Port, role, sentinel, cfg.Database)
	var out bytes.Buffer
	info, err := New(dsn, WithBinDirs(dir)).Dump(ctx, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out.Bytes(), archiveMagic) || len(info.Source.Tables) == 0 {
		t.Fatalf("dump: %d bytes, %d tables", out.Len(), len(info.Source.Tables))
	}
	argv, _ := os.ReadFile(record + ".argv")
	env, _ := os.ReadFile(record + ".env")
	if len(argv) == 0 || strings.Contains(string(argv), sentinel) {
		t.Errorf("pg_dump argv carries the password or was not recorded:\n%s", argv)
	}
	if string(env) != sentinel {
		t.Errorf("PGPASSWORD in pg_dump's environment = %q, want the password", env)
	}
	if all, _ := os.ReadFile(record + ".all"); len(all) == 0 || strings.Contains(string(all), other) {
		t.Errorf("pg_dump's environment holds another target's secret or was not recorded:\n%s", all)
	}
}

// A server newer than every pg_dump is refused before anything is dumped.
func TestRefusesNewerServer(t *testing.T) {
	dir := t.TempDir()
	fake := "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n"
	if err := os.WriteFile(filepath.Join(dir, "pg_dump"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_, err := New(testenv.NewPostgresDB(t), WithBinDirs(dir)).Dump(context.Background(), &out)
	if err == nil || !strings.Contains(err.Error(), "pg_dump 9.6 (") || !strings.Contains(err.Error(), "older than the server (PostgreSQL 15)") {
		t.Fatalf("err = %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("%d bytes written before refusing", out.Len())
	}
}
