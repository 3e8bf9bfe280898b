package mysql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/sandbox"
)

var _ engine.Prover = (*Engine)(nil)

// ReadyLine is part of the line both flavors' servers log once they accept
// TCP connections on the default port ("...  port: 3306  mariadb.org binary
// distribution"); the official images' temporary init servers listen on
// no port ("port: 0"), and MySQL's X Plugin line says "port: 33060,".
const ReadyLine = "port: 3306  "

// sandboxUser is the root account the official images create from
// MARIADB_ROOT_PASSWORD / MYSQL_ROOT_PASSWORD, reachable from any host.
const sandboxUser = "root"

// checkUser, with a random suffix, runs the configured checks in a restored
// copy: it may read everything and change nothing.
const checkUser = "backproof_check_"

// Sandbox implements engine.Prover with the official images' contract
// (mariadb:{version}, mysql:{version}). The server trades durability for
// restore speed, logs no binlog and runs no events.
func (e *Engine) Sandbox(image, password string, _ *engine.DumpInfo) (sandbox.Spec, engine.Server) {
	srv := engine.Server{User: sandboxUser, Password: password}
	env := map[string]string{"MYSQL_ROOT_PASSWORD": password}
	if e.flavor == MariaDB {
		env = map[string]string{"MARIADB_ROOT_PASSWORD": password}
	}
	return sandbox.Spec{
		Image: image,
		Env:   env,
		// Options alone: the official entrypoints prepend the server.
		Cmd: []string{
			"--skip-log-bin", "--event-scheduler=OFF", "--skip-name-resolve",
			"--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=OFF",
			"--max-allowed-packet=256M",
		},
		Port:       "3306/tcp",
		DataDir:    "/var/lib/mysql",
		Ready:      ReadyLine,
		ReadyCount: 1,
	}, srv
}

// Open implements engine.Prover. It also creates the read-only account the
// checks run as.
func (e *Engine) Open(ctx context.Context, srv engine.Server) (engine.Copy, error) {
	d, err := parseDSN(e.ConnString(srv))
	if err != nil {
		return nil, err
	}
	var (
		pool *sql.DB
		conn *sql.Conn
		info *server
	)
	// The server may still settle after its ready line.
	deadline := time.Now().Add(15 * time.Second)
	for {
		pool, conn, info, err = open(ctx, d, "")
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to restored copy: %w", err)
	}
	r := &restored{pool: pool, conn: conn, srv: info, d: d}
	if d.db != "" {
		r.dbs = []string{d.db}
	}
	if err := r.createCheckUser(ctx); err != nil {
		r.Close(ctx) //nolint:errcheck // nothing to report
		return nil, err
	}
	return r, nil
}

// restored is a restored copy under inspection.
type restored struct {
	pool  *sql.DB
	conn  *sql.Conn
	srv   *server
	d     *dsn
	dbs   []string // the databases under inspection; nil: every user database
	check *dsn     // the read-only account
}

func (r *restored) Close(ctx context.Context) error {
	if r.check != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		r.conn.ExecContext(ctx, "DROP USER IF EXISTS "+literal(r.check.user)+"@'%'") //nolint:errcheck // best effort; sandboxes are thrown away
	}
	closeConn(r.pool, r.conn)
	return nil
}

// databases are the databases of the copy, asked on q.
func (r *restored) databases(ctx context.Context, q querier) ([]string, error) {
	if r.dbs != nil {
		return r.dbs, nil
	}
	return userDatabases(ctx, q)
}

func (r *restored) createCheckUser(ctx context.Context) error {
	b := make([]byte, 20)
	rand.Read(b)
	user, pass := checkUser+hex.EncodeToString(b[:4]), hex.EncodeToString(b[4:])
	for _, q := range []string{
		"CREATE USER " + literal(user) + "@'%' IDENTIFIED BY " + literal(pass),
		"GRANT SELECT, SHOW VIEW, EXECUTE ON *.* TO " + literal(user) + "@'%'",
	} {
		if _, err := r.conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create the read-only account for checks: %w", err)
		}
	}
	c := *r.d
	c.user, c.password = user, pass
	r.check = &c
	return nil
}

// Observe implements engine.Copy: the inventory a dump records, with exact
// row counts.
func (r *restored) Observe(ctx context.Context) (*engine.SourceStats, error) {
	dbs, err := r.databases(ctx, r.conn)
	if err != nil {
		return nil, err
	}
	stats := &engine.SourceStats{Objects: map[string][]string{}}
	for _, db := range dbs {
		s, err := inventory(ctx, r.conn, db, true)
		if err != nil {
			return nil, err
		}
		for _, t := range s.tables {
			if t.view {
				continue
			}
			if err := r.conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+qualified(db, t.name)).Scan(&t.rows); err != nil {
				return nil, fmt.Errorf("count rows of %s.%s: %w", db, t.name, err)
			}
		}
		s.addTo(stats)
	}
	sortStats(stats)
	return stats, nil
}

// Integrity implements engine.Copy with CHECK TABLE on every table: pages,
// rows and indexes against each other.
func (r *restored) Integrity(ctx context.Context) (string, error) {
	n, err := r.checkTables(ctx)
	if err != nil {
		return "", err
	}
	if n == 1 {
		return "1 table", nil
	}
	return fmt.Sprintf("%d tables", n), nil
}

func (r *restored) checkTables(ctx context.Context) (int, error) {
	// A connection of its own: Observe runs on r.conn meanwhile.
	conn, err := r.pool.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("connect for CHECK TABLE: %w", err)
	}
	defer conn.Close()
	dbs, err := r.databases(ctx, conn)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, db := range dbs {
		s, err := inventory(ctx, conn, db, false)
		if err != nil {
			return 0, err
		}
		for _, t := range s.tables {
			if t.view {
				continue
			}
			res, err := showRows(ctx, conn, "CHECK TABLE "+qualified(db, t.name))
			if err != nil {
				return 0, fmt.Errorf("CHECK TABLE %s.%s: %w", db, t.name, err)
			}
			var problems []string
			for _, row := range res {
				typ, msg := strings.ToLower(row["msg_type"].String), row["msg_text"].String
				switch {
				case typ == "error":
					problems = append(problems, msg)
				case typ == "status" && msg != "OK" && msg != "Table is already up to date":
					problems = append(problems, msg)
				}
			}
			if len(problems) > 0 {
				return 0, fmt.Errorf("%w: table %s.%s: %s", engine.ErrCorrupt, db, t.name, strings.Join(problems, "; "))
			}
			n++
		}
	}
	return n, nil
}

// Query implements engine.Copy. The query runs as an account that may only
// read, in a read-only transaction, under a statement timeout
// (engine.QueryTimeout), in the copy's database when it
// holds one (otherwise name each table's database).
func (r *restored) Query(ctx context.Context, query string) (engine.Value, error) {
	timeout := engine.QueryTimeout(ctx)
	// A copy of one database is the query's default database.
	dbs, err := r.databases(ctx, r.conn)
	if err != nil {
		return engine.Value{}, err
	}
	def := ""
	if len(dbs) == 1 {
		def = dbs[0]
	}
	pool, conn, _, err := open(ctx, r.check, def)
	if err != nil {
		return engine.Value{}, fmt.Errorf("connect to restored copy as %s: %w", r.check.user, err)
	}
	defer closeConn(pool, conn)
	limit := fmt.Sprintf("SET SESSION max_execution_time = %d", timeout.Milliseconds())
	if r.srv.flavor == MariaDB {
		limit = fmt.Sprintf("SET SESSION max_statement_time = %d", int(timeout.Seconds()))
	}
	for _, q := range []string{limit, "START TRANSACTION READ ONLY"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return engine.Value{}, fmt.Errorf("%s: %w", q, err)
		}
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK") //nolint:errcheck // read-only
	rows, err := conn.QueryContext(ctx, query)
	if err != nil {
		return engine.Value{}, queryErr(ctx, err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return engine.Value{}, queryErr(ctx, err)
	}
	if len(types) != 1 {
		return engine.Value{}, fmt.Errorf("%w: returned %d columns, want exactly one", engine.ErrQuery, len(types))
	}
	var v sql.NullString
	n := 0
	for rows.Next() {
		n++
		if n == 1 {
			if err := rows.Scan(&v); err != nil {
				return engine.Value{}, queryErr(ctx, err)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return engine.Value{}, queryErr(ctx, err)
	}
	if n != 1 {
		return engine.Value{}, fmt.Errorf("%w: returned %d rows, want exactly one", engine.ErrQuery, n)
	}
	return toValue(v, types[0].DatabaseTypeName()), nil
}

// queryErr marks what the server said about a query as ErrQuery; a lost
// connection stays operational.
func queryErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var me *driver.MySQLError
	if errors.As(err, &me) && !slices.Contains([]uint16{1040, 1053, 1927}, me.Number) {
		return fmt.Errorf("%w: %s (error %d)", engine.ErrQuery, me.Message, me.Number)
	}
	return err
}

// toValue interprets the server's text by the column's type.
func toValue(v sql.NullString, typ string) engine.Value {
	if !v.Valid {
		return engine.Value{Null: true}
	}
	switch typ {
	case "DATETIME", "TIMESTAMP", "DATE":
		for _, layout := range []string{"2006-01-02 15:04:05.999999", "2006-01-02"} {
			if t, err := time.ParseInLocation(layout, v.String, time.UTC); err == nil {
				return engine.Value{Text: t.Format(time.RFC3339Nano), Time: &t}
			}
		}
	case "FLOAT", "DOUBLE":
		if f, err := strconv.ParseFloat(v.String, 64); err == nil {
			return engine.Value{Text: strconv.FormatFloat(f, 'g', -1, 64)}
		}
	}
	return engine.Value{Text: v.String}
}
