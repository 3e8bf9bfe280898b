package daemon

// Logic tests of the scheduler with jobs that only count: the end-to-end
// evidence (real databases, destinations, sandboxes) is in cli and
// cmd/backproof.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/metrics"
	"github.com/backproof/backproof/verify"
)

type countingJobs struct {
	delay          time.Duration
	panics         atomic.Int32 // this many backups panic first
	running, peak  atomic.Int32
	backups, calls atomic.Int32
}

func (j *countingJobs) Backup(ctx context.Context, _ *config.Config, t *config.Target) (*backup.Result, error) {
	j.calls.Add(1)
	if j.panics.Add(-1) >= 0 {
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
	select {
	case <-time.After(j.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	j.backups.Add(1)
	return &backup.Result{Target: t.Name, ID: "x"}, nil
}

func (j *countingJobs) Verify(context.Context, *config.Config, *config.Target) []*verify.Record {
	return nil
}

func (j *countingJobs) Prune(context.Context, *config.Config, *config.Target) error {
	return errors.ErrUnsupported
}

func (j *countingJobs) Destinations(context.Context, *config.Config, *config.Target) []backup.Destination {
	return nil
}

func runDaemon(t *testing.T, jobs Jobs, cfg *config.Config) (*Daemon, func()) {
	t.Helper()
	reg := prometheus.NewRegistry()
	d := &Daemon{
		Jobs: jobs, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry: reg, Metrics: metrics.New(reg, "test"),
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
	stop := func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return d, stop
}

func targets(n int, schedule string) map[string]*config.Target {
	m := map[string]*config.Target{}
	for i := range n {
		name := string(rune('a' + i))
		m[name] = &config.Target{Name: name, Engine: "postgres", Schedule: schedule}
	}
	return m
}

// A panicking job is recovered; the schedule goes on.
func TestRecoverKeepsScheduling(t *testing.T) {
	jobs := &countingJobs{}
	jobs.panics.Store(2)
	_, stop := runDaemon(t, jobs, &config.Config{Listen: "127.0.0.1:0", Targets: targets(1, "@every 1s")})
	deadline := time.Now().Add(10 * time.Second)
	for jobs.backups.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if jobs.calls.Load() < 3 || jobs.backups.Load() < 1 {
		t.Errorf("%d calls, %d backups after two panics", jobs.calls.Load(), jobs.backups.Load())
	}
}

// concurrency.backups bounds backups over all targets; a slow job is
// skipped while it runs, and each skip is counted.
func TestConcurrencyLimitAndSkips(t *testing.T) {
	jobs := &countingJobs{delay: 2500 * time.Millisecond}
	cfg := &config.Config{Listen: "127.0.0.1:0", Concurrency: config.Concurrency{Backups: 1}, Targets: targets(3, "@every 1s")}
	d, stop := runDaemon(t, jobs, cfg)
	time.Sleep(6 * time.Second)
	stop()
	if p := jobs.peak.Load(); p != 1 {
		t.Errorf("%d backups ran at once with concurrency.backups 1", p)
	}
	if b := jobs.backups.Load(); b < 2 {
		t.Errorf("only %d backups finished", b)
	}
	var skipped float64
	for name := range cfg.Targets {
		skipped += testutil.ToFloat64(d.Metrics.SkippedRuns.WithLabelValues(name, metrics.JobBackup))
	}
	if skipped < 6 {
		t.Errorf("%v skipped runs counted in 6 s of three 1 s schedules with 2.5 s jobs", skipped)
	}
	if a, s := jobs.calls.Load(), int32(skipped); a+s < 12 {
		t.Errorf("%d runs + %d skips, want about 18 ticks", a, s)
	}
}

// While a run outlasts its interval, the next-run time moves on with the
// skipped ticks instead of staying in the past.
func TestNextRunWhileRunning(t *testing.T) {
	jobs := &countingJobs{delay: 5 * time.Second}
	d, _ := runDaemon(t, jobs, &config.Config{Listen: "127.0.0.1:0", Targets: targets(1, "@every 1s")})
	time.Sleep(3500 * time.Millisecond) // the first run began at about 1 s and goes on
	if jobs.running.Load() != 1 {
		t.Fatalf("%d runs going, want the first one", jobs.running.Load())
	}
	next := testutil.ToFloat64(d.Metrics.NextRun.WithLabelValues("a", metrics.JobBackup))
	if now := float64(time.Now().Unix()); next < now {
		t.Errorf("next run %v is %v s in the past while a long run goes on", next, now-next)
	}
}
