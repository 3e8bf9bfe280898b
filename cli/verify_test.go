package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backproof/backproof/internal/testenv"
)

// verifyConfig is e2eConfig with a sandbox and checks.
func verifyConfig(t *testing.T, dsn, image string) string {
	t.Helper()
	return e2eConfigWith(t, dsn, testenv.S3(t).SecretKey, fmt.Sprintf(`
sandbox:
  images: {postgres: "%s"}
  memory: 1GiB
  cpus: 1
  timeout: 5m`, image), `
    verify:
      checks:
        - {name: orders-present, query: SELECT count(*) FROM orders, expect: "> 0"}
        - {name: orders-fresh, query: SELECT max(created_at) FROM orders, max_age: 26h}`)
}

type verifyDoc struct {
	Verifications []struct {
		Target, Destination, Outcome, Reason string
		BackupID                             string  `json:"backup_id"`
		RestoreSeconds                       float64 `json:"restore_duration_seconds"`
		Record                               string
		Checks                               []struct{ Name, Outcome, Observed string }
	}
}

type listVerifiedDoc struct {
	Backups []struct {
		Destination, ID string
		Verification    *struct{ Outcome, Record, Reason string }
	}
}

func TestVerifyCommand(t *testing.T) {
	image := testenv.PostgresImage(t)
	testenv.NoSandboxesLeft(t)
	ctx := context.Background()
	cfg := verifyConfig(t, appDB(t), image)
	r := runCLI(t, ctx, "backup", "-c", cfg, "--json")
	if r.code != 0 {
		t.Fatalf("backup exit %d: %s", r.code, r.stderr)
	}
	id := decode[backupDoc](t, r.stdout).Backups[0].ID

	// Every destination in turn.
	r = runCLI(t, ctx, "verify", "-c", cfg, "--json")
	if r.code != ExitOK {
		t.Fatalf("verify exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	doc := decode[verifyDoc](t, r.stdout)
	if len(doc.Verifications) != 2 {
		t.Fatalf("want one record per destination: %+v", doc)
	}
	for i, v := range doc.Verifications {
		if v.Destination != []string{"local", "offsite"}[i] || v.BackupID != id || v.Outcome != "pass" || v.RestoreSeconds <= 0 || v.Record == "" {
			t.Errorf("record %d: %+v", i, v)
		}
		if len(v.Checks) != 9 {
			t.Errorf("%s: %d checks, want 9: %+v", v.Destination, len(v.Checks), v.Checks)
		}
	}

	// list shows each copy's last verification.
	r = runCLI(t, ctx, "list", "-c", cfg, "--json")
	for _, b := range decode[listVerifiedDoc](t, r.stdout).Backups {
		if b.Verification == nil || b.Verification.Outcome != "pass" {
			t.Errorf("list: %s on %s verification %+v", b.ID, b.Destination, b.Verification)
		}
	}
	r = runCLI(t, ctx, "list", "-c", cfg)
	if !strings.Contains(r.stdout, "VERIFIED") || strings.Count(r.stdout, " pass ") != 2 {
		t.Errorf("list table does not show the verification:\n%s", r.stdout)
	}

	// One byte flipped in the local copy: local fails (exit 3), the
	// offsite copy still passes; the human output names the cause.
	art := filepath.Join(strings.TrimSpace(localPath(t, cfg)), "orders", id, "dump.pgdump.zst")
	data, err := os.ReadFile(art)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/3] ^= 0x40
	if err := os.WriteFile(art, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, ctx, "verify", "orders", "-c", cfg, "--backup", id)
	if r.code != ExitBadBackup || !strings.Contains(r.stderr, "checksum mismatch") ||
		!strings.Contains(r.stdout, "on local: FAIL") || !strings.Contains(r.stdout, "on offsite: PASS") {
		t.Fatalf("exit %d, want 3 naming the checksum:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, ctx, "verify", "orders", "-c", cfg, "--destination", "offsite", "--json")
	if doc := decode[verifyDoc](t, r.stdout); r.code != ExitOK || len(doc.Verifications) != 1 || doc.Verifications[0].Destination != "offsite" {
		t.Fatalf("--destination offsite: exit %d %+v", r.code, doc)
	}
	r = runCLI(t, ctx, "list", "-c", cfg)
	if !strings.Contains(r.stdout, "fail ") || !strings.Contains(r.stdout, "checksum mismatch") {
		t.Errorf("list does not show the failed verification:\n%s", r.stdout)
	}
}

// localPath returns the local destination's path of a config written by
// verifyConfig.
func localPath(t *testing.T, cfg string) string {
	t.Helper()
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(data), "local: {type: local, path: ")
	p, _, _ := strings.Cut(rest, "}")
	return p
}

func TestVerifyCannotRun(t *testing.T) {
	image := testenv.PostgresImage(t)
	testenv.NoSandboxesLeft(t)
	ctx := context.Background()
	cfg := verifyConfig(t, appDB(t), image)
	if r := runCLI(t, ctx, "backup", "-c", cfg); r.code != 0 {
		t.Fatalf("backup exit %d: %s", r.code, r.stderr)
	}

	t.Run("image missing", func(t *testing.T) {
		data, _ := os.ReadFile(cfg)
		missing := writeConfig(t, strings.Replace(string(data), image, "backproof-test/absent:{major}", 1))
		r := runCLI(t, ctx, "verify", "-c", missing, "--destination", "local")
		if r.code != ExitError || !strings.Contains(r.stderr, "backproof-test/absent:15") || !strings.Contains(r.stdout, "ERROR") {
			t.Fatalf("exit %d, want 1 naming the image:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("docker unavailable", func(t *testing.T) {
		// testcontainers-go resolves the engine once per process, so this
		// runs in a child process with DOCKER_HOST pointing nowhere.
		out := filepath.Join(t.TempDir(), "result.json")
		cmd := exec.Command(os.Args[0], "-test.run=^TestVerifyChildProcess$")
		cmd.Env = append(os.Environ(), "DOCKER_HOST=unix:///nonexistent/docker.sock",
			"BACKPROOF_TEST_CHILD_CONFIG="+cfg, "BACKPROOF_TEST_CHILD_OUT="+out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("child: %v\n%s", err, b)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		r := decode[run2](t, string(data))
		doc := decode[verifyDoc](t, r.Stdout)
		if r.Code != ExitError || len(doc.Verifications) != 2 || !strings.Contains(r.Stderr, "docker engine at DOCKER_HOST=unix:///nonexistent/docker.sock not reachable") {
			t.Fatalf("exit %d, want 1 naming docker:\n%s\n%s", r.Code, r.Stdout, r.Stderr)
		}
		for _, v := range doc.Verifications {
			if v.Outcome != "error" {
				t.Errorf("%s: outcome %s, want error", v.Destination, v.Outcome)
			}
		}
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"verify", "-c", cfg, "--destination", "nowhere"},
			{"verify", "-c", cfg, "nosuchtarget"},
		} {
			if r := runCLI(t, ctx, args...); r.code != ExitUsage {
				t.Errorf("%v: exit %d, want 2: %s", args, r.code, r.stderr)
			}
		}
	})
}

type run2 struct {
	Code           int
	Stdout, Stderr string
}

// TestVerifyChildProcess is the child of "docker unavailable": it runs verify
// in a process of its own and writes the result where the parent said. Run
// on its own it does nothing.
func TestVerifyChildProcess(t *testing.T) {
	cfg, out := os.Getenv("BACKPROOF_TEST_CHILD_CONFIG"), os.Getenv("BACKPROOF_TEST_CHILD_OUT")
	if cfg == "" || out == "" {
		return
	}
	r := runCLI(t, context.Background(), "verify", "-c", cfg, "--json")
	data, err := json.Marshal(run2{r.code, r.stdout, r.stderr})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
