package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/restore"
)

// holdMargin is how much longer than the verification's timeout a hold lasts.
const holdMargin = 10 * time.Minute

// hold keeps prune off the backup while it is verified. ok is false when the
// backup was pruned before the hold was in place: the run ends in error, it
// says nothing about the backup. A hold that cannot be placed (a destination
// that refuses the write) only warns.
func (r *run) hold(ctx context.Context, start time.Time, m *catalog.Manifest) (release func(context.Context), ok bool) {
	release, err := catalog.PutHold(ctx, r.req.Store, r.req.Target, m.ID, r.v.Now().Add(r.v.Timeout+holdMargin))
	switch {
	case errors.Is(err, catalog.ErrPruned):
		r.stepErr(ctx, CheckSelect, start, err, false)
		return nil, false
	case err != nil:
		r.log.WarnContext(ctx, "could not place a hold: prune may delete the backup during this verification", "backup_id", m.ID, "err", err)
		return nil, true
	}
	return release, true
}

// judgeSpool tells whether a failed download proves the backup bad. An
// artifact that vanished because the backup was pruned meanwhile (its
// manifest is gone too) is an error, never a bad backup.
func (r *run) judgeSpool(ctx context.Context, m *catalog.Manifest, err error) (error, bool) {
	if !restore.IsBad(err) {
		return err, false
	}
	if errors.Is(err, restore.ErrMissing) {
		_, serr := r.req.Store.Stat(context.WithoutCancel(ctx), catalog.Key(m.Target, m.ID, catalog.ManifestName))
		if errors.Is(serr, destination.ErrNotFound) {
			return fmt.Errorf("%w: %w", catalog.ErrPruned, err), false
		}
	}
	return err, true
}
