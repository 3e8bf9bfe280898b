package main

// These tests run the real binary: the test executable re-runs itself as
// backproof (TestMain), so signals, terminals and exit codes are real.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/jackc/pgx/v5"

	"github.com/backproof/backproof/internal/sample"
	"github.com/backproof/backproof/internal/testenv"
	"github.com/backproof/backproof/lease"
	"github.com/backproof/backproof/sandbox/docker"
)

const asMain = "BACKPROOF_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// backproof returns a command running this binary as backproof.
func backproof(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), asMain+"=1")
	return cmd
}

// plain returns a command running the backproof binary the test run built
// without the race detector: for tests that move hundreds of MiB, where
// -race would make them several times slower and adds nothing the other
// tests do not check.
func plain(t *testing.T, ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, testenv.Binary(t), args...)
}

// fixture backs up the database at dsn to a local destination and returns
// the config file.
func fixture(t *testing.T, dsn string) string {
	t.Helper()
	return fixtureWith(t, dsn, backproof)
}

func fixtureWith(t *testing.T, dsn string, run func(context.Context, ...string) *exec.Cmd) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "backproof.yaml")
	body := fmt.Sprintf(`
sandbox:
  images: {postgres: %q}
destinations:
  local: {type: local, path: %s}
targets:
  orders:
    engine: postgres
    dsn: %s
    destinations: [local]
    verify:
      checks:
        - {name: orders-present, query: "SELECT count(*) FROM orders", expect: "> 0"}
`, testenv.PostgresImage(t), t.TempDir(), dsn)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(context.Background(), "backup", "-c", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	return cfg
}

func TestRestoreSandboxSIGINT(t *testing.T) {
	dsn := testenv.NewPostgresDB(t)
	if err := sample.Seed(context.Background(), dsn, 2000); err != nil {
		t.Fatal(err)
	}
	cfg := fixture(t, dsn)

	cmd := backproof(context.Background(), "restore", "orders", "-c", cfg, "--sandbox")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	owner := docker.OwnerOf(cmd.Process.Pid)
	defer cmd.Process.Kill() //nolint:errcheck // a no-op once it exited

	var sandboxDSN string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "sandbox ready: "); ok {
			sandboxDSN = d
			break
		}
	}
	go io.Copy(io.Discard, stdout) //nolint:errcheck // drain the rest
	if sandboxDSN == "" {
		cmd.Process.Kill() //nolint:errcheck
		cmd.Wait()         //nolint:errcheck
		t.Fatalf("no DSN printed: %s", stderr.String())
	}
	conn, err := pgx.Connect(context.Background(), sandboxDSN)
	if err != nil {
		t.Fatal(err)
	}
	var orders int
	err = conn.QueryRow(context.Background(), "SELECT count(*) FROM orders").Scan(&orders)
	conn.Close(context.Background())
	if err != nil || orders != 2000 {
		t.Errorf("orders in the sandbox: %d, %v", orders, err)
	}
	if left := testenv.SandboxesOf(t, owner); len(left) != 1 {
		t.Errorf("while held: %v, want one sandbox", left)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("after SIGINT: %v\n%s", err, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("restore --sandbox still running a minute after SIGINT")
	}
	if left := testenv.SandboxesOf(t, owner); len(left) != 0 {
		t.Errorf("after SIGINT: %v", left)
	}
}

// A restore of a few hundred MB on a terminal draws a progress bar for the
// download and one for the restore, with sizes, rate and ETA.
func TestRestoreProgressOnTerminal(t *testing.T) {
	dsn := testenv.NewPostgresDB(t)
	testenv.Exec(t, dsn, `
		CREATE TABLE orders AS
		  SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b, md5((g * 13)::text) AS c
		  FROM generate_series(1, 2500000) g`)
	run := func(ctx context.Context, args ...string) *exec.Cmd { return plain(t, ctx, args...) }
	cfg := fixtureWith(t, dsn, run)
	into := testenv.NewPostgresDB(t)

	ptmx, err := pty.StartWithSize(run(context.Background(), "restore", "orders", "-c", cfg, "--to", into),
		&pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	var screen bytes.Buffer
	_, err = io.Copy(&screen, ptmx) // until the child exits and the pty closes
	if err != nil && !errors.Is(err, syscall.EIO) {
		t.Fatal(err)
	}
	out := screen.String()
	for _, want := range []*regexp.Regexp{
		// A fast machine copies the local artifact at more than 1 GiB/s.
		regexp.MustCompile(`download from local +100% \|█+\| \(\d+(\.\d+)?/\d+(\.\d+)? MiB, \d+(\.\d+)? [MG]iB/s\)`),
		regexp.MustCompile(`restore into 127\.0\.0\.1:\d+/\S+ +\d\d% \|█+ +\| \(\d+/\d{3} MiB, \d+(\.\d+)? MiB/s\) \[\d+s:\d+s\]`), // ETA
		regexp.MustCompile(`restore into 127\.0\.0\.1:\d+/\S+ +100% \|█+\| \((\d{3})/\d{3} MiB, \d+(\.\d+)? MiB/s\)`),              // a few hundred MiB
		regexp.MustCompile(`restored orders backup \S+ from local`),
	} {
		if !want.MatchString(out) {
			t.Errorf("terminal output lacks %s:\n%s\n...\n%s", want, head(out, 1500), tail(strings.ReplaceAll(out, "\r", "\n"), 1500))
		}
	}
	var rows int
	conn, err := pgx.Connect(context.Background(), into)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM orders").Scan(&rows); err != nil || rows != 2500000 {
		t.Errorf("restored rows: %d, %v", rows, err)
	}

	// Not a terminal: no progress at all (a small backup shows it as well).
	small := testenv.NewPostgresDB(t)
	testenv.Exec(t, small, "CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 1000) g")
	out2, err := backproof(context.Background(), "restore", "orders", "-c", fixture(t, small), "--to", testenv.NewPostgresDB(t)).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out2)
	}
	if bytes.Contains(out2, []byte("download from")) || bytes.Contains(out2, []byte("%")) {
		t.Errorf("progress drawn without a terminal:\n%s", out2)
	}
}

// daemonConfig writes a config for a daemon on a free port backing up dsn
// to dir every second; extra is added under the target.
func daemonConfig(t *testing.T, path, addr, dsn, dir, schedule, extra string) {
	t.Helper()
	body := fmt.Sprintf(`
listen: %s
sandbox:
  images: {postgres: %q}
destinations:
  local: {type: local, path: %s}
targets:
  orders:
    engine: postgres
    dsn: %s
    schedule: %q
    destinations: [local]
%s`, addr, testenv.PostgresImage(t), dir, dsn, schedule, extra)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// metric reads one sample from the daemon's /metrics; -1 when absent.
func metric(t *testing.T, addr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, timeout, what, cond)
}

// committed lists the backup directories of dir holding a manifest, and
// everything else found there.
func committed(t *testing.T, dir string) (manifests, other []string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "orders"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == lease.Dir {
			continue // the target's lease, not a backup
		}
		if _, err := os.Stat(filepath.Join(dir, "orders", e.Name(), "manifest.json")); err == nil {
			manifests = append(manifests, e.Name())
		} else {
			other = append(other, e.Name())
		}
	}
	return manifests, other
}

// SIGTERM while a backup waits on a lock and a verification holds a
// sandbox: the daemon exits in bounded time, commits nothing partial and
// leaves no container.
func TestDaemonSIGTERM(t *testing.T) {
	dsn := testenv.NewPostgresDB(t)
	if err := sample.Seed(context.Background(), dsn, 20000); err != nil {
		t.Fatal(err)
	}
	dir, cfg, addr := t.TempDir(), filepath.Join(t.TempDir(), "c.yaml"), testenv.FreeAddr(t)
	daemonConfig(t, cfg, addr, dsn, dir, "@every 1s", "    verify: {schedule: \"@every 1s\"}\n")
	cmd := backproof(context.Background(), "daemon", "-c", cfg)
	var logs testenv.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() //nolint:errcheck // a no-op once it exited
	owner := docker.OwnerOf(cmd.Process.Pid)
	eventually(t, time.Minute, "a committed backup", func() bool {
		m, _ := committed(t, dir)
		return len(m) > 0
	})

	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // ends the lock
	if _, err := tx.Exec(context.Background(), "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "a blocked backup and a sandbox", func() bool {
		return metric(t, addr, `backproof_jobs_running{job="backup"}`) == 1 && len(testenv.SandboxesOf(t, owner)) > 0
	})
	before, _ := committed(t, dir)

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, tail(logs.String(), 3000))
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("daemon still running 45 s after SIGTERM\n%s", tail(logs.String(), 3000))
	}
	t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	after, other := committed(t, dir)
	if len(after) != len(before) || len(other) > 0 {
		t.Errorf("after SIGTERM: backups %v (before %v), uncommitted %v", after, before, other)
	}
	if left := testenv.SandboxesOf(t, owner); len(left) > 0 {
		t.Errorf("sandboxes left: %v", left)
	}
}

// SIGHUP with a broken config keeps the running schedule (and says so in a
// metric); with a valid one the new schedule replaces it.
func TestDaemonSIGHUP(t *testing.T) {
	dsn := testenv.NewPostgresDB(t)
	testenv.Exec(t, dsn, "CREATE TABLE orders (id int)")
	dir, cfg, addr := t.TempDir(), filepath.Join(t.TempDir(), "c.yaml"), testenv.FreeAddr(t)
	daemonConfig(t, cfg, addr, dsn, dir, "@every 1s", "")
	cmd := backproof(context.Background(), "daemon", "-c", cfg)
	var logs testenv.Buffer // read while the daemon writes
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
		cmd.Wait()                          //nolint:errcheck
	}()
	attempts := `backproof_backup_attempts_total{target="orders"}`
	eventually(t, time.Minute, "a backup", func() bool { return metric(t, addr, attempts) >= 1 })

	if err := os.WriteFile(cfg, []byte("targets: [this is: not a config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the reload to be rejected", func() bool {
		return metric(t, addr, "backproof_config_last_reload_successful") == 0
	})
	n := metric(t, addr, attempts)
	eventually(t, 2*time.Minute, "the old schedule to keep running", func() bool { return metric(t, addr, attempts) >= n+2 })
	if !strings.Contains(logs.String(), "config reload rejected") {
		t.Errorf("no log line about the rejected reload")
	}

	daemonConfig(t, cfg, addr, dsn, dir, "@every 1h", "")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the reload to succeed", func() bool {
		return metric(t, addr, "backproof_config_last_reload_successful") == 1
	})
	next := metric(t, addr, `backproof_schedule_next_run_timestamp_seconds{job="backup",target="orders"}`)
	if wait := time.Until(time.Unix(int64(next), 0)); wait < 59*time.Minute {
		t.Errorf("next backup in %s after switching to @every 1h", wait)
	}
	// The old schedule is gone. One run it fired just before the reload may
	// still count its attempt; no other may start, however long we look.
	n = metric(t, addr, attempts)
	time.Sleep(3 * time.Second)
	if m := metric(t, addr, attempts); m > n+1 {
		t.Errorf("attempts went from %v to %v under the new hourly schedule", n, m)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// head is the first n bytes of s, its carriage returns as line breaks.
func head(s string, n int) string {
	return strings.ReplaceAll(s[:min(len(s), n)], "\r", "\n")
}
