package catalog

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backproof/backproof/destination/local"
)

func TestAcceptance(t *testing.T) {
	ctx := context.Background()
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 3, 9, 30, 0, 0, time.UTC)
	id := NewID(at.Add(-7 * time.Hour))
	// A manifest as builds before migrations existed wrote it: no source.migrations.
	old := `{"format": 1, "id": "` + id + `", "target": "orders", "engine": "postgres", "compression": "zstd",
  "artifacts": [{"name": "dump.pgdump.zst", "size": 3, "sha256": "` + strings.Repeat("a", 64) + `"}],
  "source": {"tables": [{"schema": "public", "name": "orders", "rows": 5}]}}`
	if err := store.Put(ctx, Key("orders", id, ManifestName), strings.NewReader(old)); err != nil {
		t.Fatal(err)
	}
	if err := WriteRecord(ctx, store, "orders", id, RecordName(at.Add(-time.Hour)), map[string]string{"outcome": "fail"}); err != nil {
		t.Fatal(err)
	}
	for i, reason := range []string{"first look", "archive job"} {
		a := &Acceptance{Format: AcceptanceFormat, Target: "orders", BackupID: id, By: "ann@ops", At: at.Add(time.Duration(i) * time.Minute), Reason: reason}
		if err := WriteAcceptance(ctx, store, a); err != nil {
			t.Fatal(err)
		}
	}
	l, err := List(ctx, store, "orders")
	if err != nil || len(l.Backups) != 1 {
		t.Fatalf("List: %+v, %v", l, err)
	}
	b := l.Backups[0]
	m, err := ReadManifest(ctx, store, "orders", b.ID)
	if err != nil || m.Source.Migrations != nil || m.Source.Tables[0].Rows != 5 {
		t.Fatalf("old manifest: %+v (%v)", m, err)
	}
	if want := []string{"accept-20261203T093000Z.json", "accept-20261203T093100Z.json"}; !slices.Equal(b.Acceptances, want) || len(b.Records) != 1 {
		t.Errorf("acceptances %v, records %v", b.Acceptances, b.Records)
	}
	a, err := ReadAcceptance(ctx, store, "orders", b)
	if err != nil || a.Reason != "archive job" || a.By != "ann@ops" || a.BackupID != id {
		t.Errorf("newest acceptance %+v, %v", a, err)
	}
	if a, err := ReadAcceptance(ctx, store, "orders", Backup{ID: id}); a != nil || err != nil {
		t.Errorf("no acceptance: %+v, %v", a, err)
	}
}
