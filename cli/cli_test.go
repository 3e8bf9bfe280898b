package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/backproof/backproof/internal/sample"
	"github.com/backproof/backproof/internal/testenv"
)

// sentinel is a password that must never appear in any output.
const sentinel = "Sntl-9f3c2b7e-pass"

type run struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, ctx context.Context, args ...string) run {
	t.Helper()
	// client-go's goroutines may still log after Main returned.
	var out, errb testenv.Buffer
	env := func(k string) string {
		if k == "PATH" || strings.HasPrefix(k, "BACKPROOF_") {
			return os.Getenv(k)
		}
		return ""
	}
	code := Main(ctx, args, &out, &errb, env, Build{Version: "test"})
	r := run{code, out.String(), errb.String()}
	if strings.Contains(r.stdout+r.stderr, sentinel) {
		t.Fatalf("sentinel secret leaked in output of %v:\nstdout: %s\nstderr: %s", args, r.stdout, r.stderr)
	}
	return r
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "backproof.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	valid := fmt.Sprintf(`
destinations:
  local: {type: local, path: %s}
targets:
  orders:
    engine: postgres
    dsn: postgres://app:%s@127.0.0.1:5432/orders
    schedule: "0 2 * * *"
    destinations: [local]
`, dir, sentinel)
	cases := []struct {
		name, config, want string
		code               int
	}{
		{"valid", valid, "ok (1 targets, 1 destinations)", 0},
		{"unknown key", valid + "    colour: blue\n", ":10: targets.orders.colour", 2},
		{"bad cron", strings.Replace(valid, "0 2 * * *", "61 2 * * *", 1), ":8: targets.orders.schedule", 2},
		{"unknown destination", strings.Replace(valid, "[local]", "[local, offsite]", 1), ":9: targets.orders.destinations[1]", 2},
		{"unknown engine", strings.Replace(valid, "engine: postgres", "engine: oracle", 1), ":6: targets.orders.engine", 2},
		{"dsn of another engine", strings.Replace(valid, "engine: postgres", "engine: mysql", 1), `targets.orders.dsn: dsn: scheme "postgres", want mysql://`, 2},
		{"encryption", valid + "encryption: {recipients: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]}\n", "ok (1 targets, 1 destinations)", 0},
		{"retention keeps nothing", valid + "    retention: {keep_daily: 0}\n", ":10: targets.orders.retention: keeps nothing", 2},
		// The engine's rules reach config through the registration (engine.Kind.CheckQuery).
		{"mongodb writing check", strings.Replace(strings.Replace(valid, "engine: postgres", "engine: mongodb", 1),
			"postgres://app:", "mongodb://app:", 1) + "    verify:\n      checks:\n        - {name: w, query: '{\"aggregate\": \"orders\", \"pipeline\": [{\"$out\": \"x\"}]}', expect: \"> 0\"}\n",
			":12: targets.orders.verify.checks[0].query: aggregate: stage $out writes", 2},
		{"redis script check", strings.Replace(strings.Replace(valid, "engine: postgres", "engine: redis", 1),
			"postgres://app:", "redis://app:", 1) + "    verify:\n      checks:\n        - {name: hits, query: \"EVAL_RO 'return 1' 0\", expect: \"> 0\"}\n",
			":12: targets.orders.verify.checks[0].query: EVAL_RO runs a script: checks run only plain read-only commands (GET, HLEN, DBSIZE...) (check \"hits\")", 2},
		{"missing bucket", strings.Replace(valid, "{type: local, path: "+dir+"}", "{type: s3, region: us-east-1}", 1), ":3: destinations.local.bucket: required", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, context.Background(), "config", "check", "-c", writeConfig(t, tc.config))
			if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) {
				t.Fatalf("exit %d, want %d with %q\nstdout: %s\nstderr: %s", r.code, tc.code, tc.want, r.stdout, r.stderr)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	cfg := writeConfig(t, fmt.Sprintf(`
destinations: {local: {type: local, path: %s}}
targets: {orders: {engine: postgres, dsn: "host=127.0.0.1", destinations: [local]}}
`, t.TempDir()))
	for _, args := range [][]string{
		{"backup"},                              // no config
		{"backup", "-c", cfg, "--no-such-flag"}, // unknown flag
		{"backup", "-c", cfg, "payments"},       // unknown target
		{"list", "-c", cfg, "--destination", "nowhere"},
		{"frobnicate"},
		{"config", "check", "-c", filepath.Join(t.TempDir(), "missing.yaml")},
	} {
		if r := runCLI(t, context.Background(), args...); r.code != ExitUsage {
			t.Errorf("%v: exit %d, want %d; stderr: %s", args, r.code, ExitUsage, r.stderr)
		}
	}
}

// appDB creates a seeded database owned by a role whose password is the
// sentinel, and returns the DSN with that password.
func appDB(t *testing.T) string {
	t.Helper()
	admin := testenv.NewPostgresDB(t)
	if err := sample.Seed(context.Background(), admin, 2000); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	role := cfg.Database + "_app"
	conn, err := pgx.Connect(context.Background(), admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	ident := pgx.Identifier{role}.Sanitize()
	for _, q := range []string{
		"CREATE ROLE " + ident + " LOGIN PASSWORD '" + sentinel + "'",
		"GRANT pg_read_all_data TO " + ident,
	} {
		if _, err := conn.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), testenv.PostgresDSN(t))
		if err == nil {
			c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{cfg.Database}.Sanitize()+" WITH (FORCE)")
			c.Exec(context.Background(), "DROP ROLE IF EXISTS "+ident)
			c.Close(context.Background())
		}
	})
	return fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", role, sentinel, cfg.Host, cfg.Port, cfg.Database)
}

func e2eConfig(t *testing.T, dsn, s3Secret string) string {
	t.Helper()
	return e2eConfigWith(t, dsn, s3Secret, "", "")
}

// e2eConfigWith is the end-to-end config with a local and a MinIO
// destination, plus extra top-level and per-target YAML.
func e2eConfigWith(t *testing.T, dsn, s3Secret, top, target string) string {
	t.Helper()
	return twoDestConfig(t, s3Secret, top, "orders", "postgres", dsn, target)
}

// twoDestConfig writes a config with one target, name on engine at dsn
// (through ${BACKPROOF_TEST_APP_DSN}), backed up to a local folder and a new
// MinIO bucket whose secret key is s3Secret; top and target are extra
// top-level and per-target YAML.
func twoDestConfig(t *testing.T, s3Secret, top, name, engine, dsn, target string) string {
	t.Helper()
	env := testenv.S3(t)
	bucket := testenv.NewBucket(t, env)
	t.Setenv("BACKPROOF_TEST_APP_DSN", dsn)
	return writeConfig(t, fmt.Sprintf(`
log: {level: debug, format: json}
%s
destinations:
  local: {type: local, path: %s}
  offsite:
    type: s3
    bucket: %s
    prefix: prod
    endpoint: %s
    path_style: true
    access_key_id: %s
    secret_access_key: %s
targets:
  %s:
    engine: %s
    dsn: ${BACKPROOF_TEST_APP_DSN}
    destinations: [local, offsite]
%s
`, top, t.TempDir(), bucket, env.Endpoint, env.AccessKey, s3Secret, name, engine, target))
}

// backupCommitted runs backup and returns the id of a backup that every
// destination committed.
func backupCommitted(t *testing.T, cfg string) string {
	t.Helper()
	r := runCLI(t, context.Background(), "backup", "-c", cfg, "--json")
	if r.code != 0 {
		t.Fatalf("backup exit %d: %s", r.code, r.stderr)
	}
	doc := decode[backupDoc](t, r.stdout)
	for _, d := range doc.Backups[0].Destinations {
		if !d.Committed {
			t.Fatalf("%s not committed: %s", d.Name, d.Error)
		}
	}
	return doc.Backups[0].ID
}

type backupDoc struct {
	Backups []struct {
		Target       string
		ID           string
		Size         int64
		Error        string
		Destinations []struct {
			Name      string
			Committed bool
			Error     string
		}
	}
}

type listDoc struct {
	Backups []struct{ Target, Destination, ID, State string }
	Errors  []struct{ Target, Destination, Error string }
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, s)
	}
	return v
}

func TestBackupAndList(t *testing.T) {
	cfg := e2eConfig(t, appDB(t), testenv.S3(t).SecretKey)
	ctx := context.Background()

	// Flags after the positional target, as in git.
	r := runCLI(t, ctx, "backup", "orders", "-c", cfg, "--json")
	if r.code != 0 {
		t.Fatalf("backup exit %d: %s", r.code, r.stderr)
	}
	doc := decode[backupDoc](t, r.stdout)
	if len(doc.Backups) != 1 || doc.Backups[0].ID == "" || doc.Backups[0].Size == 0 {
		t.Fatalf("backup document: %+v", doc)
	}
	for _, d := range doc.Backups[0].Destinations {
		if !d.Committed {
			t.Errorf("%s not committed: %s", d.Name, d.Error)
		}
	}
	id := doc.Backups[0].ID

	t.Setenv("BACKPROOF_CONFIG", cfg)
	r = runCLI(t, ctx, "list", "--json")
	ld := decode[listDoc](t, r.stdout)
	if r.code != 0 || len(ld.Backups) != 2 || len(ld.Errors) != 0 {
		t.Fatalf("list exit %d: %+v\n%s", r.code, ld, r.stderr)
	}
	for _, b := range ld.Backups {
		if b.ID != id || b.State != "committed" {
			t.Errorf("listed %+v, want %s committed", b, id)
		}
	}
	r = runCLI(t, ctx, "list", "orders", "--destination", "offsite")
	if r.code != 0 || !strings.Contains(r.stdout, id) || strings.Contains(r.stdout, "local ") {
		t.Fatalf("list --destination offsite exit %d:\n%s", r.code, r.stdout)
	}
}

func TestFailuresKeepSecrets(t *testing.T) {
	ctx := context.Background()
	t.Run("wrong database password", func(t *testing.T) {
		dsn := strings.Replace(appDB(t), sentinel, sentinel+"-wrong", 1)
		cfg := e2eConfig(t, dsn, testenv.S3(t).SecretKey)
		r := runCLI(t, ctx, "backup", "-c", cfg)
		if r.code != ExitError || !strings.Contains(r.stderr, "password authentication failed") {
			t.Fatalf("exit %d, want 1 with the server's reason; stderr:\n%s", r.code, r.stderr)
		}
		r = runCLI(t, ctx, "list", "-c", cfg, "--json")
		if ld := decode[listDoc](t, r.stdout); len(ld.Backups) != 0 {
			t.Errorf("failed backup is listed: %+v", ld.Backups)
		}
	})
	t.Run("wrong S3 secret", func(t *testing.T) {
		cfg := e2eConfig(t, appDB(t), sentinel)
		r := runCLI(t, ctx, "backup", "-c", cfg, "--json")
		if r.code != ExitError {
			t.Fatalf("exit %d, want 1; stderr:\n%s", r.code, r.stderr)
		}
		doc := decode[backupDoc](t, r.stdout)
		dests := doc.Backups[0].Destinations
		if !dests[0].Committed || dests[1].Committed || dests[1].Error == "" {
			t.Fatalf("want local committed and offsite failed: %+v", dests)
		}
		r = runCLI(t, ctx, "list", "-c", cfg, "--json")
		ld := decode[listDoc](t, r.stdout)
		if r.code != ExitError || len(ld.Backups) != 1 || ld.Backups[0].Destination != "local" || len(ld.Errors) != 1 {
			t.Fatalf("list exit %d: %+v", r.code, ld)
		}
	})
}

func TestInterruptedExits130(t *testing.T) {
	cfg := e2eConfig(t, appDB(t), testenv.S3(t).SecretKey)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r := runCLI(t, ctx, "backup", "-c", cfg); r.code != ExitInterrupted {
		t.Fatalf("exit %d, want %d; stderr: %s", r.code, ExitInterrupted, r.stderr)
	}
	r := runCLI(t, context.Background(), "list", "-c", cfg, "--json")
	if ld := decode[listDoc](t, r.stdout); len(ld.Backups) != 0 {
		t.Errorf("interrupted backup is listed: %+v", ld.Backups)
	}
}
