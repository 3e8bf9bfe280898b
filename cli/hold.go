package cli

import (
	"context"
	"time"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/restore"
)

// restoreHold is how long a restore's hold keeps prune off a backup, should
// the process die before it lifts the hold.
const restoreHold = 6 * time.Hour

// holdCopies places a hold on every copy a restore may read, so that prune
// does not delete the backup under it. A hold that cannot be placed only
// warns; a copy pruned meanwhile fails to download like a missing one.
func (e *env) holdCopies(ctx context.Context, copies []restore.Copy) (release func()) {
	var releases []func(context.Context)
	for _, c := range copies {
		r, err := catalog.PutHold(ctx, c.Source.Store, c.Manifest.Target, c.Manifest.ID, time.Now().Add(restoreHold))
		if err != nil {
			if ctx.Err() != nil {
				break // the restore was refused or ended
			}
			e.log.Warn("could not place a hold: prune may delete the backup during this restore",
				"destination", c.Source.Name, "backup_id", c.Manifest.ID, "err", err)
			continue
		}
		releases = append(releases, r)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), time.Minute)
		defer cancel()
		for _, r := range releases {
			r(ctx)
		}
	}
}
