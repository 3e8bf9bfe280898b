package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/proc"
	"github.com/backproof/backproof/sandbox"
)

var _ engine.Prover = (*Engine)(nil)

// ReadyLine is what the official postgres image logs when the server accepts
// connections: once for the server that runs its init scripts and once for
// the real one.
const ReadyLine = "database system is ready to accept connections"

// dataDir is the official image's PGDATA up to 17.
const dataDir = "/var/lib/postgresql/data"

// Sandbox implements engine.Prover. The sandbox trades durability for
// restore speed: it is thrown away after the checks. Its lock table holds
// every relation of the backup (locksPerTransaction).
func (e *Engine) Sandbox(image, password string, info *engine.DumpInfo) (sandbox.Spec, engine.Server) {
	// The restore goes into initdb's own database: the image's entrypoint
	// then creates none (a CREATE DATABASE took 0.13 s of the start).
	srv := engine.Server{User: "postgres", Password: password, Database: "postgres"}
	return sandbox.Spec{
		Image: image,
		Env: map[string]string{
			"POSTGRES_USER":     srv.User,
			"POSTGRES_PASSWORD": srv.Password,
			"POSTGRES_DB":       srv.Database,
			// initdb's fsync of the new cluster: nothing here outlives the checks.
			"POSTGRES_INITDB_ARGS": "--no-sync",
			// The driver's data volume (size-limited on Kubernetes): the
			// official image keeps its data elsewhere from 18 on
			// (/var/lib/postgresql/18/docker).
			"PGDATA": dataDir,
		},
		// wal_level=minimal lets COPY into a table created in the same
		// transaction skip WAL.
		Cmd: []string{"postgres",
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "wal_level=minimal", "-c", "max_wal_senders=0",
			"-c", "max_wal_size=4GB", "-c", "checkpoint_timeout=1h", "-c", "autovacuum=off",
			"-c", "max_locks_per_transaction=" + strconv.Itoa(locksPerTransaction(info))},
		Port:       "5432/tcp",
		DataDir:    dataDir,
		Ready:      ReadyLine,
		ReadyCount: 2,
		// A cluster initialised once, stopped cleanly: the image's
		// entrypoint finds it and starts the server alone, without initdb or
		// its first server. It keeps the superuser password of the sandbox
		// it was prepared in; the server trusts its own loopback (initdb's
		// pg_hba.conf), where drivers of seeds connect from.
		Seed: &sandbox.Seed{PerStart: []string{"POSTGRES_PASSWORD"}, ReadyCount: 1,
			Prepare: func(ctx context.Context, inst sandbox.Instance) error {
				s := srv
				s.Host, s.Port = inst.Addr()
				return dropTemplates(ctx, s)
			},
			Variant: "no template databases"},
	}, srv
}

// dropTemplates drops template0 and template1 from a sandbox's cluster: a
// restore goes into an existing database and creates none. Their 600 files
// were two thirds of what a sandbox started from a seed copies first (0.3 s
// of its 0.8 s start).
func dropTemplates(ctx context.Context, srv engine.Server) error {
	conn, err := pgx.Connect(ctx, ConnString(srv))
	if err != nil {
		return err
	}
	defer closeConn(ctx, conn)
	for _, db := range []string{"template1", "template0"} {
		for _, q := range []string{"ALTER DATABASE " + db + " IS_TEMPLATE false", "DROP DATABASE " + db} {
			if _, err := conn.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
	}
	return nil
}

// locksPerTransaction sizes the server's lock table for a restore in one
// transaction, which holds a lock on every relation it creates until it
// commits: a table, its TOAST table and TOAST index, every index, sequence
// and view. The table has max_locks_per_transaction slots per connection
// (100 by default, more with background workers), shared; PostgreSQL's 64
// hold about 7,000 relations, and a backup of 10,000 tables fails its
// restore with "out of shared memory".
func locksPerTransaction(info *engine.DumpInfo) int {
	const base = 64 // PostgreSQL's default
	if info == nil {
		return base
	}
	relations := 3 * len(info.Source.Tables)
	for _, names := range info.Source.Objects {
		relations += len(names)
	}
	return base + (relations+99)/100
}

// ConnString is a libpq URL for srv. It holds the password: keep it out of
// argv and logs (Restore passes it to pg_restore through the environment).
func ConnString(srv engine.Server) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(srv.User, srv.Password),
		Host:     net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port)),
		Path:     "/" + srv.Database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Restore implements engine.Prover: pg_restore from a file, with parallel
// jobs when asked (which needs a seekable file, the reason the artifact is
// spooled), continuing past nothing: the first error fails the restore.
// Roles and grants of the source do not exist in a sandbox, so ownership and
// privileges are not restored.
func (e *Engine) Restore(ctx context.Context, srv engine.Server, path string, info *engine.DumpInfo, opts engine.RestoreOptions) error {
	jobs, err := e.parallel(ctx, path, opts.Jobs)
	if err != nil {
		return err
	}
	opts.Jobs = jobs
	return e.restoreFile(ctx, ConnString(srv), path, info, opts)
}

// parallel returns how many of the jobs offered the restore of the archive
// at path uses, and sets the archive's data offsets for them, so that each
// job seeks to its data. Jobs restore a table each: when one table holds
// half of the data or more, one job in a single transaction is faster. With
// two jobs and offsets, the orders database of bench/compare.sh (largest
// table 39% of the data) restored in 2.1 s against 2.5 s without offsets
// and 3.1 s with one job; pgbench's (one table, 99.99%) in 2.2 s against
// 1.9 s with one job.
func (e *Engine) parallel(ctx context.Context, path string, jobs int) (int, error) {
	if jobs <= 1 {
		return jobs, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	ix, err := indexData(ctxReader{ctx, f})
	f.Close()
	if errors.Is(err, errArchiveLayout) {
		e.log.DebugContext(ctx, "parallel restore without data offsets", "reason", err)
		return jobs, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the spooled archive: %w", err)
	}
	if largest, all := ix.largest(); 2*largest >= all {
		return 1, nil
	}
	if len(ix.unset) == 0 {
		return jobs, nil
	}
	n, err := ix.setOffsets(path)
	if errors.Is(err, fs.ErrPermission) {
		e.log.DebugContext(ctx, "parallel restore without data offsets", "reason", err)
		return jobs, nil
	}
	if err != nil {
		return 0, fmt.Errorf("set the data offsets of the spooled archive: %w", err)
	}
	e.log.DebugContext(ctx, "data offsets set", "entries", n)
	return jobs, nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, context.Cause(c.ctx)
	}
	return c.r.Read(p)
}

// RestoreInto restores the archive at path into the database at dsn, with a
// pg_restore at least as new as the pg_dump that wrote it (info.Tools).
// With one job it is one transaction, and its error says the target is
// unchanged.
//
// Before anything is written it refuses a target of an older major than the
// backup's source (a dump may use what the older server lacks) and a host
// whose pg_restore is older than the backup's pg_dump, naming the version
// needed.
func (e *Engine) RestoreInto(ctx context.Context, dsn, path string, info *engine.DumpInfo, opts engine.RestoreOptions) error {
	if err := e.checkTarget(ctx, dsn, info); err != nil {
		return err
	}
	jobs, err := e.parallel(ctx, path, opts.Jobs)
	if err != nil {
		return err
	}
	opts.Jobs = jobs
	err = e.restoreFile(ctx, dsn, path, info, opts)
	var input *proc.InputError
	switch {
	case errors.As(err, &input):
		return fmt.Errorf("%w; pg_restore had already committed the restore: the target holds what it read", err)
	case err != nil && opts.Jobs <= 1:
		return fmt.Errorf("%w; rolled back (one transaction): the target is as it was before", err)
	}
	return err
}

// restoreFile restores the archive at path: parallel jobs read the file,
// one job reads it front to back, as from pg_dump's pipe (fed from here so
// that Progress counts what has been restored).
func (e *Engine) restoreFile(ctx context.Context, dsn, path string, info *engine.DumpInfo, opts engine.RestoreOptions) error {
	if opts.Jobs > 1 {
		return e.restore(ctx, dsn, path, nil, info, opts)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return e.restore(ctx, dsn, "", f, info, opts)
}

// RestoreStream implements engine.StreamRestorer: pg_restore reads the
// archive from open's stream, in one transaction.
func (e *Engine) RestoreStream(ctx context.Context, dsn string, open func() (io.Reader, error), info *engine.DumpInfo, opts engine.RestoreOptions) error {
	opts.Jobs = 1
	if err := e.checkTarget(ctx, dsn, info); err != nil {
		return err
	}
	r, err := open()
	if err != nil {
		return err
	}
	err = e.restore(ctx, dsn, "", r, info, opts)
	var input *proc.InputError
	switch {
	case errors.As(err, &input):
		return fmt.Errorf("%w; pg_restore had already committed the restore: the target holds what it read", err)
	case err != nil:
		return fmt.Errorf("%w; rolled back (one transaction): the target is as it was before", err)
	}
	return nil
}

// restore runs pg_restore: with opts.Jobs > 1 on the file at path, else on
// in, in one transaction. Into a server older than 17 a pg_restore of 17 or
// newer goes through its SQL script (restoreScript).
func (e *Engine) restore(ctx context.Context, dsn, path string, in io.Reader, info *engine.DumpInfo, opts engine.RestoreOptions) error {
	tool, err := pickTool("pg_restore", findTools(ctx, "pg_restore", e.binDirs), DumpMajor(info))
	if err != nil {
		return err
	}
	dbArg, password, err := splitPassword(dsn)
	if err != nil {
		return err
	}
	if tool.Major >= 17 {
		major, err := serverMajor(ctx, dsn)
		if err != nil {
			return err
		}
		if major < 17 {
			return e.restoreScript(ctx, tool, dsn, dbArg, password, path, in, opts)
		}
	}
	args := []string{"--exit-on-error", "--no-owner", "--no-privileges", "--no-password", "--dbname=" + dbArg}
	if opts.Clean {
		args = append(args, "--clean", "--if-exists")
	}
	var stdin io.Reader
	if opts.Jobs > 1 {
		args = append(args, "--jobs="+strconv.Itoa(opts.Jobs), "--", path)
	} else {
		stdin = in
		if opts.Progress != nil {
			stdin = io.TeeReader(in, opts.Progress)
		}
		args = append(args, "--single-transaction")
	}
	cmd := command(ctx, tool.Path, password, args...)
	stderr := &proc.Tail{}
	cmd.Stderr = stderr
	e.log.DebugContext(ctx, "starting pg_restore", "path", tool.Path, "version", tool.Version, "jobs", opts.Jobs)
	if f, ok := stdin.(*os.File); ok || stdin == nil {
		if ok {
			cmd.Stdin = f // pg_restore reads the file itself
		}
		err = cmd.Run()
	} else {
		err = proc.RunWithInput(cmd, stdin)
	}
	var input *proc.InputError
	switch {
	case errors.As(err, &input):
		return fmt.Errorf("pg_restore %s exited 0: %w", tool.Version, err)
	case err != nil:
		return restoreError(ctx, "pg_restore", tool.Version, dsn, password, stderr.String(), err)
	}
	return nil
}

// restoreError says why a restore tool (name, and its version as printed)
// failed: cancelled, refused login, unreachable server, or (anything else) a
// backup the restore rejects.
func restoreError(ctx context.Context, name, version, dsn, password, stderr string, err error) error {
	out := proc.Redact(stderr, password)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("restore cancelled: %w", context.Cause(ctx))
	case authFailed(out):
		return fmt.Errorf("%s could not log in to %s: authentication failed (check the user and the password in the DSN, PGPASSWORD or ~/.pgpass) (%v): %s", name, Describe(dsn), err, out)
	case strings.Contains(out, "connection to server") || strings.Contains(out, "could not connect"):
		return fmt.Errorf("%s could not reach %s (%v): %s", name, Describe(dsn), err, out)
	}
	return fmt.Errorf("%w: %s %s (%v): %s", engine.ErrRestore, name, version, err, out)
}

// serverMajor is the major version of the server at dsn.
func serverMajor(ctx context.Context, dsn string) (int, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, connectError("restore target", dsn, err)
	}
	defer closeConn(ctx, conn)
	var num int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
		return 0, fmt.Errorf("query the restore target's version: %w", err)
	}
	return num / 10000, nil
}

// checkTarget refuses, before anything is written, a target of an older
// major than the backup's source and a host whose pg_restore is older than
// the backup's pg_dump.
func (e *Engine) checkTarget(ctx context.Context, dsn string, info *engine.DumpInfo) error {
	if err := e.checkTargetMajor(ctx, dsn, info); err != nil {
		return err
	}
	if _, err := pickTool("pg_restore", findTools(ctx, "pg_restore", e.binDirs), DumpMajor(info)); err != nil {
		return fmt.Errorf("%w (the backup was written by pg_dump %s); the target was not touched", err, info.Tools["pg_dump"])
	}
	return nil
}

// checkTargetMajor refuses a target server older than the backup's source.
func (e *Engine) checkTargetMajor(ctx context.Context, dsn string, info *engine.DumpInfo) error {
	source := SourceMajor(info)
	if source == 0 {
		return nil
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("%w; the target was not touched", connectError("restore target", dsn, err))
	}
	defer closeConn(ctx, conn)
	var version string
	var num int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version'), current_setting('server_version_num')::int").Scan(&version, &num); err != nil {
		return fmt.Errorf("query the restore target's version: %w", err)
	}
	if num/10000 < source {
		return fmt.Errorf("the backup comes from PostgreSQL %s; the target %s runs PostgreSQL %s, an older major: restore into PostgreSQL %d or newer; the target was not touched",
			info.ServerVersion, Describe(dsn), version, source)
	}
	return nil
}

// SourceMajor is the major version of the server a backup was taken from
// ("18" of "18.1 (Debian 18.1-1)"), or 0.
func SourceMajor(info *engine.DumpInfo) int {
	if info == nil {
		return 0
	}
	v := info.ServerVersion
	i := 0
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	major, _ := strconv.Atoi(v[:i])
	return major
}

// DumpMajor is the major version of the pg_dump that wrote a backup, or 0.
func DumpMajor(info *engine.DumpInfo) int {
	if info == nil {
		return 0
	}
	v := info.Tools["pg_dump"]
	major, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	return major
}

// Open implements engine.Prover. The server may still be settling after its
// ready line, so connecting is retried briefly.
func (e *Engine) Open(ctx context.Context, srv engine.Server) (engine.Copy, error) {
	cfg, err := pgx.ParseConfig(ConnString(srv))
	if err != nil {
		return nil, errors.New("invalid sandbox connection settings")
	}
	var conn *pgx.Conn
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err = pgx.ConnectConfig(ctx, cfg)
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to restored copy: %w", err)
	}
	return &restored{conn: conn, cfg: cfg}, nil
}

// restored is a restored database.
type restored struct {
	conn *pgx.Conn       // Observe's and Query's
	cfg  *pgx.ConnConfig // for the integrity check's own connections
}

func (r *restored) Close(ctx context.Context) error {
	closeConn(ctx, r.conn)
	return nil
}

// Observe implements engine.Copy with the queries Dump uses at dump time.
func (r *restored) Observe(ctx context.Context) (*engine.SourceStats, error) {
	tables, err := listTables(ctx, r.conn)
	if err != nil {
		return nil, err
	}
	if err := countRows(ctx, r.conn, tables); err != nil {
		return nil, err
	}
	objects, err := listObjects(ctx, r.conn)
	if err != nil {
		return nil, err
	}
	return &engine.SourceStats{Tables: tables, Objects: objects}, nil
}

// Integrity implements engine.Copy with amcheck: bt_index_check with
// heapallindexed on every valid B-tree index, so each index is checked
// against its table too.
func (r *restored) Integrity(ctx context.Context) (string, error) {
	n, err := r.amcheck(ctx)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d indexes", n), nil
}

func (r *restored) amcheck(ctx context.Context) (int, error) {
	// Connections of its own: Observe runs on r.conn meanwhile.
	conn, err := pgx.ConnectConfig(ctx, r.cfg)
	if err != nil {
		return 0, fmt.Errorf("connect for amcheck: %w", err)
	}
	defer closeConn(ctx, conn)
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS amcheck"); err != nil {
		if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && (pgErr.Code == "58P01" || pgErr.Code == "0A000" || strings.Contains(pgErr.Message, "extension")) {
			return 0, fmt.Errorf("amcheck extension not available in the sandbox: %s: %w", pgErr.Message, errors.ErrUnsupported)
		}
		return 0, fmt.Errorf("create extension amcheck: %w", err)
	}
	// Two indexes are checked at once, largest first so that both
	// connections finish together: a check is one backend's CPU.
	rows, err := conn.Query(ctx, `
SELECT c.oid, format('%I.%I', n.nspname, c.relname)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_am am ON am.oid = c.relam
WHERE am.amname = 'btree' AND i.indisvalid AND i.indisready AND c.relkind = 'i'
  AND c.relpersistence = 'p'
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
ORDER BY pg_relation_size(i.indrelid) + pg_relation_size(c.oid) DESC, 2`)
	if err != nil {
		return 0, fmt.Errorf("list indexes: %w", err)
	}
	var indexes []btreeIndex
	var ix btreeIndex
	if _, err := pgx.ForEachRow(rows, []any{&ix.oid, &ix.name}, func() error {
		indexes = append(indexes, ix)
		return nil
	}); err != nil {
		return 0, fmt.Errorf("list indexes: %w", err)
	}

	conns := []*pgx.Conn{conn}
	if len(indexes) > 1 {
		// A second connection where the server allows one; else one does all.
		if c, err := pgx.ConnectConfig(ctx, r.cfg); err == nil {
			defer closeConn(ctx, c)
			conns = append(conns, c)
		}
	}
	next := make(chan btreeIndex)
	errs := make(chan error, len(conns))
	for _, c := range conns {
		go func() { errs <- checkIndexes(ctx, c, next) }()
	}
	workers := len(conns)
	var first error
feed:
	for _, ix := range indexes {
		select {
		case next <- ix:
		case first = <-errs: // a worker failed: the others finish their index
			workers--
			break feed
		}
	}
	close(next)
	for ; workers > 0; workers-- {
		if err := <-errs; first == nil {
			first = err
		}
	}
	if first != nil {
		return 0, first
	}
	return len(indexes), nil
}

type btreeIndex struct {
	oid  uint32
	name string
}

// checkIndexes checks the indexes it receives on conn until next is closed
// or one fails.
func checkIndexes(ctx context.Context, conn *pgx.Conn, next <-chan btreeIndex) error {
	for ix := range next {
		if _, err := conn.Exec(ctx, "SELECT bt_index_check($1::oid::regclass, true)", ix.oid); err != nil {
			if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && strings.HasPrefix(pgErr.Code, "XX") {
				return fmt.Errorf("%w: index %s: %s", engine.ErrCorrupt, ix.name, pgErr.Message)
			}
			return fmt.Errorf("amcheck index %s: %w", ix.name, err)
		}
	}
	return nil
}

// Query implements engine.Copy. The query runs in a read-only transaction
// so a check cannot change what later checks see, under a statement_timeout
// (engine.QueryTimeout) so the server stops it when the check gives up.
func (r *restored) Query(ctx context.Context, query string) (engine.Value, error) {
	tx, err := r.conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return engine.Value{}, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	timeout := engine.QueryTimeout(ctx)
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", timeout.Milliseconds())); err != nil {
		return engine.Value{}, fmt.Errorf("set statement_timeout: %w", err)
	}
	rows, err := tx.Query(ctx, query)
	if err != nil {
		return engine.Value{}, queryError(err)
	}
	defer rows.Close()
	var vals []any
	n := 0
	for rows.Next() {
		n++
		if n == 1 {
			if vals, err = rows.Values(); err != nil {
				return engine.Value{}, queryError(err)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return engine.Value{}, queryError(err)
	}
	switch {
	case n != 1:
		return engine.Value{}, fmt.Errorf("%w: returned %d rows, want exactly one", engine.ErrQuery, n)
	case len(vals) != 1:
		return engine.Value{}, fmt.Errorf("%w: returned %d columns, want exactly one", engine.ErrQuery, len(vals))
	}
	return toValue(vals[0]), nil
}

// queryError marks errors the server reported about the query as ErrQuery;
// anything else (a lost connection) stays an operational error.
func queryError(err error) error {
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "57014" {
		// Stopped by statement_timeout or a cancel: says nothing of the backup.
		return fmt.Errorf("check query stopped before it ended (statement_timeout or cancelled): %s", pgErr.Message)
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		return fmt.Errorf("%w: %s (SQLSTATE %s)", engine.ErrQuery, pgErr.Message, pgErr.Code)
	}
	return err
}

func toValue(v any) engine.Value {
	switch x := v.(type) {
	case nil:
		return engine.Value{Null: true}
	case time.Time:
		return engine.Value{Text: x.Format(time.RFC3339Nano), Time: &x}
	case bool:
		return engine.Value{Text: strconv.FormatBool(x)}
	case string:
		return engine.Value{Text: x}
	case int16, int32, int64, int, uint32:
		return engine.Value{Text: fmt.Sprint(x)}
	case float32:
		return engine.Value{Text: strconv.FormatFloat(float64(x), 'g', -1, 32)}
	case float64:
		return engine.Value{Text: strconv.FormatFloat(x, 'g', -1, 64)}
	case pgtype.Numeric:
		return engine.Value{Text: numericText(x)}
	case []byte:
		return engine.Value{Text: string(x)}
	}
	return engine.Value{Text: fmt.Sprint(v)}
}

// numericText formats a numeric exactly, without exponent.
func numericText(n pgtype.Numeric) string {
	switch {
	case !n.Valid:
		return ""
	case n.NaN:
		return "NaN"
	case n.InfinityModifier == pgtype.Infinity:
		return "Infinity"
	case n.InfinityModifier == pgtype.NegativeInfinity:
		return "-Infinity"
	}
	r := new(big.Rat).SetInt(n.Int)
	if n.Exp > 0 {
		r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n.Exp)), nil)))
	} else if n.Exp < 0 {
		r.Quo(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(-n.Exp)), nil)))
	}
	return r.FloatString(max(0, int(-n.Exp)))
}

// Objects counts the schema objects of the database at dsn that a restore
// would collide with: everything but the public schema every database has.
func (e *Engine) Objects(ctx context.Context, dsn string) (int, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, connectError("restore target", dsn, err)
	}
	defer closeConn(ctx, conn)
	objects, err := listObjects(ctx, conn)
	if err != nil {
		return 0, err
	}
	n := 0
	for kind, names := range objects {
		for _, name := range names {
			if kind != "schema" || name != "public" {
				n++
			}
		}
	}
	return n, nil
}

// Describe is the package's Describe, for callers holding an engine.
func (e *Engine) Describe(dsn string) string { return Describe(dsn) }

// ConnString is the package's ConnString, for callers holding an engine.
func (e *Engine) ConnString(srv engine.Server) string { return ConnString(srv) }

// Describe names the database a DSN points at without its credentials:
// host:port/database.
func Describe(dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "the given database"
	}
	if !plain(cfg.Host) {
		return "the given database"
	}
	hostPort := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	if !plain(cfg.Database) {
		return hostPort
	}
	return hostPort + "/" + cfg.Database
}

// plain reports whether a host or database name from a DSN can be shown:
// one with spaces, quotes, '=', '@', '&' or '?' is a DSN the parser read
// in a way its writer did not mean, and may hold a password
// ("postgresql://:x@ password=y" has the host "password=y").
func plain(s string) bool {
	return !strings.ContainsAny(s, " \t\n\r\v\f'\"=@&?") && !strings.ContainsFunc(s, unicode.IsControl)
}
