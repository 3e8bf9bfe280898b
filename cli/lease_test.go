package cli

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/internal/testenv"
)

// proc is a backproof process.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr testenv.Buffer
	done           chan struct{}
	code           int
}

func startBin(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
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
	bin := testenv.Binary(t)
	a := startBin(t, bin, env, "backup", "-c", cfg)
	b := startBin(t, bin, env, "backup", "-c", cfg)
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

	bin := testenv.Binary(t)
	killed := startBin(t, bin, env, "backup", "-c", cfg)
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

	blocked := startBin(t, bin, env, "backup", "-c", cfg)
	want := fmt.Sprintf("busy: backup by %s (pid %d)", host, killed.cmd.Process.Pid)
	if code := blocked.wait(t, time.Minute); code != ExitError || !strings.Contains(blocked.stderr.String(), want) {
		t.Fatalf("backup right after the kill: exit %d, want 1 with %q\n%s", code, want, blocked.stderr.String())
	}

	time.Sleep(time.Until(killedAt.Add(ttl + 500*time.Millisecond)))
	next := startBin(t, bin, env, "backup", "-c", cfg)
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

// Two daemons with the same config and destinations (two replicas): while
// one backs the target up, the other's scheduled backup steps aside without
// counting a failure; each successful backup is followed by a prune under
// the lease.
func TestTwoDaemonsShareATarget(t *testing.T) {
	dsn := appDB(t)
	cfg := daemonConfig(t, dsn, `    schedule: "@every 1s"
    retention: {keep_last: 2}`)
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg2 := writeConfig(t, strings.Replace(string(data), "listen: "+listenOf(t, cfg), "listen: "+testenv.FreeAddr(t), 1))
	release := lockOrders(t, adminDSN(t, dsn))

	base1, stop1, log1 := startDaemonLog(t, cfg)
	base2, stop2, log2 := startDaemonLog(t, cfg2)
	orders := map[string]string{"target": "orders"}
	// One daemon's backup waits on the lock with the lease held; the
	// other's runs keep finding the target busy.
	waitFor(t, 2*time.Minute, "a backup blocked on the lock", func() bool {
		f1, _ := scrape(t, base1)
		f2, _ := scrape(t, base2)
		return value(f1, "backproof_jobs_running", map[string]string{"job": "backup"})+
			value(f2, "backproof_jobs_running", map[string]string{"job": "backup"}) >= 1
	})
	waitFor(t, 2*time.Minute, "the other daemon to step aside", func() bool {
		return strings.Contains(log1.String()+log2.String(), "backup skipped: another process holds the target's lease")
	})
	release()
	local := configDests(t, cfg)["local"]
	seen := map[string]bool{}
	waitFor(t, time.Minute, "five backups, pruned to two", func() bool {
		l, err := catalog.List(context.Background(), local, "orders")
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range l.Backups {
			seen[b.ID] = true
		}
		return len(seen) >= 5
	})
	f1, _ := scrape(t, base1)
	f2, _ := scrape(t, base2)
	_, out1 := stop1()
	_, out2 := stop2()
	for i, f := range []map[string]*dto.MetricFamily{f1, f2} {
		if v := value(f, "backproof_backup_failures_total", orders); v != 0 {
			t.Errorf("daemon %d counted %v backup failures", i+1, v)
		}
		if v := value(f, "backproof_prune_failures_total", orders); v != 0 {
			t.Errorf("daemon %d counted %v prune failures", i+1, v)
		}
	}
	if !strings.Contains(out1+out2, `"msg":"deleted backup"`) {
		t.Errorf("no daemon pruned:\n%s\n%s", lastLines(out1, 20), lastLines(out2, 20))
	}
	// keep_last 2, pruned after every backup: never more than one more
	// (a backup committed, its prune not done yet when the daemons stopped).
	if n := countListed(t, cfg); n["local"] < 2 || n["local"] > 3 || n["offsite"] < 2 || n["offsite"] > 3 {
		t.Errorf("listed %v with keep_last 2", n)
	}
}
