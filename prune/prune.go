// Package prune applies a target's retention policy to each of its
// destinations: it lists the backups there, asks the retention planner which
// to keep, deletes the others and removes debris. The CLI's prune command
// and the daemon both call Target.
//
// Safety:
//   - each destination is planned on its own listing; one whose listing, or
//     the reading of a verification record that matters, failed is not
//     touched at all (a failed listing never reads as "no backups");
//   - the planner keeps the newest committed backup and the newest that
//     passed verification on that destination, and sets aside (keeps, counts
//     for no rule) a backup dated in the future or whose manifest disagrees
//     with its id;
//   - a backup a verification or restore holds (catalog.PutHold) is kept;
//   - a backup is deleted manifest first: from that moment no command sees
//     it as a backup, whatever happens next. Then its other objects
//     (artifacts, verification records) go. A run that dies in between
//     leaves debris, which this or a backup run removes after the grace
//     period; it never leaves a listed backup with missing artifacts;
//   - deleting needs the target's lease (package lease) on that destination,
//     checked again before each backup is deleted.
//
// Pruning after a failed backup: the daemon prunes a target only after a
// successful backup of it. The CLI cannot know about a failed attempt that
// left nothing on the destinations (the destinations are the only state),
// and needs not: every rule counts from the newest backup, not from now, so
// a plan cannot change while backups are failing. Pruning then deletes only
// what the last successful backup's prune would have.
package prune

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/lease"
	"github.com/backproof/backproof/retention"
	"github.com/backproof/backproof/sign"
	"github.com/backproof/backproof/verify"
)

// ReasonNoPolicy is why every backup of a target without retention is kept.
const ReasonNoPolicy = "no retention policy"

// Report is what pruning one target did, or would do in a dry run.
type Report struct {
	Target       string              `json:"target"`
	DryRun       bool                `json:"dry_run"`
	Destinations []DestinationReport `json:"destinations"`
	Error        string              `json:"error,omitempty"` // the target could not be pruned at all
}

// DestinationReport is one destination's part.
type DestinationReport struct {
	Name string `json:"name"`
	// Plan has every backup, newest first, kept with its reasons or not.
	// Empty when the destination could not be planned.
	Plan []retention.Decision `json:"plan"`
	// Deleted are the backups deleted (dry run: to be deleted).
	Deleted []string `json:"deleted"`
	// Debris are the ids of debris removed (dry run: to be removed).
	Debris []string `json:"debris"`
	Error  string   `json:"error,omitempty"`
}

// Target prunes target on each of dests by policy (nil: keep every backup,
// remove only debris) at time now. Unless dryRun, held must be the target's
// lease; destinations it does not hold are left alone. A dry run changes
// nothing and needs no lease. The error joins every destination's failure;
// the report is complete either way.
func Target(ctx context.Context, log *slog.Logger, target string, policy *config.Retention,
	dests []backup.Destination, held *lease.Lease, now time.Time, dryRun bool) (*Report, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rep := &Report{Target: target, DryRun: dryRun, Destinations: []DestinationReport{}}
	if !dryRun && (held == nil || held.Target() != target) {
		err := fmt.Errorf("prune %s: the target's lease is not held", target)
		rep.Error = err.Error()
		return rep, err
	}
	var errs []error
	for _, d := range dests {
		p := &pruner{log: log.With("target", target, "destination", d.Name), target: target, d: d,
			held: held, now: now, dryRun: dryRun}
		dr := DestinationReport{Name: d.Name, Plan: []retention.Decision{}, Deleted: []string{}, Debris: []string{}}
		if err := p.run(ctx, policy, &dr); err != nil {
			dr.Error = err.Error()
			errs = append(errs, fmt.Errorf("destination %s: %w", d.Name, err))
			p.log.ErrorContext(ctx, "prune failed", "error", err)
		}
		rep.Destinations = append(rep.Destinations, dr)
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
	}
	return rep, errors.Join(errs...)
}

type pruner struct {
	log    *slog.Logger
	target string
	d      backup.Destination
	held   *lease.Lease
	now    time.Time
	dryRun bool
	cache  *catalog.Cache // nil: read every manifest
}

func (p *pruner) run(ctx context.Context, policy *config.Retention, dr *DestinationReport) error {
	if !p.dryRun {
		if err := p.held.Err(p.d.Name); err != nil {
			return fmt.Errorf("nothing pruned: %w", err)
		}
	}
	l, err := catalog.List(ctx, p.d, p.target)
	if err != nil {
		return fmt.Errorf("listing failed, nothing pruned: %w", err)
	}
	// Retention judges every backup's dates: their summaries, never their
	// whole manifests. One that cannot be read stops the run.
	if err := l.Load(ctx, p.d, p.cache); err != nil {
		return fmt.Errorf("reading manifests failed, nothing pruned: %w", err)
	}
	plan, err := p.plan(ctx, l, policy)
	if err != nil {
		return err
	}
	dr.Plan = plan
	nkeep := 0
	for _, d := range plan {
		if d.Keep {
			nkeep++
			p.log.InfoContext(ctx, "keep", "backup_id", d.ID, "reasons", strings.Join(d.Reasons, ", "))
		} else {
			p.log.InfoContext(ctx, "delete", "backup_id", d.ID, "dry_run", p.dryRun)
		}
	}
	p.log.InfoContext(ctx, "prune plan", "keep", nkeep, "delete", len(plan)-nkeep, "dry_run", p.dryRun)

	// Oldest first.
	for i, d := range slices.Backward(plan) {
		if d.Keep {
			continue
		}
		locked, err := p.lockedUntil(ctx, d.ID)
		if err != nil {
			return err
		}
		if !locked.IsZero() {
			plan[i].Keep = true
			plan[i].Reasons = append(plan[i].Reasons, ReasonLocked+" until "+locked.UTC().Format(time.RFC3339))
			p.log.InfoContext(ctx, "kept: locked", "backup_id", d.ID, "until", locked)
			continue
		}
		if !p.dryRun {
			if err := p.held.Check(); err != nil {
				return fmt.Errorf("stopped before deleting %s: %w", d.ID, err)
			}
			until, err := p.deleteBackup(ctx, d.ID)
			if err != nil {
				return err
			}
			if !until.IsZero() {
				plan[i].Keep = true
				plan[i].Reasons = append(plan[i].Reasons, ReasonHeld+" until "+until.UTC().Format(time.RFC3339))
				p.log.InfoContext(ctx, "kept: a verification or restore reads it", "backup_id", d.ID, "until", until)
				continue
			}
			p.log.InfoContext(ctx, "deleted backup", "backup_id", d.ID)
		}
		dr.Deleted = append(dr.Deleted, d.ID)
	}
	return p.removeDebris(ctx, l, dr)
}

// plan turns the listing into the planner's input and plans.
func (p *pruner) plan(ctx context.Context, l *catalog.Listing, policy *config.Retention) ([]retention.Decision, error) {
	bs := make([]retention.Backup, 0, len(l.Backups))
	for _, b := range l.Backups {
		t, err := catalog.IDTime(b.ID)
		if err != nil {
			return nil, err // List returns only well-formed ids
		}
		bs = append(bs, retention.Backup{ID: b.ID, Time: t, Invalid: b.Summary == nil, Suspect: catalog.TimeProblem(b, p.now)})
	}
	if policy == nil {
		out := make([]retention.Decision, 0, len(bs))
		for _, b := range slices.Backward(bs) {
			out = append(out, retention.Decision{ID: b.ID, Time: b.Time, Keep: true, Reasons: []string{ReasonNoPolicy}})
		}
		return out, nil
	}
	// Only the newest verified backup matters to the planner: read records
	// from the newest backup down until one passed.
	for i := len(l.Backups) - 1; i >= 0; i-- {
		b := l.Backups[i]
		if b.Summary == nil || bs[i].Suspect != "" {
			continue
		}
		ok, err := p.verified(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("cannot tell whether %s passed verification, nothing pruned: %w", b.ID, err)
		}
		if ok {
			bs[i].Verified = true
			break
		}
	}
	return retention.Plan(bs, p.now, *policy)
}

// verified reports whether b's newest verification with a verdict passed.
// Records with no verdict (error) or that are not valid JSON are skipped;
// one that cannot be read is an error.
func (p *pruner) verified(ctx context.Context, b catalog.Backup) (bool, error) {
	for _, name := range slices.Backward(b.Records) {
		var rec verify.Record
		err := catalog.ReadRecord(ctx, p.d, p.target, b.ID, name, &rec)
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.Is(err, destination.ErrNotFound):
			continue
		case errors.Is(err, sign.ErrNotAuthentic):
			// Never counted, and never a reason to stop pruning: anyone
			// who can write to the destination could plant one.
			p.log.WarnContext(ctx, "verification record ignored", "backup_id", b.ID, "record", name, "error", err)
			continue
		case errors.As(err, &syn), errors.As(err, &typ):
			p.log.WarnContext(ctx, "unreadable verification record", "backup_id", b.ID, "record", name, "error", err)
			continue
		case err != nil:
			return false, err
		}
		switch rec.Outcome {
		case verify.Pass:
			return true, nil
		case verify.Fail:
			return false, nil
		}
	}
	return false, nil
}

// ReasonLocked keeps a backup whose manifest is under an S3 Object Lock
// retention: deleting it could only hide it behind a delete marker, or fail.
const ReasonLocked = "object lock"

// lockedUntil returns when the lock on a backup's manifest ends, or zero if
// the destination has no locks or the lock ended before now.
func (p *pruner) lockedUntil(ctx context.Context, id string) (time.Time, error) {
	raw := p.d.Destination
	if st, ok := raw.(*sign.Store); ok {
		raw = st.Destination
	}
	lk, ok := raw.(destination.Locker)
	if !ok {
		return time.Time{}, nil
	}
	until, err := lk.LockedUntil(ctx, catalog.Key(p.target, id, catalog.ManifestName))
	if err != nil {
		return time.Time{}, fmt.Errorf("cannot tell whether %s is locked, stopped: %w", id, err)
	}
	if !until.After(p.now) {
		return time.Time{}, nil
	}
	return until, nil
}

// ReasonHeld keeps a backup a verification or restore is reading.
const ReasonHeld = "held by a verification or restore"

// deleteBackup deletes the manifest, then everything else under the id. A
// backup with a hold (catalog.PutHold) is not deleted: its manifest is put
// back and the hold's expiry returned. The manifest goes before the holds are
// looked at, and a reader places its hold before it looks at the manifest, so
// one of the two always sees the other.
func (p *pruner) deleteBackup(ctx context.Context, id string) (time.Time, error) {
	raw := p.d.Destination
	if st, ok := raw.(*sign.Store); ok {
		raw = st.Destination // put back exactly what was there
	}
	key := catalog.Key(p.target, id, catalog.ManifestName)
	rc, err := raw.Get(ctx, key)
	if err != nil {
		return time.Time{}, fmt.Errorf("delete %s: %w", id, err)
	}
	manifest, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return time.Time{}, fmt.Errorf("delete %s: %w", id, err)
	}
	if until, err := catalog.HeldUntil(ctx, raw, p.target, id, p.now); err != nil || !until.IsZero() {
		return until, err
	}
	if err := p.d.Delete(ctx, key); err != nil {
		return time.Time{}, fmt.Errorf("delete %s: %w", id, err)
	}
	until, err := catalog.HeldUntil(ctx, raw, p.target, id, p.now)
	if err != nil || !until.IsZero() {
		if perr := raw.Put(context.WithoutCancel(ctx), key, bytes.NewReader(manifest)); perr != nil {
			return time.Time{}, fmt.Errorf("delete %s: a reader holds it and its manifest could not be put back: %w", id, errors.Join(err, perr))
		}
		return until, err
	}
	objs, err := p.d.List(ctx, catalog.Key(p.target, id, ""))
	if err != nil {
		return time.Time{}, fmt.Errorf("delete %s: manifest deleted, the rest is debris now: %w", id, err)
	}
	for _, o := range objs {
		if err := p.d.Delete(ctx, o.Key); err != nil {
			return time.Time{}, fmt.Errorf("delete %s: manifest deleted, the rest is debris now: %w", id, err)
		}
	}
	return time.Time{}, nil
}

func (p *pruner) removeDebris(ctx context.Context, l *catalog.Listing, dr *DestinationReport) error {
	if p.dryRun {
		for _, dbr := range l.Debris {
			if p.now.Sub(dbr.Newest) >= catalog.DebrisGrace {
				dr.Debris = append(dr.Debris, dbr.ID)
			}
		}
		return nil
	}
	if err := p.held.Check(); err != nil {
		return fmt.Errorf("stopped before removing debris: %w", err)
	}
	removed, err := catalog.RemoveDebris(ctx, p.d, l, p.now, catalog.DebrisGrace)
	for _, id := range removed {
		p.log.InfoContext(ctx, "removed debris", "debris_id", id)
	}
	dr.Debris = append(dr.Debris, removed...)
	if err != nil {
		return fmt.Errorf("remove debris: %w", err)
	}
	return nil
}
