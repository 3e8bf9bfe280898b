package testenv_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/backproof/backproof/internal/testenv"
)

func TestNewPostgresDB(t *testing.T) {
	t.Parallel()
	admin := testenv.PostgresDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var dsns []string
	t.Run("create", func(t *testing.T) {
		dsn := testenv.NewPostgresDB(t)
		dsns = append(dsns, dsn)
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		// An open connection must not stop the cleanup's DROP ... WITH (FORCE).
		var db, version string
		if err := conn.QueryRow(ctx, "SELECT current_database(), current_setting('server_version_num')").Scan(&db, &version); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(db, "bp_") || !strings.HasPrefix(version, "15") {
			t.Errorf("database %q on server %s: want a bp_ database on PostgreSQL 15", db, version)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1)"); err != nil {
			t.Fatal(err)
		}
	})

	// After the subtest's cleanup the database is gone.
	if t.Failed() {
		return
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, dsn := range dsns {
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", cfg.Database).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("database %s still exists after cleanup", cfg.Database)
		}
	}
	if bin := testenv.PostgresBin(t); bin == "" {
		t.Error("empty PostgresBin")
	}
}

func TestNewBucket(t *testing.T) {
	t.Parallel()
	env := testenv.S3(t)
	client := env.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var bucket string
	t.Run("create", func(t *testing.T) {
		bucket = testenv.NewBucket(t, env)
		putGet(ctx, t, client, bucket)
		// A second object and an unfinished multipart upload: cleanup must cope.
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("a/b/c"), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
		if _, err := client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: aws.String("partial")}); err != nil {
			t.Fatal(err)
		}
	})
	if t.Failed() {
		return
	}
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &bucket}); err == nil {
		t.Errorf("bucket %s still exists after cleanup", bucket)
	}
}

func TestStartMinIO(t *testing.T) {
	t.Parallel()
	env, stop := testenv.StartMinIO(t)
	client := env.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	bucket := testenv.NewBucket(t, env)
	putGet(ctx, t, client, bucket)

	stop()
	stop() // idempotent
	short, cancelShort := context.WithTimeout(ctx, 5*time.Second)
	defer cancelShort()
	if _, err := client.ListBuckets(short, &s3.ListBucketsInput{}); err == nil {
		t.Error("private MinIO still answers after stop()")
	}
}

func putGet(ctx context.Context, t *testing.T, client *s3.Client, bucket string) {
	t.Helper()
	body := bytes.Repeat([]byte("backproof "), 1000)
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("k"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatalf("put: %v", err)
	}
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: aws.String("k")})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	defer out.Body.Close()
	got, err := io.ReadAll(out.Body)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("get: %d bytes, err %v; want the %d bytes put", len(got), err, len(body))
	}
}

// TestRequire runs itself as a child test process to observe both outcomes:
// a skip normally, a failure under BACKPROOF_TEST_STRICT=1.
func TestRequire(t *testing.T) {
	const unset = "BACKPROOF_TEST_UNSET_FOR_TESTENV"
	if os.Getenv("BACKPROOF_TESTENV_CHILD") == "1" {
		testenv.Require(t, unset)
		t.Fatal("Require returned for an unset variable")
	}
	t.Parallel()
	for _, strict := range []string{"", "1"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRequire$", "-test.v")
		cmd.Env = append(os.Environ(), "BACKPROOF_TESTENV_CHILD=1", unset+"=", testenv.EnvStrict+"="+strict)
		out, err := cmd.CombinedOutput()
		switch {
		case !strings.Contains(string(out), unset):
			t.Errorf("strict=%q: output does not name %s:\n%s", strict, unset, out)
		case strict == "" && (err != nil || !strings.Contains(string(out), "--- SKIP")):
			t.Errorf("want a skip, got err %v:\n%s", err, out)
		case strict == "1" && (err == nil || !strings.Contains(string(out), "--- FAIL")):
			t.Errorf("strict: want a failure, got err %v:\n%s", err, out)
		}
	}
}
