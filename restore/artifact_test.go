package restore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/backproof/backproof/catalog"
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
			rc, err := OpenArtifact(ctx, store, m, m.Artifacts[0])
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
