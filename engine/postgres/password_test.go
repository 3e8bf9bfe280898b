package postgres

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/internal/sample"
	"github.com/backproof/backproof/internal/testenv"
)

// The restore runbook: the password comes from PGPASSWORD or ~/.pgpass, the
// --to DSN has none. pgx (the emptiness check) and pg_restore must both use
// it, and a wrong or unreachable target says which it is.
func TestRestoreRunbookPassword(t *testing.T) {
	const password = "Runbook-pw-5e1a"
	ctx := context.Background()
	src := testenv.NewPostgresDB(t)
	if err := sample.Seed(ctx, src, 50); err != nil {
		t.Fatal(err)
	}
	dump := filepath.Join(t.TempDir(), "dump.pgdump")
	f, err := os.Create(dump)
	if err != nil {
		t.Fatal(err)
	}
	info, err := New(src, WithBinDirs(testenv.PostgresBin(t))).Dump(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()

	// An owner role that logs in with a password only.
	admin := testenv.PostgresDSN(t)
	u, _ := url.Parse(src)
	role := strings.TrimPrefix(u.Path, "/") + "_rb"
	testenv.Exec(t, admin, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, password))
	t.Cleanup(func() { testenv.Exec(t, admin, "DROP ROLE IF EXISTS "+role) })
	target := func(t *testing.T) string {
		db := testenv.NewPostgresDB(t)
		dbu, _ := url.Parse(db)
		name := strings.TrimPrefix(dbu.Path, "/")
		testenv.Exec(t, admin, fmt.Sprintf("ALTER DATABASE %s OWNER TO %s", pgx.Identifier{name}.Sanitize(), role))
		dbu.User = url.User(role) // no password in the DSN
		return dbu.String()
	}
	restore := func(t *testing.T, to string) error {
		e := New(src, WithBinDirs(testenv.PostgresBin(t)))
		if err := engine.CheckEmpty(ctx, e, to, false); err != nil {
			return err
		}
		return e.RestoreInto(ctx, to, dump, info, engine.RestoreOptions{Jobs: 1})
	}
	restored := func(t *testing.T, to string) {
		t.Helper()
		got, err := sample.Counts(ctx, strings.Replace(to, role+"@", role+":"+password+"@", 1))
		if err != nil {
			t.Fatal(err)
		}
		if got["public.orders"] != 50 {
			t.Errorf("restored counts %v, want 50 orders", got)
		}
	}
	// Nothing of the test environment's own may stand in for the password.
	t.Setenv("PGPASSFILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("PGPASSWORD", "")
	os.Unsetenv("PGPASSWORD")

	t.Run("PGPASSWORD", func(t *testing.T) {
		t.Setenv("PGPASSWORD", password)
		to := target(t)
		if err := restore(t, to); err != nil {
			t.Fatalf("restore with the password in PGPASSWORD: %v", err)
		}
		restored(t, to)
	})
	t.Run("pgpass", func(t *testing.T) {
		home := t.TempDir()
		t.Setenv("HOME", home)
		os.Unsetenv("PGPASSFILE")
		to := target(t)
		tu, _ := url.Parse(to)
		line := fmt.Sprintf("%s:%s:*:%s:%s\n", tu.Hostname(), tu.Port(), role, password)
		if err := os.WriteFile(filepath.Join(home, ".pgpass"), []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := restore(t, to); err != nil {
			t.Fatalf("restore with the password in ~/.pgpass: %v", err)
		}
		restored(t, to)
	})
	t.Run("wrong password", func(t *testing.T) {
		t.Setenv("PGPASSWORD", password+"-wrong")
		err := restore(t, target(t))
		if err == nil || !strings.Contains(err.Error(), "authentication failed") || strings.Contains(err.Error(), "could not reach") {
			t.Fatalf("err = %v, want authentication failed", err)
		}
	})
	t.Run("wrong password at RestoreInto's version check", func(t *testing.T) {
		t.Setenv("PGPASSWORD", password+"-wrong")
		err := New(src, WithBinDirs(testenv.PostgresBin(t))).RestoreInto(ctx, target(t), dump, info, engine.RestoreOptions{Jobs: 1})
		if err == nil || !strings.Contains(err.Error(), "authentication failed") || !strings.Contains(err.Error(), "not touched") {
			t.Fatalf("err = %v, want an authentication failure that left the target alone", err)
		}
	})
	t.Run("wrong password at pg_restore", func(t *testing.T) {
		t.Setenv("PGPASSWORD", password+"-wrong")
		err := New(src, WithBinDirs(testenv.PostgresBin(t))).restoreFile(ctx, target(t), dump, info, engine.RestoreOptions{Jobs: 1})
		if err == nil || !strings.Contains(err.Error(), "pg_restore could not log in") || !strings.Contains(err.Error(), "authentication failed") {
			t.Fatalf("err = %v, want pg_restore's authentication failure", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		t.Setenv("PGPASSWORD", password)
		err := restore(t, "postgres://"+role+"@127.0.0.1:1/x?sslmode=disable")
		if err == nil || !strings.Contains(err.Error(), "could not reach") || strings.Contains(err.Error(), "authentication") {
			t.Fatalf("err = %v, want could not reach", err)
		}
	})
}
