package verify

import (
	"testing"
	"time"

	"github.com/backproof/backproof/catalog"
)

// A backup dated in the future, or whose manifest disagrees with its id, is
// never the one Latest picks; an invalid one still is (it fails).
func TestLatestSkipsTimeTravel(t *testing.T) {
	now := time.Now().UTC()
	good := catalog.NewID(now.Add(-2 * time.Hour))
	replay := catalog.NewID(now.Add(-time.Hour))
	future := "99991231T235959Z-aaaaaaaa"
	backups := []catalog.Backup{
		{ID: good, Manifest: &catalog.Manifest{Start: now.Add(-2 * time.Hour), End: now.Add(-2 * time.Hour)}},
		{ID: replay, Manifest: &catalog.Manifest{Start: now.Add(-48 * time.Hour), End: now.Add(-48 * time.Hour)}},
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
}
