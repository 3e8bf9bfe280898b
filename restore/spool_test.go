package restore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/crypt"
	"github.com/backproof/backproof/destination/local"
)

// stored puts data as the one artifact of a backup of "orders" on a new
// local destination.
func stored(t *testing.T, name string, data []byte, enc *catalog.Encryption) (*local.Store, *catalog.Manifest) {
	t.Helper()
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	m := &catalog.Manifest{Format: catalog.FormatVersion, ID: catalog.NewID(time.Now()), Target: "orders", Compression: "zstd", Encryption: enc,
		Artifacts: []catalog.Artifact{{Name: name, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}}}
	if err := store.Put(context.Background(), catalog.Key("orders", m.ID, name), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return store, m
}

// compress is a streamed zstd frame of plain, as backups write them: no
// content size, the window in the header.
func compress(t *testing.T, plain []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := zstd.NewWriter(&b, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A frame may declare a window of up to 3.75 TiB, and the decoder allocates
// it: the window is capped, and a larger one is an undecodable backup.
func TestDecoderWindowIsCapped(t *testing.T) {
	ctx := context.Background()
	plain := bytes.Repeat([]byte("PGDMP order rows "), 1<<19) // 8.5 MiB: several blocks
	frame := compress(t, plain)
	var h zstd.Header
	if err := h.Decode(frame); err != nil || h.SingleSegment || h.HeaderSize != 6 {
		t.Fatalf("want a frame with a window descriptor: %+v, %v", h, err)
	}
	// Window descriptor (after magic and frame header byte): exponent 18,
	// mantissa 0 = 2^28 = 256 MiB, under the library's own 512 MiB limit.
	frame[5] = 18 << 3
	if err := h.Decode(frame); err != nil || h.WindowSize != 256<<20 {
		t.Fatalf("window %d, %v", h.WindowSize, err)
	}
	store, m := stored(t, "dump.pgdump.zst", frame, nil)

	refused := func(t *testing.T, rc io.ReadCloser, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		n, err := io.Copy(io.Discard, rc)
		if !errors.Is(err, ErrUndecodable) || !strings.Contains(err.Error(), zstd.ErrWindowSizeExceeded.Error()) {
			t.Fatalf("read %d bytes, err = %v; want an undecodable artifact (window too large)", n, err)
		}
	}
	t.Run("stream", func(t *testing.T) {
		rc, err := OpenArtifact(ctx, store, m, m.Artifacts[0], nil)
		refused(t, rc, err)
	})
	t.Run("spooled", func(t *testing.T) {
		sp, err := SpoolStored(ctx, store, m, m.Artifacts[0], nil, t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := sp.Open(nil)
		refused(t, rc, err)
	})
}

// fakeDisk makes freeSpace report a disk with room bytes free besides the
// reserve, minus what the spool directories hold.
func fakeDisk(t *testing.T, room int64, dirs ...string) {
	t.Helper()
	old := freeSpace
	t.Cleanup(func() { freeSpace = old })
	freeSpace = func(string) (uint64, bool, error) {
		used := int64(0)
		for _, d := range dirs {
			filepath.WalkDir(d, func(_ string, e os.DirEntry, err error) error { //nolint:errcheck // best effort
				if err == nil && !e.IsDir() {
					if fi, err := e.Info(); err == nil {
						used += fi.Size()
					}
				}
				return nil
			})
		}
		return uint64(max(SpoolReserve+room-used, 0)), true, nil
	}
}

func TestSpoolChecksFreeSpace(t *testing.T) {
	ctx := context.Background()
	plain := make([]byte, 6<<20)
	rand.NewChaCha8([32]byte{2}).Read(plain[:3<<20]) // stored about 3 MiB, plain 6 MiB
	store, m := stored(t, "dump.pgdump.zst", compress(t, plain), nil)
	a := m.Artifacts[0]
	old := spaceCheckEvery
	t.Cleanup(func() { spaceCheckEvery = old })
	spaceCheckEvery = 1 << 20

	empty := func(t *testing.T, dir string) {
		t.Helper()
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("spool left %d files behind", len(ents))
		}
	}
	t.Run("stored bytes do not fit", func(t *testing.T) {
		dir := t.TempDir()
		fakeDisk(t, a.Size/2, dir)
		if _, err := SpoolStored(ctx, store, m, a, nil, dir, nil); !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("err = %v, want ErrNoSpace naming %s", err, dir)
		}
		empty(t, dir)
		if _, err := Spool(ctx, store, m, a, nil, dir, nil); !errors.Is(err, ErrNoSpace) {
			t.Fatalf("err = %v, want ErrNoSpace", err)
		}
		empty(t, dir)
	})
	t.Run("plain dump outgrows the disk", func(t *testing.T) {
		dir := t.TempDir()
		fakeDisk(t, 4<<20, dir) // room for the stored bytes, not for the plain dump
		_, err := Spool(ctx, store, m, a, nil, dir, nil)
		if !errors.Is(err, ErrNoSpace) || IsBad(err) {
			t.Fatalf("err = %v, want ErrNoSpace (and not a bad backup)", err)
		}
		empty(t, dir)
	})
	t.Run("room enough", func(t *testing.T) {
		dir := t.TempDir()
		fakeDisk(t, 16<<20, dir)
		path, err := Spool(ctx, store, m, a, nil, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, plain) {
			t.Fatal("spooled dump differs")
		}
	})
}

// SpoolStored checks the stored bytes before Open streams any of them, for
// plain and encrypted backups.
func TestSpoolStored(t *testing.T) {
	ctx := context.Background()
	plain := bytes.Repeat([]byte("PGDMP order rows "), 100000)
	compressed := compress(t, plain)
	sealed, ids, enc := sealNew(compressed)

	for _, tc := range []struct {
		name   string
		stored []byte
		enc    *catalog.Encryption
	}{
		{"dump.pgdump.zst", compressed, nil},
		{"dump.pgdump.zst.age", sealed, enc},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, m := stored(t, tc.name, tc.stored, tc.enc)
			dir := t.TempDir()
			var metered bytes.Buffer
			sp, err := SpoolStored(ctx, store, m, m.Artifacts[0], ids, dir, &metered)
			if err != nil {
				t.Fatal(err)
			}
			if metered.Len() != len(tc.stored) {
				t.Errorf("progress saw %d bytes, want %d", metered.Len(), len(tc.stored))
			}
			rc, err := sp.Open(nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("stream: %v, %d bytes", err, len(got))
			}

			// The same backup with one stored byte changed never opens.
			bad := append([]byte(nil), tc.stored...)
			bad[len(bad)-10] ^= 1
			store2, m2 := stored(t, tc.name, bad, tc.enc)
			m2.Artifacts[0].SHA256 = m.Artifacts[0].SHA256
			dir2 := t.TempDir()
			if _, err := SpoolStored(ctx, store2, m2, m2.Artifacts[0], ids, dir2, nil); !errors.Is(err, ErrChecksumMismatch) {
				t.Fatalf("corrupt copy: err = %v, want ErrChecksumMismatch", err)
			}
			if ents, _ := os.ReadDir(dir2); len(ents) != 0 {
				t.Fatalf("corrupt copy left %d files behind", len(ents))
			}
		})
	}
}

// sealNew encrypts data to a new age identity, as backups with
// encryption.recipients store it.
func sealNew(data []byte) ([]byte, *crypt.Identities, *catalog.Encryption) {
	id, _ := age.GenerateX25519Identity()
	rs, _ := crypt.ParseRecipients([]string{id.Recipient().String()})
	ids, _ := crypt.ParseIdentities(strings.NewReader(id.String()))
	var sealed bytes.Buffer
	w, _ := rs.Encrypt(&sealed)
	w.Write(data)
	w.Close()
	return sealed.Bytes(), ids, &catalog.Encryption{Scheme: crypt.Scheme, RecipientFingerprints: rs.Fingerprints()}
}

func TestHashedCopy(t *testing.T) {
	data := make([]byte, 5<<20+12345) // several buffers and a partial one
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(data)
	want := sha256.Sum256(data)
	for _, tc := range []struct {
		name string
		r    func() io.Reader
	}{
		{"whole reads", func() io.Reader { return bytes.NewReader(data) }},
		{"half reads", func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) }},
		{"data with EOF", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			h := sha256.New()
			if err := hashedCopy(&out, tc.r(), h); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), data) {
				t.Fatalf("wrote %d bytes, not the %d read", out.Len(), len(data))
			}
			if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
				t.Fatalf("hash %x, want %x", got, want)
			}
		})
	}

	boom := errors.New("boom")
	if err := hashedCopy(io.Discard, io.MultiReader(bytes.NewReader(data[:3<<20]), iotest.ErrReader(boom)), sha256.New()); !errors.Is(err, boom) {
		t.Errorf("failing reader: err = %v, want %v", err, boom)
	}
	w := &failAfter{n: 2 << 20, err: boom}
	if err := hashedCopy(w, bytes.NewReader(data), sha256.New()); !errors.Is(err, boom) {
		t.Errorf("failing writer: err = %v, want %v", err, boom)
	}
}

// failAfter accepts n bytes, then fails.
type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		return 0, f.err
	}
	f.n -= len(p)
	return len(p), nil
}

// The spool of a 48 MiB artifact from a local destination, in the page
// cache: reading, hashing and writing it is all a restore adds before the
// target is touched.
func BenchmarkSpoolStored(b *testing.B) {
	data := make([]byte, 48<<20)
	rng := rand.NewChaCha8([32]byte{2})
	rng.Read(data)
	store, err := local.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(data)
	m := &catalog.Manifest{Format: catalog.FormatVersion, ID: catalog.NewID(time.Now()), Target: "orders", Compression: "zstd",
		Artifacts: []catalog.Artifact{{Name: "dump.pgdump.zst", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}}}
	ctx := context.Background()
	if err := store.Put(ctx, catalog.Key("orders", m.ID, "dump.pgdump.zst"), bytes.NewReader(data)); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		sp, err := SpoolStored(ctx, store, m, m.Artifacts[0], nil, dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		sp.Remove()
	}
}
