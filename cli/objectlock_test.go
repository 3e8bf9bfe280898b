package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/backproof/backproof/internal/testenv"
	"github.com/backproof/backproof/prune"
)

// With object_lock, every object of a backup on MinIO carries the retention;
// prune keeps locked backups there (saying until when) while it deletes them
// from the unlocked local destination; config check warns that retention is
// shorter than the lock.
func TestObjectLockBackups(t *testing.T) {
	env := testenv.S3(t)
	bucket := testenv.NewLockedBucket(t, env)
	t.Setenv("BACKPROOF_TEST_APP_DSN", appDB(t))
	cfg := writeConfig(t, fmt.Sprintf(`
destinations:
  local: {type: local, path: %s}
  vault:
    type: s3
    bucket: %s
    endpoint: %s
    path_style: true
    access_key_id: %s
    secret_access_key: %s
    object_lock: {mode: governance, days: 2}
targets:
  orders:
    engine: postgres
    dsn: ${BACKPROOF_TEST_APP_DSN}
    destinations: [local, vault]
    retention: {keep_daily: 1}
`, t.TempDir(), bucket, env.Endpoint, env.AccessKey, env.SecretKey))
	ctx := context.Background()

	r := runCLI(t, ctx, "config", "check", "-c", cfg)
	if r.code != 0 || !strings.Contains(r.stderr, "warning: ") ||
		!strings.Contains(r.stderr, "targets.orders.retention: keeps backups about 24h0m0s (keep_daily: 1), but destination vault locks every object for 2 days") {
		t.Fatalf("config check: exit %d, stderr %s", r.code, r.stderr)
	}

	older := backupCommitted(t, cfg)
	newer := backupCommitted(t, cfg)
	client := env.Client()
	objs, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String("orders/")})
	if err != nil {
		t.Fatal(err)
	}
	var locked []string
	for _, o := range objs.Contents {
		key := aws.ToString(o.Key)
		if strings.Contains(key, "/lease/") {
			continue
		}
		out, err := client.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: &bucket, Key: o.Key})
		if err != nil {
			t.Errorf("%s: %v", key, err)
			continue
		}
		if out.Retention.Mode != "GOVERNANCE" || time.Until(aws.ToTime(out.Retention.RetainUntilDate)) < 47*time.Hour {
			t.Errorf("%s: retention %+v", key, out.Retention)
		}
		locked = append(locked, key)
	}
	for _, id := range []string{older, newer} {
		if !slices.Contains(locked, "orders/"+id+"/manifest.json") {
			t.Errorf("manifest of %s not among the locked objects %v", id, locked)
		}
	}

	r = runCLI(t, ctx, "prune", "-c", cfg, "--json")
	if r.code != 0 {
		t.Fatalf("prune exit %d: %s", r.code, r.stderr)
	}
	doc := decode[pruneDoc](t, r.stdout)
	for _, d := range doc.Prune[0].Destinations {
		switch d.Name {
		case "local":
			if !slices.Equal(d.Deleted, []string{older}) {
				t.Errorf("local: deleted %v, want %s", d.Deleted, older)
			}
		case "vault":
			if len(d.Deleted) != 0 || d.Error != "" || len(d.Plan) != 2 || !d.Plan[1].Keep ||
				!strings.HasPrefix(d.Plan[1].Reasons[len(d.Plan[1].Reasons)-1], prune.ReasonLocked+" until ") {
				t.Errorf("vault: %+v", d)
			}
		}
	}
	r = runCLI(t, ctx, "list", "-c", cfg, "--destination", "vault", "--json")
	if l := decode[listDoc](t, r.stdout); r.code != 0 || len(l.Backups) != 2 {
		t.Errorf("list vault after prune: exit %d: %s", r.code, r.stdout)
	}
}
