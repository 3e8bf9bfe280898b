// Package redis backs up Redis over its replication protocol, the way a
// replica or `redis-cli --rdb` gets its first copy: the server forks, writes
// an RDB snapshot of every database into the connection, and this package
// streams it through the backup pipeline while checking it. No access to
// the server's disk and no external program is needed. Backups are proven
// by starting a sandbox Redis on the RDB, and restored into a live server
// with RESTORE.
package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/redis/rdb"
)

// Engine dumps one Redis server.
type Engine struct {
	dsn    string
	flavor string // Redis or Valkey
	log    *slog.Logger
	idle   time.Duration
}

var (
	_ engine.Engine    = (*Engine)(nil)
	_ engine.Preloader = (*Engine)(nil)
)

// Option configures an Engine.
type Option func(*Engine)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// WithFlavor sets the flavor the source server must be: Redis (default) or
// Valkey.
func WithFlavor(f string) Option { return func(e *Engine) { e.flavor = f } }

// WithIdleTimeout sets how long the server may send nothing before the
// connection is given up (default 2 minutes; while it prepares a snapshot a
// server sends a keepalive every second).
func WithIdleTimeout(d time.Duration) Option { return func(e *Engine) { e.idle = d } }

// New returns an engine for the server at dsn, a redis:// or rediss:// URL
// (see dsn.go). The dsn is a secret: it never reaches logs or errors.
func New(dsn string, opts ...Option) *Engine {
	e := &Engine{dsn: dsn, flavor: Redis, log: slog.New(slog.DiscardHandler), idle: 2 * time.Minute}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Artifact implements engine.Engine.
func (e *Engine) Artifact() string { return "dump.rdb" }

// Dump implements engine.Engine: it takes an RDB snapshot over the
// replication protocol and writes it to w, checking its header, end marker
// and CRC-64 on the way; a snapshot that fails them fails the dump. The key
// count of every database is read from INFO keyspace on a second
// connection the moment the server starts the snapshot.
func (e *Engine) Dump(ctx context.Context, w io.Writer) (*engine.DumpInfo, error) {
	d, err := parseDSN(e.dsn)
	if err != nil {
		return nil, err
	}
	ctl, err := dial(ctx, d, e.idle)
	if err != nil {
		return nil, err
	}
	defer ctl.close()
	srv, err := serverInfo(ctl)
	if err != nil {
		return nil, err
	}
	if err := e.checkFlavor(srv); err != nil {
		return nil, err
	}
	version := srv.version
	repl, err := dial(ctx, d, e.idle)
	if err != nil {
		return nil, err
	}
	defer repl.close()

	var tables []engine.TableStats
	var countErr error
	started := time.Now()
	announce := ""
	if srv.flavor == Valkey {
		announce = srv.version
	}
	body, err := replicate(repl, e.log, announce, func() {
		tables, countErr = keyspace(ctl)
		ctl.close()
	})
	if err != nil {
		return nil, err
	}
	if countErr != nil {
		return nil, countErr
	}
	e.log.DebugContext(ctx, "receiving RDB snapshot", "server", d.String(), "version", version, "wait", time.Since(started).Round(time.Millisecond))

	var v rdb.Validator
	n, err := io.CopyBuffer(io.MultiWriter(&v, w), body, make([]byte, 256<<10))
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("dump cancelled: %w", context.Cause(ctx))
	case errors.Is(err, rdb.ErrCorrupt):
		return nil, fmt.Errorf("the server sent something that is not an RDB snapshot: %w", err)
	case err != nil && v.Size() > n: // the validator took bytes the destination did not
		return nil, fmt.Errorf("write dump stream: %w", err)
	case err != nil:
		return nil, fmt.Errorf("receive RDB snapshot after %d bytes: %w", n, err)
	}
	switch err := v.Check(); {
	case errors.Is(err, rdb.ErrNoChecksum):
		e.log.WarnContext(ctx, "the server writes RDB files without a checksum (rdbchecksum no): only the snapshot's framing was checked")
	case err != nil:
		return nil, fmt.Errorf("the server sent a damaged RDB snapshot: %w", err)
	}
	e.log.DebugContext(ctx, "RDB snapshot received", "bytes", n, "rdb_version", v.Version())
	return &engine.DumpInfo{
		ServerVersion: version,
		Tools:         map[string]string{"rdb": strconv.Itoa(v.Version())},
		Source:        engine.SourceStats{Tables: tables},
	}, nil
}

// info runs INFO section and returns its fields.
func info(c *conn, section string) (map[string]string, error) {
	v, err := c.do("INFO", section)
	if err != nil {
		return nil, fmt.Errorf("INFO %s: %w%s", section, err, permissionHint(err, "+info"))
	}
	fields := map[string]string{}
	for line := range strings.Lines(v.str) {
		if k, val, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && !strings.HasPrefix(k, "#") {
			fields[k] = val
		}
	}
	return fields, nil
}

func serverInfo(c *conn) (server, error) {
	f, err := info(c, "server")
	if err != nil {
		return server{}, err
	}
	return serverOf(f)
}

// keyspace reads the key count of every non-empty database, as TableStats
// named db0, db1, ... in schema "redis".
func keyspace(c *conn) ([]engine.TableStats, error) {
	f, err := info(c, "keyspace")
	if err != nil {
		return nil, err
	}
	type db struct {
		n    int
		keys int64
	}
	var dbs []db
	for k, v := range f {
		n, err := strconv.Atoi(strings.TrimPrefix(k, "db"))
		if !strings.HasPrefix(k, "db") || err != nil {
			continue
		}
		keysField, _, _ := strings.Cut(v, ",")
		keys, err := strconv.ParseInt(strings.TrimPrefix(keysField, "keys="), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("INFO keyspace: unexpected %s:%s", k, v)
		}
		dbs = append(dbs, db{n, keys})
	}
	sort.Slice(dbs, func(i, j int) bool { return dbs[i].n < dbs[j].n })
	tables := make([]engine.TableStats, len(dbs))
	for i, d := range dbs {
		tables[i] = engine.TableStats{Schema: "redis", Name: "db" + strconv.Itoa(d.n), Rows: d.keys}
	}
	return tables, nil
}

// permissionHint adds what an ACL user lacks to a NOPERM error.
func permissionHint(err error, perms string) string {
	var se ServerError
	if errors.As(err, &se) && se.Code() == "NOPERM" {
		return fmt.Sprintf(" (the backup user needs %s; see the README's Redis section)", perms)
	}
	return ""
}
