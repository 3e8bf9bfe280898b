package mysql

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/backproof/backproof/engine"
)

// Dump-file markers. The restore reads them; the client ignores them as
// comments.
const (
	markerDatabase = "-- backproof: database "
	markerEnd      = "-- backproof: end of dump"
	// loadMode is the sql_mode the dump loads under: zero in an
	// AUTO_INCREMENT column stays zero, backslash escapes work.
	loadMode = "NO_AUTO_VALUE_ON_ZERO"
	// maxInsert bounds one INSERT statement, well under the smallest
	// default max_allowed_packet (16 MiB, MariaDB).
	maxInsert = 1 << 20
)

// Dump implements engine.Engine. One connection opens a consistent
// snapshot (START TRANSACTION WITH CONSISTENT SNAPSHOT) and reads every
// table, view, routine, trigger and event through it; the row counts
// recorded are those of the rows written. Tables of non-transactional
// engines (MyISAM, Aria, ...) are dumped too, but their copy is not
// point-in-time: the manifest says so.
func (e *Engine) Dump(ctx context.Context, w io.Writer) (*engine.DumpInfo, error) {
	d, err := parseDSN(e.dsn)
	if err != nil {
		return nil, err
	}
	pool, conn, srv, err := open(ctx, d, "")
	if err != nil {
		return nil, fmt.Errorf("connect to source: %w", err)
	}
	defer closeConn(pool, conn)
	if err := srv.check(e.flavor); err != nil {
		return nil, fmt.Errorf("source %s: %w", d.describe(), err)
	}
	for _, q := range []string{
		// SHOW CREATE output with backquotes, whatever the server's mode.
		"SET SESSION sql_mode = ''",
		// A slow destination must not make the server drop the stream.
		"SET SESSION net_write_timeout = 3600",
		"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
	}

	dbs := []string{d.db}
	if d.db == "" {
		if dbs, err = userDatabases(ctx, conn); err != nil {
			return nil, err
		}
		if len(dbs) == 0 {
			return nil, errors.New("the server has no user databases: nothing to back up")
		}
	}
	pos, err := e.begin(ctx, conn, srv)
	if err != nil {
		return nil, err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK") //nolint:errcheck // read-only; closing ends it anyway

	dw := &dumpWriter{w: bufio.NewWriterSize(w, 256<<10), conn: conn, flavor: e.flavor}
	dw.header(srv, pos)
	stats := engine.SourceStats{Objects: map[string][]string{}, Position: pos}
	var schemas []*schema
	for _, db := range dbs {
		start := time.Now()
		s, err := dw.database(ctx, db)
		if err != nil {
			return nil, dumpErr(ctx, err)
		}
		schemas = append(schemas, s)
		s.addTo(&stats)
		for _, t := range s.tables {
			if !t.view && !t.transactional() {
				stats.Notes = append(stats.Notes, fmt.Sprintf("table %s.%s uses %s, which is not transactional: its copy is not point-in-time", db, t.name, t.engine))
			}
		}
		e.log.DebugContext(ctx, "dumped database", "database", db, "tables", len(s.tables), "seconds", time.Since(start).Seconds())
	}
	for _, s := range schemas {
		if err := dw.views(ctx, s); err != nil {
			return nil, dumpErr(ctx, err)
		}
	}
	dw.footer()
	if dw.err == nil {
		dw.err = dw.w.Flush()
	}
	if dw.err != nil {
		return nil, dumpErr(ctx, fmt.Errorf("write dump stream: %w", dw.err))
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("dump cancelled: %w", context.Cause(ctx))
	}
	sortStats(&stats)
	return &engine.DumpInfo{
		ServerVersion: srv.version,
		Tools:         map[string]string{ToolName: DriverVersion},
		Source:        stats,
	}, nil
}

// begin starts the snapshot transaction and returns the binlog position
// it corresponds to (nil when the server logs no binlog). MariaDB reports
// the snapshot's position without a lock; MySQL needs FLUSH TABLES WITH
// READ LOCK around the start of the transaction (what mysqldump
// --single-transaction --source-data does), which needs RELOAD.
func (e *Engine) begin(ctx context.Context, conn *sql.Conn, srv *server) (map[string]string, error) {
	const start = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"
	if !srv.logBin {
		if _, err := conn.ExecContext(ctx, start); err != nil {
			return nil, fmt.Errorf("start snapshot: %w", err)
		}
		return nil, nil
	}
	pos := map[string]string{}
	if srv.flavor == MariaDB {
		if _, err := conn.ExecContext(ctx, start); err != nil {
			return nil, fmt.Errorf("start snapshot: %w", err)
		}
		st, err := showRows(ctx, conn, "SHOW STATUS LIKE 'binlog_snapshot_%'")
		if err != nil {
			return nil, fmt.Errorf("read the snapshot's binlog position: %w", err)
		}
		for _, r := range st {
			switch strings.ToLower(r["variable_name"].String) {
			case "binlog_snapshot_file":
				pos["binlog_file"] = r["value"].String
			case "binlog_snapshot_position":
				pos["binlog_position"] = r["value"].String
			}
		}
		if pos["binlog_file"] != "" {
			var gtid sql.NullString
			if err := conn.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, ?)", pos["binlog_file"], pos["binlog_position"]).Scan(&gtid); err != nil {
				return nil, fmt.Errorf("read the snapshot's GTID position: %w", err)
			}
			if gtid.String != "" {
				pos["gtid_set"] = gtid.String
			}
		}
		return pos, nil
	}

	if _, err := conn.ExecContext(ctx, "SET SESSION lock_wait_timeout = 60"); err != nil {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK"); err != nil {
		return nil, privErr(err, "RELOAD", "FLUSH TABLES WITH READ LOCK (a moment, to read the binlog position of the snapshot)")
	}
	unlocked := false
	unlock := func() error {
		if unlocked {
			return nil
		}
		unlocked = true
		_, err := conn.ExecContext(context.WithoutCancel(ctx), "UNLOCK TABLES")
		return err
	}
	defer unlock() //nolint:errcheck // error paths; the connection closes anyway
	if _, err := conn.ExecContext(ctx, start); err != nil {
		return nil, fmt.Errorf("start snapshot: %w", err)
	}
	q := "SHOW BINARY LOG STATUS"
	if srv.major == 8 && srv.minor < 2 {
		q = "SHOW MASTER STATUS"
	}
	st, err := showRows(ctx, conn, q)
	if err != nil {
		return nil, privErr(err, "REPLICATION CLIENT", q)
	}
	if len(st) == 1 {
		pos["binlog_file"] = st[0]["file"].String
		pos["binlog_position"] = st[0]["position"].String
		if g := strings.ReplaceAll(st[0]["executed_gtid_set"].String, "\n", ""); g != "" {
			pos["gtid_set"] = g
		}
	}
	if err := unlock(); err != nil {
		return nil, fmt.Errorf("UNLOCK TABLES: %w", err)
	}
	return pos, nil
}

// privErr names the privilege a statement lacked.
func privErr(err error, priv, what string) error {
	var me *driver.MySQLError
	if errors.As(err, &me) && (me.Number == 1227 || me.Number == 1044 || me.Number == 1045 || me.Number == 1142 || me.Number == 1370) {
		return fmt.Errorf("the backup user lacks the %s privilege, needed for %s: %w", priv, what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// dumpErr prefers the context's cause to what a cancelled query reported,
// and explains a table changed by DDL during the dump.
func dumpErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("dump cancelled: %w", context.Cause(ctx))
	}
	var me *driver.MySQLError
	if errors.As(err, &me) && me.Number == 1412 {
		return fmt.Errorf("%w (a table's definition changed during the dump, by DDL after the snapshot started; back up again)", err)
	}
	return err
}

// showRows runs a SHOW statement and returns its rows keyed by lower-case
// column name.
func showRows(ctx context.Context, q querier, query string) ([]map[string]sql.NullString, error) {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []map[string]sql.NullString
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		m := make(map[string]sql.NullString, len(cols))
		for i, c := range cols {
			m[strings.ToLower(c)] = vals[i]
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// dumpWriter writes the SQL text. The first write error sticks.
type dumpWriter struct {
	w      *bufio.Writer
	conn   *sql.Conn
	flavor string
	err    error
}

func (dw *dumpWriter) printf(format string, args ...any) {
	if dw.err == nil {
		_, dw.err = fmt.Fprintf(dw.w, format, args...)
	}
}

func (dw *dumpWriter) header(srv *server, pos map[string]string) {
	client := "mysql"
	if srv.flavor == MariaDB {
		client = "mariadb"
	}
	dw.printf("-- backproof dump of %s %s (%s %s)\n", srv.flavor, srv.version, ToolName, DriverVersion)
	dw.printf("-- Plain SQL: load it with `%s -u USER -p < dump.sql` (zstd -dc dump.sql.zst | %s ...).\n", client, client)
	if pos != nil {
		dw.printf("-- Snapshot binlog position: file %s, position %s, GTID set %q\n", pos["binlog_file"], pos["binlog_position"], pos["gtid_set"])
	}
	dw.printf("SET NAMES utf8mb4;\nSET time_zone = '+00:00';\nSET unique_checks = 0;\nSET foreign_key_checks = 0;\nSET sql_mode = '%s';\nSET sql_notes = 0;\n\n", loadMode)
}

func (dw *dumpWriter) footer() {
	dw.printf("SET foreign_key_checks = 1;\nSET unique_checks = 1;\nSET sql_notes = 1;\n%s\n", markerEnd)
}

// database writes one database: itself, its tables with their rows and
// triggers, stand-ins for its views (the views come last, once every table
// and stand-in exists), its routines and events.
func (dw *dumpWriter) database(ctx context.Context, db string) (*schema, error) {
	if _, err := dw.conn.ExecContext(ctx, "USE "+quote(db)); err != nil {
		return nil, fmt.Errorf("database %s: %w", db, err)
	}
	// EVENT is needed to see events at all: without it they would be
	// missing from the dump without a word.
	if _, err := showRows(ctx, dw.conn, "SHOW EVENTS"); err != nil {
		return nil, privErr(err, "EVENT", "reading the events of "+db)
	}
	s, err := inventory(ctx, dw.conn, db, true)
	if err != nil {
		return nil, err
	}
	create, err := showRows(ctx, dw.conn, "SHOW CREATE DATABASE "+quote(db))
	if err != nil || len(create) != 1 {
		return nil, fmt.Errorf("SHOW CREATE DATABASE %s: %v", db, err)
	}
	dw.printf("%s%s\n%s;\nUSE %s;\n\n", markerDatabase, quote(db), ifNotExists(create[0]["create database"].String), quote(db))

	for _, t := range s.tables {
		if t.view {
			continue
		}
		if err := dw.table(ctx, t); err != nil {
			return nil, err
		}
	}
	for _, t := range s.tables {
		if t.view {
			dw.standIn(t)
		}
	}
	for _, r := range []struct {
		kind  string
		names []string
	}{{"PROCEDURE", s.procs}, {"FUNCTION", s.funcs}, {"EVENT", s.events}} {
		for _, name := range r.names {
			if err := dw.routine(ctx, db, r.kind, name); err != nil {
				return nil, err
			}
		}
	}
	return s, dw.err
}

// ifNotExists makes SHOW CREATE DATABASE's statement idempotent.
func ifNotExists(create string) string {
	if rest, ok := strings.CutPrefix(create, "CREATE DATABASE "); ok && !strings.Contains(create, "IF NOT EXISTS") {
		return "CREATE DATABASE IF NOT EXISTS " + rest
	}
	return create
}

// table writes a table's definition, its rows and its triggers.
func (dw *dumpWriter) table(ctx context.Context, t *table) error {
	create, err := showRows(ctx, dw.conn, "SHOW CREATE TABLE "+quote(t.name))
	if err != nil || len(create) != 1 {
		return fmt.Errorf("SHOW CREATE TABLE %s.%s: %w", t.db, t.name, err)
	}
	dw.printf("-- Table %s\nDROP TABLE IF EXISTS %s;\n%s;\n", quote(t.name), quote(t.name), create[0]["create table"].String)
	if err := dw.rows(ctx, t); err != nil {
		return err
	}
	trigs, err := queryStrings(ctx, dw.conn, `SELECT TRIGGER_NAME FROM information_schema.TRIGGERS
WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? ORDER BY ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER`, t.db, t.name)
	if err != nil {
		return fmt.Errorf("list triggers of %s.%s: %w", t.db, t.name, err)
	}
	for _, name := range trigs {
		if err := dw.routine(ctx, t.db, "TRIGGER", name); err != nil {
			return err
		}
	}
	dw.printf("\n")
	return dw.err
}

// valueKind is how a column's values are written.
type valueKind int

const (
	asString valueKind = iota // quoted and escaped
	asNumber                  // the server's text as is
	asHex                     // 0x..., binary data
)

func kindOf(dataType string) valueKind {
	switch dataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint",
		"decimal", "numeric", "float", "double", "real", "year":
		return asNumber
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit",
		"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
		"multipolygon", "geometrycollection", "geomcollection", "vector":
		return asHex
	}
	return asString
}

// rows writes the table's rows as extended INSERTs and counts them.
func (dw *dumpWriter) rows(ctx context.Context, t *table) error {
	var cols []string
	var kinds []valueKind
	for _, c := range t.columns {
		if !c.generated {
			cols = append(cols, quote(c.name))
			kinds = append(kinds, kindOf(c.dataType))
		}
	}
	if len(cols) == 0 {
		return nil
	}
	list := strings.Join(cols, ",")
	rows, err := dw.conn.QueryContext(ctx, "SELECT "+list+" FROM "+quote(t.name))
	if err != nil {
		return fmt.Errorf("read %s.%s: %w", t.db, t.name, err)
	}
	defer rows.Close()
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	prefix := "INSERT INTO " + quote(t.name) + " (" + list + ") VALUES\n"
	var buf []byte
	flush := func() {
		if len(buf) > 0 && dw.err == nil {
			buf = append(buf, ";\n"...)
			_, dw.err = dw.w.Write(buf)
		}
		buf = buf[:0]
	}
	for rows.Next() {
		// An empty value must stay distinguishable from NULL (nil).
		for i := range vals {
			if vals[i] == nil {
				vals[i] = make(sql.RawBytes, 0, 32)
			} else {
				vals[i] = vals[i][:0]
			}
		}
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("read %s.%s: %w", t.db, t.name, err)
		}
		if len(buf) == 0 {
			buf = append(buf, prefix...)
		} else {
			buf = append(buf, ",\n"...)
		}
		buf = append(buf, '(')
		for i, v := range vals {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendValue(buf, v, kinds[i])
		}
		buf = append(buf, ')')
		t.rows++
		if len(buf) >= maxInsert {
			flush()
			if dw.err != nil {
				return dw.err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s.%s: %w", t.db, t.name, err)
	}
	flush()
	return dw.err
}

func appendValue(buf []byte, v sql.RawBytes, k valueKind) []byte {
	switch {
	case v == nil:
		return append(buf, "NULL"...)
	case k == asNumber:
		return append(buf, v...)
	case k == asHex && len(v) > 0:
		buf = append(buf, "0x"...)
		n := len(buf)
		buf = append(buf, make([]byte, hex.EncodedLen(len(v)))...)
		hex.Encode(buf[n:], v)
		return buf
	}
	buf = append(buf, '\'')
	for _, c := range v {
		switch c {
		case 0:
			buf = append(buf, '\\', '0')
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\\':
			buf = append(buf, '\\', '\\')
		case '\'':
			buf = append(buf, '\\', '\'')
		case '"':
			buf = append(buf, '\\', '"')
		case 0x1a:
			buf = append(buf, '\\', 'Z')
		default:
			buf = append(buf, c)
		}
	}
	return append(buf, '\'')
}

// standIn writes a placeholder view with the view's columns, so that
// views on views load in any order; views() replaces it.
func (dw *dumpWriter) standIn(t *table) {
	cols := make([]string, 0, len(t.columns))
	for _, c := range t.columns {
		cols = append(cols, "1 AS "+quote(c.name))
	}
	if len(cols) == 0 {
		cols = append(cols, "1 AS "+quote("backproof_stand_in"))
	}
	dw.printf("-- Stand-in for view %s\nDROP TABLE IF EXISTS %s;\nDROP VIEW IF EXISTS %s;\nCREATE VIEW %s AS SELECT %s;\n\n",
		quote(t.name), quote(t.name), quote(t.name), quote(t.name), strings.Join(cols, ", "))
}

// views writes the database's views over their stand-ins.
func (dw *dumpWriter) views(ctx context.Context, s *schema) error {
	first := true
	for _, t := range s.tables {
		if !t.view {
			continue
		}
		if first {
			if _, err := dw.conn.ExecContext(ctx, "USE "+quote(s.name)); err != nil {
				return fmt.Errorf("database %s: %w", s.name, err)
			}
			dw.printf("%s%s\nUSE %s;\n\n", markerDatabase, quote(s.name), quote(s.name))
			first = false
		}
		create, err := showRows(ctx, dw.conn, "SHOW CREATE VIEW "+quote(t.name))
		if err != nil || len(create) != 1 {
			return privErr(fmt.Errorf("SHOW CREATE VIEW %s.%s: %w", s.name, t.name, err), "SHOW VIEW", "reading the definition of view "+s.name+"."+t.name)
		}
		dw.printf("-- View %s\nDROP VIEW IF EXISTS %s;\n%s;\n\n", quote(t.name), quote(t.name), stripDefiner(create[0]["create view"].String))
	}
	return dw.err
}

// routine writes a procedure, function, trigger or event with the
// sql_mode (and, for events, time zone) it was created under, between
// DELIMITER lines as mysqldump writes them.
func (dw *dumpWriter) routine(ctx context.Context, db, kind, name string) error {
	r, err := showRows(ctx, dw.conn, "SHOW CREATE "+kind+" "+quote(name))
	if err != nil || len(r) != 1 {
		priv := map[string]string{"TRIGGER": "TRIGGER", "EVENT": "EVENT"}[kind]
		if priv == "" {
			priv = "SHOW_ROUTINE (MySQL) or SELECT on mysql.proc (MariaDB)"
		}
		return privErr(fmt.Errorf("SHOW CREATE %s %s.%s: %w", kind, db, name, err), priv, "reading "+strings.ToLower(kind)+" "+db+"."+name)
	}
	col := "create " + strings.ToLower(kind)
	if kind == "TRIGGER" {
		col = "sql original statement"
	}
	body := r[0][col]
	if !body.Valid || body.String == "" {
		// The server hides the body of a routine the user may not read.
		return fmt.Errorf("the backup user may not read the body of %s %s.%s: grant SHOW_ROUTINE (MySQL) or SELECT on mysql.proc (MariaDB)", strings.ToLower(kind), db, name)
	}
	dw.printf("-- %s%s %s\n", kind[:1], strings.ToLower(kind[1:]), quote(name))
	dw.printf("DROP %s IF EXISTS %s;\n", kind, quote(name))
	dw.printf("SET sql_mode = %s;\n", literal(r[0]["sql_mode"].String))
	if kind == "EVENT" {
		dw.printf("SET time_zone = %s;\n", literal(r[0]["time_zone"].String))
	}
	// A trailing terminator of the original text would end the statement early.
	stmt := strings.TrimRight(stripDefiner(body.String), "; \t\r\n")
	dw.printf("DELIMITER ;;\n%s;;\nDELIMITER ;\n", stmt)
	if kind == "EVENT" {
		dw.printf("SET time_zone = '+00:00';\n")
	}
	dw.printf("SET sql_mode = '%s';\n\n", loadMode)
	return dw.err
}

// stripDefiner removes the DEFINER clause of a CREATE statement as SHOW
// CREATE prints it: the object then belongs to whoever restores it, so a
// restore into a sandbox or a fresh server, where that account does not
// exist or may not be named, works.
func stripDefiner(stmt string) string {
	i := strings.Index(stmt, "DEFINER=")
	if i < 0 || i > 64 || !strings.HasPrefix(stmt, "CREATE ") {
		return stmt
	}
	// Only "CREATE [ALGORITHM=x ]" may stand before it.
	head := strings.Fields(stmt[len("CREATE "):i])
	if len(head) > 1 || (len(head) == 1 && !strings.HasPrefix(head[0], "ALGORITHM=")) {
		return stmt
	}
	j := i + len("DEFINER=")
	j = skipName(stmt, j)
	if j < len(stmt) && stmt[j] == '@' {
		j = skipName(stmt, j+1)
	}
	if j < len(stmt) && stmt[j] == ' ' {
		return stmt[:i] + stmt[j+1:]
	}
	return stmt
}

// skipName returns the end of a quoted or bare account name part at i.
func skipName(s string, i int) int {
	if i >= len(s) {
		return i
	}
	if q := s[i]; q == '`' || q == '\'' || q == '"' {
		for j := i + 1; j < len(s); j++ {
			if s[j] == q {
				if j+1 < len(s) && s[j+1] == q {
					j++
					continue
				}
				return j + 1
			}
		}
		return len(s)
	}
	j := i
	for j < len(s) && s[j] != '@' && s[j] != ' ' {
		j++
	}
	return j
}
