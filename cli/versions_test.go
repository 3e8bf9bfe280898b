package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/backproof/backproof/internal/sample"
	"github.com/backproof/backproof/internal/testenv"
)

// The versions matrix (README, Supported versions): for every PostgreSQL,
// Redis and Valkey test server, backup -> verify in a sandbox of the
// source's own major -> restore --to a server of the same major, and of a
// newer one where the engine allows it; an older one is refused before the
// target is touched.
//
// This host's pg_dump and pg_restore are 15's. Sources of a newer major are
// dumped with that major's pg_dump run from its image (a wrapper on PATH,
// as the daemon image would carry it); verification then runs on this
// host's pg_restore 15, so the sandbox's own pg_restore must restore.
func TestVersionsPostgres(t *testing.T) {
	image := testenv.PostgresImageTemplate(t)
	testenv.NoSandboxesLeft(t)
	ctx := context.Background()
	servers := testenv.PostgresServers
	hostPath := os.Getenv("PATH")
	for i, src := range servers {
		t.Run(src.Name(), func(t *testing.T) {
			dsn := src.NewDB(t)
			if err := sample.Seed(ctx, dsn, 400); err != nil {
				t.Fatal(err)
			}
			want, err := sample.Counts(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			cfg := twoDestConfig(t, testenv.S3(t).SecretKey,
				fmt.Sprintf("sandbox:\n  images: {postgres: %q}\n  memory: 1GiB\n  timeout: 5m", image),
				"app", "postgres", dsn, "")
			newTools := hostPath
			if src.Major > 15 {
				newTools = src.Tools(t) + ":" + hostPath
			}

			t.Setenv("PATH", newTools)
			id := backupCommitted(t, cfg)
			m, _ := localManifestFor(t, cfg, "app", id)
			if !strings.HasPrefix(m.ServerVersion, fmt.Sprint(src.Major)+".") || !strings.HasPrefix(m.Tools["pg_dump"], fmt.Sprint(src.Major)+".") {
				t.Fatalf("manifest: server %q, pg_dump %q", m.ServerVersion, m.Tools["pg_dump"])
			}

			// Verification with this host's tools only (pg_restore 15).
			t.Setenv("PATH", hostPath)
			r := runCLI(t, ctx, "verify", "app", "-c", cfg, "--destination", "local", "--json")
			if r.code != 0 {
				t.Fatalf("verify exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if vs := decode[verifyDoc](t, r.stdout).Verifications; len(vs) != 1 || vs[0].Outcome != "pass" {
				t.Errorf("verify: %+v", vs)
			}

			for j, dst := range servers {
				t.Run("to "+dst.Name(), func(t *testing.T) {
					to := dst.NewDB(t)
					if j < i {
						r := runCLI(t, ctx, "restore", "app", "-c", cfg, "--to", to)
						if r.code != ExitError || !strings.Contains(r.stderr, "older major") || !strings.Contains(r.stderr, fmt.Sprintf("PostgreSQL %d or newer", src.Major)) ||
							!strings.Contains(r.stderr, "not touched") {
							t.Fatalf("restore into an older major: exit %d: %s", r.code, r.stderr)
						}
						if n := objects(t, to); n != 0 {
							t.Errorf("the refused restore left %d objects in the target", n)
						}
						return
					}
					if src.Major > 15 {
						// This host's pg_restore cannot read the archive: refused, naming the version.
						r := runCLI(t, ctx, "restore", "app", "-c", cfg, "--to", to)
						if r.code != ExitError || !strings.Contains(r.stderr, fmt.Sprintf("PostgreSQL %d client tools", src.Major)) || !strings.Contains(r.stderr, "not touched") {
							t.Fatalf("restore with pg_restore 15: exit %d: %s", r.code, r.stderr)
						}
						t.Setenv("PATH", newTools)
					}
					if r := runCLI(t, ctx, "restore", "app", "-c", cfg, "--to", to); r.code != 0 {
						t.Fatalf("restore --to exit %d: %s", r.code, r.stderr)
					}
					got, err := sample.Counts(ctx, to)
					if err != nil {
						t.Fatal(err)
					}
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Errorf("restored counts %v, source %v", got, want)
					}
				})
			}
		})
	}
}

// objects counts the tables in the database at dsn.
func objects(t *testing.T, dsn string) int {
	t.Helper()
	counts, err := sample.Counts(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	return len(counts)
}

// Redis and Valkey: every version restores into its own major and a newer
// one of its flavor; an RDB version the target cannot read is refused
// before the first key, naming the version (Valkey 9's RDB 80 in Redis 7).
func TestVersionsRedis(t *testing.T) {
	testenv.NoSandboxesLeft(t)
	ctx := context.Background()
	images := map[string]string{}
	for _, s := range testenv.RedisServers {
		images[s.Flavor] = strings.Replace(s.Image(t), fmt.Sprint(":", s.Major), ":{major}", 1)
	}
	// Restores refused: an RDB version the target cannot read (Redis 8
	// writes RDB 12, Valkey 8.1 11, Valkey 9.1 80; Valkey refuses 12-79).
	refused := map[[2]string]bool{
		{"redis-8.0", "redis-7.0"}: true, {"redis-8.0", "valkey-8.1"}: true, {"redis-8.0", "valkey-9.1"}: true,
		{"valkey-8.1", "redis-7.0"}: true,
		{"valkey-9.1", "redis-7.0"}: true, {"valkey-9.1", "redis-8.0"}: true, {"valkey-9.1", "valkey-8.1"}: true,
	}
	for _, src := range testenv.RedisServers {
		t.Run(src.Name, func(t *testing.T) {
			srv := src.Start(t, "requirepass "+sentinel)
			if err := sample.SeedRedis(srv.Conn(t)); err != nil {
				t.Fatal(err)
			}
			snap, err := sample.RedisSnapshot(srv.Conn(t), 0, 5)
			if err != nil {
				t.Fatal(err)
			}
			top := fmt.Sprintf("sandbox:\n  images: {redis: %q, valkey: %q}\n  memory: 512MiB\n  timeout: 5m", images["redis"], images["valkey"])
			cfg := twoDestConfig(t, testenv.S3(t).SecretKey, top, "cache", src.Flavor, srv.DSN("", sentinel), "")
			id := backupCommitted(t, cfg)
			m, _ := localManifestFor(t, cfg, "cache", id)
			if m.Engine != src.Flavor || !strings.HasPrefix(m.ServerVersion, fmt.Sprint(src.Major)+".") {
				t.Fatalf("manifest: engine %s, server %s", m.Engine, m.ServerVersion)
			}
			t.Logf("%s writes RDB version %s", src.Name, m.Tools["rdb"])

			r := runCLI(t, ctx, "verify", "cache", "-c", cfg, "--destination", "local", "--json")
			if r.code != 0 {
				t.Fatalf("verify exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if vs := decode[verifyDoc](t, r.stdout).Verifications; len(vs) != 1 || vs[0].Outcome != "pass" {
				t.Errorf("verify: %+v", vs)
			}

			for _, dst := range testenv.RedisServers {
				t.Run("to "+dst.Name, func(t *testing.T) {
					ok := !refused[[2]string{src.Name, dst.Name}]
					target := dst.Start(t, "requirepass "+sentinel)
					r := runCLI(t, ctx, "restore", "cache", "-c", cfg, "--to", target.DSN("", sentinel))
					if !ok {
						if r.code != ExitError || !strings.Contains(r.stderr, "the backup is RDB version "+m.Tools["rdb"]) || !strings.Contains(r.stderr, "not touched") {
							t.Fatalf("restore %s into %s: exit %d, want a refusal naming RDB version %s: %s", src.Name, dst.Name, r.code, m.Tools["rdb"], r.stderr)
						}
						if n := target.Conn(t).Must("DBSIZE"); n != int64(0) {
							t.Errorf("the refused restore left %v keys", n)
						}
						return
					}
					if r.code != 0 {
						t.Fatalf("restore --to exit %d: %s", r.code, r.stderr)
					}
					got, err := sample.RedisSnapshot(target.Conn(t), 0, 5)
					if err != nil {
						t.Fatal(err)
					}
					if diffs := sample.DiffRedis(snap, got, 1000); len(diffs) > 0 {
						t.Errorf("restored server differs from the source:\n%s", strings.Join(diffs, "\n"))
					}
				})
			}
		})
	}
}
