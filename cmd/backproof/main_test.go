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
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/jackc/pgx/v5"

	"github.com/backproof/backproof/internal/sample"
	"github.com/backproof/backproof/internal/testenv"
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

// fixture backs up the database at dsn to a local destination and returns
// the config file.
func fixture(t *testing.T, dsn string) string {
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
	out, err := backproof(context.Background(), "backup", "-c", cfg).CombinedOutput()
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
	cfg := fixture(t, dsn)
	into := testenv.NewPostgresDB(t)

	ptmx, err := pty.StartWithSize(backproof(context.Background(), "restore", "orders", "-c", cfg, "--to", into),
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
		regexp.MustCompile(`download from local +100% \|█+\| \(\d+(\.\d+)?/\d+(\.\d+)? MiB, \d+(\.\d+)? MiB/s\)`),
		regexp.MustCompile(`restore into 127\.0\.0\.1:\d+/\S+ +\d\d% \|█+ +\| \(\d+/\d{3} MiB, \d+(\.\d+)? MiB/s\) \[\d+s:\d+s\]`), // ETA
		regexp.MustCompile(`restore into 127\.0\.0\.1:\d+/\S+ +100% \|█+\| \((\d{3})/\d{3} MiB, \d+(\.\d+)? MiB/s\)`),              // a few hundred MiB
		regexp.MustCompile(`restored orders backup \S+ from local`),
	} {
		if !want.MatchString(out) {
			t.Errorf("terminal output lacks %s:\n%s", want, tail(strings.ReplaceAll(out, "\r", "\n"), 3000))
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

	// Not a terminal: no progress at all.
	out2, err := backproof(context.Background(), "restore", "orders", "-c", cfg, "--to", testenv.NewPostgresDB(t)).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out2)
	}
	if bytes.Contains(out2, []byte("download from")) || bytes.Contains(out2, []byte("%")) {
		t.Errorf("progress drawn without a terminal:\n%s", out2)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
