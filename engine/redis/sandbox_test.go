package redis_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/redis"
	"github.com/backproof/backproof/engine/redis/rdb"
	"github.com/backproof/backproof/internal/sample"
	"github.com/backproof/backproof/internal/testenv"
	"github.com/backproof/backproof/sandbox/docker"
)

type sandboxEnv struct {
	d     *docker.Docker
	image string
}

func newSandboxEnv(t *testing.T) *sandboxEnv {
	t.Helper()
	image := testenv.RedisImage(t)
	testenv.NoSandboxesLeft(t)
	d, err := docker.New(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return &sandboxEnv{d: d, image: image}
}

// start does what verification does: Preload, then start the sandbox.
func (s *sandboxEnv) start(t *testing.T, e *redis.Engine, path string, info *engine.DumpInfo) (engine.Server, error) {
	t.Helper()
	ctx := context.Background()
	spec, srv := e.Sandbox(s.image, "sandbox-pw-3f9a", nil)
	spec.Memory, spec.CPUs, spec.Deadline = 512<<20, 1, time.Now().Add(5*time.Minute)
	if err := e.Preload(ctx, &spec, srv, path, info); err != nil {
		return srv, err
	}
	inst, err := s.d.Start(ctx, spec)
	if err != nil {
		return srv, e.LoadFailed(err)
	}
	t.Cleanup(func() { inst.Close(context.Background()) })
	srv.Host, srv.Port = inst.Addr()
	return srv, nil
}

func TestSandbox(t *testing.T) {
	s := newSandboxEnv(t)
	src, dsn := source(t)
	src.Conn(t).Must("SET", "soon:gone", "x", "PX", "1000")
	want, err := sample.RedisSnapshot(src.Conn(t), 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	path, info := spool(t, dsn)
	time.Sleep(1100 * time.Millisecond) // soon:gone has expired when the sandbox loads the file

	e := redis.New(dsn)
	ctx := context.Background()
	srv, err := s.start(t, e, path, info)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := e.Open(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close(ctx)
	// Every key of the snapshot is there, the expired one too: the counts
	// match the manifest however old the backup.
	st, err := cp.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Tables) != 2 || st.Tables[0] != info.Source.Tables[0] || st.Tables[1] != info.Source.Tables[1] || st.Tables[0].Rows != sample.Redis[0]+1 {
		t.Errorf("observed %+v, manifest %+v", st.Tables, info.Source.Tables)
	}
	// Reads treat it as gone, as the source would now.
	if v, err := cp.Query(ctx, "EXISTS soon:gone"); err != nil || v.Text != "0" {
		t.Errorf("EXISTS soon:gone: %+v %v", v, err)
	}
	delete(want, "0:soon:gone")
	got, err := sample.RedisSnapshot((&testenv.Redis{Port: srv.Port, Password: srv.Password}).Conn(t), 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	if diffs := sample.DiffRedis(want, got, 0); len(diffs) > 0 {
		t.Fatalf("sandbox differs from the source:\n%s", strings.Join(diffs, "\n"))
	}
	if _, err := cp.Query(ctx, "db0: TYPE str:plain"); err != nil {
		t.Error(err)
	}
}

func TestSandboxBadRDB(t *testing.T) {
	s := newSandboxEnv(t)
	_, dsn := source(t)
	path, info := spool(t, dsn)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	e := redis.New(dsn)
	variant := func(f func(b []byte) []byte) string {
		p := filepath.Join(t.TempDir(), "dump.rdb")
		if err := os.WriteFile(p, f(bytes.Clone(good)), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	resum := func(b []byte) []byte {
		binary.LittleEndian.PutUint64(b[len(b)-8:], rdb.CRC64(0, b[:len(b)-8]))
		return b
	}

	t.Run("flipped byte: refused before a sandbox starts", func(t *testing.T) {
		_, err := s.start(t, e, variant(func(b []byte) []byte { b[len(b)/3] ^= 0x08; return b }), info)
		if !errors.Is(err, engine.ErrRestore) || !strings.Contains(err.Error(), "CRC-64") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("truncated: refused before a sandbox starts", func(t *testing.T) {
		_, err := s.start(t, e, variant(func(b []byte) []byte { return b[:len(b)-1000] }), info)
		if !errors.Is(err, engine.ErrRestore) || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("checksum right, content wrong: the server refuses it", func(t *testing.T) {
		// A writer's bug: a value type no server knows, with a valid CRC.
		p := variant(func(b []byte) []byte {
			i := bytes.Index(b, []byte("\x00\x09str:plain"))
			if i < 0 {
				t.Fatal("key not found in the dump")
			}
			b[i] = 200
			return resum(b)
		})
		_, err := s.start(t, e, p, info)
		if !errors.Is(err, engine.ErrRestore) || !strings.Contains(err.Error(), "rejected the RDB file") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("RDB version too new for the image: not the backup's fault", func(t *testing.T) {
		p := variant(func(b []byte) []byte { copy(b[5:9], "0099"); return resum(b) })
		_, err := s.start(t, e, p, info)
		if err == nil || errors.Is(err, engine.ErrRestore) || !strings.Contains(err.Error(), "set sandbox.images.redis to an image of the backup's source version") {
			t.Fatalf("%v", err)
		}
	})
}
