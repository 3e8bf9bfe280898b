// Package mysql backs up MySQL and MariaDB through the Go driver alone
// (go-sql-driver/mysql), with no dump tool: one connection reads every
// table inside START TRANSACTION WITH CONSISTENT SNAPSHOT and writes plain
// SQL that the flavor's own client loads (`mariadb < dump.sql`, `mysql <
// dump.sql`). Restores read the same SQL through the driver.
//
// Why not mysqldump/mariadb-dump: the dump tool must match the server's
// flavor and be new enough (a mismatched one can exit 0 with a truncated
// dump), no Debian release ships MySQL 9's client, and a tool's output
// would have to be parsed again to count the rows it wrote. Reading the
// rows here counts them exactly as dumped, in the dump's own snapshot, and
// leaves out what breaks restores into a sandbox or a fresh server
// (SET @@GLOBAL.GTID_PURGED, DEFINER clauses, COLUMN_STATISTICS).
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	driver "github.com/go-sql-driver/mysql"

	"github.com/backproof/backproof/engine"
)

// Flavors: the engine names of the config.
const (
	MySQL   = "mysql"
	MariaDB = "mariadb"
)

// ToolName is the key of the driver version in DumpInfo.Tools.
const ToolName = "go-sql-driver/mysql"

// DriverVersion is the go-sql-driver/mysql version this package is built
// and tested with (go.mod).
const DriverVersion = "v1.10.2"

// Oldest servers this package supports.
var minVersion = map[string][2]int{MySQL: {8, 0}, MariaDB: {10, 6}}

// Engine dumps the databases of one MySQL or MariaDB server.
type Engine struct {
	flavor string
	dsn    string
	log    *slog.Logger
}

var _ engine.Engine = (*Engine)(nil)

// Option configures an Engine.
type Option func(*Engine)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// New returns an engine of the given flavor (MySQL or MariaDB) for the
// server at dsn, a mysql://user:password@host:3306/db URL. When the URL
// names a database only that one is backed up; otherwise every user
// database. The dsn is a secret: it never reaches logs or errors.
func New(flavor, dsn string, opts ...Option) *Engine {
	e := &Engine{flavor: flavor, dsn: dsn, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Artifact implements engine.Engine: plain SQL.
func (e *Engine) Artifact() string { return "dump.sql" }

// systemDatabases are never backed up.
var systemDatabases = []string{"mysql", "information_schema", "performance_schema", "sys"}

// server is what a connection learned about its server.
type server struct {
	flavor  string
	version string // VERSION(), e.g. "10.11.14-MariaDB-0+deb12u2" or "9.7.0"
	major   int
	minor   int
	logBin  bool
}

// open connects to d's server (database db, "" for none) on one dedicated
// connection and learns its flavor and version. The caller closes both.
func open(ctx context.Context, d *dsn, db string) (*sql.DB, *sql.Conn, *server, error) {
	cfg, err := d.config(db)
	if err != nil {
		return nil, nil, nil, err
	}
	connector, err := driver.NewConnector(cfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", d.describe(), err)
	}
	pool := sql.OpenDB(connector)
	pool.SetMaxIdleConns(1)
	conn, err := pool.Conn(ctx)
	if err != nil {
		pool.Close()
		if ctx.Err() != nil {
			return nil, nil, nil, context.Cause(ctx)
		}
		return nil, nil, nil, fmt.Errorf("%s: %w", d.describe(), connErr(err))
	}
	srv := &server{}
	var comment string
	var logBin sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT VERSION(), @@version_comment, @@log_bin").Scan(&srv.version, &comment, &logBin); err != nil {
		conn.Close()
		pool.Close()
		return nil, nil, nil, fmt.Errorf("%s: query server version: %w", d.describe(), err)
	}
	srv.logBin = logBin.Int64 == 1
	srv.flavor = MySQL
	if strings.Contains(strings.ToLower(srv.version+" "+comment), "mariadb") {
		srv.flavor = MariaDB
	}
	srv.major, srv.minor = parseVersion(srv.version)
	return pool, conn, srv, nil
}

// check refuses a server of the other flavor or older than supported.
func (s *server) check(flavor string) error {
	if s.flavor != flavor {
		return fmt.Errorf("the server is %s %s, the target's engine is %s: set engine: %s", s.flavor, s.version, flavor, s.flavor)
	}
	m := minVersion[flavor]
	if s.major < m[0] || (s.major == m[0] && s.minor < m[1]) {
		return fmt.Errorf("%s %s is too old: backproof supports %s %d.%d and newer", flavor, s.version, flavor, m[0], m[1])
	}
	return nil
}

// parseVersion returns the major and minor of "10.11.14-MariaDB-...".
func parseVersion(v string) (major, minor int) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) >= 2 {
		major, _ = strconv.Atoi(parts[0])
		minor, _ = strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	}
	return major, minor
}

// shortVersion is x.y.z of a server version, what image tags use.
func shortVersion(v string) string {
	i := 0
	for i < len(v) && (v[i] == '.' || v[i] >= '0' && v[i] <= '9') {
		i++
	}
	return strings.TrimSuffix(v[:i], ".")
}

// connErr says what a failed connection means for the user; the driver's
// messages name neither host nor password.
func connErr(err error) error {
	var me *driver.MySQLError
	if errors.As(err, &me) && me.Number == 1045 {
		return fmt.Errorf("authentication failed (wrong user or password): %w", err)
	}
	return err
}

// quote quotes an identifier with backquotes.
func quote(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

// qualified is `db`.`name`.
func qualified(db, name string) string { return quote(db) + "." + quote(name) }

// literal quotes a string as an SQL string literal, escaped as
// mysql_real_escape_string does.
func literal(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	writeEscaped(&b, []byte(s))
	b.WriteByte('\'')
	return b.String()
}

type byteWriter interface {
	WriteByte(byte) error
	WriteString(string) (int, error)
}

func writeEscaped(b byteWriter, s []byte) {
	for _, c := range s {
		switch c {
		case 0:
			b.WriteString(`\0`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		case '"':
			b.WriteString(`\"`)
		case 0x1a:
			b.WriteString(`\Z`)
		default:
			b.WriteByte(c)
		}
	}
}

func closeConn(pool *sql.DB, conn *sql.Conn) {
	if conn != nil {
		conn.Close()
	}
	pool.Close()
}

// queryStrings runs a query returning one string column.
func queryStrings(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// userDatabases lists the server's databases but the system ones.
func userDatabases(ctx context.Context, q querier) ([]string, error) {
	names, err := queryStrings(ctx, q, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	var out []string
	for _, n := range names {
		if !contains(systemDatabases, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Grants are the statements that give user@'%' exactly what a backup of
// database db needs on the given flavor (README, "Least privilege").
func Grants(flavor, user, db string) []string {
	to := " TO " + literal(user) + "@'%'"
	g := []string{"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON " + quote(db) + ".*" + to}
	if flavor == MariaDB {
		// Routine bodies: SELECT on mysql.proc.
		return append(g, "GRANT SELECT ON mysql.proc"+to)
	}
	// Routine bodies: SHOW_ROUTINE; the binlog position of the snapshot:
	// RELOAD (a moment of FLUSH TABLES WITH READ LOCK) and REPLICATION CLIENT.
	return append(g, "GRANT SHOW_ROUTINE, RELOAD, REPLICATION CLIENT ON *.*"+to)
}
