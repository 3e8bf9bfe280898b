package s3

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/backproof/backproof/destination"
)

// conflictRetries bounds the retries of a conditional write that S3 answered
// with 409 ConditionalRequestConflict (another conditional write on the key
// was in flight): S3 asks the client to retry.
const conflictRetries = 4

// PutIfAbsent stores data with PutObject and If-None-Match: *, which S3
// answers with 412 PreconditionFailed when the key exists. A store that
// ignores the header would silently break every lease built on it, so the
// first successful create of a Store is repeated: the repeat must fail.
func (s *Store) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	obj, err := s.objectKey(key)
	if err != nil {
		return err
	}
	if err := s.createOnce(ctx, key, obj, data); err != nil {
		return err
	}
	if s.conditionalChecked.Load() {
		return nil
	}
	err = s.createOnce(ctx, key, obj, data)
	switch {
	case errors.Is(err, destination.ErrExists):
		s.conditionalChecked.Store(true)
		return nil
	case err == nil:
		// The object holds our data either way; it must not stay behind
		// looking like a lease nobody holds.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		derr := s.Delete(cctx, key)
		return errors.Join(s.newError("create", key,
			"the store ignores conditional writes (If-None-Match: *), so leases cannot keep two backproof processes apart", nil, nil), derr)
	default:
		return err
	}
}

func (s *Store) createOnce(ctx context.Context, key, obj string, data []byte) error {
	for attempt := 0; ; attempt++ {
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        &s.bucket,
			Key:           &obj,
			Body:          bytes.NewReader(data),
			ContentLength: aws.Int64(int64(len(data))),
			IfNoneMatch:   aws.String("*"),
		})
		if err == nil {
			return nil
		}
		if apiErr, ok := errors.AsType[smithy.APIError](err); ok {
			switch apiErr.ErrorCode() {
			case "PreconditionFailed":
				return s.newError("create", key, "object already exists", err, destination.ErrExists)
			case "ConditionalRequestConflict":
				if attempt < conflictRetries {
					select {
					case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
						continue
					case <-ctx.Done():
					}
				}
			}
		}
		return s.translate("create", key, err)
	}
}
