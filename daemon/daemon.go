// Package daemon runs backproof as a service: cron schedules for each
// target's backups, verifications and pruning, Prometheus metrics, and an
// HTTP status page. What the jobs do is injected (Jobs); the daemon owns
// when they run, how many at once, and how they stop.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/internal/clock"
	"github.com/backproof/backproof/lease"
	"github.com/backproof/backproof/metrics"
	"github.com/backproof/backproof/verify"
)

// Jobs is the work the daemon schedules.
type Jobs interface {
	// Backup backs t up to all its destinations.
	Backup(ctx context.Context, cfg *config.Config, t *config.Target) (*backup.Result, error)
	// Verify verifies t's backups; one record per destination.
	Verify(ctx context.Context, cfg *config.Config, t *config.Target) []*verify.Record
	// Prune applies t's retention. It returns errors.ErrUnsupported when
	// this build cannot prune.
	Prune(ctx context.Context, cfg *config.Config, t *config.Target) error
	// Destinations opens t's destinations, for reading the catalog.
	Destinations(ctx context.Context, cfg *config.Config, t *config.Target) []backup.Destination
}

// Daemon schedules jobs and serves their state.
type Daemon struct {
	Jobs     Jobs
	Log      *slog.Logger
	Registry *prometheus.Registry // Metrics is registered here; /metrics serves it
	Metrics  *metrics.Metrics
	Version  string
	// Reload loads the config again on SIGHUP.
	Reload func() (*config.Config, error)
	// StopTimeout bounds how long stopping waits for cancelled jobs.
	StopTimeout time.Duration
	// Redact masks secrets in error texts /status and the page show.
	Redact func(string) string
	// Clock drives the schedules and every time the daemon reports
	// (default: the system clock).
	Clock clock.Clock
	// OnReady, when set, is called once the first config is applied and its
	// catalogs scanned: /readyz says ready, and /metrics and /status show
	// the catalog, from then on.
	OnReady func()

	ctx     context.Context // cancelled when the daemon stops: every job's context
	started time.Time
	ready   atomic.Bool
	running sync.WaitGroup

	mu        sync.Mutex
	cfg       *config.Config
	stopSched context.CancelFunc // ends the current schedule (reload, stop)
	targets   map[string]*targetState
	backupSem chan struct{}
	verifySem chan struct{}
	reloadErr string
	caches    map[string]*catalog.Cache // manifest summaries by destination, for this config
	scanCtx   context.Context           // Serve's: done at the stop
	replicas  *replicaSet               // nil: this daemon runs every target
	replicasC *config.Replicas          // what replicas was made from
	stopReps  context.CancelFunc        // ends replicas' heartbeats
}

// newHTTPServer serves h with timeouts: a client that sends or reads
// slowly, or keeps a connection open, holds nothing for long. The pages are
// small.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
}

// cache returns the manifest cache of a destination under the current config.
func (d *Daemon) cache(dest string) *catalog.Cache {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.caches[dest]
	if c == nil {
		c = catalog.NewCache()
		d.caches[dest] = c
	}
	return c
}

// targetState is what the daemon knows about a target. It outlives
// reloads, so a job running across one still excludes its successor.
type targetState struct {
	name       string
	backupLock sync.Mutex
	verifyLock sync.Mutex
	scanMu     sync.Mutex // one catalog scan at a time

	mu          sync.Mutex
	catalog     *Catalog
	lastAttempt *backup.Result
	lastPrune   *PruneRun
	next        map[string]time.Time
	interval    map[string]time.Duration
	running     map[string]time.Time
	skipped     map[string]int
	prunes      bool             // retention runs after each scheduled backup
	lastRun     []*verify.Record // this process's newest verification
}

// PruneRun is the outcome of the last retention run.
type PruneRun struct {
	At    time.Time `json:"at"`
	Error string    `json:"error,omitempty"`
}

// Run serves and schedules until ctx ends, reloading the config when hup
// receives. It returns once every job has ended or StopTimeout passed.
func (d *Daemon) Run(ctx context.Context, cfg *config.Config, hup <-chan struct{}) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	return d.Serve(ctx, ln, cfg, hup)
}

// Serve is Run on a listener the caller opened (cfg.Listen is not used); it
// closes ln. A config without schedules only serves its catalog's state.
func (d *Daemon) Serve(ctx context.Context, ln net.Listener, cfg *config.Config, hup <-chan struct{}) error {
	jobCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()
	d.ctx = jobCtx
	if d.Clock == nil {
		d.Clock = clock.Real{}
	}
	d.started = d.now()
	d.targets = map[string]*targetState{}

	// A scan reads storage, which may hang: it ends with ctx (SIGTERM),
	// so a slow destination never holds the stop past its deadline.
	d.scanCtx = ctx
	srv := newHTTPServer(d.Handler())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	d.Log.Info("daemon started", "listen", ln.Addr().String(), "version", d.Version)

	d.apply(cfg)
	d.Metrics.ReloadSuccessful.Set(1)
	d.Metrics.ReloadSuccessTime.SetToCurrentTime()
	d.ready.Store(true)
	if d.OnReady != nil {
		d.OnReady()
	}

	var serveErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-served:
			serveErr = fmt.Errorf("http server: %w", err)
			break loop
		case <-hup:
			d.reload()
		}
	}

	d.ready.Store(false)
	d.Log.Info("stopping: no new jobs; cancelling running ones")
	d.mu.Lock()
	d.stopSched()
	d.mu.Unlock()
	cancelJobs()
	done := make(chan struct{})
	go func() { d.running.Wait(); close(done) }()
	timeout := d.StopTimeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	var err2 error
	select {
	case <-done:
	case <-time.After(timeout):
		err2 = fmt.Errorf("jobs still running %s after the stop", timeout)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutCtx) //nolint:errcheck // the server goes either way
	d.Log.Info("daemon stopped")
	return errors.Join(serveErr, err2)
}

// reload replaces the schedule with the one of a freshly loaded config;
// an invalid config leaves everything as it was.
func (d *Daemon) reload() {
	cfg, err := d.Reload()
	if err != nil {
		d.Metrics.ReloadSuccessful.Set(0)
		d.mu.Lock()
		d.reloadErr = err.Error()
		d.mu.Unlock()
		d.Log.Error("config reload rejected; the running schedule stays", "err", err)
		return
	}
	d.mu.Lock()
	if cfg.Listen != d.cfg.Listen {
		d.Log.Warn("listen changed; it takes effect at the next restart", "listen", d.cfg.Listen, "new", cfg.Listen)
	}
	d.stopSched() // running jobs go on; their locks keep the new schedule off them
	d.reloadErr = ""
	d.mu.Unlock()
	d.apply(cfg)
	d.Metrics.ReloadSuccessful.Set(1)
	d.Metrics.ReloadSuccessTime.SetToCurrentTime()
	d.Log.Info("config reloaded", "targets", len(cfg.Targets))
}

// apply installs cfg: metric series, a new schedule, and catalog scans.
func (d *Daemon) apply(cfg *config.Config) {
	d.mu.Lock()
	for name := range d.targets {
		if _, ok := cfg.Targets[name]; !ok {
			delete(d.targets, name)
			d.Metrics.Forget(name)
		}
	}
	if d.backupSem == nil || cap(d.backupSem) != cfg.Concurrency.MaxBackups() {
		d.backupSem = make(chan struct{}, cfg.Concurrency.MaxBackups())
	}
	if d.verifySem == nil || cap(d.verifySem) != cfg.Concurrency.MaxVerifications() {
		d.verifySem = make(chan struct{}, cfg.Concurrency.MaxVerifications())
	}
	d.cfg = cfg
	d.caches = map[string]*catalog.Cache{} // a new config may read the stores under new policies
	d.applyReplicas(cfg)
	schedCtx, stopSched := context.WithCancel(d.ctx)
	d.stopSched = stopSched
	now := d.now()
	var all []*targetState
	for _, name := range sortedKeys(cfg.Targets) {
		t := cfg.Targets[name]
		ts := d.targets[name]
		if ts == nil {
			ts = &targetState{name: name, running: map[string]time.Time{}, skipped: map[string]int{}}
			d.targets[name] = ts
		}
		all = append(all, ts)
		ts.mu.Lock()
		ts.next, ts.interval = map[string]time.Time{}, map[string]time.Duration{}
		ts.prunes = t.Schedule != "" && t.Retention != nil
		ts.mu.Unlock()
		// Gauges derived from the catalog are set again by the scan below;
		// dropping them first removes checks and destinations no longer configured.
		for _, v := range []*prometheus.GaugeVec{d.Metrics.CheckLastSuccess, d.Metrics.ContinuityLast, d.Metrics.DestLastSuccess,
			d.Metrics.NextRun, d.Metrics.ScheduleInterval, d.Metrics.SuspectBackups} {
			v.DeletePartialMatch(prometheus.Labels{"target": name})
		}
		mt := metrics.Target{Name: name, Destinations: t.Destinations}
		if t.Schedule != "" {
			d.schedule(schedCtx, ts, metrics.JobBackup, t.Schedule, now, func() bool { return d.backup(cfg, t, ts) })
			mt.Jobs = append(mt.Jobs, metrics.JobBackup)
			if ts.prunes {
				mt.Jobs = append(mt.Jobs, metrics.JobPrune)
			}
		}
		if t.Verify != nil && t.Verify.Schedule != "" {
			d.schedule(schedCtx, ts, metrics.JobVerify, t.Verify.Schedule, now, func() bool { return d.verify(cfg, t, ts) })
			mt.Jobs = append(mt.Jobs, metrics.JobVerify)
		}
		d.Metrics.Init(mt)
		d.publishOwned(d.replicas, name)
	}
	d.mu.Unlock()
	for _, ts := range all {
		d.rescan(cfg, cfg.Targets[ts.name], ts)
	}
}

// schedule runs job at the times spec names, on the daemon's clock, until
// ctx ends. A tick while the previous run goes on is skipped and counted, as
// is a run that finds a job from before a reload still holding the target
// (run returns false). Every tick moves the next-run time on. A panic in a
// run is logged and the schedule goes on.
func (d *Daemon) schedule(ctx context.Context, ts *targetState, job, spec string, now time.Time, run func() bool) {
	sched, err := config.ParseSchedule(spec)
	if err != nil { // config validation parsed it already
		d.Log.Error("unusable schedule", "target", ts.name, "job", job, "err", err)
		return
	}
	log := d.Log.With("target", ts.name, "job", job)
	var running atomic.Bool
	fire := func() {
		if !running.CompareAndSwap(false, true) {
			d.skipped(ts, job)
			return
		}
		go func() {
			defer func() {
				r := recover()
				running.Store(false)
				if r != nil {
					log.Error("job panicked; the schedule goes on", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				}
			}()
			if !run() {
				d.skipped(ts, job)
			}
		}()
	}
	next := sched.Next(now)
	d.setNext(ts, job, next, sched.Next(next).Sub(next))
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.Clock.After(next.Sub(d.now())):
			}
			if ctx.Err() != nil {
				return
			}
			// From the later of now and the tick: a clock that stepped back
			// must not run the same tick twice.
			at := d.now()
			if at.Before(next) {
				at = next
			}
			next = sched.Next(at)
			d.setNext(ts, job, next, sched.Next(next).Sub(next))
			fire()
		}
	}()
}

// setNext records when a job runs next; pruning follows each backup.
func (d *Daemon) setNext(ts *targetState, job string, next time.Time, interval time.Duration) {
	ts.mu.Lock()
	jobs := []string{job}
	if job == metrics.JobBackup && ts.prunes {
		jobs = append(jobs, metrics.JobPrune)
	}
	for _, j := range jobs {
		ts.next[j], ts.interval[j] = next, interval
		d.Metrics.NextRun.WithLabelValues(ts.name, j).Set(float64(next.Unix()))
		d.Metrics.ScheduleInterval.WithLabelValues(ts.name, j).Set(interval.Seconds())
	}
	ts.mu.Unlock()
}

func (d *Daemon) skipped(ts *targetState, job string) {
	ts.mu.Lock()
	ts.skipped[job]++
	ts.mu.Unlock()
	d.Metrics.SkippedRuns.WithLabelValues(ts.name, job).Inc()
	d.Log.Warn("scheduled run skipped: the previous one is still running", "target", ts.name, "job", job)
}

// begin registers a running job; false when the daemon is stopping.
func (d *Daemon) begin(ts *targetState, job string, sem chan struct{}) (end func(), ok bool) {
	select {
	case sem <- struct{}{}:
	case <-d.ctx.Done():
		return nil, false
	}
	d.running.Add(1)
	ts.mu.Lock()
	ts.running[job] = d.now()
	ts.mu.Unlock()
	d.Metrics.JobsRunning.WithLabelValues(job).Inc()
	return func() {
		d.Metrics.JobsRunning.WithLabelValues(job).Dec()
		ts.mu.Lock()
		delete(ts.running, job)
		ts.mu.Unlock()
		<-sem
		d.running.Done()
	}, true
}

// stillOwns is owns for a run that waited for a slot: another replica may
// have taken the target meanwhile.
func (d *Daemon) stillOwns(target, job string) bool {
	if d.owns(target) {
		return true
	}
	d.Log.Info("not run: another replica took the target while the run waited for a slot", "target", target, "job", job)
	return false
}

// publishOwned reports whether this daemon runs the target's schedules
// under the replica set r (nil: no replicas) and sets the gauges from the
// same view.
func (d *Daemon) publishOwned(r *replicaSet, target string) bool {
	if r == nil {
		d.Metrics.TargetOwned.WithLabelValues(target).Set(1)
		return true
	}
	// A TTL without a heartbeat leaves only ourselves: the gauges say so.
	return r.ownsReporting(target, func(owned bool, live int) {
		d.Metrics.TargetOwned.WithLabelValues(target).Set(b2f(owned))
		d.Metrics.ReplicasLive.Set(float64(live))
	})
}

// owns reports whether this daemon runs the target's schedules: always,
// unless replicas share the targets.
func (d *Daemon) owns(target string) bool {
	d.mu.Lock()
	r := d.replicas
	d.mu.Unlock()
	ok := d.publishOwned(r, target)
	if !ok {
		d.Log.Debug("another replica runs this target", "target", target)
	}
	return ok
}

func (d *Daemon) backup(cfg *config.Config, t *config.Target, ts *targetState) bool {
	if !d.owns(t.Name) {
		// Another replica backs it up: read what it did, so that this
		// replica's metrics and alerts stay true too.
		d.rescan(cfg, t, ts)
		return true
	}
	if !ts.backupLock.TryLock() {
		return false
	}
	defer ts.backupLock.Unlock()
	d.mu.Lock()
	sem := d.backupSem
	d.mu.Unlock()
	end, ok := d.begin(ts, metrics.JobBackup, sem)
	if !ok {
		return true
	}
	defer end()
	if !d.stillOwns(t.Name, metrics.JobBackup) {
		return true
	}
	ctx := d.ctx
	log := d.Log.With("target", t.Name, "job", metrics.JobBackup)
	m := d.Metrics
	start := d.now()
	m.BackupLastAttempt.WithLabelValues(t.Name).Set(float64(start.Unix()))
	m.BackupAttempts.WithLabelValues(t.Name).Inc()
	log.Info("backup starting")
	res, err := d.Jobs.Backup(ctx, cfg, t)
	m.BackupDuration.WithLabelValues(t.Name).Observe(d.now().Sub(start).Seconds())
	if res != nil {
		for _, dr := range res.Destinations {
			if dr.Failed() {
				m.DestFailures.WithLabelValues(t.Name, dr.Name).Inc()
				log.Error("destination failed", "destination", dr.Name, "backup_id", res.ID, "err", dr.Error)
			}
		}
		ts.mu.Lock()
		ts.lastAttempt = res
		ts.mu.Unlock()
	}
	var held *lease.HeldError
	switch {
	case err != nil && ctx.Err() != nil:
		log.Warn("backup cancelled: the daemon is stopping", "err", err)
	case errors.As(err, &held):
		// Another replica (or a manual run) has this target right now:
		// it does the work; not a failure of this one.
		log.Info("backup skipped: another process holds the target's lease", "err", err)
		return true
	case err != nil:
		m.BackupFailures.WithLabelValues(t.Name).Inc()
		attrs := []any{"err", err}
		if res != nil {
			attrs = append(attrs, "backup_id", res.ID)
		}
		log.Error("backup failed", attrs...)
	default:
		log.Info("backup committed", "backup_id", res.ID, "size", res.Size, "seconds", res.End.Sub(res.Start).Seconds())
	}
	d.rescan(cfg, t, ts)
	if err == nil && t.Retention != nil && ctx.Err() == nil {
		d.prune(cfg, t, ts)
	}
	return true
}

// prune runs after a successful backup only: a failing target keeps
// everything it has.
func (d *Daemon) prune(cfg *config.Config, t *config.Target, ts *targetState) {
	log := d.Log.With("target", t.Name, "job", metrics.JobPrune)
	err := d.Jobs.Prune(d.ctx, cfg, t)
	if errors.Is(err, errors.ErrUnsupported) {
		log.Debug("retention is not applied by this build")
		return
	}
	if held := (*lease.HeldError)(nil); errors.As(err, &held) {
		log.Info("prune skipped: another process holds the target's lease", "err", err)
		return
	}
	run := &PruneRun{At: d.now()}
	if err != nil {
		run.Error = err.Error()
		d.Metrics.PruneFailures.WithLabelValues(t.Name).Inc()
		log.Error("prune failed", "err", err)
	}
	ts.mu.Lock()
	ts.lastPrune = run
	ts.mu.Unlock()
	d.rescan(cfg, t, ts)
}

func (d *Daemon) verify(cfg *config.Config, t *config.Target, ts *targetState) bool {
	if !d.owns(t.Name) {
		d.rescan(cfg, t, ts)
		return true
	}
	if !ts.verifyLock.TryLock() {
		return false
	}
	defer ts.verifyLock.Unlock()
	d.mu.Lock()
	sem := d.verifySem
	d.mu.Unlock()
	end, ok := d.begin(ts, metrics.JobVerify, sem)
	if !ok {
		return true
	}
	defer end()
	if !d.stillOwns(t.Name, metrics.JobVerify) {
		return true
	}
	log := d.Log.With("target", t.Name, "job", metrics.JobVerify)
	start := d.now()
	log.Info("verification starting")
	records := d.Jobs.Verify(d.ctx, cfg, t)
	for _, r := range records {
		attrs := []any{"destination", r.Destination, "backup_id", r.BackupID, "outcome", r.Outcome,
			"restore_seconds", r.RestoreSeconds}
		switch r.Outcome {
		case verify.Pass:
			log.Info("verification passed", attrs...)
		case verify.Fail:
			log.Error("verification failed: the backup is bad", append(attrs, "reason", r.Reason)...)
		default:
			log.Error("verification could not run", append(attrs, "reason", r.Reason)...)
		}
	}
	if d.ctx.Err() == nil && len(records) > 0 {
		d.Metrics.VerifyDuration.WithLabelValues(t.Name).Observe(d.now().Sub(start).Seconds())
		// The run's verdict counts even where no record could be stored
		// (no backup to attach it to, a destination that cannot be written).
		run := &Catalog{LastVerifications: records}
		v, _ := run.Result()
		d.Metrics.VerifyLastResult.WithLabelValues(t.Name).Set(v)
		ts.mu.Lock()
		ts.lastRun = records
		ts.mu.Unlock()
	}
	d.rescan(cfg, t, ts)
	return true
}

// rescan reads the target's catalog and derives the state metrics from it.
func (d *Daemon) rescan(cfg *config.Config, t *config.Target, ts *targetState) {
	ctx, cancel := context.WithTimeout(d.scanCtx, 2*time.Minute)
	defer cancel()
	ts.scanMu.Lock()
	defer ts.scanMu.Unlock()
	ts.mu.Lock()
	prev := ts.catalog
	ts.mu.Unlock()
	c := scan(ctx, d.now, t.Name, d.Jobs.Destinations(ctx, cfg, t), prev, d.cache)
	for _, ds := range c.Destinations {
		if ds.Error != "" {
			d.Log.Error("listing a destination failed", "target", t.Name, "destination", ds.Name, "err", ds.Error)
		}
	}
	ts.mu.Lock()
	ts.catalog = c
	ts.mu.Unlock()

	m, n := d.Metrics, t.Name
	if c.Newest != nil {
		m.BackupLastSuccess.WithLabelValues(n).Set(unix(c.Newest.End))
	}
	if b := c.NewestBackup(); b != nil {
		m.BackupSize.WithLabelValues(n).Set(float64(b.Size))
	}
	for _, ds := range c.Destinations {
		if ds.Newest != nil {
			m.DestLastSuccess.WithLabelValues(n, ds.Name).Set(unix(ds.Newest.End))
		}
		if ds.Error == "" {
			m.SuspectBackups.WithLabelValues(n, ds.Name).Set(float64(ds.Suspect))
		}
	}
	ts.mu.Lock()
	ran := ts.lastRun != nil
	ts.mu.Unlock()
	if v, ok := c.Result(); ok && !ran { // after a run, its verdict stands
		m.VerifyLastResult.WithLabelValues(n).Set(v)
	}
	if p := c.LastPass(); !p.IsZero() {
		m.VerifyLastSuccess.WithLabelValues(n).Set(unix(p))
	}
	if s := c.RestoreSeconds(); s > 0 {
		m.RestoreDuration.WithLabelValues(n).Set(s)
	}
	if c.Verified != nil {
		m.VerifiedBackup.WithLabelValues(n).Set(unix(c.Verified.Created))
	}
	if passed, ok := c.ContinuityPassed(); ok {
		m.ContinuityLast.WithLabelValues(n).Set(b2f(passed))
	}
	if t.Verify != nil {
		for _, ch := range t.Verify.Checks {
			if passed, ok := c.CheckPassed(ch.Name); ok {
				m.CheckLastSuccess.WithLabelValues(n, ch.Name).Set(b2f(passed))
			}
		}
	}
}

func (d *Daemon) now() time.Time { return d.Clock.Now() }

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
