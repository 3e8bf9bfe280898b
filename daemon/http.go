package daemon

import (
	"encoding/json"
	"maps"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/internal/redact"
	"github.com/backproof/backproof/metrics"
	"github.com/backproof/backproof/verify"
)

// Handler serves /metrics, /healthz, /readyz, /status and the status page.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{Registry: d.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n")) //nolint:errcheck // the client went away
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !d.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n")) //nolint:errcheck // the client went away
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// Every string value passes the redactor once more, decoded: a
		// field that Status forgot cannot leak.
		data, err := json.Marshal(d.Status())
		if err == nil {
			data, err = redact.JSON(data, d.redact)
		}
		if err != nil {
			http.Error(w, "encoding the status failed", http.StatusInternalServerError)
			return
		}
		w.Write(append(data, '\n')) //nolint:errcheck // the client went away
	})
	mux.HandleFunc("GET /{$}", d.page)
	return mux
}

// Status is the daemon's state, as /status serves it.
type Status struct {
	Version     string         `json:"version"`
	Started     time.Time      `json:"started"`
	Now         time.Time      `json:"now"`
	Ready       bool           `json:"ready"`
	ReloadError string         `json:"config_reload_error,omitempty"`
	Targets     []TargetStatus `json:"targets"`
}

// TargetStatus is one target's state.
type TargetStatus struct {
	Name           string               `json:"name"`
	Engine         string               `json:"engine"`
	Health         Health               `json:"health"`
	Problems       []string             `json:"problems,omitempty"`
	Schedule       string               `json:"schedule,omitempty"`
	VerifySchedule string               `json:"verify_schedule,omitempty"`
	NextRuns       map[string]time.Time `json:"next_runs"`
	Running        map[string]time.Time `json:"running"`
	SkippedRuns    map[string]int       `json:"skipped_runs"`
	LastAttempt    *backup.Result       `json:"last_attempt,omitempty"` // by this process
	// LastRun is this process's newest verification, stored or not.
	LastRun   []*verify.Record `json:"last_run,omitempty"`
	LastPrune *PruneRun        `json:"last_prune,omitempty"`
	// BackupAge and VerifiedAge are seconds since the newest backup
	// committed everywhere and the newest verified backup were created
	// (RPO); RestoreSeconds is the last measured restore time (RTO).
	BackupAge      *float64 `json:"backup_age_seconds"`
	VerifiedAge    *float64 `json:"verified_backup_age_seconds"`
	RestoreSeconds float64  `json:"restore_duration_seconds"`
	// Continuity is the newest continuity verdict; nil before the first.
	Continuity *ContinuityStatus `json:"continuity,omitempty"`
	Catalog
}

// Health summarises a target for people: ok, warning or failing.
type Health string

// Health values.
const (
	OK      Health = "ok"
	Warning Health = "warning"
	Failing Health = "failing"
)

// Status returns a snapshot of every target's state.
func (d *Daemon) Status() Status {
	now := d.now()
	d.mu.Lock()
	cfg, reloadErr := d.cfg, d.reloadErr
	var states []*targetState
	for _, name := range sortedKeys(d.targets) {
		states = append(states, d.targets[name])
	}
	d.mu.Unlock()
	st := Status{Version: d.Version, Started: d.started, Now: now, Ready: d.ready.Load(),
		ReloadError: d.redact(reloadErr), Targets: []TargetStatus{}}
	for _, ts := range states {
		t := cfg.Targets[ts.name]
		if t == nil {
			continue
		}
		ts.mu.Lock()
		s := TargetStatus{
			Name: ts.name, Engine: t.Engine, Schedule: t.Schedule,
			NextRuns: maps.Clone(ts.next), Running: maps.Clone(ts.running), SkippedRuns: maps.Clone(ts.skipped),
		}
		if ts.lastPrune != nil {
			p := *ts.lastPrune
			p.Error = d.redact(p.Error)
			s.LastPrune = &p
		}
		if ts.lastAttempt != nil {
			a := *ts.lastAttempt
			a.Error = d.redact(a.Error)
			a.Destinations = append([]backup.DestinationResult(nil), a.Destinations...)
			for i := range a.Destinations {
				a.Destinations[i].Error = d.redact(a.Destinations[i].Error)
			}
			s.LastAttempt = &a
		}
		if ts.catalog != nil {
			s.Catalog = *ts.catalog
		}
		for _, r := range ts.lastRun {
			c := *r
			c.Reason = d.redact(c.Reason)
			s.LastRun = append(s.LastRun, &c)
		}
		interval := maps.Clone(ts.interval) // setNext writes it under ts.mu
		ts.mu.Unlock()
		if t.Verify != nil {
			s.VerifySchedule = t.Verify.Schedule
		}
		for i, ds := range s.Destinations {
			s.Destinations[i].Error = d.redact(ds.Error)
		}
		if s.LastVerifications == nil {
			s.LastVerifications = []*verify.Record{}
		}
		if s.History == nil {
			s.History = []Point{}
		}
		if s.Newest != nil {
			age := now.Sub(s.Newest.Created).Seconds()
			s.BackupAge = &age
		}
		if s.Verified != nil {
			age := now.Sub(s.Verified.Created).Seconds()
			s.VerifiedAge = &age
		}
		s.RestoreSeconds = s.Catalog.RestoreSeconds()
		if s.Continuity = s.Catalog.continuityStatus(); s.Continuity != nil {
			s.Continuity.Message = d.redact(s.Continuity.Message)
		}
		s.Health, s.Problems = health(&s, interval)
		st.Targets = append(st.Targets, s)
	}
	return st
}

func (d *Daemon) redact(s string) string {
	if d.Redact == nil || s == "" {
		return s
	}
	return d.Redact(s)
}

// health decides a target's colour on the page: failing when its backups
// are bad, stale or missing; warning when proof is missing or late.
func health(s *TargetStatus, interval map[string]time.Duration) (Health, []string) {
	var failing, warning []string
	if s.Newest == nil {
		failing = append(failing, "no backup committed to every destination")
	} else if iv := interval[metrics.JobBackup]; iv > 0 && *s.BackupAge > 2*iv.Seconds() {
		failing = append(failing, "backup stale")
	}
	if a := s.LastAttempt; a != nil && a.Error != "" {
		failing = append(failing, "last backup failed")
	}
	verdict := &s.Catalog
	if s.LastRun != nil {
		verdict = &Catalog{LastVerifications: s.LastRun}
	}
	switch v, ok := verdict.Result(); {
	case !ok:
		warning = append(warning, "never verified")
	case v == 0:
		failing = append(failing, "last verification failed: backup bad")
	case v < 0:
		warning = append(warning, "last verification could not run")
	}
	if c := s.Continuity; c != nil && c.Outcome == verify.Fail {
		failing = append(failing, "continuity failed: "+c.Message)
	}
	for _, r := range s.LastVerifications {
		for _, c := range r.Checks {
			if c.Kind == verify.KindQuery && c.Outcome == verify.Fail {
				failing = append(failing, "check "+c.Name+" failing")
			}
		}
	}
	if iv := interval[metrics.JobVerify]; iv > 0 && s.VerifiedAge != nil && *s.VerifiedAge > 2*iv.Seconds()+2*interval[metrics.JobBackup].Seconds() {
		warning = append(warning, "verified backup old")
	}
	for _, ds := range s.Destinations {
		if ds.Error != "" {
			warning = append(warning, "destination "+ds.Name+" unreadable")
		}
	}
	if s.LastPrune != nil && s.LastPrune.Error != "" {
		warning = append(warning, "prune failed")
	}
	switch {
	case len(failing) > 0:
		return Failing, append(failing, warning...)
	case len(warning) > 0:
		return Warning, warning
	}
	return OK, nil
}
