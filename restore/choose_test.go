package restore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/destination/desttest"
	"github.com/backproof/backproof/destination/local"
)

// restore --backup ID reads that backup's manifest and nothing else,
// however many backups the destination holds; without an id, the newest
// manifest is enough when it is valid.
func TestFindReadsOneManifest(t *testing.T) {
	ctx := context.Background()
	d, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	start := time.Now().Add(-100 * time.Hour).Truncate(time.Second)
	for i := range 50 {
		at := start.Add(time.Duration(i) * time.Hour)
		m := &catalog.Manifest{Format: catalog.FormatVersion, ID: catalog.NewID(at), Target: "orders", Engine: "postgres",
			Start: at, End: at.Add(time.Minute),
			Artifacts: []catalog.Artifact{{Name: "dump.pgdump.zst", Size: 3, SHA256: strings.Repeat("a", 64)}}}
		if err := catalog.WriteManifest(ctx, d, m); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	c := &desttest.Counting{Destination: d}
	copies, err := Find(ctx, []Source{{Name: "local", Store: c}}, "orders", ids[10])
	if err != nil || len(copies) != 1 || copies[0].Manifest.ID != ids[10] {
		t.Fatalf("Find(%s) = %+v, %v", ids[10], copies, err)
	}
	if g, l := c.Take(); g != 1 || l != 0 {
		t.Errorf("restore --backup read %d objects and listed %d times, want 1 and 0", g, l)
	}
	copies, err = Find(ctx, []Source{{Name: "local", Store: c}}, "orders", "")
	if err != nil || len(copies) != 1 || copies[0].Manifest.ID != ids[49] {
		t.Fatalf("Find(latest) = %+v, %v", copies, err)
	}
	if g, l := c.Take(); g != 2 || l != 1 {
		t.Errorf("restore of the latest read %d objects and listed %d times, want 2 and 1", g, l)
	}
}
