// Package postgres dumps PostgreSQL databases with pg_dump's custom format
// and restores them with pg_restore, recording the exact row count of every
// table as the dump stream carries it.
package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/proc"
)

// Engine dumps one PostgreSQL database.
type Engine struct {
	dsn     string
	binDirs []string
	log     *slog.Logger
}

var _ engine.Engine = (*Engine)(nil)

// Option configures an Engine.
type Option func(*Engine)

// WithBinDirs restricts the search for pg_dump/pg_restore to these directories.
func WithBinDirs(dirs ...string) Option { return func(e *Engine) { e.binDirs = dirs } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// New returns an engine for the database at dsn (a libpq URL or keyword
// string). The dsn is a secret: it never reaches argv, logs or errors.
func New(dsn string, opts ...Option) *Engine {
	e := &Engine{dsn: dsn, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Artifact implements engine.Engine.
func (e *Engine) Artifact() string { return "dump.pgdump" }

// archiveMagic starts every custom-format archive.
var archiveMagic = []byte("PGDMP")

// Dump runs pg_dump --format=custom inside an exported snapshot and counts
// every table's rows in the archive as it streams past (archiveRows), so the
// counts are those of the stored data and the server scans each table once.
// The snapshot's transaction stays open until pg_dump is done: the schema
// inventory and any count the archive cannot give are taken in it.
func (e *Engine) Dump(ctx context.Context, w io.Writer) (*engine.DumpInfo, error) {
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		return nil, connectError("source", e.dsn, err)
	}
	defer closeConn(ctx, conn)

	var version string
	var versionNum int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version'), current_setting('server_version_num')::int").Scan(&version, &versionNum); err != nil {
		return nil, fmt.Errorf("query server version: %w", err)
	}
	pgDump, err := pickTool("pg_dump", findTools(ctx, "pg_dump", e.binDirs), versionNum/10000)
	if err != nil {
		return nil, err
	}

	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin snapshot transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only; closing the connection ends it anyway
	var snapshot string
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&snapshot); err != nil {
		return nil, fmt.Errorf("export snapshot: %w", err)
	}
	tables, err := listTables(ctx, tx)
	if err != nil {
		return nil, err
	}

	dbArg, password, err := splitPassword(e.dsn)
	if err != nil {
		return nil, err
	}
	dumpCtx, cancelDump := context.WithCancel(ctx)
	defer cancelDump()
	path, args := proc.StdoutBuffer(1<<20, pgDump.Path,
		"--format=custom", "--compress=0", "--snapshot="+snapshot, "--no-password", "--dbname="+dbArg)
	cmd := command(dumpCtx, path, password, args...)
	stderr := &proc.Tail{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	proc.GrowPipe(stdout)
	e.log.DebugContext(ctx, "starting pg_dump", "path", pgDump.Path, "version", pgDump.Version, "snapshot", snapshot)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pg_dump: %w", err)
	}

	var objects map[string][]string
	var migrations []engine.Migration
	counted := make(chan error, 1)
	go func() {
		var err error
		// One backend, no parallel workers: these queries run beside
		// pg_dump and should take as little of the server's CPU as they can.
		if _, err = tx.Exec(dumpCtx, "SET LOCAL max_parallel_workers_per_gather = 0"); err != nil {
			err = fmt.Errorf("set up row counts: %w", err)
		} else if objects, err = listObjects(dumpCtx, tx); err == nil {
			migrations, err = e.listMigrations(dumpCtx, tx)
		}
		counted <- err
	}()

	mw := &magicWriter{w: w}
	dumped, copyErr := archiveRows(io.TeeReader(stdout, mw))
	layoutErr := copyErr
	if errors.Is(copyErr, errArchiveLayout) {
		copyErr = nil // every byte was passed on; the rows are counted on the server
	} else {
		layoutErr = nil
	}
	if copyErr != nil {
		cancelDump() // the stream is lost: stop pg_dump and the counting
	}
	waitErr := cmd.Wait()
	if waitErr != nil {
		cancelDump()
	}
	countErr := <-counted

	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("dump cancelled: %w", context.Cause(ctx))
	case copyErr != nil:
		return nil, fmt.Errorf("write dump stream: %w", copyErr)
	case waitErr != nil:
		out := proc.Redact(stderr.String(), password)
		if authFailed(out) {
			return nil, fmt.Errorf("pg_dump could not log in to %s: authentication failed (%v): %s", Describe(e.dsn), waitErr, out)
		}
		return nil, fmt.Errorf("pg_dump failed (%v): %s", waitErr, out)
	case countErr != nil:
		return nil, countErr
	}
	if err := mw.check(); err != nil {
		return nil, err
	}
	if err := e.setRows(ctx, tx, tables, dumped, layoutErr); err != nil {
		return nil, err
	}
	return &engine.DumpInfo{
		ServerVersion: version,
		Tools:         map[string]string{"pg_dump": pgDump.Version},
		Source:        engine.SourceStats{Tables: tables, Objects: objects, Migrations: migrations},
	}, nil
}

// listTables returns the tables whose data pg_dump writes: ordinary tables
// and leaf partitions, outside system schemas, not temporary, not owned by an
// extension. Views and partitioned parents hold no rows of their own.
func listTables(ctx context.Context, q querier) ([]engine.TableStats, error) {
	rows, err := q.Query(ctx, `
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence <> 't'
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (engine.TableStats, error) {
		var t engine.TableStats
		err := r.Scan(&t.Schema, &t.Name)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	return tables, nil
}

// setRows gives every table the number of rows the archive holds for it.
// A table the archive has no data for, or an archive this build cannot read
// (layoutErr), is counted with count(*) in the dump's snapshot, still open.
func (e *Engine) setRows(ctx context.Context, tx pgx.Tx, tables []engine.TableStats, dumped map[tableKey]int64, layoutErr error) error {
	var missing []engine.TableStats
	var at []int
	for i, t := range tables {
		if n, ok := dumped[tableKey{t.Schema, t.Name}]; ok {
			tables[i].Rows = n
			continue
		}
		missing = append(missing, t)
		at = append(at, i)
	}
	if len(missing) == 0 {
		return nil
	}
	e.log.InfoContext(ctx, "counting rows on the server", "tables", len(missing), "archive", layoutErr)
	if err := countRows(ctx, tx, missing); err != nil {
		return err
	}
	for j, i := range at {
		tables[i].Rows = missing[j].Rows
	}
	return nil
}

// countRows counts every table's rows, the queries sent in batches so that
// thousands of tables cost a few round trips, not one each.
func countRows(ctx context.Context, q querier, tables []engine.TableStats) error {
	const batch = 500
	for start := 0; start < len(tables); start += batch {
		part := tables[start:min(start+batch, len(tables))]
		b := &pgx.Batch{}
		for _, t := range part {
			b.Queue("SELECT count(*) FROM " + pgx.Identifier{t.Schema, t.Name}.Sanitize())
		}
		res := q.SendBatch(ctx, b)
		for i := range part {
			if err := res.QueryRow().Scan(&part[i].Rows); err != nil {
				res.Close()
				return fmt.Errorf("count rows of %s.%s: %w", part[i].Schema, part[i].Name, err)
			}
		}
		if err := res.Close(); err != nil {
			return fmt.Errorf("count rows: %w", err)
		}
	}
	return nil
}

// command runs a PostgreSQL tool with the DSN's password in PGPASSWORD only.
// The child keeps libpq's own settings (PG*: PGPASSWORD, PGPASSFILE,
// PGSSLMODE...) and HOME for ~/.pgpass, exactly what pgx read for the same
// DSN, so a DSN without a password works for the tool as it did for pgx.
func command(ctx context.Context, path, password string, args ...string) *exec.Cmd {
	env := []string{"PG*"}
	if password != "" {
		env = append(env, "PGPASSWORD="+password)
	}
	return proc.Command(ctx, path, env, args...)
}

// connectError says whether a connection to the server at dsn was refused
// for its credentials or never reached it. pgx's errors name host and user,
// never the password.
func connectError(role, dsn string, err error) error {
	if authFailed(err.Error()) {
		return fmt.Errorf("connect to %s %s: authentication failed (check the user and the password in the DSN, PGPASSWORD or ~/.pgpass): %w", role, Describe(dsn), err)
	}
	return fmt.Errorf("connect to %s %s: could not reach the server: %w", role, Describe(dsn), err)
}

// authFailed reports whether libpq's or pgx's message is about credentials:
// a rejected password (SQLSTATE 28P01), a role or method the server refuses
// (28000), or no password to offer.
func authFailed(msg string) bool {
	for _, s := range []string{"authentication failed", "no password supplied", "password is required",
		"SQLSTATE 28P01", "SQLSTATE 28000", "no pg_hba.conf entry", "does not exist (SQLSTATE 28000)"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func closeConn(ctx context.Context, conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	conn.Close(ctx)
}

// magicWriter checks that the stream starts like a custom-format archive, so
// that whatever else a tool might print is never stored as a backup.
type magicWriter struct {
	w    io.Writer
	head []byte
	n    int64
}

func (m *magicWriter) Write(p []byte) (int, error) {
	if len(m.head) < len(archiveMagic) {
		k := min(len(archiveMagic)-len(m.head), len(p))
		m.head = append(m.head, p[:k]...)
		if !bytes.HasPrefix(archiveMagic, m.head) {
			return 0, errors.New("pg_dump output is not a custom-format archive")
		}
	}
	n, err := m.w.Write(p)
	m.n += int64(n)
	return n, err
}

func (m *magicWriter) check() error {
	if !bytes.Equal(m.head, archiveMagic) {
		return fmt.Errorf("pg_dump wrote %d bytes, not a custom-format archive", m.n)
	}
	return nil
}
