package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/internal/sample"
	"github.com/backproof/backproof/internal/testenv"
)

// continuityConfig: one target on a local destination, keep_last 1, with the
// default continuity settings.
func continuityConfig(t *testing.T, dsn, image string) (cfg, dir string) {
	t.Helper()
	dir = t.TempDir()
	t.Setenv("BACKPROOF_TEST_APP_DSN", dsn)
	return writeConfig(t, fmt.Sprintf(`
sandbox:
  images: {postgres: "%s"}
  timeout: 5m
destinations:
  local: {type: local, path: %s}
targets:
  orders:
    engine: postgres
    dsn: ${BACKPROOF_TEST_APP_DSN}
    destinations: [local]
    retention: {keep_last: 1}
`, image, dir)), dir
}

type continuityDoc struct {
	Verifications []struct {
		BackupID string `json:"backup_id"`
		Outcome  string
		Reason   string
		Checks   []struct{ Name, Outcome, Observed, Message string }
	}
}

// verifyContinuity verifies the latest backup and returns the exit code and
// its continuity step.
func verifyContinuity(t *testing.T, cfg, id string) (code int, outcome, observed, message string) {
	t.Helper()
	r := runCLI(t, context.Background(), "verify", "-c", cfg, "--json")
	doc := decode[continuityDoc](t, r.stdout)
	if len(doc.Verifications) != 1 || doc.Verifications[0].BackupID != id {
		t.Fatalf("verify exit %d: %+v\n%s", r.code, doc, r.stderr)
	}
	for _, c := range doc.Verifications[0].Checks {
		if c.Name == "continuity" {
			return r.code, c.Outcome, c.Observed, c.Message
		}
	}
	t.Fatalf("no continuity step: %+v", doc.Verifications[0].Checks)
	return
}

// The disaster a restore test does not see: a faithful backup of damaged
// data. Against real PostgreSQL and real sandboxes: the first backup passes
// without a baseline, growth passes, a 90% drop in one table fails naming
// it, prune keeps the last good backup, accept makes the next verification
// pass, a dropped index and a dropped table fail naming them, a Flyway
// version going back fails, and the Flyway version is in the manifest and
// in list.
func TestContinuity(t *testing.T) {
	image := testenv.PostgresImage(t)
	testenv.NoSandboxesLeft(t)
	ctx := context.Background()
	dsn := testenv.NewPostgresDB(t)
	if err := sample.Seed(ctx, dsn, 2000); err != nil {
		t.Fatal(err)
	}
	testenv.Exec(t, dsn, `
CREATE TABLE flyway_schema_history (installed_rank int PRIMARY KEY, version varchar(50), description varchar(200),
  type varchar(20), script varchar(1000), checksum int, installed_by varchar(100), installed_on timestamp DEFAULT now(),
  execution_time int, success boolean NOT NULL);
INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, installed_by, execution_time, success)
  SELECT g, g::text, 'v' || g, 'SQL', 'V' || g || '__v.sql', 'app', 1, true FROM generate_series(1, 41) g;`)
	cfg, dir := continuityConfig(t, dsn, image)

	// First backup: no baseline, passes; the schema version is recorded.
	b1 := backupCommitted(t, cfg)
	m, err := os.ReadFile(filepath.Join(dir, "orders", b1, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man catalog.Manifest
	if err := json.Unmarshal(m, &man); err != nil {
		t.Fatal(err)
	}
	if ms := man.Source.Migrations; len(ms) != 1 || ms[0].Tool != "flyway" || ms[0].Version != "41" ||
		ms[0].Table != "public.flyway_schema_history" || ms[0].Applied != 41 {
		t.Fatalf("manifest migrations: %+v", ms)
	}
	r := runCLI(t, ctx, "list", "-c", cfg)
	if !strings.Contains(r.stdout, "SCHEMA") || !strings.Contains(r.stdout, "flyway 41") {
		t.Errorf("list does not show the schema version:\n%s", r.stdout)
	}
	r = runCLI(t, ctx, "list", "-c", cfg, "--json")
	if !strings.Contains(r.stdout, `"schema_version": "flyway 41"`) {
		t.Errorf("list --json lacks the schema version:\n%s", r.stdout)
	}
	r = runCLI(t, ctx, "restore", "orders", "-c", cfg, "--sandbox", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "schema flyway 41") {
		t.Errorf("restore --dry-run exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if code, outcome, observed, _ := verifyContinuity(t, cfg, b1); code != ExitOK || outcome != "pass" || !strings.Contains(observed, "no baseline") {
		t.Fatalf("first backup: exit %d, continuity %s %q", code, outcome, observed)
	}

	// Growth and a new migration pass.
	testenv.Exec(t, dsn, `
INSERT INTO order_items (order_id, sku, quantity, price_cents) SELECT 1 + g % 2000, 'SKU-new', 1, 100 FROM generate_series(1, 500) g;
INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, installed_by, execution_time, success)
  VALUES (42, '42', 'v42', 'SQL', 'V42__v.sql', 'app', 1, true);
CREATE TABLE coupons (code text PRIMARY KEY);`)
	b2 := backupCommitted(t, cfg)
	if code, outcome, observed, _ := verifyContinuity(t, cfg, b2); code != ExitOK || outcome != "pass" || !strings.Contains(observed, "since "+b1) {
		t.Fatalf("growth: exit %d, continuity %s %q", code, outcome, observed)
	}

	// 90% of one table deleted: the backup is bad, the table named.
	testenv.Exec(t, dsn, `DELETE FROM order_items WHERE id % 10 <> 0`)
	b3 := backupCommitted(t, cfg)
	code, outcome, _, msg := verifyContinuity(t, cfg, b3)
	if want := "public.order_items: 3000 -> 300 rows (-90%) since " + b2; code != ExitBadBackup || outcome != "fail" || msg != want {
		t.Fatalf("90%% drop: exit %d, continuity %s %q, want 3, fail %q", code, outcome, msg, want)
	}

	// keep_last: 1 after the drop keeps the damaged newest and the last good one.
	r = runCLI(t, ctx, "prune", "-c", cfg, "--json")
	if r.code != ExitOK {
		t.Fatalf("prune exit %d: %s", r.code, r.stderr)
	}
	if got := listedIDs(t, cfg); !slices.Equal(got, []string{b2, b3}) {
		t.Fatalf("after prune: %v, want the last good %s and the newest %s", got, b2, b3)
	}

	// A person accepts the drop (an archive job): recorded next to the
	// backup, shown in list; the next backup is compared with it and passes.
	r = runCLI(t, ctx, "accept", "orders", "-c", cfg, "--backup", b3, "--reason", "archive job moved old items")
	if r.code != ExitOK || !strings.Contains(r.stdout, "accepted orders backup "+b3) {
		t.Fatalf("accept exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, ctx, "list", "-c", cfg)
	if !strings.Contains(r.stdout, "accepted by ") || !strings.Contains(r.stdout, "archive job moved old items") {
		t.Errorf("list does not show the acceptance:\n%s", r.stdout)
	}
	b4 := backupCommitted(t, cfg)
	if code, outcome, observed, _ := verifyContinuity(t, cfg, b4); code != ExitOK || outcome != "pass" || !strings.Contains(observed, "since "+b3+" (accepted)") {
		t.Fatalf("after accept: exit %d, continuity %s %q", code, outcome, observed)
	}

	// A dropped index fails, naming it.
	testenv.Exec(t, dsn, `DROP INDEX orders_created_idx`)
	b5 := backupCommitted(t, cfg)
	if code, outcome, _, msg := verifyContinuity(t, cfg, b5); code != ExitBadBackup || outcome != "fail" || msg != "index public.orders_created_idx gone since "+b4 {
		t.Fatalf("dropped index: exit %d, continuity %s %q", code, outcome, msg)
	}

	// A dropped table and a migration rolled back fail, naming both.
	testenv.Exec(t, dsn, `DROP TABLE coupons; DELETE FROM flyway_schema_history WHERE version = '42'`)
	b6 := backupCommitted(t, cfg)
	code, outcome, _, msg = verifyContinuity(t, cfg, b6)
	if code != ExitBadBackup || outcome != "fail" || !strings.Contains(msg, "table public.coupons gone") ||
		!strings.Contains(msg, "schema version of public.flyway_schema_history (flyway) went back: 42 -> 41") ||
		!strings.Contains(msg, "index public.orders_created_idx gone") {
		t.Fatalf("dropped table: exit %d, continuity %s %q", code, outcome, msg)
	}
}

func listedIDs(t *testing.T, cfg string) []string {
	t.Helper()
	r := runCLI(t, context.Background(), "list", "-c", cfg, "--json")
	var ids []string
	for _, b := range decode[listDoc](t, r.stdout).Backups {
		ids = append(ids, b.ID)
	}
	slices.Sort(ids)
	return ids
}

// Redis through the same step, with its own defaults: keys churn, so a 75%
// drop passes, while a database flushed away (Redis then leaves it out of
// its keyspace) fails.
func TestContinuityRedis(t *testing.T) {
	testenv.NoSandboxesLeft(t)
	src := redisSource(t, "repl-diskless-sync yes")
	conn := src.Conn(t)
	mset := []string{"MSET"}
	del := []string{"DEL"}
	for i := range 40000 {
		k := fmt.Sprintf("user:%d", i)
		mset = append(mset, k, "x")
		if i < 30000 {
			del = append(del, k)
		}
	}
	conn.Must(mset...)
	cfg := redisConfig(t, src.DSN("", sentinel))
	verifyLocal := func(id string) (int, map[string]string) {
		t.Helper()
		r := runCLI(t, context.Background(), "verify", "-c", cfg, "--destination", "local", "--json")
		doc := decode[continuityDoc](t, r.stdout)
		if len(doc.Verifications) != 1 || doc.Verifications[0].BackupID != id {
			t.Fatalf("verify exit %d: %+v\n%s", r.code, doc, r.stderr)
		}
		steps := map[string]string{}
		for _, c := range doc.Verifications[0].Checks {
			steps[c.Name] = c.Outcome + " " + c.Observed + " " + c.Message
		}
		return r.code, steps
	}

	b1 := backupCommitted(t, cfg)
	if code, steps := verifyLocal(b1); code != ExitOK || !strings.HasPrefix(steps["continuity"], "pass no baseline") {
		t.Fatalf("first backup: exit %d %v", code, steps)
	}
	conn.Must(del...)
	b2 := backupCommitted(t, cfg)
	if code, steps := verifyLocal(b2); code != ExitOK || !strings.Contains(steps["continuity"], "biggest drop redis.db0: 40018 -> 10018 keys (-75%)") {
		t.Fatalf("churn: exit %d %v", code, steps)
	}
	conn.Must("FLUSHDB")
	b3 := backupCommitted(t, cfg)
	code, steps := verifyLocal(b3)
	if code != ExitBadBackup || !strings.HasPrefix(steps["continuity"], "fail ") ||
		!strings.HasSuffix(steps["continuity"], " redis.db0: 10018 -> 0 keys (-100%) since "+b2) {
		t.Fatalf("flushed: exit %d %v", code, steps)
	}
}
