package mysql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/backproof/backproof/engine"
)

// Restore implements engine.Prover: the dump at path into the sandbox srv,
// each database under its own name.
func (e *Engine) Restore(ctx context.Context, srv engine.Server, path string, info *engine.DumpInfo, opts engine.RestoreOptions) error {
	d, err := parseDSN(e.ConnString(srv))
	if err != nil {
		return err
	}
	_, err = e.restore(ctx, d, path, info, opts)
	return err
}

// RestoreInto restores the dump at path into the server at dsn: into the
// database the URL names (the backup must then hold one database), or each
// database under its own name. MySQL cannot roll DDL back: when the
// restore fails, what it created is dropped again, so the target holds
// nothing of it.
func (e *Engine) RestoreInto(ctx context.Context, dsn, path string, info *engine.DumpInfo, opts engine.RestoreOptions) error {
	d, err := parseDSN(dsn)
	if err != nil {
		return err
	}
	undo, err := e.restore(ctx, d, path, info, opts)
	if err == nil {
		return nil
	}
	replaced := ""
	if opts.Clean {
		replaced = "; the objects of the same names it replaced (--force) are gone"
	}
	if undo == nil {
		return fmt.Errorf("%w; it changed nothing on the target%s", err, replaced)
	}
	if n, uerr := undo(context.WithoutCancel(ctx)); uerr != nil {
		return fmt.Errorf("%w; dropping what it had created failed too (%v): drop it by hand%s", err, uerr, replaced)
	} else if n == 0 {
		return fmt.Errorf("%w; it had created nothing on the target%s", err, replaced)
	} else {
		return fmt.Errorf("%w; the %d objects it had created were dropped again%s", err, n, replaced)
	}
}

// backupDatabases are the databases a backup holds, from its manifest.
func backupDatabases(info *engine.DumpInfo) []string {
	var dbs []string
	add := func(s string) {
		if !slices.Contains(dbs, s) {
			dbs = append(dbs, s)
		}
	}
	if info == nil {
		return nil
	}
	for _, t := range info.Source.Tables {
		add(t.Schema)
	}
	for _, names := range info.Source.Objects {
		for _, n := range names {
			if db, _, ok := strings.Cut(n, "."); ok {
				add(db)
			}
		}
	}
	slices.Sort(dbs)
	return dbs
}

// restore runs the script at path against d's server. On failure it
// returns undo, which drops what the restore created (nil: nothing yet).
func (e *Engine) restore(ctx context.Context, d *dsn, path string, info *engine.DumpInfo, opts engine.RestoreOptions) (undo func(context.Context) (int, error), err error) {
	srcDBs := backupDatabases(info)
	if d.db != "" && len(srcDBs) > 1 {
		return nil, fmt.Errorf("the backup holds %d databases (%s) and the target names one (%s): name none to restore each under its own name",
			len(srcDBs), strings.Join(srcDBs, ", "), d.db)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if opts.Progress != nil {
		r = io.TeeReader(f, opts.Progress)
	}

	pool, conn, srv, err := open(ctx, d, "")
	if err != nil {
		return nil, fmt.Errorf("connect to restore target: %w", err)
	}
	defer closeConn(pool, conn)
	if err := srv.check(e.flavor); err != nil {
		return nil, fmt.Errorf("restore target %s: %w", d.describe(), err)
	}
	// What the target holds before, so a failed restore can take back
	// exactly what it added.
	before := map[string]*schema{}
	existing, err := userDatabases(ctx, conn)
	if err != nil {
		return nil, err
	}
	for _, db := range existing {
		if s, err := inventory(ctx, conn, db, true); err == nil {
			before[db] = s
		}
	}
	undo = func(ctx context.Context) (int, error) {
		pool, conn, _, err := open(ctx, d, "")
		if err != nil {
			return 0, err
		}
		defer closeConn(pool, conn)
		return dropNew(ctx, conn, before)
	}

	start := time.Now()
	sr := newScriptReader(r)
	var src string // the database being restored, as the dump names it
	n := 0
	for {
		st, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return undo, fmt.Errorf("restore cancelled: %w", context.Cause(ctx))
			}
			return undo, fmt.Errorf("%w: line %d: %v", engine.ErrRestore, sr.line, err)
		}
		if st.marker != "" {
			if q, ok := strings.CutPrefix(st.marker, markerDatabase); ok {
				src = unquote(q)
			}
			continue
		}
		sql := st.sql
		if d.db != "" && src != "" {
			sql = renameDatabase(sql, src, d.db)
		}
		if _, err := conn.ExecContext(ctx, sql); err != nil {
			return undo, stmtErr(ctx, st, err)
		}
		n++
	}
	e.log.DebugContext(ctx, "restore finished", "statements", n, "seconds", time.Since(start).Seconds())
	return nil, nil
}

// renameDatabase points the dump's CREATE DATABASE and USE statements for
// src at dst.
func renameDatabase(sql, src, dst string) string {
	for _, p := range []string{"CREATE DATABASE IF NOT EXISTS ", "USE "} {
		if rest, ok := strings.CutPrefix(sql, p+quote(src)); ok {
			return p + quote(dst) + rest
		}
	}
	return sql
}

// unquote reverses quote.
func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '`' && s[len(s)-1] == '`' {
		return strings.ReplaceAll(s[1:len(s)-1], "``", "`")
	}
	return s
}

// dropNew drops every database and object that is not in before.
func dropNew(ctx context.Context, q querier, before map[string]*schema) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := q.ExecContext(ctx, "SET SESSION foreign_key_checks = 0"); err != nil {
		return 0, err
	}
	dbs, err := userDatabases(ctx, q)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	drop := func(stmt string) {
		if _, err := q.ExecContext(ctx, stmt); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", stmt, err))
		} else {
			n++
		}
	}
	for _, db := range dbs {
		old, ok := before[db]
		if !ok {
			drop("DROP DATABASE IF EXISTS " + quote(db))
			continue
		}
		now, err := inventory(ctx, q, db, true)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		had := map[string]bool{}
		for _, t := range old.tables {
			had[t.name] = true
		}
		for _, t := range now.tables {
			if !had[t.name] {
				kind := "TABLE"
				if t.view {
					kind = "VIEW"
				}
				drop("DROP " + kind + " IF EXISTS " + qualified(db, t.name))
			}
		}
		for _, r := range []struct {
			kind     string
			old, now []string
		}{{"PROCEDURE", old.procs, now.procs}, {"FUNCTION", old.funcs, now.funcs}, {"EVENT", old.events, now.events}} {
			for _, name := range r.now {
				if !slices.Contains(r.old, name) {
					drop("DROP " + r.kind + " IF EXISTS " + qualified(db, name))
				}
			}
		}
	}
	return n, errors.Join(errs...)
}

// operational are server errors that say nothing about the backup: access,
// resources, timeouts, a server going away.
var operational = []uint16{
	1044, 1045, 1142, 1143, 1227, 1370, // access denied
	1021, 1041, 1114, 1030, 3, 1037, 1038, // disk full, out of memory, table full, storage errors
	1040, 1053, 1077, 1079, 1152, 1184, 1317, 1927, // connections, shutdown, killed
	1205, 1213, 1969, 3024, 1907, // lock wait, deadlock, timeouts
}

// stmtErr marks what the server rejected about the dump's content as
// engine.ErrRestore; anything about the server itself stays operational.
func stmtErr(ctx context.Context, st statement, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("restore cancelled: %w", context.Cause(ctx))
	}
	what := st.sql
	if len(what) > 80 {
		what = what[:80] + "..."
	}
	var me *driver.MySQLError
	if !errors.As(err, &me) || slices.Contains(operational, me.Number) {
		return fmt.Errorf("line %d (%s): %w", st.line, what, err)
	}
	return fmt.Errorf("%w: line %d (%s): %w", engine.ErrRestore, st.line, what, err)
}

// Objects counts what a restore into dsn would collide with: the tables,
// views, routines and events of the URL's database, or of every user
// database.
func (e *Engine) Objects(ctx context.Context, dsn string) (int, error) {
	d, err := parseDSN(dsn)
	if err != nil {
		return 0, err
	}
	pool, conn, srv, err := open(ctx, d, "")
	if err != nil {
		return 0, fmt.Errorf("connect to restore target: %w", err)
	}
	defer closeConn(pool, conn)
	if err := srv.check(e.flavor); err != nil {
		return 0, fmt.Errorf("restore target %s: %w", d.describe(), err)
	}
	dbs := []string{d.db}
	if d.db == "" {
		if dbs, err = userDatabases(ctx, conn); err != nil {
			return 0, err
		}
	}
	n := 0
	for _, db := range dbs {
		s, err := inventory(ctx, conn, db, true)
		if err != nil {
			return 0, err
		}
		n += len(s.tables) + len(s.procs) + len(s.funcs) + len(s.events)
	}
	return n, nil
}

// Describe names the server and database a DSN points at, without its
// credentials: host:port/database.
func (e *Engine) Describe(dsn string) string {
	d, err := parseDSN(dsn)
	if err != nil {
		return "the given server"
	}
	return d.describe()
}

// ConnString is a mysql:// URL for srv; it holds the password.
func (e *Engine) ConnString(srv engine.Server) string {
	return URL(srv.Host, srv.Port, srv.User, srv.Password, srv.Database)
}
