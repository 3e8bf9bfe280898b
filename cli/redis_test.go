package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/internal/sample"
	"github.com/backproof/backproof/internal/testenv"
)

// redisSource starts a seeded Redis whose password is the sentinel.
func redisSource(t *testing.T, conf ...string) *testenv.Redis {
	t.Helper()
	r := testenv.StartRedis(t, append([]string{"requirepass " + sentinel, "repl-diskless-sync-delay 0"}, conf...)...)
	if err := sample.SeedRedis(r.Conn(t)); err != nil {
		t.Fatal(err)
	}
	return r
}

// redisConfig is a config with target "cache" on dsn, backed up to a local
// and a MinIO destination, verified in the redis sandbox image with checks.
func redisConfig(t *testing.T, dsn string) string {
	t.Helper()
	top := fmt.Sprintf("sandbox:\n  images: {redis: %q}\n  memory: 512MiB\n  cpus: 1\n  timeout: 5m", testenv.RedisImage(t))
	return twoDestConfig(t, testenv.S3(t).SecretKey, top, "cache", "redis", dsn, `    verify:
      checks:
        - {name: session-present, query: "db0: EXISTS ttl:session", expect: "= 1"}
        - {name: big-hash, query: "db0: HLEN hash:big", expect: ">= 1000"}
        - {name: db5-keys, query: "db5: DBSIZE", expect: "= 3"}`)
}

// A backup whose RDB is damaged although its artifact matches the manifest
// (a writer that stored a broken snapshot) fails verification and restores
// with exit 3, and no restore touches anything.
func TestRedisDamagedRDB(t *testing.T) {
	testenv.NoSandboxesLeft(t)
	src := redisSource(t)
	cfg := redisConfig(t, src.DSN("", sentinel))
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
		want   string
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)*2/3] }, "corrupt RDB: truncated"},
		{"flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b }, "corrupt RDB: CRC-64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := backupCommitted(t, cfg)
			rewriteArtifact(t, cfg, id, tc.damage)
			r := runCLI(t, ctx, "verify", "cache", "-c", cfg, "--backup", id, "--destination", "local")
			if r.code != ExitBadBackup || !strings.Contains(r.stdout, "FAIL") || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("verify: exit %d, want 3 with %q:\n%s\n%s", r.code, tc.want, r.stdout, r.stderr)
			}
			dst := testenv.StartRedis(t)
			r = runCLI(t, ctx, "restore", "cache", "-c", cfg, "--backup", id, "--from", "local", "--to", dst.DSN("", ""))
			if r.code != ExitBadBackup || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "the target was not touched") {
				t.Fatalf("restore --to: exit %d: %s", r.code, r.stderr)
			}
			if n := dst.Conn(t).Must("DBSIZE"); n != int64(0) {
				t.Errorf("a damaged backup wrote %v keys", n)
			}
			r = runCLI(t, ctx, "restore", "cache", "-c", cfg, "--backup", id, "--from", "local", "--sandbox", "--keep", "1s")
			if r.code != ExitBadBackup {
				t.Fatalf("restore --sandbox: exit %d: %s", r.code, r.stderr)
			}
			// The copy on MinIO was not touched and still passes.
			if r := runCLI(t, ctx, "verify", "cache", "-c", cfg, "--backup", id, "--destination", "offsite"); r.code != 0 {
				t.Fatalf("offsite copy: exit %d: %s", r.code, r.stderr)
			}
		})
	}
}

// rewriteArtifact replaces the RDB of the local copy of a backup with a
// damaged one, and its manifest's size and SHA-256 with the new file's, as
// a writer that stored a broken snapshot would have.
func rewriteArtifact(t *testing.T, cfg, id string, damage func([]byte) []byte) {
	t.Helper()
	m, _ := localManifestFor(t, cfg, "cache", id)
	path := filepath.Join(localPath(t, cfg), catalog.Key("cache", id, m.Artifacts[0].Name))
	stored, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := zstd.NewReader(bytes.NewReader(stored))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(dec)
	dec.Close()
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := zstd.NewWriter(nil)
	out := enc.EncodeAll(damage(raw), nil)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(out)
	m.Artifacts[0].Size, m.Artifacts[0].SHA256 = int64(len(out)), hex.EncodeToString(sum[:])
	data, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(localPath(t, cfg), catalog.Key("cache", id, catalog.ManifestName)), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// redisAt makes a test client for a redis:// URL on loopback.
func redisAt(t *testing.T, dsn string) *testenv.Redis {
	t.Helper()
	var port int
	var pw string
	_, rest, _ := strings.Cut(dsn, "://:")
	pw, hostport, _ := strings.Cut(rest, "@")
	if _, err := fmt.Sscanf(hostport, "127.0.0.1:%d", &port); err != nil {
		t.Fatalf("sandbox DSN %q: %v", dsn, err)
	}
	return &testenv.Redis{Port: port, Password: pw}
}
