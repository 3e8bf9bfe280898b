package backup

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"filippo.io/age"

	"github.com/backproof/backproof/crypt"
	"github.com/backproof/backproof/engine"
)

// BenchmarkPipeline measures what backproof adds to a dump, without a
// database: a synthetic 64 MiB COPY stream through zstd, age when encrypted,
// and SHA-256. Compare plain with encrypted:
//
//	go test -run '^$' -bench Pipeline -count 6 ./backup/ | tee /tmp/pipe.txt
func BenchmarkPipeline(b *testing.B) {
	data := copyRows(64 << 20)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	rs, err := crypt.ParseRecipients([]string{id.Recipient().String()})
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		rs   *crypt.Recipients
	}{{"plain", nil}, {"encrypted", rs}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			var stored int64
			for b.Loop() {
				hw := &hashWriter{w: io.Discard, h: sha256.New()}
				if _, err := dump(context.Background(), bytesEngine(data), tc.rs, hw); err != nil {
					b.Fatal(err)
				}
				stored = hw.n
			}
			b.ReportMetric(float64(stored)/float64(len(data)), "stored/dump")
		})
	}
}

// copyRows returns about n bytes of order-like COPY rows: ids, amounts,
// timestamps and random words, which zstd shrinks about 3:1.
func copyRows(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"pending", "shipped", "paid", "refunded", "widget", "gadget", "Berlin", "Lyon", "express", "standard"}
	out := make([]byte, 0, n+256)
	for i := 0; len(out) < n; i++ {
		out = fmt.Appendf(out, "%d\t%d\t%d.%02d\t2026-%02d-%02d %02d:%02d:%02d+00\t%s %s\t%x\n",
			i, r.IntN(100000), r.IntN(10000), r.IntN(100), 1+r.IntN(12), 1+r.IntN(28),
			r.IntN(24), r.IntN(60), r.IntN(60), words[r.IntN(len(words))], words[r.IntN(len(words))], r.Uint64())
	}
	return out
}

// bytesEngine "dumps" a fixed byte slice in 64 KiB writes, as pg_dump's
// pipe delivers them.
type bytesEngine []byte

func (e bytesEngine) Artifact() string { return "dump.bench" }

func (e bytesEngine) Dump(ctx context.Context, w io.Writer) (*engine.DumpInfo, error) {
	for p := []byte(e); len(p) > 0; {
		n := min(len(p), 64<<10)
		if _, err := w.Write(p[:n]); err != nil {
			return nil, err
		}
		p = p[n:]
	}
	return &engine.DumpInfo{}, nil
}
