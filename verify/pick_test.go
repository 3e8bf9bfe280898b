package verify

import (
	"fmt"
	"testing"
	"time"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/sign"
)

// A backup dated in the future, whose manifest disagrees with its id, or
// whose manifest is not authentic, is never the one Latest picks; an
// otherwise invalid one still is (it fails).
func TestLatestSkipsTimeTravel(t *testing.T) {
	now := time.Now().UTC()
	good := catalog.NewID(now.Add(-2 * time.Hour))
	replay := catalog.NewID(now.Add(-time.Hour))
	future := "99991231T235959Z-aaaaaaaa"
	backups := []catalog.Backup{
		{ID: good, Summary: &catalog.Summary{Start: now.Add(-2 * time.Hour), End: now.Add(-2 * time.Hour)}},
		{ID: replay, Summary: &catalog.Summary{Start: now.Add(-48 * time.Hour), End: now.Add(-48 * time.Hour)}},
		{ID: future, Invalid: "not authentic: unsigned"},
	}
	if b := Latest(backups, now); b == nil || b.ID != good {
		t.Fatalf("Latest = %+v, want %s", b, good)
	}
	invalid := catalog.NewID(now.Add(-time.Minute))
	backups = append(backups, catalog.Backup{ID: invalid, Invalid: "not authentic: unsigned"})
	if b := Latest(backups, now); b == nil || b.ID != invalid {
		t.Fatalf("Latest = %+v, want the invalid newest %s", b, invalid)
	}
	// A manifest refused as not authentic is not a backup: never picked.
	planted := catalog.NewID(now)
	backups = append(backups, catalog.Backup{ID: planted, Invalid: "not authentic: unsigned",
		Err: fmt.Errorf("manifest.json on local: %w: unsigned", sign.ErrNotAuthentic)})
	if b := Latest(backups, now); b == nil || b.ID != invalid {
		t.Fatalf("Latest = %+v, want %s, not the unauthentic %s", b, invalid, planted)
	}
}
