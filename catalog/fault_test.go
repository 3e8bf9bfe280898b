package catalog_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/destination/s3"
	"github.com/backproof/backproof/internal/testenv"
)

func s3Store(t testing.TB, env testenv.S3Env, bucket string) *s3.Store {
	t.Helper()
	s, err := s3.New(context.Background(), s3.Config{Bucket: bucket, Region: env.Region, Endpoint: env.Endpoint,
		PathStyle: true, AccessKeyID: env.AccessKey, SecretAccessKey: env.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A manifest that cannot be read because the store fails (503, connection
// reset mid-body) is retried; if the failure persists it is an error, never
// an invalid manifest: that would be a verdict on a backup nobody has seen.
func TestUnreadableManifestIsAnErrorNotAVerdict(t *testing.T) {
	env := testenv.S3(t)
	proxy := testenv.NewS3Proxy(t, env)
	bucket := testenv.NewBucket(t, env)
	ctx := context.Background()
	store := s3Store(t, proxy.Env, bucket)
	id := catalog.NewID(time.Now().Add(-time.Hour))
	m := &catalog.Manifest{Format: catalog.FormatVersion, ID: id, Target: "orders", Engine: "postgres", Start: time.Now(), End: time.Now(),
		Artifacts: []catalog.Artifact{{Name: "dump.pgdump.zst", Size: 3, SHA256: strings.Repeat("a", 64)}}}
	if err := catalog.WriteManifest(ctx, store, m); err != nil {
		t.Fatal(err)
	}
	defer func(b time.Duration, n int) { catalog.Backoff, catalog.Retries = b, n }(catalog.Backoff, catalog.Retries)
	catalog.Backoff, catalog.Retries = time.Millisecond, 2

	isManifestGet := func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/"+catalog.ManifestName)
	}
	for _, fault := range []testenv.Fault{testenv.Reset, testenv.SlowDown} {
		// Persistent: an error that is not ErrInvalid, and no verdict.
		proxy.SetFault(func(r *http.Request) testenv.Fault {
			if isManifestGet(r) {
				return fault
			}
			return testenv.Pass
		})
		l, err := catalog.List(ctx, store, "orders")
		if err != nil {
			t.Fatal(err)
		}
		err = l.Load(ctx, store, nil)
		var re *catalog.ReadError
		if !errors.As(err, &re) || errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), "orders/"+id+"/manifest.json") {
			t.Fatalf("fault %d: Load = %v, want a ReadError naming the manifest", fault, err)
		}
		if l.Backups[0].Invalid != "" {
			t.Fatalf("fault %d: an unreadable manifest became a verdict: %s", fault, l.Backups[0].Invalid)
		}
		if _, err := catalog.ReadManifest(ctx, store, "orders", id); !errors.As(err, &re) || errors.Is(err, catalog.ErrInvalid) {
			t.Fatalf("fault %d: ReadManifest = %v, want a ReadError", fault, err)
		}

		// Transient: the first two reads fail, the third gets through.
		var n atomic.Int32
		proxy.SetFault(func(r *http.Request) testenv.Fault {
			if isManifestGet(r) && n.Add(1) <= 2 {
				return fault
			}
			return testenv.Pass
		})
		l, err = catalog.Read(ctx, store, "orders", nil)
		if err != nil || len(l.Backups) != 1 || l.Backups[0].Summary == nil || l.Backups[0].Summary.Engine != "postgres" {
			t.Fatalf("fault %d: transient failure not retried: %+v, %v", fault, l, err)
		}
	}
}
