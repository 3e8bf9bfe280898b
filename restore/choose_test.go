package restore

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/destination/local"
)

// countingStore counts the reads a command makes.
type countingStore struct {
	destination.Destination
	gets, lists atomic.Int32
}

func (c *countingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	c.gets.Add(1)
	return c.Destination.Get(ctx, key)
}

func (c *countingStore) List(ctx context.Context, prefix string) ([]destination.Object, error) {
	c.lists.Add(1)
	return c.Destination.List(ctx, prefix)
}

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
	c := &countingStore{Destination: d}
	copies, err := Find(ctx, []Source{{Name: "local", Store: c}}, "orders", ids[10])
	if err != nil || len(copies) != 1 || copies[0].Manifest.ID != ids[10] {
		t.Fatalf("Find(%s) = %+v, %v", ids[10], copies, err)
	}
	if g, l := c.gets.Load(), c.lists.Load(); g != 1 || l != 0 {
		t.Errorf("restore --backup read %d objects and listed %d times, want 1 and 0", g, l)
	}
	c.gets.Store(0)
	c.lists.Store(0)
	copies, err = Find(ctx, []Source{{Name: "local", Store: c}}, "orders", "")
	if err != nil || len(copies) != 1 || copies[0].Manifest.ID != ids[49] {
		t.Fatalf("Find(latest) = %+v, %v", copies, err)
	}
	if g, l := c.gets.Load(), c.lists.Load(); g != 2 || l != 1 {
		t.Errorf("restore of the latest read %d objects and listed %d times, want 2 and 1", g, l)
	}
}
