package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/crypt"
	"github.com/backproof/backproof/destination"
)

// CheckStored compares an artifact's stored size with the manifest before
// anything is downloaded: a truncated or grown object fails at once.
func CheckStored(ctx context.Context, d destination.Destination, m *catalog.Manifest, a catalog.Artifact) error {
	obj, err := d.Stat(ctx, catalog.Key(m.Target, m.ID, a.Name))
	if err != nil {
		if errors.Is(err, destination.ErrNotFound) {
			return fmt.Errorf("%s: %w: the manifest lists it but it is not stored", a.Name, ErrMissing)
		}
		return err
	}
	if obj.Size != a.Size {
		return fmt.Errorf("%s: %w: %d bytes stored, manifest records %d", a.Name, ErrChecksumMismatch, obj.Size, a.Size)
	}
	return nil
}

// ErrMissing means a committed backup lacks an artifact its manifest lists.
var ErrMissing = errors.New("artifact missing")

// Spool downloads an artifact, decrypted (with ids) and decompressed, into a
// new file in dir, and returns its path once the stored bytes proved
// identical to the manifest's size and SHA-256. Restores read from this file, not from the stream: the
// checksum must hold before a restore begins, and parallel pg_restore needs
// a seekable file. On any error the file is removed. progress, when not
// nil, is written the stored bytes as they arrive.
func Spool(ctx context.Context, d destination.Destination, m *catalog.Manifest, a catalog.Artifact, ids *crypt.Identities, dir string, progress io.Writer) (path string, err error) {
	if err := CheckKeys(m, ids); err != nil {
		return "", err
	}
	if err := CheckStored(ctx, d, m, a); err != nil {
		return "", err
	}
	if progress != nil {
		d = metered{d, progress}
	}
	rc, err := OpenArtifact(ctx, d, m, a, ids)
	if err != nil {
		if errors.Is(err, destination.ErrNotFound) {
			return "", fmt.Errorf("%s: %w: the manifest lists it but it is not stored", a.Name, ErrMissing)
		}
		return "", err
	}
	defer rc.Close()
	f, err := os.OpenFile(filepath.Join(dir, strings.TrimSuffix(strings.TrimSuffix(a.Name, crypt.Suffix), ".zst")), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("spool %s: %w", a.Name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := io.Copy(f, destination.ContextReader(ctx, rc)); err != nil {
		if ctx.Err() != nil {
			return "", context.Cause(ctx)
		}
		return "", fmt.Errorf("spool %s: %w", a.Name, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("spool %s: %w", a.Name, err)
	}
	return f.Name(), nil
}

// metered copies every byte read through Get to w.
type metered struct {
	destination.Destination
	w io.Writer
}

func (m metered) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := m.Destination.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.TeeReader(rc, m.w), rc}, nil
}
