// Package destination defines where backups are stored: a flat namespace of
// objects addressed by slash-separated keys, as on S3. Implementations live in
// subpackages (local, s3); desttest holds the conformance suite every one of
// them must pass.
package destination

import (
	"context"
	"errors"
	"io"
	"path"
	"strings"
	"time"
)

// ErrNotFound is returned (wrapped) by Get and Stat when no object has the key.
var ErrNotFound = errors.New("object not found")

// ErrExists is returned (wrapped) by PutIfAbsent when an object has the key.
var ErrExists = errors.New("object already exists")

// Object describes one stored object.
type Object struct {
	Key     string
	Size    int64
	ModTime time.Time
	// ETag is the store's version tag of the content, "" where the store
	// has none (local). Caches compare it with Size and ModTime.
	ETag string
}

// Destination stores objects. Every method must be safe for concurrent use.
type Destination interface {
	// Put stores everything read from r under key, replacing any object there.
	// The object becomes visible only once Put returns nil: if r returns an
	// error, ctx is cancelled or the write fails, nothing is left under key.
	// The length of r is not known in advance.
	Put(ctx context.Context, key string, r io.Reader) error
	// Get opens the object for reading.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat returns the object's size and modification time.
	Stat(ctx context.Context, key string) (Object, error)
	// List returns every object whose key starts with prefix, at any depth,
	// sorted by key. An empty result is not an error; a failed listing is.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Delete removes the object. Deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// PutIfAbsent stores a small object only if no object has the key, in
	// one atomic step: of several concurrent calls for a key, across
	// processes and machines, exactly one succeeds and the others return
	// ErrExists. It is what leases are built on (S3: If-None-Match: *;
	// local: link(2), which fails if the name exists).
	PutIfAbsent(ctx context.Context, key string, data []byte) error
}

// Locker is implemented by destinations whose objects can be locked against
// deletion (S3 Object Lock). Prune keeps a backup whose manifest is locked.
type Locker interface {
	// LockedUntil returns when the object's lock ends; zero when it has
	// none or does not exist.
	LockedUntil(ctx context.Context, key string) (time.Time, error)
}

// ValidateKey rejects keys that could escape a destination's root or that
// stores treat differently: empty, absolute, with empty, "." or ".."
// segments, backslashes or control characters (NUL included).
func ValidateKey(key string) error {
	if key == "" {
		return errors.New("empty object key")
	}
	if hasControl(key) || strings.Contains(key, "\\") || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return &KeyError{Key: key}
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return &KeyError{Key: key}
		}
	}
	if path.Clean(key) != key {
		return &KeyError{Key: key}
	}
	return nil
}

// ValidatePrefix rejects List prefixes that could name something outside
// the destination: those ValidateKey refuses, except that the prefix may be
// empty, end in "/" or stop inside its last segment.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if hasControl(prefix) || strings.Contains(prefix, "\\") || strings.HasPrefix(prefix, "/") {
		return &KeyError{Key: prefix}
	}
	segs := strings.Split(prefix, "/")
	for i, seg := range segs {
		if seg == "." || seg == ".." || seg == "" && i < len(segs)-1 {
			return &KeyError{Key: prefix}
		}
	}
	return nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// KeyError reports an object key a destination refuses.
type KeyError struct{ Key string }

func (e *KeyError) Error() string { return "invalid object key " + strquote(e.Key) }

func strquote(s string) string { return "\"" + strings.ReplaceAll(s, "\"", "\\\"") + "\"" }

// ContextReader returns a reader that fails once ctx is done. A Read already
// blocked in r is not interrupted: r must watch ctx itself for that (a pipe
// from a child process killed by the same ctx does).
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
