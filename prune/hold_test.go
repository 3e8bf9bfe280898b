package prune_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/prune"
	"github.com/backproof/backproof/verify"
)

// holdOnDelete places a hold on a backup the moment prune deletes its
// manifest: a reader whose hold landed between prune's two looks.
type holdOnDelete struct {
	destination.Destination
	id       string
	released bool
}

func (h *holdOnDelete) Delete(ctx context.Context, key string) error {
	err := h.Destination.Delete(ctx, key)
	if key == catalog.Key(target, h.id, catalog.ManifestName) && !h.released {
		// A reader's hold that landed after prune's first look: prune sees it
		// after deleting the manifest, and puts the manifest back.
		h.Destination.Put(ctx, catalog.Key(target, h.id, "hold-"+time.Now().Add(time.Hour).UTC().Format("20060102T150405Z")+"-aaaaaaaa.json"), strings.NewReader("{}"))
		h.released = true
	}
	return err
}

// A backup that a verification or restore holds is not pruned, whether the
// hold was there before prune planned or arrived while it deleted; the
// reader that comes too late is told the backup was pruned.
func TestHeldBackupsAreKept(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newDest func(t *testing.T) destination.Destination) {
		ctx := context.Background()
		raw := newDest(t)
		var ids []string
		for day := range 4 {
			ids = append(ids, store(t, raw, day, verify.Pass))
		}
		// ids[0]: held before prune runs.
		release, err := catalog.PutHold(ctx, raw, target, ids[0], time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		// ids[1]: held the moment its manifest is deleted.
		d := &holdOnDelete{Destination: raw, id: ids[1]}
		rep, err := run(t, []backup.Destination{{Name: "d", Destination: d}}, &config.Retention{KeepLast: 1}, time.Now(), false)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := rep.Destinations[0].Deleted, []string{ids[2]}; !slices.Equal(got, want) {
			t.Errorf("deleted %v, want %v", got, want)
		}
		for _, dec := range rep.Destinations[0].Plan {
			if (dec.ID == ids[0] || dec.ID == ids[1]) && (!dec.Keep || !strings.HasPrefix(dec.Reasons[len(dec.Reasons)-1], prune.ReasonHeld)) {
				t.Errorf("%s: %+v", dec.ID, dec)
			}
		}
		if got, want := listed(t, raw), []string{ids[0], ids[1], ids[3]}; !slices.Equal(got, want) {
			t.Errorf("left %v, want %v", got, want)
		}
		// Released, it goes on the next run.
		release(ctx)
		if _, err := run(t, []backup.Destination{{Name: "d", Destination: raw}}, &config.Retention{KeepLast: 1}, time.Now().Add(2*time.Hour), false); err != nil {
			t.Fatal(err)
		}
		if got, want := listed(t, raw), []string{ids[3]}; !slices.Equal(got, want) {
			t.Errorf("after the holds: left %v, want %v", got, want)
		}
		// A reader that arrives after the manifest is gone is told so.
		if _, err := catalog.PutHold(ctx, raw, target, ids[0], time.Now().Add(time.Hour)); !errors.Is(err, catalog.ErrPruned) {
			t.Errorf("hold on a pruned backup: %v", err)
		}
	})
}
