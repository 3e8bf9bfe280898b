package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backproof/backproof/internal/testenv"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// backproofBin builds cmd/backproof once per test binary.
func backproofBin(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		testenv.Unavailable(t, "the go tool is needed to build cmd/backproof: %v", err)
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "backproof-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "backproof")
		out, err := exec.Command(goTool, "build", "-o", binPath, "github.com/backproof/backproof/cmd/backproof").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// proc is a backproof process.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr syncBuf
	done           chan struct{}
	code           int
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startBin(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(backproofBin(t), args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if strings.Contains(p.stdout.String()+p.stderr.String(), sentinel) {
			t.Errorf("sentinel secret leaked by %v:\n%s\n%s", args, p.stdout.String(), p.stderr.String())
		}
	})
	return p
}

func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		t.Fatalf("%v still running after %s\nstdout: %s\nstderr: %s", p.cmd.Args, timeout, p.stdout.String(), p.stderr.String())
		return -1
	}
}

// lockOrders holds an ACCESS EXCLUSIVE lock on the orders table of the
// database at dsn, so a backup of it blocks until the returned func runs.
func lockOrders(t *testing.T, dsn string) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			tx.Rollback(ctx)
			conn.Close(ctx)
		})
	}
	t.Cleanup(release)
	return release
}

// Two `backproof backup` processes started at once on the same target: one
// runs, the other names it and exits 1 at once; only one backup is made.
func TestTwoBackupsAtOnce(t *testing.T) {
	dsn := appDB(t)
	cfg := e2eConfig(t, dsn, testenv.S3(t).SecretKey)
	release := lockOrders(t, adminDSN(t, dsn))
	host, _ := os.Hostname()

	env := []string{"BACKPROOF_TEST_APP_DSN=" + dsn}
	a := startBin(t, env, "backup", "-c", cfg)
	b := startBin(t, env, "backup", "-c", cfg)
	var winner, loser *proc
	select {
	case <-a.done:
		winner, loser = b, a
	case <-b.done:
		winner, loser = a, b
	case <-time.After(60 * time.Second):
		t.Fatalf("neither backup gave way:\n%s\n%s", a.stderr.String(), b.stderr.String())
	}
	want := fmt.Sprintf("backproof: target orders: busy: backup by %s (pid %d) since ", host, winner.cmd.Process.Pid)
	if loser.code != ExitError || !strings.Contains(loser.stderr.String(), want) {
		t.Fatalf("loser exit %d, want 1 with %q\nstdout: %s\nstderr: %s", loser.code, want, loser.stdout.String(), loser.stderr.String())
	}
	t.Logf("loser: %s", strings.TrimSpace(loser.stderr.String()))
	select {
	case <-winner.done:
		t.Fatalf("the winner finished while the table was locked: exit %d\n%s", winner.code, winner.stderr.String())
	default:
	}
	release()
	if code := winner.wait(t, 2*time.Minute); code != ExitOK {
		t.Fatalf("winner exit %d\n%s", code, winner.stderr.String())
	}
	// One backup per destination, and the lease objects are not listed.
	if n := countListed(t, cfg); n["local"] != 1 || n["offsite"] != 1 {
		t.Fatalf("listed %v, want one backup on each destination", n)
	}
}

// A backup killed while holding the lease blocks the target until the lease
// expires (BACKPROOF_LEASE_TTL); then the next backup takes over and runs.
func TestKilledHolderLeaseExpires(t *testing.T) {
	dsn := appDB(t)
	cfg := e2eConfig(t, dsn, testenv.S3(t).SecretKey)
	release := lockOrders(t, adminDSN(t, dsn))
	host, _ := os.Hostname()
	const ttl = 4 * time.Second
	env := []string{"BACKPROOF_TEST_APP_DSN=" + dsn, fmt.Sprintf("%s=%s", envLeaseTTL, ttl)}

	killed := startBin(t, env, "backup", "-c", cfg)
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(killed.stderr.String(), `"msg":"backup started"`) {
		if time.Now().After(deadline) {
			t.Fatalf("backup did not start:\n%s", killed.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	killedAt := time.Now()
	if err := killed.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed.wait(t, 10*time.Second)
	release()

	blocked := startBin(t, env, "backup", "-c", cfg)
	want := fmt.Sprintf("busy: backup by %s (pid %d)", host, killed.cmd.Process.Pid)
	if code := blocked.wait(t, time.Minute); code != ExitError || !strings.Contains(blocked.stderr.String(), want) {
		t.Fatalf("backup right after the kill: exit %d, want 1 with %q\n%s", code, want, blocked.stderr.String())
	}

	time.Sleep(time.Until(killedAt.Add(ttl + 500*time.Millisecond)))
	next := startBin(t, env, "backup", "-c", cfg)
	if code := next.wait(t, 2*time.Minute); code != ExitOK {
		t.Fatalf("backup after the lease expired: exit %d\n%s", code, next.stderr.String())
	}
	if !strings.Contains(next.stderr.String(), `"msg":"took over an expired lease"`) {
		t.Errorf("takeover not logged:\n%s", next.stderr.String())
	}
	if n := countListed(t, cfg); n["local"] != 1 || n["offsite"] != 1 {
		t.Fatalf("listed %v, want the one backup that ran on each destination", n)
	}
}

// adminDSN returns the superuser's DSN for the database of dsn.
func adminDSN(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(testenv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + cfg.Database
	return u.String()
}
