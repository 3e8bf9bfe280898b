package daemon

// Logic tests of the scheduler with jobs that only count: the end-to-end
// evidence (real databases, destinations, sandboxes) is in cli and
// cmd/backproof.

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/internal/clock"
	"github.com/backproof/backproof/metrics"
	"github.com/backproof/backproof/verify"
)

// gatedJobs are backups that start when the schedule says and end when the
// test releases them: the test decides every moment, nothing sleeps.
type gatedJobs struct {
	started chan string   // a target's backup began
	release chan struct{} // one receive ends one backup
	panics  atomic.Int32  // this many backups panic first
	ended   chan string   // a target's backup returned
	running atomic.Int32
	peak    atomic.Int32
}

func newGatedJobs() *gatedJobs {
	return &gatedJobs{started: make(chan string, 100), ended: make(chan string, 100), release: make(chan struct{})}
}

func (j *gatedJobs) Backup(ctx context.Context, _ *config.Config, t *config.Target) (*backup.Result, error) {
	if j.panics.Add(-1) >= 0 {
		j.started <- t.Name
		panic("job exploded")
	}
	n := j.running.Add(1)
	defer j.running.Add(-1)
	for {
		p := j.peak.Load()
		if n <= p || j.peak.CompareAndSwap(p, n) {
			break
		}
	}
	j.started <- t.Name
	select {
	case <-j.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	j.ended <- t.Name
	return &backup.Result{Target: t.Name, ID: "x"}, nil
}

func (j *gatedJobs) Verify(context.Context, *config.Config, *config.Target) []*verify.Record {
	return nil
}

func (j *gatedJobs) Prune(context.Context, *config.Config, *config.Target) error {
	return errors.ErrUnsupported
}

func (j *gatedJobs) Destinations(context.Context, *config.Config, *config.Target) []backup.Destination {
	return nil
}

// waitStarted returns the target of the next backup to begin.
func (j *gatedJobs) waitStarted(t *testing.T) string { return receive(t, j.started, "no backup began") }

// finish releases one backup and returns the target of the next to end.
func (j *gatedJobs) finish(t *testing.T) string {
	j.release <- struct{}{}
	return receive(t, j.ended, "no backup ended")
}

func receive(t *testing.T, ch <-chan string, fail string) string {
	t.Helper()
	select {
	case name := <-ch:
		return name
	case <-time.After(time.Minute): // a hang, not a slow machine
		t.Fatal(fail)
		return ""
	}
}

var t0 = time.Date(2026, 12, 3, 2, 0, 0, 0, time.UTC)

// lines sends each line written to it on a channel.
type lines chan string

func (l lines) Write(p []byte) (int, error) {
	for _, s := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		select {
		case l <- s:
		default: // nobody reads: drop
		}
	}
	return len(p), nil
}

// logged waits for a log line that contains want.
func logged(t *testing.T, logs lines, want string) {
	t.Helper()
	for {
		if l := receive(t, logs, "no log line with "+want); strings.Contains(l, want) {
			return
		}
	}
}

func runDaemon(t *testing.T, jobs Jobs, cfg *config.Config) (*Daemon, *clock.Fake, lines) {
	t.Helper()
	reg := prometheus.NewRegistry()
	clk := clock.NewFake(t0)
	logs := make(lines, 1000)
	d := &Daemon{
		Jobs: jobs, Log: slog.New(slog.NewTextHandler(logs, nil)),
		Registry: reg, Metrics: metrics.New(reg, "test"), Clock: clk,
		Reload: func() (*config.Config, error) { return cfg, nil },
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.Run(ctx, cfg, nil); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return d, clk, logs
}

// tick moves the clock to the next scheduled time once all n schedules
// wait on it, and waits until they have handled the tick and wait again.
func tick(t *testing.T, clk *clock.Fake, n int) {
	t.Helper()
	if !clk.Waiting(n, timeout(t)) {
		t.Fatalf("%d schedules never waited on the clock", n)
	}
	next, _ := clk.Next()
	clk.Set(next)
	if !clk.Waiting(n, timeout(t)) {
		t.Fatalf("%d schedules never came back to the clock", n)
	}
}

// timeout closes after a minute: a hang, not a slow machine.
func timeout(t *testing.T) <-chan struct{} {
	ch := make(chan struct{})
	timer := time.AfterFunc(time.Minute, func() { close(ch) })
	t.Cleanup(func() { timer.Stop() })
	return ch
}

func targets(n int, schedule string) map[string]*config.Target {
	m := map[string]*config.Target{}
	for i := range n {
		name := string(rune('a' + i))
		m[name] = &config.Target{Name: name, Engine: "postgres", Schedule: schedule}
	}
	return m
}

func skips(d *Daemon, names ...string) (n float64) {
	for _, name := range names {
		n += testutil.ToFloat64(d.Metrics.SkippedRuns.WithLabelValues(name, metrics.JobBackup))
	}
	return n
}

// A panicking job is recovered; the schedule goes on and the next tick runs.
func TestRecoverKeepsScheduling(t *testing.T) {
	jobs := newGatedJobs()
	jobs.panics.Store(2)
	_, clk, logs := runDaemon(t, jobs, &config.Config{Listen: "127.0.0.1:0", Targets: targets(1, "@every 1m")})
	for range 2 {
		tick(t, clk, 1)
		jobs.waitStarted(t)
		logged(t, logs, "job panicked")
	}
	tick(t, clk, 1)
	jobs.waitStarted(t)
	if got := jobs.finish(t); got != "a" {
		t.Errorf("backup of %q ended, want a", got)
	}
}

// concurrency.backups bounds backups over all targets; a tick while a run
// goes on is skipped and counted, and the runs waiting for their turn run.
func TestConcurrencyLimitAndSkips(t *testing.T) {
	jobs := newGatedJobs()
	cfg := &config.Config{Listen: "127.0.0.1:0", Concurrency: config.Concurrency{Backups: 1}, Targets: targets(3, "@every 1m")}
	d, clk, _ := runDaemon(t, jobs, cfg)
	tick(t, clk, 3) // all three due: one runs, two wait for the slot
	first := jobs.waitStarted(t)
	tick(t, clk, 3) // all three still running or waiting: three skips
	if s := skips(d, "a", "b", "c"); s != 3 {
		t.Errorf("%v skipped runs after a tick while all three ran, want 3", s)
	}
	seen := map[string]bool{first: true}
	for range 2 {
		jobs.finish(t)
		seen[jobs.waitStarted(t)] = true
	}
	jobs.finish(t)
	if p := jobs.peak.Load(); p != 1 {
		t.Errorf("%d backups ran at once with concurrency.backups 1", p)
	}
	if len(seen) != 3 {
		t.Errorf("backups of %v ran, want a, b and c", seen)
	}
}

// While a run outlasts its interval, the next-run time moves on with the
// skipped ticks instead of staying in the past.
func TestNextRunWhileRunning(t *testing.T) {
	jobs := newGatedJobs()
	d, clk, _ := runDaemon(t, jobs, &config.Config{Listen: "127.0.0.1:0", Targets: targets(1, "@every 1m")})
	next := func() time.Time {
		return time.Unix(int64(testutil.ToFloat64(d.Metrics.NextRun.WithLabelValues("a", metrics.JobBackup))), 0)
	}
	clk.Waiting(1, timeout(t))
	if got := next(); !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("first next run %v, want %v", got, t0.Add(time.Minute))
	}
	tick(t, clk, 1)
	jobs.waitStarted(t)
	tick(t, clk, 1)
	tick(t, clk, 1)
	if got, want := next(), clk.Now().Add(time.Minute); !got.Equal(want) {
		t.Errorf("next run %v while a long run goes on at %v, want %v", got, clk.Now(), want)
	}
	if s := skips(d, "a"); s != 2 {
		t.Errorf("%v skips, want 2", s)
	}
	if st := d.Status(); !st.Now.Equal(clk.Now()) {
		t.Errorf("status now %v, want the clock's %v", st.Now, clk.Now())
	}
	jobs.finish(t)
}
