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
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/crypt"
	"github.com/backproof/backproof/destination"
)

// ErrChecksumMismatch means stored bytes differ from what the manifest
// recorded: the copy is corrupt or truncated.
var ErrChecksumMismatch = errors.New("checksum mismatch")

// ErrUndecodable means stored bytes match the manifest but do not decrypt
// or decompress: the backup was written wrong.
var ErrUndecodable = errors.New("artifact does not decode")

// ErrNoIdentity means a backup is encrypted and there is no identity to
// decrypt it with.
var ErrNoIdentity = errors.New("no identity to decrypt with")

// CheckKeys tells, before anything is downloaded, whether ids can decrypt the
// backup m: a plaintext backup needs none; an encrypted one needs an
// identity for one of the recipients its manifest names. ids may be nil.
func CheckKeys(m *catalog.Manifest, ids *crypt.Identities) error {
	e := m.Encryption
	switch {
	case e == nil:
		return nil
	case e.Scheme != crypt.Scheme:
		return fmt.Errorf("backup %s: unsupported encryption %q", m.ID, e.Scheme)
	case ids == nil:
		return fmt.Errorf("backup %s is encrypted (to %s): %w; set encryption.identity_file in the config",
			m.ID, strings.Join(e.RecipientFingerprints, ", "), ErrNoIdentity)
	}
	if err := ids.Match(e.RecipientFingerprints); err != nil {
		return fmt.Errorf("backup %s: %w", m.ID, err)
	}
	return nil
}

// OpenArtifact streams an artifact of a committed backup, decrypted with ids
// when the backup is encrypted, and decompressed. The stored bytes are
// counted and hashed on the way; the reader returns ErrChecksumMismatch
// instead of EOF when they differ from the manifest, so a consumer never sees
// a clean end to a corrupt stream.
func OpenArtifact(ctx context.Context, d destination.Destination, m *catalog.Manifest, a catalog.Artifact, ids *crypt.Identities) (io.ReadCloser, error) {
	if m.Compression != "zstd" {
		return nil, fmt.Errorf("backup %s: unsupported compression %q", m.ID, m.Compression)
	}
	if err := CheckKeys(m, ids); err != nil {
		return nil, err
	}
	rc, err := d.Get(ctx, catalog.Key(m.Target, m.ID, a.Name))
	if err != nil {
		return nil, err
	}
	vr := &verifyingReader{r: rc, h: sha256.New(), want: a}
	var plain io.Reader = vr
	if m.Encryption != nil {
		if plain, err = ids.Decrypt(vr); err != nil {
			err = headerError(vr, err)
			rc.Close()
			return nil, err
		}
	}
	dec, err := newDecoder(plain)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return &artifactReader{dec: dec, vr: vr, body: rc}, nil
}

// MaxWindow bounds the zstd window a stored frame may ask for, and with it
// the decoder's memory: a frame header can declare windows of up to 3.75 TiB
// (the library's own cap is 512 MiB). backproof writes 4-8 MiB windows, the
// zstd CLI 8 MiB up to level 19; larger ones take --long or --ultra.
const MaxWindow = 32 << 20

func newDecoder(r io.Reader) (*zstd.Decoder, error) {
	return zstd.NewReader(r, zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(MaxWindow), zstd.WithDecoderMaxMemory(MaxWindow))
}

// headerError tells what an age header that did not open means. A corrupt
// copy can look like a wrong key (a damaged stanza does not unwrap), so the
// stored bytes' verdict comes first; with them intact, a key that does not
// match is not the backup's fault.
func headerError(vr *verifyingReader, err error) error {
	v := vr.verdict(err)
	if errors.Is(v, ErrUndecodable) && errors.Is(err, crypt.ErrNoMatchingKey) {
		return err
	}
	return v
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
		return n, a.vr.verdict(err)
	}
	return n, err
}

func (a *artifactReader) Close() error {
	a.dec.Close()
	return a.body.Close()
}

// verifyingReader counts what it reads and, with h, hashes it and compares
// with the manifest at EOF; without h it checks only the size, and the
// caller hashes (checkSum).
type verifyingReader struct {
	r       io.Reader
	h       hash.Hash
	n       int64
	want    catalog.Artifact
	err     error // the stored bytes differ from the manifest
	readErr error // the stored bytes could not be read
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.readErr != nil {
		return 0, v.readErr
	}
	n, err := v.r.Read(p)
	if err != nil && err != io.EOF {
		v.readErr = err
	}
	if v.h != nil {
		v.h.Write(p[:n])
	}
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
		if v.h != nil {
			if v.err = checkSum(v.want, v.h); v.err != nil {
				return n, v.err
			}
		}
	}
	return n, err
}

// checkSum compares the SHA-256 in h with the manifest's for a.
func checkSum(a catalog.Artifact, h hash.Hash) error {
	if got := hex.EncodeToString(h.Sum(nil)); got != a.SHA256 {
		return fmt.Errorf("%s: %w: SHA-256 %s, manifest records %s", a.Name, ErrChecksumMismatch, got, a.SHA256)
	}
	return nil
}

// verdict says what a failure to decrypt or decompress (cause) means, after
// reading the rest of the stored bytes: a checksum mismatch (the copy is
// corrupt) or a read error (the destination failed) is the real cause; with
// the bytes intact and fully read, the backup was written wrong.
func (v *verifyingReader) verdict(cause error) error {
	if v.err == nil && v.readErr == nil {
		io.Copy(io.Discard, v) //nolint:errcheck // the fields hold the outcome
	}
	switch {
	case v.err != nil:
		return v.err
	case v.readErr != nil:
		return fmt.Errorf("%s: read: %w", v.want.Name, v.readErr)
	}
	return fmt.Errorf("%w: %v", ErrUndecodable, cause)
}
