package daemon

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/destination/desttest"
	"github.com/backproof/backproof/destination/local"
	"github.com/backproof/backproof/verify"
)

func commitBackup(t *testing.T, d destination.Destination, at time.Time, verified bool) {
	t.Helper()
	ctx := context.Background()
	m := &catalog.Manifest{Format: catalog.FormatVersion, ID: catalog.NewID(at), Target: "orders", Engine: "postgres",
		Start: at, End: at.Add(time.Minute),
		Artifacts: []catalog.Artifact{{Name: "dump.pgdump.zst", Size: 3, SHA256: strings.Repeat("a", 64)}}}
	if err := catalog.WriteManifest(ctx, d, m); err != nil {
		t.Fatal(err)
	}
	if verified {
		rec := verify.Record{Format: 1, Target: "orders", Destination: "local", BackupID: m.ID, Outcome: verify.Pass,
			Started: at.Add(time.Hour), Ended: at.Add(time.Hour + time.Minute)}
		if err := catalog.WriteRecord(ctx, d, "orders", m.ID, catalog.RecordName(rec.Started), rec); err != nil {
			t.Fatal(err)
		}
	}
}

// Repeated scans read only what changed: after the first, a scan of an
// unchanged destination is one listing, and a new backup costs its
// manifest and record, however many backups the destination holds.
func TestRepeatedScanReadsOnlyWhatChanged(t *testing.T) {
	s, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &desttest.Counting{Destination: s}
	start := time.Now().Add(-300 * time.Hour).Truncate(time.Second)
	for i := range 200 {
		commitBackup(t, c, start.Add(time.Duration(i)*time.Hour), i%3 == 0)
	}
	dests := []backup.Destination{{Name: "local", Destination: c}}
	caches := map[string]*catalog.Cache{}
	cache := func(name string) *catalog.Cache {
		if caches[name] == nil {
			caches[name] = catalog.NewCache()
		}
		return caches[name]
	}
	now := func() time.Time { return time.Now() }
	c.Take()
	cat := scan(context.Background(), now, "orders", dests, nil, cache)
	if cat.Destinations[0].Backups != 200 || cat.Verified == nil {
		t.Fatalf("first scan: %+v", cat.Destinations)
	}
	gets, lists := c.Take()
	t.Logf("first scan: %d GETs, %d listings", gets, lists)

	cat = scan(context.Background(), now, "orders", dests, cat, cache)
	if gets, lists := c.Take(); gets != 0 || lists != 1 || cat.Destinations[0].Backups != 200 {
		t.Errorf("scan of an unchanged destination: %d GETs, %d listings, %d backups; want 0, 1, 200", gets, lists, cat.Destinations[0].Backups)
	}

	commitBackup(t, s, start.Add(250*time.Hour), true)
	cat = scan(context.Background(), now, "orders", dests, cat, cache)
	if gets, lists := c.Take(); gets != 2 || lists != 1 || cat.Destinations[0].Backups != 201 {
		t.Errorf("scan after one new backup: %d GETs, %d listings, %d backups; want 2, 1, 201", gets, lists, cat.Destinations[0].Backups)
	}
}
