package verify_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/destination/local"
	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/postgres"
	"github.com/backproof/backproof/internal/sample"
	"github.com/backproof/backproof/internal/testenv"
	"github.com/backproof/backproof/sandbox/docker"
	"github.com/backproof/backproof/verify"
)

// fixture is a seeded source database, a local destination and a verifier
// on the real Docker engine.
type fixture struct {
	dsn   string
	root  string
	store *local.Store
	v     *verify.Verifier
	eng   *postgres.Engine
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	image := testenv.PostgresImage(t)
	testenv.NoSandboxesLeft(t)
	ctx := context.Background()
	dsn := testenv.NewPostgresDB(t)
	if err := sample.Seed(ctx, dsn, 2000); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	store, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := docker.New(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return &fixture{
		dsn: dsn, root: root, store: store,
		eng: postgres.New(dsn, postgres.WithBinDirs(testenv.PostgresBin(t))),
		v: &verify.Verifier{
			Sandbox: d, Log: log, Now: time.Now, Version: "test",
			Images: map[string]string{"postgres": image},
			Memory: 1 << 30, CPUs: 1, Timeout: 5 * time.Minute,
		},
	}
}

// backup takes a backup of the fixture's database and returns its manifest.
func (f *fixture) backup(t *testing.T) *catalog.Manifest {
	t.Helper()
	res, err := (&backup.Runner{Version: "test"}).Run(context.Background(), backup.Target{
		Name: "orders", EngineName: "postgres", Engine: f.eng,
		Destinations: []backup.Destination{{Name: "local", Destination: f.store}},
	})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return res.Manifest
}

func (f *fixture) verify(t *testing.T, id string, checks ...config.Check) *verify.Record {
	t.Helper()
	return f.v.Run(context.Background(), verify.Request{
		Target: "orders", Engine: "postgres", Prover: f.eng,
		Destination: "local", Store: f.store, BackupID: id, Checks: checks,
	})
}

func (f *fixture) exec(t *testing.T, sql string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatal(err)
	}
}

// rewriteManifest replaces a committed backup's manifest, as a tampered or
// buggy writer would.
func (f *fixture) rewriteManifest(t *testing.T, m *catalog.Manifest) {
	t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(f.root, catalog.Key(m.Target, m.ID, catalog.ManifestName)), data)
}

func (f *fixture) artifactPath(m *catalog.Manifest) string {
	return filepath.Join(f.root, catalog.Key(m.Target, m.ID, m.Artifacts[0].Name))
}

var (
	ordersPresent = config.Check{Name: "orders-present", Query: "SELECT count(*) FROM orders", Expect: "> 0"}
	ordersFresh   = config.Check{Name: "orders-fresh", Query: "SELECT max(created_at) FROM orders", MaxAge: 26 * time.Hour}
)

func TestVerifyPasses(t *testing.T) {
	f := newFixture(t)
	m := f.backup(t)
	rec := f.verify(t, "", ordersPresent, ordersFresh)
	if rec.Outcome != verify.Pass {
		t.Fatalf("outcome %s: %s\n%+v", rec.Outcome, rec.Reason, rec.Checks)
	}
	if rec.BackupID != m.ID {
		t.Errorf("verified %s, want the latest %s", rec.BackupID, m.ID)
	}
	want := []string{verify.CheckChecksum, verify.CheckSandbox, verify.CheckRestore, verify.CheckTables, verify.CheckSchema, verify.CheckIntegrity, "orders-present", "orders-fresh"}
	var got []string
	for _, c := range rec.Checks {
		got = append(got, c.Name)
		if c.Outcome != verify.Pass {
			t.Errorf("check %s: %s %s", c.Name, c.Outcome, c.Message)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("checks %v, want %v", got, want)
	}
	if rec.RestoreSeconds <= 0 || rec.DurationSeconds < rec.RestoreSeconds {
		t.Errorf("restore %.3fs of %.3fs: not measured", rec.RestoreSeconds, rec.DurationSeconds)
	}
	if rec.Image == "" || !strings.HasPrefix(rec.ImageID, "sha256:") {
		t.Errorf("image %q id %q not recorded", rec.Image, rec.ImageID)
	}
	if c := rec.Checks[3]; !strings.Contains(c.Observed, "2000") && !strings.Contains(c.Observed, "rows") {
		t.Errorf("tables observed %q", c.Observed)
	}

	// The record lies next to the backup and list sees it.
	if rec.Stored == "" {
		t.Fatalf("record not stored: %s", rec.StoreError)
	}
	var stored verify.Record
	if err := catalog.ReadRecord(context.Background(), f.store, "orders", m.ID, rec.Stored, &stored); err != nil {
		t.Fatal(err)
	}
	if stored.Outcome != verify.Pass || stored.BackupID != m.ID || len(stored.Checks) != len(rec.Checks) || stored.RestoreSeconds != rec.RestoreSeconds {
		t.Errorf("stored record differs: %+v", stored)
	}
	l, err := catalog.List(context.Background(), f.store, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Backups) != 1 || len(l.Backups[0].Records) != 1 || l.Backups[0].Records[0] != rec.Stored {
		t.Errorf("listing: %+v", l.Backups)
	}
}

// Each held-back bad backup must fail, never pass or error, and say why.
func TestVerifyCatchesBadBackups(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name   string
		spoil  func(t *testing.T, m *catalog.Manifest)
		checks []config.Check
		failed string // the check that must fail
		reason string // in the record's reason
	}{
		{
			name: "byte flipped in the artifact",
			spoil: func(t *testing.T, m *catalog.Manifest) {
				p := f.artifactPath(m)
				data, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				data[len(data)/2] ^= 0x01
				writeFile(t, p, data)
			},
			failed: verify.CheckChecksum, reason: "SHA-256",
		},
		{
			name: "artifact truncated",
			spoil: func(t *testing.T, m *catalog.Manifest) {
				if err := os.Truncate(f.artifactPath(m), m.Artifacts[0].Size-100); err != nil {
					t.Fatal(err)
				}
			},
			failed: verify.CheckChecksum, reason: "bytes stored, manifest records",
		},
		{
			name: "manifest row count does not match the data",
			spoil: func(t *testing.T, m *catalog.Manifest) {
				for i, tb := range m.Source.Tables {
					if tb.Name == "orders" {
						m.Source.Tables[i].Rows++
					}
				}
				f.rewriteManifest(t, m)
			},
			failed: verify.CheckTables, reason: "table public.orders has 2000 rows, the dump recorded 2001",
		},
		{
			name: "schema object missing from the dump",
			spoil: func(t *testing.T, m *catalog.Manifest) {
				m.Source.Objects["index"] = append(m.Source.Objects["index"], "public.orders_total_idx")
				f.rewriteManifest(t, m)
			},
			failed: verify.CheckSchema, reason: "index public.orders_total_idx missing",
		},
		{
			name:   "configured check expectation fails",
			checks: []config.Check{ordersPresent, {Name: "no-orders", Query: "SELECT count(*) FROM orders", Expect: "= 0"}},
			failed: "no-orders", reason: "got 2000, want = 0",
		},
		{
			name:   "configured check query is rejected",
			checks: []config.Check{{Name: "refunds", Query: "SELECT count(*) FROM refunds", Expect: "> 0"}},
			failed: "refunds", reason: `relation "refunds" does not exist`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := f.backup(t)
			if tc.spoil != nil {
				tc.spoil(t, m)
			}
			rec := f.verify(t, m.ID, tc.checks...)
			assertFailed(t, rec, tc.failed, tc.reason)
		})
	}

	t.Run("max_age on stale data", func(t *testing.T) {
		f.exec(t, "UPDATE orders SET created_at = created_at - interval '3 days'")
		m := f.backup(t)
		rec := f.verify(t, m.ID, ordersPresent, ordersFresh)
		assertFailed(t, rec, "orders-fresh", "older than the backup, max_age is 26h0m0s")
	})
}

func assertFailed(t *testing.T, rec *verify.Record, check, reason string) {
	t.Helper()
	if rec.Outcome != verify.Fail {
		t.Fatalf("outcome %s (%s), want fail\n%+v", rec.Outcome, rec.Reason, rec.Checks)
	}
	if !strings.HasPrefix(rec.Reason, check+": ") || !strings.Contains(rec.Reason, reason) {
		t.Errorf("reason %q, want check %s failing with %q", rec.Reason, check, reason)
	}
	if rec.Stored == "" {
		t.Errorf("failed verification not recorded: %s", rec.StoreError)
	}
}

func TestVerifyErrorsAreNotFailures(t *testing.T) {
	f := newFixture(t)
	m := f.backup(t)

	t.Run("image missing", func(t *testing.T) {
		v := *f.v
		v.Images = map[string]string{"postgres": "backproof-test/no-such-image:{major}"}
		start := time.Now()
		rec := v.Run(context.Background(), verify.Request{
			Target: "orders", Engine: "postgres", Prover: f.eng, Destination: "local", Store: f.store,
		})
		if rec.Outcome != verify.Error || !strings.Contains(rec.Reason, "backproof-test/no-such-image:15") {
			t.Fatalf("outcome %s: %s; want an error naming the image", rec.Outcome, rec.Reason)
		}
		t.Logf("image missing reported in %s: %s", time.Since(start).Round(time.Millisecond), rec.Reason)
	})

	t.Run("unknown backup", func(t *testing.T) {
		rec := f.verify(t, "20200101T000000Z-aaaaaaaa")
		if rec.Outcome != verify.Error || !strings.Contains(rec.Reason, "not on destination local") {
			t.Fatalf("outcome %s: %s", rec.Outcome, rec.Reason)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		v := *f.v
		v.Timeout = 300 * time.Millisecond
		rec := v.Run(context.Background(), verify.Request{
			Target: "orders", Engine: "postgres", Prover: f.eng, Destination: "local", Store: f.store, BackupID: m.ID,
		})
		if rec.Outcome != verify.Error || !strings.Contains(rec.Reason, "timed out") {
			t.Fatalf("outcome %s: %s", rec.Outcome, rec.Reason)
		}
	})
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// hookedProver runs a hook before restoring.
type hookedProver struct {
	*postgres.Engine
	before func()
}

func (p hookedProver) Restore(ctx context.Context, srv engine.Server, path string, info *engine.DumpInfo, opts engine.RestoreOptions) error {
	p.before()
	return p.Engine.Restore(ctx, srv, path, info, opts)
}

// The sandbox is removed on every path out of a verification.
func TestVerifyTearsDownOnPanicAndCancel(t *testing.T) {
	f := newFixture(t)
	m := f.backup(t)

	t.Run("panic", func(t *testing.T) {
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Errorf("recovered %v, want the panic to reach the caller", r)
				}
			}()
			f.v.Run(context.Background(), verify.Request{
				Target: "orders", Engine: "postgres", Destination: "local", Store: f.store, BackupID: m.ID,
				Prover: hookedProver{f.eng, func() { panic("boom") }},
			})
		}()
		if left := testenv.OwnSandboxes(t); len(left) != 0 {
			t.Errorf("after a panic: %v", left)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rec := f.v.Run(ctx, verify.Request{
			Target: "orders", Engine: "postgres", Destination: "local", Store: f.store, BackupID: m.ID,
			Prover: hookedProver{f.eng, cancel},
		})
		if rec.Outcome != verify.Error || !strings.Contains(rec.Reason, "context canceled") {
			t.Errorf("outcome %s: %s, want an error", rec.Outcome, rec.Reason)
		}
		if rec.Stored != "" {
			t.Errorf("an interrupted verification stored record %s", rec.Stored)
		}
		if left := testenv.OwnSandboxes(t); len(left) != 0 {
			t.Errorf("after cancellation: %v", left)
		}
	})
}

// A sandbox a person works in (restore --sandbox: Hold) is the cluster as
// the image makes it, template databases included; verification's own start
// from a seed without them (sandbox/docker TestSeed).
func TestHoldIsAWholeCluster(t *testing.T) {
	f := newFixture(t)
	f.backup(t)
	var dbs []string
	rec := f.v.Run(context.Background(), verify.Request{
		Target: "orders", Engine: "postgres", Prover: f.eng,
		Destination: "local", Store: f.store, NoRecord: true,
		Hold: func(ctx context.Context, srv engine.Server) {
			conn, err := pgx.Connect(ctx, postgres.ConnString(srv))
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close(ctx)
			rows, _ := conn.Query(ctx, "SELECT datname FROM pg_database ORDER BY 1")
			if dbs, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				t.Error(err)
			}
		},
	})
	if rec.Outcome != verify.Pass {
		t.Fatalf("outcome %s: %s", rec.Outcome, rec.Reason)
	}
	if want := []string{"postgres", "template0", "template1"}; !slices.Equal(dbs, want) {
		t.Errorf("the held sandbox has databases %v, want postgres and both templates", dbs)
	}
}
