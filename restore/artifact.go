// Package restore reads committed backups back from a destination.
package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/klauspost/compress/zstd"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/destination"
)

// ErrChecksumMismatch means stored bytes differ from what the manifest
// recorded: the copy is corrupt or truncated.
var ErrChecksumMismatch = errors.New("checksum mismatch")

// ErrUndecodable means stored bytes match the manifest but do not
// decompress: the backup was written wrong.
var ErrUndecodable = errors.New("artifact does not decompress")

// OpenArtifact streams an artifact of a committed backup, decompressed. The
// stored bytes are counted and hashed on the way; the reader returns
// ErrChecksumMismatch instead of EOF when they differ from the manifest, so a
// consumer never sees a clean end to a corrupt stream.
func OpenArtifact(ctx context.Context, d destination.Destination, m *catalog.Manifest, a catalog.Artifact) (io.ReadCloser, error) {
	if m.Compression != "zstd" {
		return nil, fmt.Errorf("backup %s: unsupported compression %q", m.ID, m.Compression)
	}
	if m.Encryption != nil {
		return nil, fmt.Errorf("backup %s is encrypted; this build cannot decrypt", m.ID)
	}
	rc, err := d.Get(ctx, catalog.Key(m.Target, m.ID, a.Name))
	if err != nil {
		return nil, err
	}
	vr := &verifyingReader{r: rc, h: sha256.New(), want: a}
	dec, err := zstd.NewReader(vr, zstd.WithDecoderConcurrency(1))
	if err != nil {
		rc.Close()
		return nil, err
	}
	return &artifactReader{dec: dec, vr: vr, body: rc}, nil
}

type artifactReader struct {
	dec  *zstd.Decoder
	vr   *verifyingReader
	body io.Closer
}

func (a *artifactReader) Read(p []byte) (int, error) {
	n, err := a.dec.Read(p)
	if err == io.EOF {
		// The decoder may stop before the stored stream ends (trailing bytes).
		if _, derr := io.Copy(io.Discard, a.vr); derr != nil {
			return n, derr
		}
	} else if err != nil {
		// Finish hashing the stored bytes: if they differ from the manifest,
		// that is the cause to report, not the decoder's view of it.
		if a.vr.err == nil {
			io.Copy(io.Discard, a.vr) //nolint:errcheck // only the verdict matters
		}
		if a.vr.err != nil {
			return n, a.vr.err
		}
		return n, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	return n, err
}

func (a *artifactReader) Close() error {
	a.dec.Close()
	return a.body.Close()
}

// verifyingReader hashes what it reads and, at EOF, compares with the manifest.
type verifyingReader struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	want catalog.Artifact
	err  error
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.want.Size {
		v.err = fmt.Errorf("%s: %w: more than the %d bytes the manifest records", v.want.Name, ErrChecksumMismatch, v.want.Size)
		return 0, v.err
	}
	if err == io.EOF {
		if v.n != v.want.Size {
			v.err = fmt.Errorf("%s: %w: %d bytes stored, manifest records %d (truncated)", v.want.Name, ErrChecksumMismatch, v.n, v.want.Size)
			return n, v.err
		}
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want.SHA256 {
			v.err = fmt.Errorf("%s: %w: SHA-256 %s, manifest records %s", v.want.Name, ErrChecksumMismatch, got, v.want.SHA256)
			return n, v.err
		}
	}
	return n, err
}
