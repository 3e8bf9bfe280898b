// Package s3 stores backups in an S3 bucket, on AWS or any S3-compatible
// store (MinIO, Ceph RGW, Garage, versitygw...). Objects live under an
// optional prefix; Put streams a reader of unknown length as one PutObject or
// a multipart upload that is completed only when the whole stream was read
// and every part stored, and aborted otherwise, so a failed backup never
// becomes visible as an object.
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/backproof/backproof/destination"
)

const (
	// MinPartSize is the smallest part S3 accepts (except the last one).
	MinPartSize = 5 << 20
	// MaxPartSize is the largest part S3 accepts.
	MaxPartSize = 5 << 30
	// DefaultPartSize keeps a backup to S3 under 64 MiB of RSS: (2+1) x 5 MiB
	// of part buffers. Parts grow past 500 parts (partFor).
	DefaultPartSize = MinPartSize
	// DefaultConcurrency is the number of parts uploaded in parallel.
	DefaultConcurrency = 2
	// maxParts is S3's limit on the parts of one multipart upload.
	maxParts = 10000
	// DefaultStallTimeout is how long a connection may move no byte.
	DefaultStallTimeout = 5 * time.Minute

	// dialTimeout bounds a connection attempt to an endpoint that drops
	// packets; the SDK's default (30 s, times 3 attempts) would hang a
	// backup for a minute and a half before saying anything.
	dialTimeout = 10 * time.Second
	// abortTimeout bounds the cleanup of a failed multipart upload, which
	// runs even when the caller's context is already cancelled.
	abortTimeout = 30 * time.Second
)

// Config describes a bucket and how to reach it.
type Config struct {
	Bucket string
	// Prefix is prepended to every key as "<Prefix>/<key>". Leading and
	// trailing slashes are ignored.
	Prefix string
	// Region defaults to the SDK's (AWS_REGION, profile), then to us-east-1
	// for a custom Endpoint.
	Region string
	// Endpoint is "" for AWS, else the http(s) URL of an S3-compatible store.
	Endpoint  string
	PathStyle bool
	// Credentials. Empty AccessKeyID and SecretAccessKey select the SDK's
	// default chain (environment, shared profile, instance or task role).
	AccessKeyID, SecretAccessKey, SessionToken string
	// PartSize is the multipart part size, at least 5 MiB (default 5 MiB);
	// parts double every 500 parts.
	// A streamed object can be at most 10,000 parts long.
	PartSize int64
	// Concurrency is the number of parts uploaded in parallel (default 2).
	// A Put holds at most (Concurrency+1) x PartSize bytes in memory.
	Concurrency int
	// Lock, when its Mode is set, locks every object Put stores.
	Lock Lock
	// StallTimeout fails a request whose connection moves no byte, either
	// way, for this long: a store that accepts and never answers, or stops
	// reading. Default DefaultStallTimeout.
	StallTimeout time.Duration
}

// String describes the config without its secrets.
func (c Config) String() string {
	return fmt.Sprintf("s3{bucket=%q prefix=%q region=%q endpoint=%q path_style=%t access_key_id=%q secret_access_key=%s session_token=%s part_size=%d concurrency=%d object_lock=%s/%d}",
		c.Bucket, c.Prefix, c.Region, c.Endpoint, c.PathStyle, c.AccessKeyID,
		redacted(c.SecretAccessKey), redacted(c.SessionToken), c.PartSize, c.Concurrency, c.Lock.Mode, c.Lock.Days)
}

// GoString keeps %#v from printing the secrets.
func (c Config) GoString() string { return c.String() }

// LogValue keeps slog from printing the secrets.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("bucket", c.Bucket),
		slog.String("prefix", c.Prefix),
		slog.String("region", c.Region),
		slog.String("endpoint", c.Endpoint),
		slog.String("access_key_id", c.AccessKeyID),
		slog.String("secret_access_key", redacted(c.SecretAccessKey)),
	)
}

func redacted(s string) string {
	if s == "" {
		return `""`
	}
	return "[REDACTED]"
}

// validate checks the config and fills in defaults. It returns every problem.
func (c *Config) validate() error {
	var errs []error
	c.Prefix = strings.Trim(c.Prefix, "/")
	switch {
	case c.Bucket == "":
		errs = append(errs, errors.New("bucket is required"))
	case strings.ContainsAny(c.Bucket, "/\\ \x00"):
		errs = append(errs, fmt.Errorf("bucket %q: a bucket name has no slashes or spaces (put the path in prefix)", c.Bucket))
	}
	if c.Prefix != "" {
		if err := destination.ValidateKey(c.Prefix); err != nil {
			errs = append(errs, fmt.Errorf("prefix %q: empty, \".\" or \"..\" segments, backslashes and NUL bytes are not allowed", c.Prefix))
		}
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			// Not %w: a URL error could quote user info.
			errs = append(errs, errors.New("endpoint must be an http:// or https:// URL with a host"))
		case u.User != nil:
			errs = append(errs, errors.New("endpoint must not contain credentials: use access_key_id and secret_access_key"))
		}
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		errs = append(errs, errors.New("access_key_id and secret_access_key go together: set both, or neither to use the default credential chain"))
	}
	if c.SessionToken != "" && c.AccessKeyID == "" {
		errs = append(errs, errors.New("session_token needs access_key_id and secret_access_key"))
	}
	switch {
	case c.PartSize == 0:
		c.PartSize = DefaultPartSize
	case c.PartSize < MinPartSize || c.PartSize > MaxPartSize:
		errs = append(errs, fmt.Errorf("part_size %d: must be between 5 MiB and 5 GiB", c.PartSize))
	}
	switch {
	case c.StallTimeout == 0:
		c.StallTimeout = DefaultStallTimeout
	case c.StallTimeout < 0:
		errs = append(errs, fmt.Errorf("stall_timeout %s: must be positive", c.StallTimeout))
	}
	switch {
	case c.Concurrency == 0:
		c.Concurrency = DefaultConcurrency
	case c.Concurrency < 0:
		errs = append(errs, fmt.Errorf("concurrency %d: must be at least 1", c.Concurrency))
	}
	if err := c.Lock.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Store is a destination.Destination in an S3 bucket. It is safe for
// concurrent use.
type Store struct {
	client      *s3.Client
	bucket      string
	prefix      string // "" or "<Prefix>/"
	name        string // "bucket/prefix", for messages
	endpoint    string // host[:port] or "AWS S3", for messages
	partSize    int64
	concurrency int
	// checksums is true when the SDK computes CRC32 checksums (AWS): the
	// multipart upload must then declare the algorithm and list every
	// part's checksum on completion.
	checksums bool

	stall        time.Duration
	maxParts     int   // maxParts; lowered by tests
	listPageSize int32 // 0 = the server's default (1000); lowered by tests

	bucketChecked      atomic.Bool // HeadBucket succeeded once
	conditionalChecked atomic.Bool // the store refused a conditional create once

	lock        Lock
	lockChecked atomic.Bool // the bucket has Object Lock enabled
}

var _ destination.Destination = (*Store)(nil)

// New returns a store for cfg. It makes no request: a wrong bucket, wrong
// credentials or an unreachable endpoint surface as errors from the first
// operation.
func New(ctx context.Context, cfg Config) (*Store, error) {
	return newStore(ctx, cfg)
}

// newStore lets tests override client options (checksum mode, HTTP client).
func newStore(ctx context.Context, cfg Config, optFns ...func(*s3.Options)) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("s3 destination %s: %w", storeName(cfg.Bucket, strings.Trim(cfg.Prefix, "/")), err)
	}
	name := storeName(cfg.Bucket, cfg.Prefix)
	httpClient := awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) {
		d.Timeout = dialTimeout
	}).WithTransportOptions(func(tr *http.Transport) {
		dial := tr.DialContext
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &idleConn{Conn: c, idle: cfg.StallTimeout}, nil
		}
	})
	opts := []func(*config.LoadOptions) error{config.WithHTTPClient(httpClient)}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		// Shared config parse errors name files and keys, not secrets.
		return nil, fmt.Errorf("s3 destination %s: load AWS configuration: %w", name, err)
	}
	if awsCfg.Region == "" {
		if cfg.Endpoint == "" {
			return nil, fmt.Errorf("s3 destination %s: region is required (set region, or AWS_REGION)", name)
		}
		awsCfg.Region = "us-east-1"
	}
	s := &Store{
		bucket:      cfg.Bucket,
		name:        name,
		endpoint:    "AWS S3",
		partSize:    cfg.PartSize,
		concurrency: cfg.Concurrency,
		stall:       cfg.StallTimeout,
		maxParts:    maxParts,
		lock:        cfg.Lock,
	}
	if cfg.Prefix != "" {
		s.prefix = cfg.Prefix + "/"
	}
	s.client = s3.NewFromConfig(awsCfg, append([]func(*s3.Options){func(o *s3.Options) {
		o.UsePathStyle = cfg.PathStyle
		// A stalled connection already waited stall_timeout: trying again
		// would multiply the wait by the attempts.
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
				if errors.Is(err, errStalled) {
					return aws.FalseTernary
				}
				return aws.UnknownTernary
			})}, so.Retryables...)
		})
		// Objects uploaded in parts carry per-part checksums, which a GET
		// cannot check; the SDK would log a warning on every such Get.
		o.DisableLogOutputChecksumValidationSkipped = true
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			// Most S3-compatible stores reject the CRC32 trailers the SDK
			// sends by default since service/s3 v1.73.0.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	}}, optFns...)...)
	s.checksums = s.client.Options().RequestChecksumCalculation != aws.RequestChecksumCalculationWhenRequired
	if cfg.Endpoint != "" {
		u, _ := url.Parse(cfg.Endpoint) // validated
		s.endpoint = u.Host
	}
	return s, nil
}

func storeName(bucket, prefix string) string {
	if prefix == "" {
		return bucket
	}
	return bucket + "/" + prefix
}

// String names the store, e.g. "s3://bucket/prefix".
func (s *Store) String() string { return "s3://" + s.name }

// objectKey validates key and returns the S3 key it is stored under.
func (s *Store) objectKey(key string) (string, error) {
	if err := destination.ValidateKey(key); err != nil {
		return "", err
	}
	return s.prefix + key, nil
}

// Get opens the object for reading. The body is read from the network as the
// caller reads; closing it releases the connection.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	obj, err := s.objectKey(key)
	if err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &obj})
	if err != nil {
		return nil, s.translate("get", key, err)
	}
	return out.Body, nil
}

// Stat returns the object's size and modification time.
func (s *Store) Stat(ctx context.Context, key string) (destination.Object, error) {
	obj, err := s.objectKey(key)
	if err != nil {
		return destination.Object{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &obj})
	if err != nil {
		err = s.translate("stat", key, err)
		if errors.Is(err, destination.ErrNotFound) {
			// A HEAD response has no body, so a missing bucket is a bare
			// 404 too: tell it from a missing object.
			if berr := s.checkBucket(ctx, "stat", key); berr != nil {
				return destination.Object{}, berr
			}
		}
		return destination.Object{}, err
	}
	return destination.Object{
		Key:     key,
		Size:    aws.ToInt64(out.ContentLength),
		ModTime: aws.ToTime(out.LastModified),
		ETag:    aws.ToString(out.ETag),
	}, nil
}

// checkBucket returns an error if the bucket is known not to exist. Any other
// outcome (it exists, or HeadBucket is not allowed) returns nil.
func (s *Store) checkBucket(ctx context.Context, op, key string) error {
	if s.bucketChecked.Load() {
		return nil
	}
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	if err == nil {
		s.bucketChecked.Store(true)
		return nil
	}
	if errors.Is(s.translate(op, key, err), destination.ErrNotFound) {
		return s.newError(op, key, fmt.Sprintf("bucket %q does not exist", s.bucket), err, nil)
	}
	return nil
}

// List returns every object whose key starts with prefix, following
// ListObjectsV2's continuation tokens to the end.
func (s *Store) List(ctx context.Context, prefix string) ([]destination.Object, error) {
	if err := destination.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket}
	if full := s.prefix + prefix; full != "" {
		in.Prefix = &full
	}
	pages := s3.NewListObjectsV2Paginator(s.client, in, func(o *s3.ListObjectsV2PaginatorOptions) {
		o.Limit = s.listPageSize
		o.StopOnDuplicateToken = true
	})
	var objs []destination.Object
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, s.translate("list", fmt.Sprintf("%q", prefix), err)
		}
		for _, o := range page.Contents {
			key, ok := strings.CutPrefix(aws.ToString(o.Key), s.prefix)
			// Skip what Put cannot have written: "folder/" markers made by
			// consoles, keys with empty segments.
			if !ok || destination.ValidateKey(key) != nil {
				continue
			}
			objs = append(objs, destination.Object{
				Key:     key,
				Size:    aws.ToInt64(o.Size),
				ModTime: aws.ToTime(o.LastModified),
				ETag:    aws.ToString(o.ETag),
			})
		}
	}
	slices.SortFunc(objs, func(a, b destination.Object) int { return strings.Compare(a.Key, b.Key) })
	return objs, nil
}

// Delete removes the object; S3 answers a missing key with success.
func (s *Store) Delete(ctx context.Context, key string) error {
	obj, err := s.objectKey(key)
	if err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &obj}); err != nil {
		err = s.translate("delete", key, err)
		if errors.Is(err, destination.ErrNotFound) {
			return nil
		}
		return err
	}
	return nil
}

// completedPart turns an UploadPart answer into the entry
// CompleteMultipartUpload needs, checksums included.
func completedPart(num int32, out *s3.UploadPartOutput) types.CompletedPart {
	return types.CompletedPart{
		PartNumber:        aws.Int32(num),
		ETag:              out.ETag,
		ChecksumCRC32:     out.ChecksumCRC32,
		ChecksumCRC32C:    out.ChecksumCRC32C,
		ChecksumCRC64NVME: out.ChecksumCRC64NVME,
		ChecksumSHA1:      out.ChecksumSHA1,
		ChecksumSHA256:    out.ChecksumSHA256,
	}
}

// idleConn fails a read or write that moves no byte for idle: each call
// pushes its deadline on, so a slow transfer that progresses goes on.
type idleConn struct {
	net.Conn
	idle time.Duration
}

// errStalled marks an idle connection's timeout.
var errStalled = errors.New("connection stalled")

// Both deadlines move on every call: a request body being written keeps the
// pending read of its response alive, as S3 answers only at the end.
func (c *idleConn) Read(p []byte) (int, error) {
	c.Conn.SetDeadline(time.Now().Add(c.idle))
	n, err := c.Conn.Read(p)
	return n, stalled(err)
}

func (c *idleConn) Write(p []byte) (int, error) {
	c.Conn.SetDeadline(time.Now().Add(c.idle))
	n, err := c.Conn.Write(p)
	return n, stalled(err)
}

func stalled(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &stallError{err}
	}
	return err
}

// stallError is a deadline error that also says errStalled; it stays a
// net.Error with Timeout() so the SDK and net/http treat it as a timeout.
type stallError struct{ err error }

func (e *stallError) Error() string   { return "connection stalled: " + e.err.Error() }
func (e *stallError) Unwrap() []error { return []error{errStalled, e.err} }
func (e *stallError) Timeout() bool   { return true }
func (e *stallError) Temporary() bool { return false }
