// Package metrics defines backproof's Prometheus metrics. Names and labels
// of the documented ones are part of the product contract (PRODUCT.md);
// labels only ever carry names from the config.
package metrics

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Jobs a target's schedule runs.
const (
	JobBackup = "backup"
	JobVerify = "verify"
	JobPrune  = "prune"
)

// Metrics holds every metric of the daemon.
type Metrics struct {
	BackupLastSuccess *prometheus.GaugeVec     // target
	BackupLastAttempt *prometheus.GaugeVec     // target
	BackupAttempts    *prometheus.CounterVec   // target
	BackupFailures    *prometheus.CounterVec   // target
	BackupDuration    *prometheus.HistogramVec // target
	BackupSize        *prometheus.GaugeVec     // target
	DestLastSuccess   *prometheus.GaugeVec     // target, destination
	DestFailures      *prometheus.CounterVec   // target, destination
	VerifyLastSuccess *prometheus.GaugeVec     // target
	VerifyLastResult  *prometheus.GaugeVec     // target
	VerifyDuration    *prometheus.HistogramVec // target
	RestoreDuration   *prometheus.GaugeVec     // target
	VerifiedBackup    *prometheus.GaugeVec     // target
	CheckLastSuccess  *prometheus.GaugeVec     // target, check
	ContinuityLast    *prometheus.GaugeVec     // target
	NextRun           *prometheus.GaugeVec     // target, job
	ScheduleInterval  *prometheus.GaugeVec     // target, job
	SkippedRuns       *prometheus.CounterVec   // target, job
	PruneFailures     *prometheus.CounterVec   // target
	SuspectBackups    *prometheus.GaugeVec     // target, destination
	ReloadSuccessful  prometheus.Gauge
	ReloadSuccessTime prometheus.Gauge
	JobsRunning       *prometheus.GaugeVec // job
	ReplicasLive      prometheus.Gauge
	TargetOwned       *prometheus.GaugeVec // target
	buildInfo         *prometheus.GaugeVec
}

// durationBuckets span a few seconds to several hours.
var durationBuckets = prometheus.ExponentialBuckets(1, 2.5, 12)

// New registers every metric, and the Go and process collectors, with reg.
func New(reg prometheus.Registerer, version string) *Metrics {
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "backproof_" + name, Help: help}, labels)
		f(g)
		return g
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backproof_" + name, Help: help}, labels)
		f(c)
		return c
	}
	histogram := func(name, help string, labels ...string) *prometheus.HistogramVec {
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "backproof_" + name, Help: help, Buckets: durationBuckets}, labels)
		f(h)
		return h
	}
	m := &Metrics{
		BackupLastSuccess: gauge("backup_last_success_timestamp_seconds", "End of the newest backup committed to every destination.", "target"),
		BackupLastAttempt: gauge("backup_last_attempt_timestamp_seconds", "Start of the newest backup attempt.", "target"),
		BackupAttempts:    counter("backup_attempts_total", "Backups started.", "target"),
		BackupFailures:    counter("backup_failures_total", "Backups not committed to every destination.", "target"),
		BackupDuration:    histogram("backup_duration_seconds", "Wall time of backups, failed ones included.", "target"),
		BackupSize:        gauge("backup_size_bytes", "Stored size of the newest backup.", "target"),
		DestLastSuccess:   gauge("destination_last_success_timestamp_seconds", "End of the newest backup committed to this destination.", "target", "destination"),
		DestFailures:      counter("destination_failures_total", "Backups this destination failed to commit.", "target", "destination"),
		VerifyLastSuccess: gauge("verify_last_success_timestamp_seconds", "End of the newest verification that passed.", "target"),
		VerifyLastResult:  gauge("verify_last_result", "Newest verification: 1 pass, 0 fail (bad backup), -1 error (could not run).", "target"),
		VerifyDuration:    histogram("verify_duration_seconds", "Wall time of verifications.", "target"),
		RestoreDuration:   gauge("restore_duration_seconds", "Restore time measured by the newest verification that restored: the real RTO.", "target"),
		VerifiedBackup:    gauge("verified_backup_timestamp_seconds", "Creation time of the newest backup that passed verification: the real RPO.", "target"),
		CheckLastSuccess:  gauge("check_last_success", "1 if the configured check held in the newest verification that ran it, else 0.", "target", "check"),
		ContinuityLast:    gauge("continuity_last_success", "1 if the continuity step of the newest verification passed (no table, row count, schema object or migration version lost since the last good backup), else 0.", "target"),
		NextRun:           gauge("schedule_next_run_timestamp_seconds", "When the job runs next.", "target", "job"),
		ScheduleInterval:  gauge("schedule_interval_seconds", "Time between two runs of the job's schedule; alert thresholds scale with it.", "target", "job"),
		SkippedRuns:       counter("schedule_skipped_runs_total", "Scheduled runs skipped because the previous run of the job was still going.", "target", "job"),
		PruneFailures:     counter("prune_failures_total", "Retention runs that failed.", "target"),
		SuspectBackups: gauge("suspect_backups", "Backups on a destination that are never used: invalid or not authentic manifests, "+
			"or dates that cannot be believed (in the future, or disagreeing with the id).", "target", "destination"),
		ReloadSuccessful: prometheus.NewGauge(prometheus.GaugeOpts{Name: "backproof_config_last_reload_successful",
			Help: "1 if the last configuration (re)load succeeded, else 0."}),
		ReloadSuccessTime: prometheus.NewGauge(prometheus.GaugeOpts{Name: "backproof_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully."}),
		JobsRunning: gauge("jobs_running", "Jobs running now.", "job"),
		ReplicasLive: prometheus.NewGauge(prometheus.GaugeOpts{Name: "backproof_replicas_live",
			Help: "Daemon replicas sharing the targets that this one sees live (1 without replicas)."}),
		TargetOwned: gauge("target_owned", "1 if this replica runs the target's schedules, else 0 (another live replica does).", "target"),
		buildInfo:   gauge("build_info", "Always 1; the labels say which build runs.", "version", "goversion"),
	}
	f(m.ReloadSuccessful)
	f(m.ReloadSuccessTime)
	f(m.ReplicasLive)
	m.ReplicasLive.Set(1)
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	for _, j := range []string{JobBackup, JobVerify, JobPrune} {
		m.JobsRunning.WithLabelValues(j)
	}
	return m
}

// Target describes a target's series so they exist before its first run.
type Target struct {
	Name         string
	Destinations []string
	Checks       []string
	Jobs         []string // scheduled jobs
}

// Init creates a target's series: counters at 0, timestamps at 0 (never),
// so that rate and staleness alerts work from the start.
func (m *Metrics) Init(t Target) {
	for _, v := range []*prometheus.GaugeVec{m.BackupLastSuccess, m.BackupLastAttempt, m.BackupSize,
		m.VerifyLastSuccess, m.VerifiedBackup} {
		v.WithLabelValues(t.Name)
	}
	for _, v := range []*prometheus.CounterVec{m.BackupAttempts, m.BackupFailures, m.PruneFailures} {
		v.WithLabelValues(t.Name)
	}
	m.BackupDuration.WithLabelValues(t.Name)
	m.VerifyDuration.WithLabelValues(t.Name)
	m.TargetOwned.WithLabelValues(t.Name).Set(1)
	for _, d := range t.Destinations {
		m.DestLastSuccess.WithLabelValues(t.Name, d)
		m.DestFailures.WithLabelValues(t.Name, d)
		m.SuspectBackups.WithLabelValues(t.Name, d)
	}
	for _, j := range t.Jobs {
		m.SkippedRuns.WithLabelValues(t.Name, j)
	}
}

// Forget deletes every series of a target no longer configured.
func (m *Metrics) Forget(target string) {
	l := prometheus.Labels{"target": target}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{
		m.BackupLastSuccess, m.BackupLastAttempt, m.BackupAttempts, m.BackupFailures, m.BackupDuration,
		m.BackupSize, m.DestLastSuccess, m.DestFailures, m.VerifyLastSuccess, m.VerifyLastResult,
		m.VerifyDuration, m.RestoreDuration, m.VerifiedBackup, m.CheckLastSuccess, m.ContinuityLast, m.NextRun,
		m.ScheduleInterval, m.SkippedRuns, m.PruneFailures, m.SuspectBackups, m.TargetOwned,
	} {
		v.DeletePartialMatch(l)
	}
}
