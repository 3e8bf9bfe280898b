package testenv

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// S3Env locates an S3-compatible test server (MinIO on 127.0.0.1).
type S3Env struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Region    string // always "us-east-1"

	private bool // started by StartMinIO: its buckets vanish with its temp dir
}

// S3 returns the shared MinIO test server.
func S3(t testing.TB) S3Env {
	t.Helper()
	env := S3Env{
		Endpoint:  Require(t, EnvS3Endpoint),
		AccessKey: Require(t, EnvS3AccessKey),
		SecretKey: Require(t, EnvS3SecretKey),
		Region:    "us-east-1",
	}
	requireLoopbackURL(t, EnvS3Endpoint, env.Endpoint)
	return env
}

// Client returns an aws-sdk-go-v2 S3 client for env: path-style addressing,
// BaseEndpoint, region us-east-1, checksums only when the API requires them
// (what S3-compatible stores expect).
func (env S3Env) Client() *s3.Client {
	region := env.Region
	if region == "" {
		region = "us-east-1"
	}
	creds := aws.Credentials{AccessKeyID: env.AccessKey, SecretAccessKey: env.SecretKey, Source: "testenv"}
	return s3.New(s3.Options{
		Region:       region,
		BaseEndpoint: aws.String(env.Endpoint),
		UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return creds, nil
		}),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// NewBucket creates a uniquely named bucket on env and returns its name. When
// the test ends the bucket is emptied (all versions, delete markers and
// unfinished multipart uploads) and deleted.
func NewBucket(t testing.TB, env S3Env) string {
	t.Helper()
	return newBucket(t, env, false)
}

// NewLockedBucket is NewBucket with S3 Object Lock enabled (and so
// versioning); its cleanup bypasses governance-mode retention.
func NewLockedBucket(t testing.TB, env S3Env) string {
	t.Helper()
	return newBucket(t, env, true)
}

func newBucket(t testing.TB, env S3Env, locked bool) string {
	t.Helper()
	name := uniqueName(t, "bp-", '-', 63)
	client := env.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if locked {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	if _, err := client.CreateBucket(ctx, in); err != nil {
		t.Fatalf("testenv: create bucket %s at %s: %v", name, env.Endpoint, err)
	}
	if env.private {
		return name // the private server and its data die with the test
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := deleteBucket(ctx, client, name); err != nil {
			t.Errorf("testenv: delete bucket %s: %v", name, err)
		}
	})
	return name
}

// deleteBucket empties and deletes a bucket.
func deleteBucket(ctx context.Context, c *s3.Client, bucket string) error {
	b := aws.String(bucket)
	uploads := s3.NewListMultipartUploadsPaginator(c, &s3.ListMultipartUploadsInput{Bucket: b})
	for uploads.HasMorePages() {
		page, err := uploads.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, u := range page.Uploads {
			if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
				Bucket: b, Key: u.Key, UploadId: u.UploadId,
			}); err != nil {
				return err
			}
		}
	}
	versions := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: b})
	for versions.HasMorePages() {
		page, err := versions.NextPage(ctx)
		if err != nil {
			return err
		}
		var ids []types.ObjectIdentifier
		for _, v := range page.Versions {
			ids = append(ids, types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
		}
		for _, m := range page.DeleteMarkers {
			ids = append(ids, types.ObjectIdentifier{Key: m.Key, VersionId: m.VersionId})
		}
		if len(ids) == 0 {
			continue
		}
		out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: b, Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
			BypassGovernanceRetention: aws.Bool(true), // in case a test used object lock
		})
		if err != nil {
			return err
		}
		var errs []error
		for _, e := range out.Errors {
			errs = append(errs, errors.New(aws.ToString(e.Key)+": "+aws.ToString(e.Message)))
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	_, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: b})
	return err
}
