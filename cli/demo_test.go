package cli

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/backproof/backproof/daemon"
	"github.com/backproof/backproof/internal/testenv"
)

// TestDemo runs the README's first command as it ships (default sample
// size), serving until interrupted: the backup must pass verification,
// /metrics and the page must show it while it serves, and at the end no
// container and no temporary folder may be left.
func TestDemo(t *testing.T) {
	image := testenv.PostgresImage(t)
	testenv.NoSandboxesLeft(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testenv.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"demo", "--image", image, "--listen", "127.0.0.1:0", "--serve", "0"},
			&stdout, &stderr, os.Getenv, Build{Version: "test"})
	}()

	serving := regexp.MustCompile(`(?m)^serve +(http://127\.0\.0\.1:\d+)/ `)
	var base string
	deadline := time.Now().Add(3 * time.Minute)
	for base == "" {
		select {
		case code := <-done:
			t.Fatalf("demo exited %d before serving:\n%s\n%s", code, stdout.String(), stderr.String())
		case <-time.After(200 * time.Millisecond):
		}
		if m := serving.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo not serving after 3 minutes:\n%s\n%s", stdout.String(), stderr.String())
		}
	}
	out := stdout.String()
	for _, want := range []string{"image    " + image, "150000 orders", "committed", ": PASS (restore ",
		"pass  tables", "pass  orders-present     150000", "pass  orders-fresh", "pass  items-have-orders"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	artifact := regexp.MustCompile(`\S+/backproof-demo-\S+/backups/orders/\S+/dump\.pgdump\.zst`).FindString(out)
	if _, err := os.Stat(artifact); artifact == "" || err != nil {
		t.Errorf("backup path %q not printed or missing while serving: %v", artifact, err)
	}

	fams, text := scrape(t, base)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   func(float64) bool
	}{
		{"backproof_verify_last_result", map[string]string{"target": "orders"}, func(v float64) bool { return v == 1 }},
		{"backproof_check_last_success", map[string]string{"target": "orders", "check": "orders-fresh"}, func(v float64) bool { return v == 1 }},
		{"backproof_backup_size_bytes", map[string]string{"target": "orders"}, func(v float64) bool { return v > 0 }},
		{"backproof_restore_duration_seconds", map[string]string{"target": "orders"}, func(v float64) bool { return v > 0 }},
		{"backproof_verified_backup_timestamp_seconds", map[string]string{"target": "orders"}, func(v float64) bool { return v > 0 }},
	} {
		if v := value(fams, c.name, c.labels); !c.want(v) {
			t.Errorf("%s%v = %v", c.name, c.labels, v)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
	if st := getStatus(t, base); len(st.Targets) != 1 || st.Targets[0].Health != daemon.OK {
		t.Errorf("/status: %+v", st)
	}
	if page := getPage(t, base); !strings.Contains(page, "orders") {
		t.Errorf("status page lacks the target:\n%s", page)
	}

	cancel() // Ctrl-C ends serving
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("exit %d after Ctrl-C while serving; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("demo still running a minute after Ctrl-C")
	}
	if left := testenv.OwnSandboxes(t); len(left) > 0 {
		t.Errorf("containers left: %v", left)
	}
	if _, err := os.Stat(filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(artifact))))); !os.IsNotExist(err) {
		t.Errorf("temporary folder of %s not removed: %v", artifact, err)
	}
	if resp, err := http.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("still serving after the demo ended")
	}
}

// TestDemoKeepsDir: with --dir the backups and a config stay, and that
// config works with the other commands after the source is gone.
func TestDemoKeepsDir(t *testing.T) {
	image := testenv.PostgresImage(t)
	testenv.NoSandboxesLeft(t)
	dir := filepath.Join(t.TempDir(), "demo")
	r := runCLI(t, context.Background(), "demo", "--image", image, "--dir", dir, "--orders", "2000",
		"--listen", "127.0.0.1:0", "--serve", "1ms")
	if r.code != ExitOK || !strings.Contains(r.stdout, "kept     "+dir) {
		t.Fatalf("demo exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	cfg := filepath.Join(dir, "backproof.yaml")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`dsn: \$\{ORDERS_DSN:-postgres://postgres@127\.0\.0\.1:\d+/orders\?sslmode=disable\}`).Match(data) {
		t.Errorf("config's dsn should hold no password:\n%s", data)
	}
	r = runCLI(t, context.Background(), "list", "-c", cfg, "--json")
	doc := decode[listVerifiedDoc](t, r.stdout)
	if r.code != ExitOK || len(doc.Backups) != 1 || doc.Backups[0].Verification == nil || doc.Backups[0].Verification.Outcome != "pass" {
		t.Fatalf("list exit %d: %+v\n%s", r.code, doc, r.stderr)
	}
}

// TestDemoWithoutDocker: no engine is an operational error that says where
// it looked.
func TestDemoWithoutDocker(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "docker.sock"))
	var stdout, stderr testenv.Buffer
	code := Main(context.Background(), []string{"demo", "--listen", "127.0.0.1:0"}, &stdout, &stderr, os.Getenv, Build{Version: "test"})
	if code != ExitError || !strings.Contains(stderr.String(), "needs a Docker engine") || !strings.Contains(stderr.String(), "DOCKER_HOST") {
		t.Fatalf("exit %d:\n%s\n%s", code, stdout.String(), stderr.String())
	}
}
