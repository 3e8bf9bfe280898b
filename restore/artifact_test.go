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
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/destination/local"
)

func TestOpenArtifactDetectsDamage(t *testing.T) {
	plain := bytes.Repeat([]byte("PGDMP order rows "), 50000)
	enc, _ := zstd.NewWriter(nil)
	stored := enc.EncodeAll(plain, nil)
	sum := sha256.Sum256(stored)
	id := catalog.NewID(time.Now())
	m := &catalog.Manifest{Format: catalog.FormatVersion, ID: id, Target: "orders", Compression: "zstd",
		Artifacts: []catalog.Artifact{{Name: "dump.pgdump.zst", Size: int64(len(stored)), SHA256: hex.EncodeToString(sum[:])}}}

	flipped := append([]byte(nil), stored...)
	flipped[len(flipped)/2] ^= 0x01
	cases := map[string][]byte{
		"intact":    stored,
		"flipped":   flipped,
		"truncated": stored[:len(stored)-100],
		"extended":  append(append([]byte(nil), stored...), 0),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			store, err := local.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := store.Put(ctx, catalog.Key("orders", id, "dump.pgdump.zst"), bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			rc, err := OpenArtifact(ctx, store, m, m.Artifacts[0], nil)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if name == "intact" {
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("intact artifact: %v, %d bytes", err, len(got))
				}
				return
			}
			if !errors.Is(err, ErrChecksumMismatch) {
				t.Fatalf("%s artifact read with err = %v, want ErrChecksumMismatch", name, err)
			}
		})
	}
}

func TestOpenEncryptedArtifact(t *testing.T) {
	ctx := context.Background()
	plain := bytes.Repeat([]byte("PGDMP order rows "), 50000)
	zenc, _ := zstd.NewWriter(nil)
	compressed := zenc.EncodeAll(plain, nil)

	keys := func(t *testing.T) (*crypt.Recipients, *crypt.Identities) {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		rs, err := crypt.ParseRecipients([]string{id.Recipient().String()})
		if err != nil {
			t.Fatal(err)
		}
		ids, err := crypt.ParseIdentities(strings.NewReader(id.String()))
		if err != nil {
			t.Fatal(err)
		}
		return rs, ids
	}
	seal := func(t *testing.T, rs *crypt.Recipients, data []byte) []byte {
		var b bytes.Buffer
		w, err := rs.Encrypt(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	rs, ids := keys(t)
	_, wrong := keys(t)
	stored := seal(t, rs, compressed)
	const name = "dump.pgdump.zst.age"
	manifest := func(data []byte, fps []string) *catalog.Manifest {
		sum := sha256.Sum256(data)
		return &catalog.Manifest{Format: catalog.FormatVersion, ID: catalog.NewID(time.Now()), Target: "orders", Compression: "zstd",
			Encryption: &catalog.Encryption{Scheme: crypt.Scheme, RecipientFingerprints: fps},
			Artifacts:  []catalog.Artifact{{Name: name, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}}}
	}
	// A byte of the recipient stanza's body changed: the key no longer
	// unwraps, which age reports like a wrong identity.
	stanza := append([]byte(nil), stored...)
	lines := bytes.SplitN(stanza, []byte("\n"), 4)
	body := len(lines[0]) + 1 + len(lines[1]) + 1 + 5
	stanza[body] = map[bool]byte{true: 'B', false: 'A'}[stanza[body] == 'A']
	payload := append([]byte(nil), stored...)
	payload[len(payload)-200] ^= 0x01
	uncompressed := seal(t, rs, plain)

	cases := []struct {
		name   string
		stored []byte // nil: not stored at all
		m      *catalog.Manifest
		ids    *crypt.Identities
		want   error // nil: decrypts to plain
	}{
		{"intact", stored, manifest(stored, rs.Fingerprints()), ids, nil},
		{"no identity, nothing downloaded", nil, manifest(stored, rs.Fingerprints()), nil, ErrNoIdentity},
		{"wrong identity, nothing downloaded", nil, manifest(stored, rs.Fingerprints()), wrong, crypt.ErrNoMatchingKey},
		{"wrong identity, manifest names no recipient", stored, manifest(stored, nil), wrong, crypt.ErrNoMatchingKey},
		{"stanza damaged", stanza, manifest(stored, rs.Fingerprints()), ids, ErrChecksumMismatch},
		{"payload damaged", payload, manifest(stored, rs.Fingerprints()), ids, ErrChecksumMismatch},
		{"truncated", stored[:len(stored)-100], manifest(stored, rs.Fingerprints()), ids, ErrChecksumMismatch},
		{"header damaged", append([]byte("AGE"), stored[3:]...), manifest(stored, rs.Fingerprints()), ids, ErrChecksumMismatch},
		{"written wrong: not compressed", uncompressed, manifest(uncompressed, rs.Fingerprints()), ids, ErrUndecodable},
		{"written wrong: not encrypted", compressed, manifest(compressed, rs.Fingerprints()), ids, ErrUndecodable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store, err := local.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if tc.stored != nil {
				if err := store.Put(ctx, catalog.Key("orders", tc.m.ID, name), bytes.NewReader(tc.stored)); err != nil {
					t.Fatal(err)
				}
			}
			var got []byte
			rc, err := OpenArtifact(ctx, store, tc.m, tc.m.Artifacts[0], tc.ids)
			if err == nil {
				got, err = io.ReadAll(rc)
				rc.Close()
			}
			if tc.want == nil {
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("read %d bytes, err %v", len(got), err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if IsBad(err) == KeyProblem(err) {
				t.Errorf("IsBad %v, KeyProblem %v: exactly one must hold for %v", IsBad(err), KeyProblem(err), err)
			}
		})
	}

	t.Run("plaintext backup, identities at hand", func(t *testing.T) {
		// Backups taken before encryption was turned on stay readable.
		store, err := local.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		m := manifest(compressed, nil)
		m.Encryption, m.Artifacts[0].Name = nil, "dump.pgdump.zst"
		if err := store.Put(ctx, catalog.Key("orders", m.ID, "dump.pgdump.zst"), bytes.NewReader(compressed)); err != nil {
			t.Fatal(err)
		}
		path, err := Spool(ctx, store, m, m.Artifacts[0], ids, t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, plain) || filepath.Base(path) != "dump.pgdump" {
			t.Errorf("spooled %s: %d bytes, %v", path, len(got), err)
		}
	})

	t.Run("unknown scheme", func(t *testing.T) {
		m := manifest(stored, rs.Fingerprints())
		m.Encryption.Scheme = "rot13"
		if err := CheckKeys(m, ids); err == nil || IsBad(err) || !strings.Contains(err.Error(), `"rot13"`) {
			t.Errorf("err = %v", err)
		}
	})
}

// flaky is a destination whose downloads break off after half the object.
type flaky struct{ destination.Destination }

var errReset = errors.New("read tcp 127.0.0.1:9000: connection reset by peer")

func (f flaky) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := f.Destination.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	obj, err := f.Destination.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, obj.Size/2), iotest.ErrReader(errReset)), rc}, nil
}

// A download that breaks off is the destination's failure, never a bad
// backup, whether the decoder or the decrypter sees it first.
func TestBrokenDownloadIsNotABadBackup(t *testing.T) {
	ctx := context.Background()
	plain := make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{1}).Read(plain) // incompressible: the stored stream is large
	zenc, _ := zstd.NewWriter(nil)
	compressed := zenc.EncodeAll(plain, nil)
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
			store, err := local.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(tc.stored)
			m := &catalog.Manifest{Format: catalog.FormatVersion, ID: catalog.NewID(time.Now()), Target: "orders", Compression: "zstd", Encryption: tc.enc,
				Artifacts: []catalog.Artifact{{Name: tc.name, Size: int64(len(tc.stored)), SHA256: hex.EncodeToString(sum[:])}}}
			if err := store.Put(ctx, catalog.Key("orders", m.ID, tc.name), bytes.NewReader(tc.stored)); err != nil {
				t.Fatal(err)
			}
			_, err = Spool(ctx, flaky{store}, m, m.Artifacts[0], ids, t.TempDir(), nil)
			if !errors.Is(err, errReset) || IsBad(err) {
				t.Fatalf("err = %v (bad backup: %v), want the read error and not a bad backup", err, IsBad(err))
			}
		})
	}
}
