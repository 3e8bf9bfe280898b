package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/destination/desttest"
	"github.com/backproof/backproof/internal/testenv"
)

// The tests talk to a real MinIO (testenv.S3: BACKPROOF_TEST_S3_ENDPOINT,
// _ACCESS_KEY, _SECRET_KEY), each in a fresh bucket.

// newTestStore returns a store on a fresh bucket of the test server, with
// 5 MiB parts so multipart uploads are cheap to exercise.
func newTestStore(t testing.TB, env testenv.S3Env, mod func(*Config), optFns ...func(*s3.Options)) *Store {
	t.Helper()
	cfg := testConfig(env, testenv.NewBucket(t, env))
	if mod != nil {
		mod(&cfg)
	}
	s, err := newStore(context.Background(), cfg, optFns...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testConfig(env testenv.S3Env, bucket string) Config {
	return Config{
		Bucket:          bucket,
		Region:          env.Region,
		Endpoint:        env.Endpoint,
		PathStyle:       true,
		AccessKeyID:     env.AccessKey,
		SecretAccessKey: env.SecretKey,
		PartSize:        MinPartSize,
		Concurrency:     2,
	}
}

func TestConformance(t *testing.T) {
	env := testenv.S3(t)
	desttest.Run(t, func(t *testing.T) destination.Destination {
		return newTestStore(t, env, nil)
	}, desttest.Options{LargeSize: 11 << 20})
}

func TestConformanceWithPrefix(t *testing.T) {
	env := testenv.S3(t)
	desttest.Run(t, func(t *testing.T) destination.Destination {
		return newTestStore(t, env, func(c *Config) { c.Prefix = "/team/backups/" })
	}, desttest.Options{LargeSize: 11 << 20})
}

// The AWS code path: the SDK's default CRC32 checksums, declared on the
// multipart upload and listed on completion. MinIO checks them.
func TestConformanceWithChecksums(t *testing.T) {
	env := testenv.S3(t)
	desttest.Run(t, func(t *testing.T) destination.Destination {
		s := newTestStore(t, env, nil, func(o *s3.Options) {
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenSupported
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenSupported
		})
		if !s.checksums {
			t.Fatal("checksums not enabled")
		}
		return s
	}, desttest.Options{LargeSize: 11 << 20})
}

func rawKeys(t *testing.T, s *Store) []string {
	t.Helper()
	out, err := s.client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &s.bucket})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

func rawPut(t *testing.T, s *Store, key string) {
	t.Helper()
	if _, err := s.client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: &s.bucket, Key: aws.String(key), Body: strings.NewReader("x"),
	}); err != nil {
		t.Fatal(err)
	}
}

func TestKeyMapping(t *testing.T) {
	env := testenv.S3(t)
	ctx := context.Background()
	for _, tc := range []struct {
		prefix  string
		wantRaw string
	}{
		{"", "a/b"},
		{"team/db", "team/db/a/b"},
		{"/team/db/", "team/db/a/b"},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			s := newTestStore(t, env, func(c *Config) { c.Prefix = tc.prefix })
			if err := s.Put(ctx, "a/b", strings.NewReader("data")); err != nil {
				t.Fatal(err)
			}
			// Neighbours the store must not see: outside the prefix, a
			// sibling prefix sharing the first bytes, a folder marker.
			rawPut(t, s, "other/x")
			rawPut(t, s, "team/dbx/y")
			rawPut(t, s, s.prefix+"folder/")
			raw := rawKeys(t, s)
			if !slicesContains(raw, tc.wantRaw) {
				t.Errorf("raw keys %v, want %q among them", raw, tc.wantRaw)
			}
			objs, err := s.List(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, o.Key)
			}
			want := []string{"a/b"}
			if tc.prefix == "" {
				want = []string{"a/b", "other/x", "team/dbx/y"}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("List = %v, want %v", got, want)
			}
		})
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// List follows continuation tokens to the end.
func TestListPages(t *testing.T) {
	env := testenv.S3(t)
	ctx := context.Background()
	s := newTestStore(t, env, func(c *Config) { c.Prefix = "p" })
	s.listPageSize = 3
	var want []string
	for i := range 11 {
		key := fmt.Sprintf("k/%02d", 10-i)
		want = append([]string{key}, want...)
		if err := s.Put(ctx, key, strings.NewReader(key)); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := s.List(ctx, "k/")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.Key)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("List over pages of 3 = %v, want %v", got, want)
	}
}

// A stream that fits one part is one PutObject (plain ETag); one byte more
// makes a two-part upload (ETag "...-2").
func TestSingleOrMultipart(t *testing.T) {
	env := testenv.S3(t)
	ctx := context.Background()
	s := newTestStore(t, env, nil)
	for _, tc := range []struct {
		size      int
		multipart string
	}{
		{0, ""},
		{smallObject, ""},
		{smallObject + 1, ""},
		{MinPartSize, ""},
		{MinPartSize + 1, "-2"},
		{3 * MinPartSize, "-3"},
	} {
		key := fmt.Sprintf("obj/%d", tc.size)
		data := bytes.Repeat([]byte{'z'}, tc.size)
		if err := s.Put(ctx, key, struct{ io.Reader }{bytes.NewReader(data)}); err != nil {
			t.Fatalf("Put %d bytes: %v", tc.size, err)
		}
		head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		etag := strings.Trim(aws.ToString(head.ETag), `"`)
		_, suffix, _ := strings.Cut(etag, "-")
		if suffix != strings.TrimPrefix(tc.multipart, "-") {
			t.Errorf("%d bytes: ETag %s, want multipart suffix %q", tc.size, etag, tc.multipart)
		}
		if aws.ToInt64(head.ContentLength) != int64(tc.size) {
			t.Errorf("%d bytes: stored %d", tc.size, aws.ToInt64(head.ContentLength))
		}
	}
}

// partFailingClient sends requests to the real server, but alters the query
// of one part's UploadPart after signing, so the server itself refuses that
// part (the signature no longer matches) while the others go through.
type partFailingClient struct {
	next aws.HTTPClient
	part string
}

func (c partFailingClient) Do(req *http.Request) (*http.Response, error) {
	q := req.URL.Query()
	if req.Method == http.MethodPut && q.Get("partNumber") == c.part && q.Get("uploadId") != "" {
		q.Set("uploadId", "00000000-0000-0000-0000-000000000000")
		req.URL.RawQuery = q.Encode()
	}
	return c.next.Do(req)
}

// Whatever makes a multipart Put fail, the upload is aborted: no object, no
// incomplete upload left holding parts.
func TestFailedMultipartLeavesNoUpload(t *testing.T) {
	env := testenv.S3(t)
	errSource := errors.New("pg_dump exited 1")

	for _, tc := range []struct {
		name    string
		store   func(t *testing.T) *Store
		reader  func(cancel context.CancelFunc) io.Reader
		wantIs  error
		wantMsg string
	}{
		{
			name:  "source fails after 3 parts",
			store: func(t *testing.T) *Store { return newTestStore(t, env, nil) },
			reader: func(context.CancelFunc) io.Reader {
				return io.MultiReader(io.LimitReader(zeros{}, 3*MinPartSize+100), errReader{errSource})
			},
			wantIs:  errSource,
			wantMsg: "reading the source: pg_dump exited 1",
		},
		{
			name:  "cancelled with parts in flight",
			store: func(t *testing.T) *Store { return newTestStore(t, env, nil) },
			reader: func(cancel context.CancelFunc) io.Reader {
				return &afterN{r: zeros{}, n: 2*MinPartSize + 10, fn: cancel}
			},
			wantIs:  context.Canceled,
			wantMsg: "cancelled",
		},
		{
			name: "server refuses part 3",
			store: func(t *testing.T) *Store {
				cfg := testConfig(env, testenv.NewBucket(t, env))
				s, err := newStore(context.Background(), cfg, func(o *s3.Options) {
					o.HTTPClient = partFailingClient{next: o.HTTPClient, part: "3"}
				})
				if err != nil {
					t.Fatal(err)
				}
				return s
			},
			reader: func(context.CancelFunc) io.Reader {
				return io.LimitReader(zeros{}, 6*MinPartSize)
			},
			wantMsg: "part 3: ",
		},
		{
			name: "more parts than allowed",
			store: func(t *testing.T) *Store {
				s := newTestStore(t, env, nil)
				s.maxParts = 2
				return s
			},
			reader: func(context.CancelFunc) io.Reader {
				return io.LimitReader(zeros{}, 2*MinPartSize+1)
			},
			wantMsg: "longer than 2 parts of 5 MiB (10 MiB): raise part_size",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.store(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			err := s.Put(ctx, "db/dump", tc.reader(cancel))
			if err == nil {
				t.Fatal("Put succeeded")
			}
			t.Logf("error: %v", err)
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("errors.Is(err, %v) = false", tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) || !strings.HasPrefix(err.Error(), "s3 "+s.bucket+": put db/dump: ") {
				t.Errorf("error %q, want it to start with %q and contain %q", err, "s3 "+s.bucket+": put db/dump: ", tc.wantMsg)
			}
			assertNoUploads(t, s)
			if _, err := s.Stat(context.Background(), "db/dump"); !errors.Is(err, destination.ErrNotFound) {
				t.Errorf("Stat after failed Put: %v, want ErrNotFound", err)
			}
		})
	}
}

// abortBreakingClient spoils the signature of part 2 and of the abort, so the
// upload fails and cannot be cleaned up.
type abortBreakingClient struct{ next aws.HTTPClient }

func (c abortBreakingClient) Do(req *http.Request) (*http.Response, error) {
	q := req.URL.Query()
	if q.Get("uploadId") != "" && (req.Method == http.MethodDelete || q.Get("partNumber") == "2") {
		q.Set("x-spoiled", "1")
		req.URL.RawQuery = q.Encode()
	}
	return c.next.Do(req)
}

// When the abort fails too, the error says so, names the upload left behind
// and still wraps the original cause.
func TestAbortFailureReported(t *testing.T) {
	env := testenv.S3(t)
	cfg := testConfig(env, testenv.NewBucket(t, env))
	s, err := newStore(context.Background(), cfg, func(o *s3.Options) {
		o.HTTPClient = abortBreakingClient{next: o.HTTPClient}
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Put(context.Background(), "db/dump", io.LimitReader(zeros{}, 3*MinPartSize))
	t.Logf("error: %v", err)
	if err == nil || !strings.Contains(err.Error(), "part 2: ") || !strings.Contains(err.Error(), "abort incomplete upload ") ||
		!strings.Contains(err.Error(), "AbortIncompleteMultipartUpload") {
		t.Fatalf("error %q, want the part failure and the failed abort", err)
	}
	if _, ok := errors.AsType[*Error](err); !ok {
		t.Errorf("error %T is not an *Error", err)
	}
	out, lerr := s.client.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: &s.bucket})
	if lerr != nil {
		t.Fatal(lerr)
	}
	if len(out.Uploads) != 1 || !strings.Contains(err.Error(), aws.ToString(out.Uploads[0].UploadId)) {
		t.Errorf("uploads left %d, want 1 whose ID the error names", len(out.Uploads))
	}
}

func assertNoUploads(t *testing.T, s *Store) {
	t.Helper()
	out, err := s.client.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: &s.bucket})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range out.Uploads {
		t.Errorf("incomplete multipart upload left: %s %s", aws.ToString(u.Key), aws.ToString(u.UploadId))
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// afterN calls fn once n bytes were read, and keeps reading.
type afterN struct {
	r    io.Reader
	n    int
	fn   func()
	done bool
}

func (a *afterN) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	a.n -= n
	if a.n <= 0 && !a.done {
		a.done = true
		a.fn()
	}
	return n, err
}

const sentinelSecret = "SENTINEL-secret-e7c1b2d4f9a8"

// everyOp runs each operation against s and returns their errors by name.
func everyOp(s *Store) map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"put": func(ctx context.Context) error {
			return s.Put(ctx, "x/small", strings.NewReader("data"))
		},
		"put multipart": func(ctx context.Context) error {
			return s.Put(ctx, "x/large", io.LimitReader(zeros{}, 2*MinPartSize))
		},
		"get": func(ctx context.Context) error {
			rc, err := s.Get(ctx, "x/small")
			if err == nil {
				rc.Close()
			}
			return err
		},
		"stat": func(ctx context.Context) error {
			_, err := s.Stat(ctx, "x/small")
			return err
		},
		"list": func(ctx context.Context) error {
			_, err := s.List(ctx, "")
			return err
		},
		"delete": func(ctx context.Context) error {
			return s.Delete(ctx, "x/small")
		},
	}
}

// checkOps runs every operation and checks each error.
func checkOps(t *testing.T, s *Store, maxDur time.Duration, wantMsg ...string) {
	t.Helper()
	for name, op := range everyOp(s) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			err := op(context.Background())
			took := time.Since(start)
			t.Logf("%s after %v: %v", name, took.Round(time.Millisecond), err)
			if err == nil {
				t.Fatal("succeeded")
			}
			if errors.Is(err, destination.ErrNotFound) {
				t.Errorf("error reads as ErrNotFound: %v", err)
			}
			if strings.Contains(err.Error(), sentinelSecret) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), sentinelSecret) {
				t.Errorf("error contains the secret key: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "s3 "+s.name+": ") {
				t.Errorf("error %q does not name the store", err)
			}
			ok := false
			for _, m := range wantMsg {
				ok = ok || strings.Contains(err.Error(), m)
			}
			if !ok {
				t.Errorf("error %q, want one of %q", err, wantMsg)
			}
			if len(err.Error()) > 300 {
				t.Errorf("error is %d bytes long, want a short message", len(err.Error()))
			}
			if took > maxDur {
				t.Errorf("took %v, want under %v", took, maxDur)
			}
		})
	}
}

func TestWrongCredentials(t *testing.T) {
	env := testenv.S3(t)
	bucket := testenv.NewBucket(t, env)
	t.Run("unknown access key", func(t *testing.T) {
		cfg := testConfig(env, bucket)
		cfg.AccessKeyID, cfg.SecretAccessKey = "backproof-nobody", sentinelSecret
		s, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		// HEAD answers have no body: a bare 403 says "access denied".
		checkOps(t, s, 5*time.Second, "InvalidAccessKeyId", "access denied (Forbidden)")
	})
	t.Run("wrong secret key", func(t *testing.T) {
		cfg := testConfig(env, bucket)
		cfg.SecretAccessKey = sentinelSecret
		s, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		checkOps(t, s, 5*time.Second, "SignatureDoesNotMatch", "access denied (Forbidden)")
	})
}

func TestClosedPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s, err := New(context.Background(), Config{
		Bucket: "backups", Prefix: "prod", Endpoint: "http://" + addr, PathStyle: true,
		AccessKeyID: "backproof", SecretAccessKey: sentinelSecret,
	})
	if err != nil {
		t.Fatalf("New must not need the network: %v", err)
	}
	checkOps(t, s, 10*time.Second, "cannot reach "+addr+": connection refused")
}

// Without explicit keys the SDK's default chain is used; when it finds
// nothing the error says what to configure. (Instance metadata is disabled:
// tests talk to 127.0.0.1 only.)
func TestNoCredentials(t *testing.T) {
	for k, v := range map[string]string{
		"AWS_EC2_METADATA_DISABLED":              "true",
		"AWS_ACCESS_KEY_ID":                      "",
		"AWS_SECRET_ACCESS_KEY":                  "",
		"AWS_SESSION_TOKEN":                      "",
		"AWS_PROFILE":                            "",
		"AWS_CONFIG_FILE":                        "/nonexistent",
		"AWS_SHARED_CREDENTIALS_FILE":            "/nonexistent",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI":     "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
		"AWS_WEB_IDENTITY_TOKEN_FILE":            "",
	} {
		t.Setenv(k, v)
	}
	s, err := New(context.Background(), Config{Bucket: "b", Endpoint: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Put(context.Background(), "k", strings.NewReader("x"))
	t.Logf("error: %v", err)
	if err == nil || !strings.Contains(err.Error(), "s3 b: put k: no usable AWS credentials") {
		t.Errorf("error %q, want a no-credentials message", err)
	}
}

func TestMissingBucket(t *testing.T) {
	env := testenv.S3(t)
	cfg := testConfig(env, "bp-no-such-bucket-"+fmt.Sprint(time.Now().UnixNano()))
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkOps(t, s, 5*time.Second, fmt.Sprintf("bucket %q does not exist", cfg.Bucket))
}

func TestConfigValidation(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no bucket", func(c *Config) { c.Bucket = "" }, "bucket is required"},
		{"path in bucket", func(c *Config) { c.Bucket = "b/p" }, "no slashes"},
		{"bad prefix", func(c *Config) { c.Prefix = "a//b" }, `prefix "a//b"`},
		{"dotdot prefix", func(c *Config) { c.Prefix = "a/../b" }, `prefix "a/../b"`},
		{"small parts", func(c *Config) { c.PartSize = 1 << 20 }, "part_size 1048576: must be between 5 MiB and 5 GiB"},
		{"negative concurrency", func(c *Config) { c.Concurrency = -1 }, "concurrency -1"},
		{"endpoint scheme", func(c *Config) { c.Endpoint = "127.0.0.1:9000" }, "endpoint must be an http:// or https:// URL"},
		{"endpoint credentials", func(c *Config) { c.Endpoint = "http://u:" + sentinelSecret + "@127.0.0.1:9000" }, "endpoint must not contain credentials"},
		{"id without secret", func(c *Config) { c.SecretAccessKey = "" }, "access_key_id and secret_access_key go together"},
		{"secret without id", func(c *Config) { c.AccessKeyID = "" }, "access_key_id and secret_access_key go together"},
		{"aws without region", func(c *Config) { c.Endpoint, c.Region = "", "" }, "region is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_REGION", "")
			t.Setenv("AWS_DEFAULT_REGION", "")
			t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
			cfg := Config{Bucket: "b", Endpoint: "http://127.0.0.1:1", AccessKeyID: "id", SecretAccessKey: sentinelSecret}
			tc.mod(&cfg)
			_, err := New(ctx, cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), sentinelSecret) {
				t.Errorf("error contains the secret: %v", err)
			}
		})
	}
	s, err := New(ctx, Config{Bucket: "b", Endpoint: "https://s3.example.test", AccessKeyID: "id", SecretAccessKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if s.partSize != DefaultPartSize || s.concurrency != DefaultConcurrency {
		t.Errorf("defaults: part size %d, concurrency %d", s.partSize, s.concurrency)
	}
}

func TestConfigHidesSecrets(t *testing.T) {
	cfg := Config{Bucket: "b", AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: sentinelSecret, SessionToken: sentinelSecret + "-token"}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "cfg", cfg)
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), logged.String()} {
		if strings.Contains(s, sentinelSecret) {
			t.Errorf("secret printed: %s", s)
		}
		if !strings.Contains(s, "AKIDEXAMPLE") {
			t.Errorf("access key ID missing from %s", s)
		}
	}
}

// genReader yields n pseudo-random bytes, generated as they are read.
type genReader struct {
	rng *rand.ChaCha8
	n   int64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.n {
		p = p[:g.n]
	}
	_, _ = g.rng.Read(p)
	g.n -= int64(len(p))
	return len(p), nil
}

func newGen(n int64) *genReader {
	return &genReader{rng: rand.NewChaCha8([32]byte{'b', 'p'}), n: n}
}

type memUse struct {
	peakHeapGrowth uint64 // max HeapInuse during the Put, minus before
	totalAlloc     uint64 // bytes allocated during the Put
}

// measurePut streams size bytes into s and measures the Go heap meanwhile.
func measurePut(t testing.TB, s *Store, key string, size int64) memUse {
	t.Helper()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var m runtime.MemStats
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	err := s.Put(context.Background(), key, newGen(size))
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	var growth uint64
	if p := peak.Load(); p > before.HeapInuse {
		growth = p - before.HeapInuse
	}
	return memUse{peakHeapGrowth: growth, totalAlloc: after.TotalAlloc - before.TotalAlloc}
}

// A 200 MiB stream goes up with 5 MiB parts, 2 in flight: the heap grows by
// about (2+1) x 5 MiB, not by the object's size.
func TestStreamedPutMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 200 MiB")
	}
	env := testenv.S3(t)
	s := newTestStore(t, env, nil)
	const size = 200 << 20
	start := time.Now()
	use := measurePut(t, s, "big/dump", size)
	took := time.Since(start)
	t.Logf("200 MiB streamed Put (part size 5 MiB, concurrency 2) in %v: peak heap growth %.1f MiB, total allocated %.1f MiB",
		took.Round(time.Millisecond), float64(use.peakHeapGrowth)/(1<<20), float64(use.totalAlloc)/(1<<20))
	// The part buffers, plus a little for the SDK and HTTP.
	bound := uint64(s.concurrency+1)*uint64(s.partSize) + 8<<20
	if use.peakHeapGrowth > bound {
		t.Errorf("peak heap growth %d MiB, want under %d MiB", use.peakHeapGrowth>>20, bound>>20)
	}
	if use.totalAlloc > bound {
		t.Errorf("allocated %d MiB during the Put, want under %d MiB", use.totalAlloc>>20, bound>>20)
	}

	// What was stored is what was generated.
	rc, err := s.Get(context.Background(), "big/dump")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, want := sha256.New(), sha256.New()
	if _, err := io.Copy(got, rc); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(want, newGen(size)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Error("stored object differs from the stream")
	}
}

// BenchmarkStreamedPut uploads 64 MiB per iteration and reports throughput
// and heap use.
func BenchmarkStreamedPut(b *testing.B) {
	env := testenv.S3(b)
	s := newTestStore(b, env, nil)
	const size = 64 << 20
	b.SetBytes(size)
	var peak, alloc uint64
	for i := 0; b.Loop(); i++ {
		use := measurePut(b, s, fmt.Sprintf("bench/%d", i), size)
		peak = max(peak, use.peakHeapGrowth)
		alloc += use.totalAlloc
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(alloc)/float64(b.N)/(1<<20), "alloc-MiB/op")
}

// A store that ignores If-None-Match (simulated by dropping the header before
// signing) is caught on the first create instead of letting two lease
// holders in; the object it wrote is removed.
func TestStoreIgnoringConditionalWritesIsRefused(t *testing.T) {
	env := testenv.S3(t)
	dropIfNoneMatch := func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Build.Add(middleware.BuildMiddlewareFunc("dropIfNoneMatch",
				func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
					if req, ok := in.Request.(*smithyhttp.Request); ok {
						req.Header.Del("If-None-Match")
					}
					return next.HandleBuild(ctx, in)
				}), middleware.After)
		})
	}
	s := newTestStore(t, env, nil, dropIfNoneMatch)
	err := s.PutIfAbsent(context.Background(), "t/lease/1.json", []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "ignores conditional writes") {
		t.Fatalf("PutIfAbsent on a store ignoring If-None-Match: %v", err)
	}
	if keys := rawKeys(t, s); len(keys) != 0 {
		t.Errorf("left behind: %v", keys)
	}

	// The same bucket through an honest client: checked once, then trusted.
	honest, err := newStore(context.Background(), testConfig(env, s.bucket))
	if err != nil {
		t.Fatal(err)
	}
	if err := honest.PutIfAbsent(context.Background(), "t/lease/1.json", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if !honest.conditionalChecked.Load() {
		t.Error("a store honouring If-None-Match was not marked as checked")
	}
}

// Every object Put stores in a locked bucket carries the configured
// retention, whether it went up in one request or in parts; LockedUntil
// reads it back, and a bucket without Object Lock is refused by name.
func TestObjectLock(t *testing.T) {
	env := testenv.S3(t)
	ctx := context.Background()
	cfg := testConfig(env, testenv.NewLockedBucket(t, env))
	cfg.Lock = Lock{Mode: "governance", Days: 2}
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	sizes := map[string]int64{"t/1/small": 100, "t/1/large": 2*MinPartSize + 7}
	for key, n := range sizes {
		if err := s.Put(ctx, key, newGen(n)); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	if err := s.PutIfAbsent(ctx, "t/lease/1.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	for key := range sizes {
		out, err := env.Client().GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: &cfg.Bucket, Key: aws.String(key)})
		if err != nil {
			t.Fatalf("retention of %s: %v", key, err)
		}
		until := aws.ToTime(out.Retention.RetainUntilDate)
		if out.Retention.Mode != "GOVERNANCE" || until.Before(before.Add(47*time.Hour)) || until.After(time.Now().Add(49*time.Hour)) {
			t.Errorf("%s: retention %s until %v, want GOVERNANCE for 2 days", key, out.Retention.Mode, until)
		}
		got, err := s.LockedUntil(ctx, key)
		if err != nil || !got.Equal(until) {
			t.Errorf("LockedUntil(%s) = %v, %v; want %v", key, got, err, until)
		}
	}
	// Leases come and go: they are never locked.
	if until, err := s.LockedUntil(ctx, "t/lease/1.json"); err != nil || !until.IsZero() {
		t.Errorf("lease: LockedUntil = %v, %v; want no lock", until, err)
	}
	if until, err := s.LockedUntil(ctx, "t/missing"); err != nil || !until.IsZero() {
		t.Errorf("missing object: LockedUntil = %v, %v", until, err)
	}
	// A governance-locked object cannot lose its data to a plain delete:
	// the delete only hides it behind a delete marker.
	if err := s.Delete(ctx, "t/1/small"); err != nil {
		t.Fatal(err)
	}
	vs, err := env.Client().ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &cfg.Bucket, Prefix: aws.String("t/1/small")})
	if err != nil || len(vs.Versions) != 1 || len(vs.DeleteMarkers) != 1 {
		t.Fatalf("after delete: %d versions, %d delete markers, %v; want the locked version kept", len(vs.Versions), len(vs.DeleteMarkers), err)
	}
	_, err = env.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &cfg.Bucket, Key: aws.String("t/1/small"), VersionId: vs.Versions[0].VersionId})
	if err == nil {
		t.Fatal("the locked version was deleted")
	}

	plain := testConfig(env, testenv.NewBucket(t, env))
	plain.Lock = cfg.Lock
	s, err = New(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Put(ctx, "t/1/small", newGen(10))
	if err == nil || !strings.Contains(err.Error(), "does not have Object Lock enabled") || !strings.Contains(err.Error(), plain.Bucket) {
		t.Fatalf("put to a bucket without Object Lock: %v", err)
	}
	if objs, _ := s.List(ctx, ""); len(objs) != 0 {
		t.Errorf("objects left behind: %v", objs)
	}
}

func TestObjectLockConfig(t *testing.T) {
	for _, tc := range []struct {
		lock Lock
		want string
	}{
		{Lock{Mode: "legal"}, `mode "legal": must be governance or compliance`},
		{Lock{Mode: "compliance"}, "days 0: must be between 1 and 36500"},
		{Lock{Days: 3}, "days needs a mode"},
	} {
		cfg := Config{Bucket: "b", Region: "us-east-1", Lock: tc.lock}
		if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.lock, err, tc.want)
		}
	}
}

// Parts start small, so memory stays (Concurrency+1) x PartSize for
// backups up to 500 parts, and grow so that an object can still reach
// S3's 5 TiB limit within 10,000 parts.
func TestPartsGrow(t *testing.T) {
	s := &Store{partSize: DefaultPartSize, maxParts: maxParts}
	if s.partFor(1) != 5<<20 || s.partFor(500) != 5<<20 || s.partFor(501) != 10<<20 || s.partFor(maxParts) > MaxPartSize {
		t.Errorf("parts 1, 500, 501, 10000: %d %d %d %d", s.partFor(1), s.partFor(500), s.partFor(501), s.partFor(maxParts))
	}
	if c := s.capacity(); c < 5<<40 {
		t.Errorf("capacity at the default part size %d, want at least 5 TiB", c)
	}
}
