package redis_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/redis"
	"github.com/backproof/backproof/engine/redis/rdb"
	"github.com/backproof/backproof/internal/sample"
	"github.com/backproof/backproof/internal/testenv"
)

func redisServer(t *testing.T, name string) testenv.RedisServer {
	t.Helper()
	for _, s := range testenv.RedisServers {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no test server %s", name)
	return testenv.RedisServer{}
}

// Valkey 9 sends its own RDB version (80, "VALKEY080") to a replica that
// announces its version, and aborts a sync to one that does not when a hash
// field has its own expiry. The valkey engine gets RDB 80 with such a hash,
// reads it, restores it into Valkey 9, and Redis 7 refuses it before the
// first key, naming the RDB version.
func TestValkey9(t *testing.T) {
	src := redisServer(t, "valkey-9.1").Start(t, "requirepass "+sentinel)
	c := src.Conn(t)
	if err := sample.SeedRedis(c); err != nil {
		t.Fatal(err)
	}
	c.Must("HSET", "hash:ttl", "keep", "1", "goes", "2")
	c.Must("HEXPIRE", "hash:ttl", "3600", "FIELDS", "1", "goes")
	want, err := sample.RedisSnapshot(c, 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	dsn := src.DSN("", sentinel)

	// The redis engine refuses a Valkey server, naming the engine to use.
	var out bytes.Buffer
	if _, err := redis.New(dsn).Dump(context.Background(), &out); err == nil || !strings.Contains(err.Error(), "Valkey 9.1") ||
		!strings.Contains(err.Error(), "set the target's engine to valkey") {
		t.Fatalf("redis engine on Valkey: %v", err)
	}

	e := redis.New(dsn, redis.WithFlavor(redis.Valkey), redis.WithLogger(slog.New(slog.DiscardHandler)))
	out.Reset()
	info, err := e.Dump(context.Background(), &out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(info.ServerVersion, "9.1.") || info.Tools["rdb"] != "80" || !bytes.HasPrefix(out.Bytes(), []byte("VALKEY080")) {
		t.Fatalf("server %s, rdb %s, header %q", info.ServerVersion, info.Tools["rdb"], out.Bytes()[:9])
	}
	sum, err := rdb.Scan(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Valkey 9 snapshot: %d bytes, keys %v, unreadable: %v", out.Len(), sum.Keys, sum.Unreadable)
	path := filepath.Join(t.TempDir(), "dump.rdb")
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	old := redisServer(t, "redis-7.0").Start(t)
	err = e.RestoreInto(context.Background(), old.DSN("", ""), path, info, engine.RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "the backup is RDB version 80") || !strings.Contains(err.Error(), "Redis 7.0") ||
		!strings.Contains(err.Error(), "not touched") {
		t.Fatalf("restore into Redis 7: %v", err)
	}
	if n := old.Conn(t).Must("DBSIZE"); n != int64(0) {
		t.Errorf("the refused restore wrote %v keys", n)
	}

	if sum.Unreadable != nil {
		t.Fatalf("Valkey 9's RDB is unreadable to this build: %v", sum.Unreadable)
	}
	dst := redisServer(t, "valkey-9.1").Start(t)
	if err := e.RestoreInto(context.Background(), dst.DSN("", ""), path, info, engine.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := sample.RedisSnapshot(dst.Conn(t), 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	if diffs := sample.DiffRedis(want, got, 1000); len(diffs) > 0 {
		t.Errorf("restored Valkey 9 differs:\n%s", strings.Join(diffs, "\n"))
	}
	if ttl := dst.Conn(t).Must("HTTL", "hash:ttl", "FIELDS", "2", "keep", "goes"); len(ttl.([]any)) != 2 || ttl.([]any)[0] != int64(-1) || ttl.([]any)[1].(int64) < 3500 {
		t.Errorf("field TTLs after restore: %v", ttl)
	}
}
