package catalog_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/destination/local"
	"github.com/backproof/backproof/engine"
)

// bigManifests commits n backups of target whose manifests list tables
// tables each (a schema-per-tenant database).
func bigManifests(tb testing.TB, d destination.Destination, target string, n, tables int) []string {
	tb.Helper()
	ctx := context.Background()
	var stats engine.SourceStats
	for i := range tables {
		stats.Tables = append(stats.Tables, engine.TableStats{Schema: fmt.Sprintf("tenant_%05d", i), Name: "orders", Rows: int64(i)})
	}
	start := time.Now().Add(-time.Duration(n+1) * time.Hour).Truncate(time.Second)
	var ids []string
	for i := range n {
		at := start.Add(time.Duration(i) * time.Hour)
		m := &catalog.Manifest{Format: catalog.FormatVersion, ID: catalog.NewID(at), Target: target, Engine: "postgres",
			Start: at, End: at.Add(time.Minute), Source: stats,
			Artifacts: []catalog.Artifact{{Name: "dump.pgdump.zst", Size: 3, SHA256: strings.Repeat("a", 64)}}}
		if err := catalog.WriteManifest(ctx, d, m); err != nil {
			tb.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	return ids
}

// retained returns the live heap after GC while keep is still reachable.
func retained(f func() any) (uint64, any) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	keep := f()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if after.HeapAlloc < before.HeapAlloc {
		return 0, keep
	}
	return after.HeapAlloc - before.HeapAlloc, keep
}

// Reading a target's catalog keeps a bounded summary per backup, not its
// manifest: 30 backups of a 10,000-table database (a 0.6 MiB manifest
// each) retain less than 2 MiB, where keeping the manifests took 30 times
// their decoded size.
func TestCatalogMemoryFlatInManifestSize(t *testing.T) {
	d, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bigManifests(t, d, "orders", 30, 10000)
	ctx := context.Background()
	n, keep := retained(func() any {
		l, err := catalog.Read(ctx, d, "orders", catalog.NewCache())
		if err != nil || len(l.Backups) != 30 || l.Backups[0].Summary == nil {
			t.Fatalf("Read: %+v, %v", l, err)
		}
		return l
	})
	runtime.KeepAlive(keep)
	t.Logf("retained %d KiB for 30 backups of 10,000 tables", n>>10)
	if n > 2<<20 {
		t.Errorf("reading the catalog retained %d KiB: the manifests are kept", n>>10)
	}
}

// BenchmarkCatalogRead reports the heap a catalog read retains per backup:
// flat in the table count (compare -bench with 100 and 10000 tables).
func BenchmarkCatalogRead(b *testing.B) {
	for _, tables := range []int{100, 10000} {
		b.Run(fmt.Sprintf("tables=%d", tables), func(b *testing.B) {
			d, err := local.New(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			bigManifests(b, d, "orders", 20, tables)
			ctx := context.Background()
			b.ResetTimer()
			var total uint64
			for range b.N {
				n, keep := retained(func() any {
					l, err := catalog.Read(ctx, d, "orders", nil)
					if err != nil {
						b.Fatal(err)
					}
					return l
				})
				runtime.KeepAlive(keep)
				total += n
			}
			b.ReportMetric(float64(total)/float64(b.N)/20, "retained-B/backup")
		})
	}
}
