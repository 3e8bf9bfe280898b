package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/internal/testenv"
)

// A backup with more relations than PostgreSQL's default lock table holds
// (3,000 tables with their TOAST tables and indexes: about 12,000 locks,
// against room for about 7,000) restores into its sandbox in one
// transaction: the sandbox's lock table is sized from the manifest.
func TestSandboxManyRelations(t *testing.T) {
	image := testenv.PostgresImage(t)
	testenv.NoSandboxesLeft(t)
	ctx := context.Background()
	src := testenv.NewPostgresDB(t)
	for s := 1; s <= 6; s++ { // a transaction per schema: the source has the default lock table
		testenv.Exec(t, src, fmt.Sprintf(`CREATE SCHEMA tenant_%[1]d;
DO $$ BEGIN
  FOR t IN 1..500 LOOP
    EXECUTE format('CREATE TABLE tenant_%[1]d.t%%s (id int PRIMARY KEY, note text)', t);
  END LOOP;
END $$;`, s))
	}
	testenv.Exec(t, src, "INSERT INTO tenant_6.t500 VALUES (1, 'last')")

	var dump bytes.Buffer
	info, err := New(src, WithBinDirs(testenv.PostgresBin(t))).Dump(ctx, &dump)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dump.pgdump")
	if err := os.WriteFile(path, dump.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	e := New("", WithBinDirs(testenv.PostgresBin(t)))
	spec, srv := e.Sandbox(image, rand.Text(), info)
	srv.Host, srv.Port = testenv.StartSandbox(t, spec)
	if err := e.Restore(ctx, srv, path, info, engine.RestoreOptions{Jobs: 1}); err != nil {
		t.Fatal(err)
	}
	c, err := e.Open(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	got, err := c.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Tables) != 3000 || len(info.Source.Tables) != 3000 {
		t.Fatalf("restored %d tables of %d, want 3000", len(got.Tables), len(info.Source.Tables))
	}
}
