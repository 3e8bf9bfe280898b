package restore

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"

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
// nil, is written the stored bytes as they arrive. The disk's free space is
// checked before and while writing (SpoolReserve).
func Spool(ctx context.Context, d destination.Destination, m *catalog.Manifest, a catalog.Artifact, ids *crypt.Identities, dir string, progress io.Writer) (path string, err error) {
	if err := CheckKeys(m, ids); err != nil {
		return "", err
	}
	if err := CheckStored(ctx, d, m, a); err != nil {
		return "", err
	}
	// The plain dump is at least as large as the stored bytes.
	if err := checkSpace(dir, a.Size); err != nil {
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
	return writeSpool(ctx, filepath.Join(dir, plainName(a)), rc, nil)
}

func plainName(a catalog.Artifact) string {
	return strings.TrimSuffix(strings.TrimSuffix(a.Name, crypt.Suffix), ".zst")
}

// writeSpool copies r into a new file at path, checking free space as it
// grows. With h, a goroutine of its own hashes the bytes while the next are
// read and written (hashing alone is slower than reading and writing a
// cached file), and h is complete when writeSpool returns. On error the file
// is removed.
func writeSpool(ctx context.Context, path string, r io.Reader, h hash.Hash) (_ string, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("spool: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	w := &spaceWriter{w: f, dir: filepath.Dir(path)}
	r = destination.ContextReader(ctx, r)
	if h == nil {
		_, err = io.CopyBuffer(w, r, make([]byte, 1<<20))
	} else {
		err = hashedCopy(w, r, h)
	}
	if err != nil {
		if ctx.Err() != nil {
			return "", context.Cause(ctx)
		}
		return "", fmt.Errorf("spool %s: %w", filepath.Base(path), err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("spool %s: %w", filepath.Base(path), err)
	}
	return f.Name(), nil
}

// hashedCopy copies r to w, hashing in a second goroutine each buffer once
// it is written, in order, and returns once h holds every byte written.
func hashedCopy(w io.Writer, r io.Reader, h hash.Hash) error {
	const nbuf = 3
	free := make(chan []byte, nbuf)
	for range nbuf {
		free <- make([]byte, 1<<20)
	}
	written := make(chan []byte, nbuf)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range written {
			h.Write(b)
			free <- b[:cap(b)]
		}
	}()
	defer func() {
		close(written)
		<-done
	}()
	for {
		b := <-free
		n, err := r.Read(b)
		if n > 0 {
			if _, werr := w.Write(b[:n]); werr != nil {
				return werr
			}
			written <- b[:n]
		} else {
			free <- b
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// SpoolStored downloads an artifact's stored bytes, as they are (compressed,
// encrypted), into a new file in dir while hashing them, and returns once
// they proved identical to the manifest. The Spooled then streams them
// decrypted and decompressed into a restore: the checksum holds before the
// target sees a byte, and decompression overlaps the restore instead of
// preceding it. progress, when not nil, is written the stored bytes as they
// arrive. On any error nothing is left in dir.
func SpoolStored(ctx context.Context, d destination.Destination, m *catalog.Manifest, a catalog.Artifact, ids *crypt.Identities, dir string, progress io.Writer) (*Spooled, error) {
	if m.Compression != "zstd" {
		return nil, fmt.Errorf("backup %s: unsupported compression %q", m.ID, m.Compression)
	}
	if err := CheckKeys(m, ids); err != nil {
		return nil, err
	}
	if err := CheckStored(ctx, d, m, a); err != nil {
		return nil, err
	}
	if err := checkSpace(dir, a.Size); err != nil {
		return nil, err
	}
	rc, err := d.Get(ctx, catalog.Key(m.Target, m.ID, a.Name))
	if err != nil {
		if errors.Is(err, destination.ErrNotFound) {
			return nil, fmt.Errorf("%s: %w: the manifest lists it but it is not stored", a.Name, ErrMissing)
		}
		return nil, err
	}
	defer rc.Close()
	var r io.Reader = rc
	if progress != nil {
		r = io.TeeReader(rc, progress)
	}
	vr := &verifyingReader{r: r, want: a} // the size; writeSpool hashes
	h := sha256.New()
	path, err := writeSpool(ctx, filepath.Join(dir, a.Name), vr, h)
	switch {
	case vr.err != nil:
		return nil, vr.err
	case vr.readErr != nil:
		return nil, fmt.Errorf("%s: read: %w", a.Name, vr.readErr)
	case err != nil:
		return nil, err
	}
	if err := checkSum(a, h); err != nil {
		os.Remove(path)
		return nil, err
	}
	return &Spooled{Path: path, m: m, a: a, ids: ids}, nil
}

// Spooled is an artifact's stored bytes in a local file, checked against
// the manifest.
type Spooled struct {
	Path string
	m    *catalog.Manifest
	a    catalog.Artifact
	ids  *crypt.Identities
}

// Size is the number of stored bytes.
func (s *Spooled) Size() int64 { return s.a.Size }

// Open streams the plain dump: the spooled bytes decrypted and
// decompressed. progress, when not nil, is written the stored bytes as they
// are read. A stream that does not decode ends in an error wrapping
// ErrUndecodable (the bytes are the ones the backup wrote).
func (s *Spooled) Open(progress io.Writer) (io.ReadCloser, error) {
	f, err := os.Open(s.Path)
	if err != nil {
		return nil, err
	}
	var r io.Reader = bufio.NewReaderSize(f, 1<<20)
	if progress != nil {
		r = io.TeeReader(r, progress)
	}
	if s.m.Encryption != nil {
		if r, err = s.ids.Decrypt(r); err != nil {
			f.Close()
			if errors.Is(err, crypt.ErrNoMatchingKey) {
				return nil, err
			}
			return nil, fmt.Errorf("%s: %w: %v", s.a.Name, ErrUndecodable, err)
		}
	}
	dec, err := newDecoder(r)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &plainReader{dec: dec, f: f, name: s.a.Name}, nil
}

// Remove deletes the spooled file.
func (s *Spooled) Remove() error { return os.Remove(s.Path) }

type plainReader struct {
	dec  *zstd.Decoder
	f    *os.File
	name string
}

func (p *plainReader) Read(b []byte) (int, error) {
	n, err := p.dec.Read(b)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: %w: %v", p.name, ErrUndecodable, err)
	}
	return n, err
}

func (p *plainReader) Close() error {
	p.dec.Close()
	return p.f.Close()
}

// SpoolReserve is the free space a spool leaves on its disk: it stops
// before the disk has less than this left, rather than filling it for the
// database, the daemon's state and everything else that lives there.
const SpoolReserve = 64 << 20

// spaceCheckEvery is how many bytes a spool writes between free-space checks.
var spaceCheckEvery int64 = 16 << 20

// ErrNoSpace means a spool would leave its disk with less than SpoolReserve.
var ErrNoSpace = errors.New("not enough free space to spool")

// freeSpace reports the bytes free under dir and whether it could tell.
var freeSpace = statfsFree

// checkSpace fails unless dir has room for n more bytes and the reserve.
func checkSpace(dir string, n int64) error {
	free, ok, err := freeSpace(dir)
	if err != nil {
		return fmt.Errorf("spool in %s: free space: %w", dir, err)
	}
	if ok && free < uint64(max(n, 0))+SpoolReserve {
		return fmt.Errorf("spool in %s: %w: %s free, %s needed plus a %s reserve (set TMPDIR to a larger disk)",
			dir, ErrNoSpace, humanBytes(free), humanBytes(uint64(max(n, 0))), humanBytes(SpoolReserve))
	}
	return nil
}

// spaceWriter checks free space before every spaceCheckEvery bytes it writes.
type spaceWriter struct {
	w    io.Writer
	dir  string
	left int64 // bytes until the next check
}

func (s *spaceWriter) Write(p []byte) (int, error) {
	if s.left <= 0 {
		if err := checkSpace(s.dir, int64(len(p))); err != nil {
			return 0, err
		}
		s.left = spaceCheckEvery
	}
	n, err := s.w.Write(p)
	s.left -= int64(n)
	return n, err
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
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
