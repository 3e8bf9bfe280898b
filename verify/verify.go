// Package verify proves a backup works: it checks the stored bytes against
// the manifest, restores them into a throwaway sandbox, compares the restored
// copy with what the dump recorded and runs the target's own checks. A run
// ends in pass, fail (the backup is bad) or error (no verdict), never
// confusing the last two.
package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/continuity"
	"github.com/backproof/backproof/crypt"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/restore"
	"github.com/backproof/backproof/sandbox"
)

// Verifier runs verifications.
type Verifier struct {
	Sandbox sandbox.Provider
	Log     *slog.Logger
	Now     func() time.Time
	Version string // recorded in each record
	// Images maps an engine to its sandbox image; "{major}" and "{version}"
	// are replaced by the major and x.y.z version of the server the backup
	// was taken from.
	Images  map[string]string
	Memory  int64         // sandbox memory limit, bytes
	CPUs    float64       // sandbox CPU limit
	Timeout time.Duration // bounds one verification, sandbox start to last check
	// SpoolDir holds the decompressed artifact during the restore; "" is
	// the system temp directory. It needs room for the uncompressed dump.
	SpoolDir string
	// Redact scrubs secrets from messages before they are recorded.
	Redact func(string) string
	// Identities decrypt encrypted backups; nil: none configured.
	Identities *crypt.Identities
}

// Request names what to verify.
type Request struct {
	Target string
	Engine string // engine name, e.g. "postgres"
	// Words name what the engine counts in messages; zero: tables and rows.
	Words       engine.Words
	Prover      engine.Prover
	Destination string
	Store       destination.Destination
	// BackupID selects a backup; empty: the one Pick chooses.
	BackupID string
	Pick     Picker
	// Cache, when set, keeps manifest summaries between runs (a daemon's).
	Cache  *catalog.Cache
	Checks []config.Check
	// Integrity runs the engine's integrity check (Copy.Integrity): nil
	// when the sandbox can, true always (unsupported is an error), false never.
	Integrity *bool
	// Tolerance is how far each count of the copy may be from the one the
	// dump recorded (Redis: keys per database of a live server).
	Tolerance config.Tolerance
	// Hold, when set, runs after the checks while the sandbox is still up;
	// the sandbox is removed when it returns (restore --sandbox).
	Hold func(ctx context.Context, srv engine.Server)
	// NoRecord: store no verification record.
	NoRecord bool
	// Continuity, when set, compares the backup with the last good one on
	// the destination (continuity.go).
	Continuity *continuity.Policy
}

// Run verifies one backup on one destination and stores the record next to
// it. It always returns a record; the record's Outcome is the verdict.
func (v *Verifier) Run(ctx context.Context, req Request) *Record {
	log := v.Log.With("target", req.Target, "destination", req.Destination)
	rec := &Record{Format: RecordFormat, Target: req.Target, Destination: req.Destination, Version: v.Version, Started: v.Now().UTC()}
	r := &run{v: v, req: req, rec: rec, log: log}

	vctx, cancel := context.WithTimeoutCause(ctx, v.Timeout,
		fmt.Errorf("verification timed out after %s (sandbox.timeout)", v.Timeout))
	defer cancel()
	defer r.cleanup() // also when verify panics
	r.verify(vctx)
	// The verdict is in: remove the sandbox while the record is written.
	cleaned := make(chan struct{})
	go func() {
		defer close(cleaned)
		r.cleanup()
	}()
	defer func() { <-cleaned }()
	if r.continuityStep != nil {
		rec.Checks = append(rec.Checks, *r.continuityStep)
	}

	rec.Ended = v.Now().UTC()
	rec.DurationSeconds = rec.Ended.Sub(rec.Started).Seconds()
	rec.settle()
	if v.Redact != nil {
		rec.Reason = v.Redact(rec.Reason)
		for i := range rec.Checks {
			rec.Checks[i].Message = v.Redact(rec.Checks[i].Message)
			rec.Checks[i].Observed = v.Redact(rec.Checks[i].Observed)
		}
	}
	// A record belongs to a backup; an interrupted run leaves none.
	if rec.BackupID != "" && ctx.Err() == nil && !req.NoRecord {
		name := catalog.RecordName(rec.Started)
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := catalog.WriteRecord(wctx, req.Store, req.Target, rec.BackupID, name, rec); err != nil {
			rec.StoreError = err.Error()
			log.ErrorContext(ctx, "could not store the verification record", "backup_id", rec.BackupID, "err", err)
		} else {
			rec.Stored = name
		}
	}
	log.InfoContext(ctx, "verification finished", "backup_id", rec.BackupID, "outcome", rec.Outcome,
		"restore_seconds", round(rec.RestoreSeconds), "seconds", round(rec.DurationSeconds), "reason", rec.Reason)
	return rec
}

// run is one verification in progress.
type run struct {
	v   *Verifier
	req Request
	rec *Record
	log *slog.Logger

	listing        *catalog.Listing // the destination's backups, read by selectBackup
	continuityStep *CheckResult     // recorded last (continuity.go)

	cleanups  []func() // run once the verdict is in (later)
	cleanOnce sync.Once
}

// later runs f once the verdict is in, after the steps, or when verify
// panics: removing a sandbox takes time no verdict needs to wait for.
func (r *run) later(f func()) { r.cleanups = append(r.cleanups, f) }

func (r *run) cleanup() {
	r.cleanOnce.Do(func() {
		for i := len(r.cleanups) - 1; i >= 0; i-- {
			r.cleanups[i]()
		}
	})
}

// step records the result of a built-in step.
func (r *run) step(name string, start time.Time, outcome Outcome, observed, msg string) {
	r.stepEnded(name, start, r.v.Now(), outcome, observed, msg)
}

// stepEnded records a step that ran from start to end.
func (r *run) stepEnded(name string, start, end time.Time, outcome Outcome, observed, msg string) {
	r.rec.Checks = append(r.rec.Checks, CheckResult{
		Name: name, Kind: KindBuiltin, Outcome: outcome, Observed: observed, Message: msg,
		Seconds: round(end.Sub(start).Seconds()),
	})
}

// stepErr records a step that ended in err, as a failure of the backup when
// isBad says so and as an error otherwise.
func (r *run) stepErr(ctx context.Context, name string, start time.Time, err error, isBad bool) {
	r.stepErrEnded(ctx, name, start, r.v.Now(), err, isBad)
}

func (r *run) stepErrEnded(ctx context.Context, name string, start, end time.Time, err error, isBad bool) {
	outcome := Error
	if isBad && ctx.Err() == nil {
		outcome = Fail
	}
	if ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	r.stepEnded(name, start, end, outcome, "", err.Error())
}

func (r *run) verify(ctx context.Context) {
	start := r.v.Now()
	m, err := r.selectBackup(ctx)
	if err != nil {
		r.stepErr(ctx, CheckSelect, start, err, errors.Is(err, errInvalidManifest))
		return
	}
	if release, ok := r.hold(ctx, start, m); !ok {
		return
	} else if release != nil {
		defer release(context.WithoutCancel(ctx))
	}
	r.continuity(ctx, m)
	image, err := r.image(m)
	if err != nil {
		r.stepErr(ctx, CheckSelect, start, err, false)
		return
	}
	r.rec.Image = image

	spec, srv := r.req.Prover.Sandbox(image, randomPassword(), dumpInfo(m))
	spec.Memory, spec.CPUs = r.v.Memory, r.v.CPUs
	if dl, ok := ctx.Deadline(); ok {
		spec.Deadline = dl
	}
	spec.Labels = map[string]string{"io.backproof.target": r.req.Target, "io.backproof.backup": m.ID}
	if r.req.Hold != nil {
		spec.Seed = nil // a person works in it: a cluster as the image makes it
	}
	// A server that loads the backup as it starts needs it spooled first.
	if pre := preloader(ctx, r.req.Prover, m); pre != nil {
		inst, dir, loaded := r.startLoaded(ctx, m, pre, spec, &srv)
		if dir != "" {
			defer os.RemoveAll(dir)
		}
		if inst != nil {
			r.later(func() { r.closeSandbox(ctx, inst) })
		}
		if loaded {
			os.RemoveAll(dir)
			r.inspect(ctx, srv, m)
		}
		return
	}

	// Start the sandbox while the artifact downloads: both take time and
	// neither needs the other until the restore. A sandbox that cannot
	// start stops the download.
	spoolCtx, stopSpool := context.WithCancelCause(ctx)
	defer stopSpool(nil)
	sctx, cancelStart := context.WithCancel(ctx)
	defer cancelStart()
	started := make(chan startResult, 1)
	go func() {
		t := r.v.Now()
		inst, err := r.v.Sandbox.Start(sctx, spec)
		if err != nil {
			stopSpool(errSandboxFailed)
		}
		started <- startResult{inst, err, t}
	}()

	spoolStart := r.v.Now()
	dir, path, spoolErr := r.spool(spoolCtx, m)
	if dir != "" {
		defer os.RemoveAll(dir)
	}
	spoolFailed := spoolErr != nil && !errors.Is(context.Cause(spoolCtx), errSandboxFailed)
	if spoolFailed {
		cancelStart()
	}
	res := <-started
	if res.inst != nil {
		r.later(func() { r.closeSandbox(ctx, res.inst) })
	}
	if spoolFailed {
		spoolErr, bad := r.judgeSpool(ctx, m, spoolErr)
		r.stepErr(ctx, CheckChecksum, spoolStart, spoolErr, bad)
		return
	}
	if res.err != nil {
		r.stepErr(ctx, CheckSandbox, res.start, res.err, false)
		return
	}
	a := m.Artifacts[0]
	r.step(CheckChecksum, spoolStart, Pass, fmt.Sprintf("%s: %d bytes, SHA-256 %s", a.Name, a.Size, a.SHA256), "")
	inst := res.inst
	r.recordImage(inst)
	srv.Host, srv.Port = inst.Addr()
	r.step(CheckSandbox, res.start, Pass, image, "")

	if !r.restore(ctx, inst, srv, path, m) {
		return
	}
	os.RemoveAll(dir) // the restored copy is all that is needed now
	r.inspect(ctx, srv, m)
}

// inspect compares the restored copy with the manifest and runs the checks.
func (r *run) inspect(ctx context.Context, srv engine.Server, m *catalog.Manifest) {
	cp, err := r.req.Prover.Open(ctx, srv)
	if err != nil {
		r.stepErr(ctx, CheckConnect, r.v.Now(), err, false)
		return
	}
	defer cp.Close(ctx)
	// The engine's integrity check runs while the copy is counted
	// (engine.Copy): each keeps a server process busy.
	ictx, stopIntegrity := context.WithCancel(ctx)
	defer stopIntegrity()
	integrity := r.startIntegrity(ictx, cp)
	compared := r.compare(ctx, cp, &m.Source)
	if !compared {
		stopIntegrity()
	}
	res := <-integrity
	if !compared || !r.integrity(ctx, res) {
		return
	}
	r.userChecks(ctx, cp, m)
	if r.req.Hold != nil {
		r.req.Hold(ctx, srv)
	}
}

func (r *run) closeSandbox(ctx context.Context, inst sandbox.Instance) {
	if err := inst.Close(ctx); err != nil {
		r.log.WarnContext(ctx, "sandbox cleanup failed", "err", err)
	}
}

// startLoaded starts the sandbox of a Preloader: the artifact is spooled and
// checked first, then the server loads it as it starts, so the start is the
// restore. It returns the sandbox, if one started, and the spool directory
// to remove.
func (r *run) startLoaded(ctx context.Context, m *catalog.Manifest, pre engine.Preloader, spec sandbox.Spec, srv *engine.Server) (sandbox.Instance, string, bool) {
	start := r.v.Now()
	dir, path, err := r.spool(ctx, m)
	if err != nil {
		err, bad := r.judgeSpool(ctx, m, err)
		r.stepErr(ctx, CheckChecksum, start, err, bad)
		return nil, dir, false
	}
	a := m.Artifacts[0]
	r.step(CheckChecksum, start, Pass, fmt.Sprintf("%s: %d bytes, SHA-256 %s", a.Name, a.Size, a.SHA256), "")

	start = r.v.Now()
	info := dumpInfo(m)
	if err := pre.Preload(ctx, &spec, *srv, path, info); err != nil {
		r.stepErr(ctx, CheckRestore, start, err, errors.Is(err, engine.ErrRestore))
		return nil, dir, false
	}
	inst, err := r.v.Sandbox.Start(ctx, spec)
	if err != nil {
		if err = pre.LoadFailed(err); errors.Is(err, engine.ErrRestore) {
			r.stepErr(ctx, CheckRestore, start, err, true)
		} else {
			r.stepErr(ctx, CheckSandbox, start, err, false)
		}
		return nil, dir, false
	}
	elapsed := r.v.Now().Sub(start)
	r.recordImage(inst)
	srv.Host, srv.Port = inst.Addr()
	r.step(CheckSandbox, start, Pass, spec.Image, "")
	r.rec.RestoreSeconds = round(elapsed.Seconds())
	r.step(CheckRestore, start, Pass, elapsed.Round(time.Millisecond).String()+", loaded as the server started", "")
	return inst, dir, true
}

// preloader returns the Preloader that loads this backup as the sandbox
// starts, or nil when it is restored into a running sandbox.
func preloader(ctx context.Context, p engine.Prover, m *catalog.Manifest) engine.Preloader {
	if pre, ok := p.(engine.Preloader); ok {
		return pre
	}
	if c, ok := p.(engine.PreloadChooser); ok {
		return c.Preloader(ctx, &engine.DumpInfo{ServerVersion: m.ServerVersion, Tools: m.Tools, Source: m.Source})
	}
	return nil
}

type startResult struct {
	inst  sandbox.Instance
	err   error
	start time.Time
}

var (
	errInvalidManifest = errors.New("invalid manifest")
	errSandboxFailed   = errors.New("sandbox failed to start")
)

// selectBackup finds the backup to verify and records which it is.
func (r *run) selectBackup(ctx context.Context) (*catalog.Manifest, error) {
	l, err := catalog.List(ctx, r.req.Store, r.req.Target)
	if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	r.listing = l
	var b *catalog.Backup
	if r.req.BackupID != "" {
		for i := range l.Backups {
			if l.Backups[i].ID == r.req.BackupID {
				b = &l.Backups[i]
			}
		}
		if b == nil {
			return nil, fmt.Errorf("backup %s of %s is not on destination %s", r.req.BackupID, r.req.Target, r.req.Destination)
		}
	} else {
		// Picking needs every backup's dates: their summaries, not their
		// whole manifests.
		if err := l.Load(ctx, r.req.Store, r.req.Cache); err != nil {
			return nil, fmt.Errorf("read manifests: %w", err)
		}
		pick := r.req.Pick
		if pick == nil {
			pick = Latest
		}
		if b = pick(l.Backups, r.v.Now()); b == nil {
			return nil, fmt.Errorf("no backups of %s on destination %s", r.req.Target, r.req.Destination)
		}
	}
	r.rec.BackupID = b.ID
	if created, err := catalog.IDTime(b.ID); err == nil {
		r.rec.BackupCreated = &created
	}
	if b.Invalid != "" {
		return nil, fmt.Errorf("%w: %s", errInvalidManifest, b.Invalid)
	}
	// The one backup verified is read whole. A manifest that cannot be
	// read is an error (the store failed), never a verdict.
	m, err := catalog.ReadManifest(ctx, r.req.Store, r.req.Target, b.ID)
	switch {
	case errors.Is(err, catalog.ErrInvalid):
		return nil, fmt.Errorf("%w: %v", errInvalidManifest, err)
	case errors.Is(err, destination.ErrNotFound):
		return nil, fmt.Errorf("backup %s of %s: %w", b.ID, r.req.Target, catalog.ErrPruned)
	case err != nil:
		return nil, fmt.Errorf("read the manifest: %w", err)
	}
	r.rec.BackupCreated = &m.Start
	switch {
	case m.Engine != r.req.Engine:
		return nil, fmt.Errorf("%w: backup %s is a %s backup, target %s is %s", errInvalidManifest, m.ID, m.Engine, r.req.Target, r.req.Engine)
	case len(m.Artifacts) != 1:
		return nil, fmt.Errorf("%w: backup %s has %d artifacts, a %s backup has one", errInvalidManifest, m.ID, len(m.Artifacts), m.Engine)
	}
	// A missing or wrong key stops here, before a sandbox starts: it says
	// nothing about the backup.
	if err := restore.CheckKeys(m, r.v.Identities); err != nil {
		return nil, err
	}
	return m, nil
}

// recordImage records what the sandbox ran: the image id and, for a pulled
// image, its registry digest (to tell which build of a tag was trusted).
func (r *run) recordImage(inst sandbox.Instance) {
	_, r.rec.ImageID = inst.Image()
	if d, ok := inst.(sandbox.Digester); ok {
		r.rec.ImageDigest = d.ImageDigest()
	}
}

// image resolves the sandbox image for a backup: "{major}" and "{version}"
// (x.y.z) of the server it was taken from.
func (r *run) image(m *catalog.Manifest) (string, error) {
	tmpl, ok := r.v.Images[r.req.Engine]
	if !ok || tmpl == "" {
		return "", fmt.Errorf("no sandbox image for engine %s (sandbox.images.%s)", r.req.Engine, r.req.Engine)
	}
	for _, p := range []struct {
		key string
		val func(string) string
	}{{"{major}", majorVersion}, {"{version}", fullVersion}} {
		if !strings.Contains(tmpl, p.key) {
			continue
		}
		v := p.val(m.ServerVersion)
		if v == "" {
			return "", fmt.Errorf("%w: server version %q has no %s for %s", errInvalidManifest, m.ServerVersion, strings.Trim(p.key, "{}"), tmpl)
		}
		tmpl = strings.ReplaceAll(tmpl, p.key, v)
	}
	return tmpl, nil
}

// fullVersion returns the leading x.y.z of a server version: "10.11.19"
// for "10.11.19-MariaDB-0+deb12u1-log", "" when it has fewer parts.
func fullVersion(v string) string {
	i := 0
	for i < len(v) && (v[i] == '.' || v[i] >= '0' && v[i] <= '9') {
		i++
	}
	f := strings.TrimSuffix(v[:i], ".")
	if strings.Count(f, ".") < 2 {
		return ""
	}
	return f
}

// majorVersion returns the leading number of a server version: "15" for
// "15.10 (Debian 15.10-0+deb12u1)", "7" for "7.0.15".
func majorVersion(v string) string {
	i := 0
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	return v[:i]
}

// spool downloads the artifact into a new directory and proves it matches
// the manifest. The directory is returned even on error, for removal.
func (r *run) spool(ctx context.Context, m *catalog.Manifest) (dir, path string, err error) {
	dir, err = os.MkdirTemp(r.v.SpoolDir, "backproof-verify-")
	if err != nil {
		return "", "", fmt.Errorf("spool directory: %w", err)
	}
	path, err = restore.Spool(ctx, r.req.Store, m, m.Artifacts[0], r.v.Identities, dir, nil)
	return dir, path, err
}

// restore loads the spooled artifact into the sandbox and measures how long
// that takes.
func (r *run) restore(ctx context.Context, inst sandbox.Instance, srv engine.Server, path string, m *catalog.Manifest) bool {
	info := dumpInfo(m)
	start := r.v.Now()
	err := r.req.Prover.Restore(ctx, srv, path, info, engine.RestoreOptions{Jobs: r.v.jobs()})
	elapsed := r.v.Now().Sub(start)
	if err != nil {
		// A sandbox that died under the restore says nothing about the backup.
		if cerr := inst.Check(context.WithoutCancel(ctx)); cerr != nil {
			err = fmt.Errorf("%w; %v; sandbox output: %s", cerr, err, inst.Logs(context.WithoutCancel(ctx)))
			r.stepErr(ctx, CheckRestore, start, err, false)
			return false
		}
		r.stepErr(ctx, CheckRestore, start, err, errors.Is(err, engine.ErrRestore))
		return false
	}
	r.rec.RestoreSeconds = round(elapsed.Seconds())
	r.step(CheckRestore, start, Pass, elapsed.Round(time.Millisecond).String(), "")
	return true
}

// jobs is how many parallel restore jobs the sandbox's CPUs can use. Under
// two CPUs one job in a single transaction is faster: the jobs compete for
// one CPU (bench/README.md). With two, two jobs restored the orders
// database in 2.1 s instead of 3.1 s, and pgbench's one big table in 1.97 s
// instead of 1.92 s, once the engine gave pg_restore the archive's data
// offsets.
func (v *Verifier) jobs() int {
	if v.CPUs < 2 {
		return 1
	}
	return min(8, int(math.Ceil(v.CPUs)))
}

// integrity records the engine's integrity check; false: it could not run, and
// the checks stop.
func (r *run) integrity(ctx context.Context, res integrityRun) bool {
	if res.notAsked {
		return true
	}
	switch err := res.err; {
	case err == nil:
		r.stepEnded(CheckIntegrity, res.start, res.end, Pass, res.checked, "")
	case errors.Is(err, errors.ErrUnsupported) && r.req.Integrity == nil:
		r.stepEnded(CheckIntegrity, res.start, res.end, Skipped, "", err.Error())
	default:
		r.stepErrEnded(ctx, CheckIntegrity, res.start, res.end, err, errors.Is(err, engine.ErrCorrupt))
		return errors.Is(err, engine.ErrCorrupt) // the other checks still say something
	}
	return true
}

// integrityRun is the outcome of the engine's integrity check.
type integrityRun struct {
	notAsked   bool // the target turned it off
	start, end time.Time
	checked    string
	err        error
}

// startIntegrity runs the engine's integrity check, unless the target
// turned it off, and sends its outcome.
func (r *run) startIntegrity(ctx context.Context, cp engine.Copy) <-chan integrityRun {
	c := make(chan integrityRun, 1)
	if a := r.req.Integrity; a != nil && !*a {
		c <- integrityRun{notAsked: true}
		return c
	}
	go func() {
		start := r.v.Now()
		checked, err := cp.Integrity(ctx)
		c <- integrityRun{start: start, end: r.v.Now(), checked: checked, err: err}
	}()
	return c
}

// dumpInfo is what the manifest recorded at dump time, as engines take it.
func dumpInfo(m *catalog.Manifest) *engine.DumpInfo {
	return &engine.DumpInfo{ServerVersion: m.ServerVersion, Tools: m.Tools, Source: m.Source}
}

func round(s float64) float64 { return math.Round(s*1000) / 1000 }
