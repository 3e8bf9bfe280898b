package catalog_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/internal/testenv"
)

// seedBackups commits n small backups of target on d, 8 at a time, a
// verification record on every third.
func seedBackups(tb testing.TB, d destination.Destination, target string, n int) {
	tb.Helper()
	ctx := context.Background()
	start := time.Now().Add(-time.Duration(n+1) * time.Hour).Truncate(time.Second)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			at := start.Add(time.Duration(i) * time.Hour)
			m := &catalog.Manifest{Format: catalog.FormatVersion, ID: catalog.NewID(at), Target: target, Engine: "postgres",
				Start: at, End: at.Add(time.Minute),
				Artifacts: []catalog.Artifact{{Name: "dump.pgdump.zst", Size: 3, SHA256: strings.Repeat("a", 64)}}}
			if err := catalog.WriteManifest(ctx, d, m); err != nil {
				errs <- err
				return
			}
			if i%3 == 0 {
				rec := map[string]any{"format": 1, "target": target, "destination": "offsite", "backup_id": m.ID, "outcome": "pass",
					"started": at.Add(time.Hour), "ended": at.Add(time.Hour + time.Minute)}
				errs <- catalog.WriteRecord(ctx, d, target, m.ID, catalog.RecordName(at.Add(time.Hour)), rec)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// TestSeedManyBackups fills a bucket for measuring `backproof list` and
// the daemon on many backups: BACKPROOF_SEED_BUCKET names the bucket
// (created when missing), BACKPROOF_SEED_COUNT the backups (2000).
func TestSeedManyBackups(t *testing.T) {
	bucket := os.Getenv("BACKPROOF_SEED_BUCKET")
	if bucket == "" {
		t.Skip("BACKPROOF_SEED_BUCKET not set: nothing to seed") // a tool, not a test
	}
	n, _ := strconv.Atoi(os.Getenv("BACKPROOF_SEED_COUNT"))
	if n == 0 {
		n = 2000
	}
	env := testenv.S3(t)
	env.Client().CreateBucket(context.Background(), &awss3.CreateBucketInput{Bucket: aws.String(bucket)})
	seedBackups(t, s3Store(t, env, bucket), "orders", n)
}

// BenchmarkManyBackups reads the catalog of 2,000 backups on MinIO and
// reports the S3 requests each read makes: without a cache (list), and
// through a warm cache with one new backup (the daemon's repeated scans).
func BenchmarkManyBackups(b *testing.B) {
	env := testenv.S3(b)
	proxy := testenv.NewS3Proxy(b, env)
	bucket := testenv.NewBucket(b, env)
	store := s3Store(b, proxy.Env, bucket)
	seedBackups(b, store, "orders", 2000)
	ctx := context.Background()
	b.Run("cold", func(b *testing.B) {
		proxy.ResetCounts()
		for range b.N {
			if _, err := catalog.Read(ctx, store, "orders", nil); err != nil {
				b.Fatal(err)
			}
		}
		total, _ := proxy.Requests()
		b.ReportMetric(float64(total)/float64(b.N), "requests/op")
	})
	b.Run("warm", func(b *testing.B) {
		cache := catalog.NewCache()
		if _, err := catalog.Read(ctx, store, "orders", cache); err != nil {
			b.Fatal(err)
		}
		proxy.ResetCounts()
		for i := range b.N {
			b.StopTimer()
			seedOne(b, store, i)
			b.StartTimer()
			if _, err := catalog.Read(ctx, store, "orders", cache); err != nil {
				b.Fatal(err)
			}
		}
		total, by := proxy.Requests()
		b.ReportMetric(float64(total-by["PUT"])/float64(b.N), "requests/op")
	})
}

func seedOne(b *testing.B, d destination.Destination, i int) {
	at := time.Now().Add(time.Duration(-i) * time.Second).Truncate(time.Second)
	m := &catalog.Manifest{Format: catalog.FormatVersion, ID: catalog.NewID(at), Target: "orders", Engine: "postgres",
		Start: at, End: at, Artifacts: []catalog.Artifact{{Name: "dump.pgdump.zst", Size: 3, SHA256: strings.Repeat("a", 64)}}}
	if err := catalog.WriteManifest(context.Background(), d, m); err != nil {
		b.Fatal(err)
	}
}
