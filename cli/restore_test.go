package cli

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backproof/backproof/internal/sample"
	"github.com/backproof/backproof/internal/testenv"
)

type restoreDoc struct {
	BackupID    string `json:"backup_id"`
	Destination string
	Skipped     []string
	Tables      int
	Rows        int64
}

// restoreFixture backs up a seeded database to local and MinIO.
func restoreFixture(t *testing.T) (cfg, id string, want map[string]int64) {
	t.Helper()
	dsn := appDB(t)
	cfg = verifyConfig(t, dsn, testenv.PostgresImage(t))
	r := runCLI(t, context.Background(), "backup", "-c", cfg, "--json")
	if r.code != 0 {
		t.Fatalf("backup exit %d: %s", r.code, r.stderr)
	}
	want, err := sample.Counts(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, decode[backupDoc](t, r.stdout).Backups[0].ID, want
}

func counts(t *testing.T, dsn string) map[string]int64 {
	t.Helper()
	c, err := sample.Counts(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tableNames(t *testing.T, dsn string) []string {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(context.Background(), "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY 1")
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestRestoreTo(t *testing.T) {
	cfg, id, want := restoreFixture(t)
	ctx := context.Background()

	t.Run("latest into an empty database", func(t *testing.T) {
		into := testenv.NewPostgresDB(t)
		r := runCLI(t, ctx, "restore", "orders", "-c", cfg, "--to", into, "--json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		doc := decode[restoreDoc](t, r.stdout)
		if doc.BackupID != id || doc.Destination != "local" || doc.Rows == 0 {
			t.Errorf("result %+v", doc)
		}
		if got := counts(t, into); !reflect.DeepEqual(got, want) {
			t.Errorf("restored counts %v, want %v", got, want)
		}
	})

	t.Run("non-empty target refused without --force", func(t *testing.T) {
		into := testenv.NewPostgresDB(t)
		testenv.Exec(t, into, "CREATE TABLE keepme (x int); INSERT INTO keepme VALUES (42)")
		r := runCLI(t, ctx, "restore", "orders", "-c", cfg, "--to", into)
		if r.code != ExitError || !strings.Contains(r.stderr, "not empty (1 objects): nothing was changed") {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if got := tableNames(t, into); !reflect.DeepEqual(got, []string{"keepme"}) {
			t.Errorf("target changed: tables %v", got)
		}
		// --force replaces what the dump holds and leaves the rest alone.
		r = runCLI(t, ctx, "restore", "orders", "-c", cfg, "--to", into, "--force")
		if r.code != 0 {
			t.Fatalf("--force exit %d: %s", r.code, r.stderr)
		}
		wantForced := map[string]int64{"public.keepme": 1}
		for k, v := range want {
			wantForced[k] = v
		}
		if got := counts(t, into); !reflect.DeepEqual(got, wantForced) {
			t.Errorf("restored counts %v, want %v", got, wantForced)
		}
		// Twice: the objects exist now and are dropped and recreated.
		if r := runCLI(t, ctx, "restore", "orders", "-c", cfg, "--to", into, "--force"); r.code != 0 {
			t.Fatalf("second --force exit %d: %s", r.code, r.stderr)
		}
		if got := counts(t, into); !reflect.DeepEqual(got, wantForced) {
			t.Errorf("after a second --force: %v, want %v", got, wantForced)
		}
	})

	t.Run("dry run changes nothing", func(t *testing.T) {
		into := testenv.NewPostgresDB(t)
		r := runCLI(t, ctx, "restore", "orders", "-c", cfg, "--to", into, "--dry-run")
		if r.code != 0 || !strings.Contains(r.stdout, "would restore orders backup "+id+" from local") {
			t.Fatalf("exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
		if got := tableNames(t, into); len(got) != 0 {
			t.Errorf("dry run created %v", got)
		}
	})

	t.Run("corrupt local copy", func(t *testing.T) {
		art := filepath.Join(localPath(t, cfg), "orders", id, "dump.pgdump.zst")
		data, err := os.ReadFile(art)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 0x10
		if err := os.WriteFile(art, data, 0o644); err != nil {
			t.Fatal(err)
		}
		into := testenv.NewPostgresDB(t)
		r := runCLI(t, ctx, "restore", "orders", "-c", cfg, "--to", into, "--json")
		doc := decode[restoreDoc](t, r.stdout)
		if r.code != 0 || doc.Destination != "offsite" || !reflect.DeepEqual(doc.Skipped, []string{"local"}) ||
			!strings.Contains(r.stderr, "checksum mismatch") {
			t.Fatalf("exit %d %+v: %s", r.code, doc, r.stderr)
		}
		if got := counts(t, into); !reflect.DeepEqual(got, want) {
			t.Errorf("restored counts %v, want %v", got, want)
		}

		pinned := testenv.NewPostgresDB(t)
		r = runCLI(t, ctx, "restore", "orders", "-c", cfg, "--to", pinned, "--from", "local")
		if r.code != ExitBadBackup || !strings.Contains(r.stderr, "the target was not touched") {
			t.Fatalf("--from local: exit %d: %s", r.code, r.stderr)
		}
		if got := tableNames(t, pinned); len(got) != 0 {
			t.Errorf("target touched: %v", got)
		}
	})

	t.Run("password of --to stays secret", func(t *testing.T) {
		// runCLI fails the test if the sentinel appears in any output.
		r := runCLI(t, ctx, "restore", "orders", "-c", cfg, "--to", "postgres://nobody:"+sentinel+"@127.0.0.1:1/db?sslmode=disable")
		if r.code != ExitError || !strings.Contains(r.stderr, "connect to restore target") {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"restore", "orders", "-c", cfg},
			{"restore", "orders", "-c", cfg, "--sandbox", "--to", "postgres://x"},
			{"restore", "-c", cfg, "--sandbox"},
			{"restore", "orders", "-c", cfg, "--sandbox", "--from", "nowhere"},
		} {
			if r := runCLI(t, ctx, args...); r.code != ExitUsage {
				t.Errorf("%v: exit %d, want 2: %s", args, r.code, r.stderr)
			}
		}
	})
}

// holdSandbox runs restore --sandbox until it prints its connection string,
// and returns that and a function that presses Ctrl-C and returns the exit
// code.
func holdSandbox(t *testing.T, args ...string) (string, func() int) {
	t.Helper()
	ctx, interrupt := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	// A sandbox connection's goroutines may still log into it after Main
	// returned.
	stderr := &testenv.Buffer{}
	go func() {
		env := func(k string) string { return os.Getenv(k) }
		done <- Main(ctx, args, pw, stderr, env, Build{Version: "test"})
		pw.Close()
	}()
	var dsn string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "sandbox ready: "); ok {
			dsn = d
			break
		}
	}
	go io.Copy(io.Discard, pr) //nolint:errcheck // drain the rest
	if dsn == "" {
		interrupt()
		t.Fatalf("no connection string printed; exit %d: %s", <-done, stderr.String())
	}
	return dsn, func() int {
		interrupt()
		select {
		case code := <-done:
			if strings.Contains(stderr.String(), sentinel) {
				t.Errorf("sentinel in the output: %s", stderr.String())
			}
			return code
		case <-time.After(time.Minute):
			t.Fatal("restore --sandbox did not end after Ctrl-C")
			return -1
		}
	}
}
