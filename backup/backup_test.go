package backup_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/crypt"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/destination/local"
	"github.com/backproof/backproof/destination/s3"
	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/postgres"
	"github.com/backproof/backproof/internal/sample"
	"github.com/backproof/backproof/internal/testenv"
	"github.com/backproof/backproof/restore"
)

func newLocal(t *testing.T) backup.Destination {
	t.Helper()
	s, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return backup.Destination{Name: "local", Destination: s}
}

func newS3(t *testing.T) backup.Destination {
	t.Helper()
	env := testenv.S3(t)
	bucket := testenv.NewBucket(t, env)
	s, err := s3.New(context.Background(), s3.Config{
		Bucket: bucket, Prefix: "prod", Region: env.Region, Endpoint: env.Endpoint, PathStyle: true,
		AccessKeyID: env.AccessKey, SecretAccessKey: env.SecretKey, PartSize: 5 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	return backup.Destination{Name: "minio", Destination: s}
}

func seededDB(t *testing.T, orders int) string {
	t.Helper()
	dsn := testenv.NewPostgresDB(t)
	if err := sample.Seed(context.Background(), dsn, orders); err != nil {
		t.Fatal(err)
	}
	return dsn
}

func pgTarget(t *testing.T, dsn string, dests ...backup.Destination) backup.Target {
	return backup.Target{
		Name:         "orders",
		EngineName:   "postgres",
		Engine:       postgres.New(dsn, postgres.WithBinDirs(testenv.PostgresBin(t))),
		Destinations: dests,
	}
}

func manifestCounts(m *catalog.Manifest) map[string]int64 {
	c := map[string]int64{}
	for _, tb := range m.Source.Tables {
		c[tb.Schema+"."+tb.Name] = tb.Rows
	}
	return c
}

// restoreCopy restores one destination's copy into a fresh database and
// returns that database's row counts.
func restoreCopy(t *testing.T, d destination.Destination, m *catalog.Manifest) map[string]int64 {
	t.Helper()
	return restoreWith(t, d, m, nil)
}

// restoreWith is restoreCopy of an encrypted backup.
func restoreWith(t *testing.T, d destination.Destination, m *catalog.Manifest, ids *crypt.Identities) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	path, err := restore.Spool(ctx, d, m, m.Artifacts[0], ids, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	into := testenv.NewPostgresDB(t)
	info := &engine.DumpInfo{Tools: m.Tools}
	if err := postgres.New("", postgres.WithBinDirs(testenv.PostgresBin(t))).RestoreInto(ctx, into, path, info, engine.RestoreOptions{Jobs: 2}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	counts, err := sample.Counts(ctx, into)
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

func storedSHA(t *testing.T, d destination.Destination, key string) (string, int64) {
	t.Helper()
	rc, err := d.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

func assertNoBackups(t *testing.T, dests ...backup.Destination) {
	t.Helper()
	for _, d := range dests {
		objs, err := d.List(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) != 0 {
			t.Errorf("%s holds %d objects after a failed backup, first %q", d.Name, len(objs), objs[0].Key)
		}
	}
}

func TestBackupToLocalAndS3(t *testing.T) {
	dsn := seededDB(t, 40000) // ~100k rows over six tables
	source, err := sample.Counts(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	dests := []backup.Destination{newLocal(t), newS3(t)}
	res, err := (&backup.Runner{Version: "test"}).Run(context.Background(), pgTarget(t, dsn, dests...))
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if !res.Committed() {
		t.Fatalf("not committed everywhere: %+v", res.Destinations)
	}
	var total int64
	for _, n := range source {
		total += n
	}
	if total < 95000 || len(source) < 6 {
		t.Fatalf("sample too small: %d rows in %d tables", total, len(source))
	}
	if got := manifestCounts(res.Manifest); !equalCounts(got, source) {
		t.Fatalf("manifest counts %v, source %v", got, source)
	}
	for _, d := range dests {
		l, err := catalog.List(context.Background(), d, "orders")
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Backups) != 1 || len(l.Debris) != 0 {
			t.Fatalf("%s: listing %+v", d.Name, l)
		}
		m, err := catalog.ReadManifest(context.Background(), d, "orders", l.Backups[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if m.ServerVersion == "" || m.Tools["pg_dump"] == "" || m.Engine != "postgres" || m.Compression != "zstd" {
			t.Errorf("%s: manifest lacks versions: %+v", d.Name, m)
		}
		a := m.Artifacts[0]
		sum, size := storedSHA(t, d, catalog.Key("orders", m.ID, a.Name))
		if sum != a.SHA256 || size != a.Size {
			t.Errorf("%s: stored %s/%d, manifest %s/%d", d.Name, sum, size, a.SHA256, a.Size)
		}
		if got := restoreCopy(t, d, m); !equalCounts(got, manifestCounts(m)) {
			t.Errorf("%s: restored counts %v, manifest %v", d.Name, got, manifestCounts(m))
		}
	}
}

// An encrypted backup stores age files on every destination: no zstd frame,
// no pg_dump archive in sight, the manifest naming recipients by fingerprint.
func TestEncryptedBackupToLocalAndS3(t *testing.T) {
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
	dests := []backup.Destination{newLocal(t), newS3(t)}
	target := pgTarget(t, seededDB(t, 2000), dests...)
	target.Encrypt = rs
	res, err := (&backup.Runner{Version: "test"}).Run(context.Background(), target)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	m := res.Manifest
	if a := m.Artifacts[0]; a.Name != "dump.pgdump.zst.age" {
		t.Errorf("artifact %q, want dump.pgdump.zst.age", a.Name)
	}
	if e := m.Encryption; e == nil || e.Scheme != crypt.Scheme || !slices.Equal(e.RecipientFingerprints, rs.Fingerprints()) {
		t.Fatalf("manifest encryption %+v, want %s to %v", e, crypt.Scheme, rs.Fingerprints())
	}
	for _, d := range dests {
		a := m.Artifacts[0]
		sum, size := storedSHA(t, d, catalog.Key("orders", m.ID, a.Name))
		if sum != a.SHA256 || size != a.Size {
			t.Errorf("%s: stored %s/%d, manifest %s/%d: the checksum must cover the stored (encrypted) bytes", d.Name, sum, size, a.SHA256, a.Size)
		}
		stored := readObject(t, d, catalog.Key("orders", m.ID, a.Name))
		if !bytes.HasPrefix(stored, []byte(crypt.Header)) {
			t.Errorf("%s: stored bytes begin %q, want an age header", d.Name, stored[:min(len(stored), 24)])
		}
		if bytes.HasPrefix(stored, []byte{0x28, 0xb5, 0x2f, 0xfd}) || bytes.Contains(stored, []byte("PGDMP")) {
			t.Errorf("%s: stored bytes hold a zstd frame or pg_dump plaintext", d.Name)
		}
		raw := readObject(t, d, catalog.Key("orders", m.ID, catalog.ManifestName))
		if bytes.Contains(raw, []byte(id.Recipient().String())) || bytes.Contains(raw, []byte(id.String())) {
			t.Errorf("%s: the manifest holds a key:\n%s", d.Name, raw)
		}
		if got := restoreWith(t, d, m, ids); !equalCounts(got, manifestCounts(m)) {
			t.Errorf("%s: restored counts %v, manifest %v", d.Name, got, manifestCounts(m))
		}
		if _, err := restore.Spool(context.Background(), d, m, m.Artifacts[0], nil, t.TempDir(), nil); !errors.Is(err, restore.ErrNoIdentity) {
			t.Errorf("%s: spool without an identity: %v", d.Name, err)
		}
	}
}

func readObject(t *testing.T, d destination.Destination, key string) []byte {
	t.Helper()
	rc, err := d.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func equalCounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// gated holds every Put after its first bytes until release is closed, so a
// test can act while the dump is mid-stream.
type gated struct {
	destination.Destination
	started chan struct{}
	once    sync.Once
	release chan struct{}
}

func newGated(d destination.Destination) *gated {
	return &gated{Destination: d, started: make(chan struct{}), release: make(chan struct{})}
}

func (g *gated) Put(ctx context.Context, key string, r io.Reader) error {
	if strings.HasSuffix(key, catalog.ManifestName) {
		return g.Destination.Put(ctx, key, r)
	}
	return g.Destination.Put(ctx, key, &gateReader{r: r, g: g})
}

type gateReader struct {
	r    io.Reader
	g    *gated
	read int
}

func (gr *gateReader) Read(p []byte) (int, error) {
	if gr.read > 0 {
		gr.g.once.Do(func() { close(gr.g.started) })
		<-gr.g.release
	}
	n, err := gr.r.Read(p)
	gr.read += n
	return n, err
}

func TestCountsComeFromTheDumpSnapshot(t *testing.T) {
	dsn := seededDB(t, 20000)
	d := newLocal(t)
	g := newGated(d.Destination)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Insert rows the whole time the dump is running.
	var inserted atomic.Int64
	insertErr := make(chan error, 1)
	go func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			insertErr <- err
			return
		}
		defer conn.Close(context.Background())
		for ctx.Err() == nil {
			if _, err := conn.Exec(ctx, `INSERT INTO orders (customer_id, status, total_cents) VALUES (1, 'new', 1);
			  INSERT INTO order_items (order_id, sku, quantity, price_cents) VALUES (1, 'x', 1, 1)`); err != nil {
				if ctx.Err() != nil {
					err = nil // stopped by the test
				}
				insertErr <- err
				return
			}
			inserted.Add(1)
		}
		insertErr <- nil
	}()

	done := make(chan struct{})
	var res *backup.Result
	var runErr error
	go func() {
		defer close(done)
		res, runErr = (&backup.Runner{}).Run(ctx, pgTarget(t, dsn, backup.Destination{Name: "local", Destination: g}))
	}()
	<-g.started
	before := inserted.Load()
	for inserted.Load() < before+200 { // the source moves on while the dump waits
		time.Sleep(10 * time.Millisecond)
	}
	close(g.release)
	<-done
	cancel()
	if err := <-insertErr; err != nil {
		t.Fatalf("insert loop: %v", err)
	}
	if runErr != nil {
		t.Fatalf("backup: %v", runErr)
	}
	now, err := sample.Counts(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	recorded := manifestCounts(res.Manifest)
	if now["public.orders"] <= recorded["public.orders"] {
		t.Fatalf("no rows were inserted during the dump (%d now, %d recorded)", now["public.orders"], recorded["public.orders"])
	}
	if got := restoreCopy(t, d, res.Manifest); !equalCounts(got, recorded) {
		t.Errorf("restored counts %v differ from manifest %v", got, recorded)
	}
}

// pgDumpPID finds the pg_dump process dumping database db.
func pgDumpPID(t *testing.T, db string) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if filepath.Base(args[0]) == "pg_dump" && strings.Contains(string(cmdline), "/"+db) {
			return pid
		}
	}
	t.Fatalf("no pg_dump process for %s", db)
	return 0
}

func dbName(t *testing.T, dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

// A dump that dies mid-stream must fail the backup and leave nothing behind.
func TestDumpDiesMidStream(t *testing.T) {
	cases := map[string]func(t *testing.T, dsn string){
		"pg_dump killed": func(t *testing.T, dsn string) {
			if err := syscall.Kill(pgDumpPID(t, dbName(t, dsn)), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		},
		"connection terminated": func(t *testing.T, dsn string) {
			conn, err := pgx.Connect(context.Background(), testenv.PostgresDSN(t))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			var n int
			err = conn.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			  WHERE datname = $1 AND application_name = 'pg_dump'`, dbName(t, dsn)).Scan(&n)
			if err != nil || n != 1 {
				t.Fatalf("terminate pg_dump's connection: %d terminated, %v", n, err)
			}
		},
	}
	for name, kill := range cases {
		t.Run(name, func(t *testing.T) {
			// Large enough (a 26 MB dump) that the dump still needs the
			// server once the stalled pipeline's buffers (socket, pg_dump's
			// 1 MiB stdout buffer, pipe, reads, compression) are full.
			dsn := seededDB(t, 250000)
			l, m := newLocal(t), newS3(t)
			gl, gm := newGated(l.Destination), newGated(m.Destination)
			done := make(chan error, 1)
			go func() {
				_, err := (&backup.Runner{}).Run(context.Background(), pgTarget(t, dsn,
					backup.Destination{Name: "local", Destination: gl}, backup.Destination{Name: "minio", Destination: gm}))
				done <- err
			}()
			<-gl.started
			<-gm.started
			kill(t, dsn)
			close(gl.release)
			close(gm.release)
			err := <-done
			if err == nil {
				t.Fatal("backup succeeded although the dump died")
			}
			if !strings.Contains(err.Error(), "pg_dump") {
				t.Errorf("error does not name pg_dump: %v", err)
			}
			t.Logf("error: %v", err)
			assertNoBackups(t, l, m)
		})
	}
}

func TestOneDestinationDownOthersCommit(t *testing.T) {
	dsn := seededDB(t, 2000)
	env := testenv.S3(t)
	bucket := testenv.NewBucket(t, env)
	cases := map[string]s3.Config{
		"server down": {Bucket: bucket, Region: "us-east-1", Endpoint: "http://" + closedPort(t), PathStyle: true,
			AccessKeyID: env.AccessKey, SecretAccessKey: env.SecretKey},
		"wrong credentials": {Bucket: bucket, Region: "us-east-1", Endpoint: env.Endpoint, PathStyle: true,
			AccessKeyID: env.AccessKey, SecretAccessKey: "wrong-secret-key"},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := s3.New(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			l := newLocal(t)
			res, err := (&backup.Runner{}).Run(context.Background(), pgTarget(t, dsn, l, backup.Destination{Name: "offsite", Destination: s}))
			if err == nil {
				t.Fatal("Run reported success with a destination down")
			}
			if !strings.Contains(err.Error(), "offsite") {
				t.Errorf("error does not name the failed destination: %v", err)
			}
			if !res.Destinations[0].Committed || res.Destinations[1].Committed || res.Destinations[1].Error == "" {
				t.Fatalf("per-destination results: %+v", res.Destinations)
			}
			listing, err := catalog.List(context.Background(), l, "orders")
			if err != nil || len(listing.Backups) != 1 {
				t.Fatalf("local copy not committed: %+v %v", listing, err)
			}
		})
	}
}

// failAfter fails its Put after n bytes: a destination that dies mid-upload.
type failAfter struct {
	destination.Destination
	n int64
}

var errInjected = errors.New("injected destination failure")

func (f failAfter) Put(ctx context.Context, key string, r io.Reader) error {
	if _, err := io.CopyN(io.Discard, r, f.n); err != nil {
		return err
	}
	return errInjected
}

func TestDestinationDiesMidUpload(t *testing.T) {
	dsn := seededDB(t, 20000)
	good, bad := newLocal(t), newLocal(t)
	res, err := (&backup.Runner{}).Run(context.Background(), pgTarget(t, dsn, good,
		backup.Destination{Name: "flaky", Destination: failAfter{bad.Destination, 100 << 10}}))
	if !errors.Is(err, errInjected) {
		t.Fatalf("Run error = %v, want the injected failure", err)
	}
	if !res.Destinations[0].Committed || res.Destinations[1].Committed {
		t.Fatalf("results: %+v", res.Destinations)
	}
	assertNoBackups(t, bad)
	if got := restoreCopy(t, good, res.Manifest); !equalCounts(got, manifestCounts(res.Manifest)) {
		t.Errorf("surviving copy restores to %v", got)
	}
}

func TestEveryDestinationFails(t *testing.T) {
	dsn := seededDB(t, 20000)
	a, b := newLocal(t), newLocal(t)
	_, err := (&backup.Runner{}).Run(context.Background(), pgTarget(t, dsn,
		backup.Destination{Name: "a", Destination: failAfter{a.Destination, 10}},
		backup.Destination{Name: "b", Destination: failAfter{b.Destination, 10 << 10}}))
	if !errors.Is(err, errInjected) {
		t.Fatalf("Run error = %v", err)
	}
	assertNoBackups(t, a, b)
}

func TestCancelledBackupLeavesNothing(t *testing.T) {
	dsn := seededDB(t, 20000)
	l, m := newLocal(t), newS3(t)
	g := newGated(m.Destination)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := (&backup.Runner{}).Run(ctx, pgTarget(t, dsn, l, backup.Destination{Name: "minio", Destination: g}))
		done <- err
	}()
	<-g.started
	cancel()
	close(g.release)
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error = %v, want context.Canceled", err)
	}
	assertNoBackups(t, l, m)
}

func TestDebrisRemovedByNextRun(t *testing.T) {
	dsn := seededDB(t, 1000)
	root := t.TempDir()
	store, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	oldID := catalog.NewID(time.Now().Add(-3 * time.Hour))
	freshID := catalog.NewID(time.Now())
	for _, id := range []string{oldID, freshID} {
		if err := store.Put(ctx, catalog.Key("orders", id, "dump.pgdump.zst"), strings.NewReader("truncated")); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(filepath.Join(root, "orders", oldID, "dump.pgdump.zst"), old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := (&backup.Runner{}).Run(ctx, pgTarget(t, dsn, backup.Destination{Name: "local", Destination: store})); err != nil {
		t.Fatal(err)
	}
	l, err := catalog.List(ctx, store, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Backups) != 1 {
		t.Errorf("want the new backup listed, got %+v", l.Backups)
	}
	if len(l.Debris) != 1 || l.Debris[0].ID != freshID {
		t.Errorf("debris after run = %+v, want only the fresh %s (within grace)", l.Debris, freshID)
	}
}

func closedPort(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:1"
}

// counting records how many bytes its Put has read so far.
type counting struct {
	destination.Destination
	n atomic.Int64
}

func (c *counting) Put(ctx context.Context, key string, r io.Reader) error {
	return c.Destination.Put(ctx, key, readFunc(func(p []byte) (int, error) {
		n, err := r.Read(p)
		c.n.Add(int64(n))
		return n, err
	}))
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

// A stalled destination stalls the whole stream: the other destination gets
// no more than the chunk in flight, and nothing piles up in memory.
func TestSlowDestinationAppliesBackPressure(t *testing.T) {
	dsn := seededDB(t, 40000)
	slow := newGated(newLocal(t).Destination)
	fast := &counting{Destination: newLocal(t).Destination}
	done := make(chan error, 1)
	go func() {
		_, err := (&backup.Runner{}).Run(context.Background(), pgTarget(t, dsn,
			backup.Destination{Name: "slow", Destination: slow}, backup.Destination{Name: "fast", Destination: fast}))
		done <- err
	}()
	<-slow.started
	// However long the stall lasts (and however busy the machine), the fast
	// destination never gets more than the chunk in flight ahead.
	time.Sleep(700 * time.Millisecond)
	stalled := fast.n.Load()
	if stalled > 4<<20 {
		t.Errorf("fast destination got %d bytes ahead of the stalled one", stalled)
	}
	close(slow.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("fast destination was %d bytes ahead while the slow one stalled; total %d", stalled, fast.n.Load())
}
