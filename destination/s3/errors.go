package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"

	"github.com/backproof/backproof/destination"
)

// Error is what every Store operation returns when S3 or the source failed.
// Its message is short and carries no credentials:
//
//	s3 bucket/prefix: put orders/x/dump: access denied (AccessDenied): check the credentials and the bucket policy
//
// The full SDK error (request IDs, HTTP status) stays reachable with
// errors.As for whoever needs it.
type Error struct {
	Store string // bucket or bucket/prefix
	Op    string // put, get, stat, list, delete, create
	Key   string
	Msg   string // short cause
	Err   error  // the underlying error: SDK, network, context or source
	Kind  error  // destination.ErrNotFound, or nil
}

func (e *Error) Error() string {
	return "s3 " + e.Store + ": " + e.Op + " " + e.Key + ": " + e.Msg
}

func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

func (s *Store) newError(op, key, msg string, err, kind error) *Error {
	return &Error{Store: s.name, Op: op, Key: key, Msg: msg, Err: err, Kind: kind}
}

// translate is the one place SDK errors become this package's errors: a
// short cause for people, destination.ErrNotFound for callers that branch.
func (s *Store) translate(op, key string, err error) error {
	return s.explain(op, key, "", err)
}

// explain is translate with a note on what was being done ("part 3").
func (s *Store) explain(op, key, doing string, err error) *Error {
	msg, kind := s.cause(err)
	if doing != "" {
		msg = doing + ": " + msg
	}
	return s.newError(op, key, msg, err, kind)
}

func (s *Store) cause(err error) (string, error) {
	if errors.Is(err, context.Canceled) {
		return "cancelled", nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out", nil
	}
	if apiErr, ok := errors.AsType[smithy.APIError](err); ok {
		msg, kind := apiCause(s.bucket, apiErr)
		return msg, kind
	}
	// Before the network checks: the default chain's instance-role lookup
	// fails with network errors that are not about the endpoint.
	if isCredentialsError(err) {
		return "no usable AWS credentials: set access_key_id and secret_access_key, or configure the environment, profile or instance role", nil
	}
	var netCause string
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		netCause = "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		netCause = "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		netCause = "no route to host"
	}
	if dnsErr, ok := errors.AsType[*net.DNSError](err); ok {
		netCause = "cannot resolve " + dnsErr.Name
	} else if errors.Is(err, errStalled) {
		netCause = fmt.Sprintf("no bytes moved for %s (stall_timeout)", s.stall)
	} else if netErr, ok := errors.AsType[net.Error](err); ok && netErr.Timeout() && netCause == "" {
		netCause = "no answer in time"
	}
	if netCause != "" {
		msg := fmt.Sprintf("cannot reach %s: %s", s.endpoint, netCause)
		if n, ok := errors.AsType[*retry.MaxAttemptsError](err); ok {
			msg += fmt.Sprintf(" (%d attempts)", n.Attempt)
		}
		return msg, nil
	}
	// Something else: keep the innermost message, which is the informative
	// one, without the SDK's "operation error S3: PutObject, ..." preamble.
	return short(innermost(err).Error()), nil
}

// apiCause explains an error answered by the server.
func apiCause(bucket string, e smithy.APIError) (string, error) {
	code := e.ErrorCode()
	switch code {
	case "NoSuchKey", "NotFound":
		return "object not found", destination.ErrNotFound
	case "NoSuchBucket":
		return fmt.Sprintf("bucket %q does not exist", bucket), nil
	case "NoSuchUpload":
		return "the multipart upload no longer exists (aborted, or removed by a lifecycle rule)", nil
	case "AccessDenied", "Forbidden", "AllAccessDisabled", "AccountProblem":
		return "access denied (" + code + "): check the credentials and the bucket policy", nil
	case "InvalidAccessKeyId":
		return "the server does not know this access key ID (InvalidAccessKeyId)", nil
	case "SignatureDoesNotMatch":
		return "request signature rejected (SignatureDoesNotMatch): wrong secret key for this access key", nil
	case "ExpiredToken", "TokenRefreshRequired", "InvalidToken":
		return "session token rejected (" + code + "): refresh the credentials", nil
	case "RequestTimeTooSkewed":
		return "this machine's clock differs too much from the server's (RequestTimeTooSkewed)", nil
	case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
		return "wrong region for this bucket (" + code + "): set region", nil
	case "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout":
		return "server busy or failing, retries exhausted (" + code + "): " + short(e.ErrorMessage()), nil
	}
	msg := e.ErrorMessage()
	if msg == "" || msg == code {
		return code, nil
	}
	return code + ": " + short(msg), nil
}

// isCredentialsError reports an error resolving credentials (the default
// chain found none), before any request was sent.
func isCredentialsError(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.HasPrefix(e.Error(), "get identity: ") {
			return true
		}
	}
	return false
}

func innermost(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

func short(s string) string {
	const maxLen = 200
	if len(s) > maxLen {
		return s[:maxLen] + "..."
	}
	return s
}
