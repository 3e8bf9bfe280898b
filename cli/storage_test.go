package cli

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/destination/s3"
	"github.com/backproof/backproof/internal/testenv"
)

// proxiedStore returns a fresh bucket reached directly (store) and a config
// whose destination "offsite" reaches it through a counting, fault-injecting
// proxy; list's cache goes to a folder of the test's.
func proxiedStore(t *testing.T) (*testenv.S3Proxy, *s3.Store, string) {
	env := testenv.S3(t)
	proxy := testenv.NewS3Proxy(t, env)
	bucket := testenv.NewBucket(t, env)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	store, err := s3.New(context.Background(), s3.Config{Bucket: bucket, Region: env.Region, Endpoint: env.Endpoint,
		PathStyle: true, AccessKeyID: env.AccessKey, SecretAccessKey: env.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, fmt.Sprintf(`
destinations:
  offsite: {type: s3, bucket: %s, endpoint: %s, path_style: true, access_key_id: %s, secret_access_key: %s}
targets:
  orders: {engine: postgres, dsn: "postgres://u@127.0.0.1:1/db", destinations: [offsite]}
`, bucket, proxy.Env.Endpoint, env.AccessKey, env.SecretKey))
	return proxy, store, cfg
}

// A second list reads only what changed since the first: one listing and
// the new backup's manifest, not every manifest and record again.
func TestListReadsOnlyWhatChanged(t *testing.T) {
	proxy, store, cfg := proxiedStore(t)
	ctx := context.Background()
	commit := func(at time.Time) {
		m := &catalog.Manifest{Format: catalog.FormatVersion, ID: catalog.NewID(at), Target: "orders", Engine: "postgres",
			Start: at, End: at.Add(time.Minute),
			Artifacts: []catalog.Artifact{{Name: "dump.pgdump.zst", Size: 3, SHA256: strings.Repeat("a", 64)}}}
		if err := catalog.WriteManifest(ctx, store, m); err != nil {
			t.Fatal(err)
		}
		rec := map[string]any{"format": 1, "target": "orders", "destination": "offsite", "backup_id": m.ID, "outcome": "pass",
			"started": at.Add(time.Hour), "ended": at.Add(time.Hour + time.Minute)}
		if err := catalog.WriteRecord(ctx, store, "orders", m.ID, catalog.RecordName(at.Add(time.Hour)), rec); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now().Add(-100 * time.Hour).Truncate(time.Second)
	for i := range 40 {
		commit(start.Add(time.Duration(i) * time.Hour))
	}
	list := func() (gets int, out string) {
		proxy.ResetCounts()
		r := runCLI(t, ctx, "list", "-c", cfg)
		if r.code != 0 || strings.Count(r.stdout, "pass ") != len(strings.Split(strings.TrimSpace(r.stdout), "\n"))-1 {
			t.Fatalf("list exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		_, by := proxy.Requests()
		return by[http.MethodGet], r.stdout
	}
	first, out1 := list()
	if first < 80 {
		t.Fatalf("first list made %d GETs; the test expects it to read 40 manifests and 40 records", first)
	}
	second, out2 := list()
	if out2 != out1 {
		t.Errorf("second list differs:\n%s\n%s", out1, out2)
	}
	commit(start.Add(50 * time.Hour))
	third, out3 := list()
	t.Logf("GETs: first list %d, unchanged %d, one new backup %d", first, second, third)
	// One listing is a GET too (ListObjectsV2).
	if second != 1 || third != 3 || strings.Count(out3, "\n") != strings.Count(out1, "\n")+1 {
		t.Errorf("GETs: unchanged %d (want 1: the listing), one new backup %d (want 3: listing, manifest, record)", second, third)
	}
}

// A manifest the store cannot serve (connection reset on every read) is an
// operational error for verify and restore (exit 1), never a bad backup
// (exit 3).
func TestUnreadableManifestExitsOne(t *testing.T) {
	proxy, store, cfg := proxiedStore(t)
	ctx := context.Background()
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	m := &catalog.Manifest{Format: catalog.FormatVersion, ID: catalog.NewID(at), Target: "orders", Engine: "postgres",
		ServerVersion: "15.8", Start: at, End: at.Add(time.Minute), Compression: "zstd",
		Artifacts: []catalog.Artifact{{Name: "dump.pgdump.zst", Size: 3, SHA256: strings.Repeat("a", 64)}}}
	if err := catalog.WriteManifest(ctx, store, m); err != nil {
		t.Fatal(err)
	}
	proxy.SetFault(func(r *http.Request) testenv.Fault {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/"+catalog.ManifestName) {
			return testenv.Reset
		}
		return testenv.Pass
	})
	for _, args := range [][]string{
		{"verify", "-c", cfg, "orders", "--backup", m.ID},
		{"verify", "-c", cfg, "orders"},
		{"restore", "-c", cfg, "orders", "--backup", m.ID, "--to", "postgres://u@127.0.0.1:1/db"},
		{"restore", "-c", cfg, "orders", "--to", "postgres://u@127.0.0.1:1/db"},
	} {
		r := runCLI(t, ctx, args...)
		if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "manifest.json") {
			t.Errorf("%v: exit %d, want 1 naming the manifest:\n%s\n%s", args, r.code, r.stdout, r.stderr)
		}
	}
}
