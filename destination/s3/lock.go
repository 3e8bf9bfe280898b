package s3

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/backproof/backproof/destination"
)

// Lock is an S3 Object Lock retention put on every object Put stores.
type Lock struct {
	Mode string // "governance" or "compliance"; "" means no lock
	Days int    // how long each object stays locked after it is written
}

func (l Lock) validate() error {
	switch l.Mode {
	case "":
		if l.Days != 0 {
			return errors.New("object_lock: days needs a mode (governance or compliance)")
		}
	case "governance", "compliance":
		if l.Days < 1 || l.Days > 36500 {
			return fmt.Errorf("object_lock: days %d: must be between 1 and 36500", l.Days)
		}
	default:
		return fmt.Errorf("object_lock: mode %q: must be governance or compliance", l.Mode)
	}
	return nil
}

func (l Lock) mode() types.ObjectLockMode {
	if l.Mode == "compliance" {
		return types.ObjectLockModeCompliance
	}
	return types.ObjectLockModeGovernance
}

// lockPut sets the retention of a single-request upload of data. S3 takes
// a retention only with a checksum of the body: Content-MD5 is the one every
// S3-compatible store knows.
func (s *Store) lockPut(ctx context.Context, in *s3.PutObjectInput, data []byte) error {
	locked, err := s.retention(ctx, in.Key, &in.ObjectLockMode, &in.ObjectLockRetainUntilDate)
	if locked {
		in.ContentMD5 = contentMD5(data)
	}
	return err
}

// lockUpload sets the retention of a multipart upload; its parts carry a
// Content-MD5 each (lockPart).
func (s *Store) lockUpload(ctx context.Context, in *s3.CreateMultipartUploadInput) error {
	_, err := s.retention(ctx, in.Key, &in.ObjectLockMode, &in.ObjectLockRetainUntilDate)
	return err
}

// retention fills in the mode and retain-until date of a new object at key
// when the store locks objects, after checking once that the bucket can.
func (s *Store) retention(ctx context.Context, key *string, mode *types.ObjectLockMode, until **time.Time) (bool, error) {
	if s.lock.Mode == "" {
		return false, nil
	}
	if err := s.checkLockable(ctx, aws.ToString(key)); err != nil {
		return false, err
	}
	*mode = s.lock.mode()
	*until = aws.Time(s.retainUntil())
	return true, nil
}

func (s *Store) lockPart(in *s3.UploadPartInput, data []byte) {
	if s.lock.Mode != "" {
		in.ContentMD5 = contentMD5(data)
	}
}

func (s *Store) retainUntil() time.Time {
	return time.Now().Add(time.Duration(s.lock.Days) * 24 * time.Hour)
}

func contentMD5(data []byte) *string {
	sum := md5.Sum(data)
	return aws.String(base64.StdEncoding.EncodeToString(sum[:]))
}

// checkLockable asks once whether the bucket has Object Lock enabled, so that
// a bucket without it fails every backup with an error that says so, rather
// than with the store's own words about a missing header.
func (s *Store) checkLockable(ctx context.Context, obj string) error {
	if s.lockChecked.Load() {
		return nil
	}
	out, err := s.client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: &s.bucket})
	if err != nil && !isNoLockConfig(err) {
		return s.explain("put", obj, "read the bucket's Object Lock configuration (object_lock is set)", err)
	}
	if err != nil || out.ObjectLockConfiguration == nil || out.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
		return s.newError("put", obj, fmt.Sprintf(
			"object_lock is set but bucket %q does not have Object Lock enabled (it can only be enabled on a versioned bucket, usually when the bucket is created)", s.bucket), nil, nil)
	}
	s.lockChecked.Store(true)
	return nil
}

// isNoLockConfig reports the answer to GetObjectLockConfiguration or
// GetObjectRetention for a bucket or object without one.
func isNoLockConfig(err error) bool {
	apiErr, ok := errors.AsType[smithy.APIError](err)
	if !ok {
		return false
	}
	switch apiErr.ErrorCode() {
	case "ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration", "InvalidRequest":
		return true
	}
	return false
}

var _ destination.Locker = (*Store)(nil)

// LockedUntil returns when the object's Object Lock retention ends: zero for
// an object without one, or a missing object. A store without object_lock
// makes no request and answers zero: its key may lack the permission.
func (s *Store) LockedUntil(ctx context.Context, key string) (time.Time, error) {
	if s.lock.Mode == "" {
		return time.Time{}, nil
	}
	obj, err := s.objectKey(key)
	if err != nil {
		return time.Time{}, err
	}
	out, err := s.client.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: &s.bucket, Key: &obj})
	if err != nil {
		if isNoLockConfig(err) {
			return time.Time{}, nil
		}
		err = s.translate("read retention of", key, err)
		if errors.Is(err, destination.ErrNotFound) {
			return time.Time{}, nil
		}
		return time.Time{}, err
	}
	if out.Retention == nil {
		return time.Time{}, nil
	}
	return aws.ToTime(out.Retention.RetainUntilDate), nil
}
