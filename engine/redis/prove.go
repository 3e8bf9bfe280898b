package redis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/redis/rdb"
	"github.com/backproof/backproof/sandbox"
)

// ReadyLine is what redis-server logs once it has loaded its data and
// accepts connections.
const ReadyLine = "Ready to accept connections"

// Paths in the sandbox. /data is the working directory of the official
// image, whose entrypoint hands what is in it to the redis user.
const (
	sandboxRDB  = "/data/dump.rdb"
	sandboxConf = "/data/backproof.conf"
)

// Sandbox implements engine.Prover. The server reads its settings, the
// password among them, from a file Preload writes, not from its command
// line.
func (e *Engine) Sandbox(image, password string, _ *engine.DumpInfo) (sandbox.Spec, engine.Server) {
	return sandbox.Spec{
		Image:      image,
		Cmd:        []string{"redis-server", sandboxConf},
		Port:       "6379/tcp",
		DataDir:    "/data",
		Ready:      ReadyLine,
		ReadyCount: 1,
	}, engine.Server{Password: password}
}

// Preload implements engine.Preloader. It checks the RDB file whole (its
// structure as far as this build knows it, and its CRC-64) before a
// container is started for it, and puts it in the sandbox with a config:
//
//   - no persistence (appendonly no, no saves): nothing competes with the
//     RDB, and the copy is thrown away;
//   - enough databases for every one the file selects;
//   - replicaof an address where nothing listens. A master drops keys whose
//     expiry has passed as it loads them; a replica keeps them until its
//     master says otherwise. So the sandbox holds every key the snapshot
//     held, and counts match the manifest however long ago the backup was
//     taken, while reads still treat expired keys as absent, as the source
//     would. The sandbox is read-only for the same reason.
func (e *Engine) Preload(ctx context.Context, spec *sandbox.Spec, srv engine.Server, path string, info *engine.DumpInfo) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sum, err := rdb.Scan(bufio.NewReaderSize(f, 1<<20))
	switch {
	case errors.Is(err, rdb.ErrCorrupt):
		return fmt.Errorf("%w: %w", engine.ErrRestore, err)
	case err != nil:
		return fmt.Errorf("read %s: %w", filepath.Base(path), err)
	case sum.Unreadable != nil:
		e.log.WarnContext(ctx, "the RDB holds content this build cannot read though its checksum is right; the sandbox server decides", "reason", sum.Unreadable)
	case sum.NoChecksum:
		e.log.WarnContext(ctx, "the RDB carries no checksum (rdbchecksum no); the sandbox server decides whether it loads")
	}
	databases := max(16, sum.MaxDB+1)
	if info != nil {
		for _, t := range info.Source.Tables {
			if n, err := strconv.Atoi(strings.TrimPrefix(t.Name, "db")); err == nil {
				databases = max(databases, n+1)
			}
		}
	}
	conf := filepath.Join(filepath.Dir(path), "backproof.conf")
	body := fmt.Sprintf(`# backproof sandbox
bind * -::*
port 6379
protected-mode no
dir /data
dbfilename dump.rdb
appendonly no
save ""
databases %d
replicaof 127.0.0.1 1
replica-read-only yes
replica-serve-stale-data yes
requirepass %q
`, databases, srv.Password)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return err
	}
	spec.Files = append(spec.Files,
		sandbox.File{HostPath: path, Path: sandboxRDB, Mode: 0o600},
		sandbox.File{HostPath: conf, Path: sandboxConf, Mode: 0o600})
	return nil
}

// LoadFailed implements engine.Preloader by reading the server's last words
// in the error of a start that failed.
func (e *Engine) LoadFailed(err error) error {
	msg := err.Error()
	// Preload checked the file's header and CRC-64: a signature the server
	// does not take is Valkey's, in a Redis image.
	if strings.Contains(msg, "Can't handle RDB format version") || strings.Contains(msg, "Wrong signature trying to load DB") {
		return fmt.Errorf("the sandbox image's server is older than the server the backup came from, or of the other flavor, and cannot read its RDB version; set sandbox.images.%s to an image of the backup's source version: %w", e.flavor, err)
	}
	// Redis logs the error, then runs its RDB checker, whose report ends the
	// output, then exits.
	for _, s := range []string{
		"RDB ERROR DETECTED",
		"Internal error in RDB reading",
		"Terminating server after rdb file reading failure",
		"Short read or OOM loading DB",
		"Wrong RDB checksum",
		"Duplicated key found in RDB file",
	} {
		if strings.Contains(msg, s) {
			return fmt.Errorf("%w: the sandbox server rejected the RDB file: %w", engine.ErrRestore, err)
		}
	}
	return err
}

// Restore implements engine.Prover by writing every key into a running
// server with RESTORE (see RestoreInto). Verification does not use it: the
// sandbox loads the file itself (Preload).
func (e *Engine) Restore(ctx context.Context, srv engine.Server, path string, info *engine.DumpInfo, opts engine.RestoreOptions) error {
	return e.RestoreInto(ctx, ConnString(srv), path, info, opts)
}

// ConnString implements the cli's engine interface.
func (e *Engine) ConnString(srv engine.Server) string { return ConnString(srv) }

// Describe implements the cli's engine interface.
func (e *Engine) Describe(dsn string) string { return Describe(dsn) }

// ConnString is a redis:// URL for srv, with its password.
func ConnString(srv engine.Server) string {
	u := url.URL{Scheme: "redis", Host: net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port))}
	if srv.Password != "" {
		u.User = url.UserPassword(srv.User, srv.Password)
	}
	if srv.Database != "" {
		u.Path = "/" + srv.Database
	}
	return u.String()
}

// Open implements engine.Prover. Checks run on the database of the
// target's DSN (default 0) unless they name another.
func (e *Engine) Open(ctx context.Context, srv engine.Server) (engine.Copy, error) {
	d, err := parseDSN(ConnString(srv))
	if err != nil {
		return nil, err
	}
	if own, err := parseDSN(e.dsn); err == nil {
		d.db = own.db
	}
	var c *conn
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err = dial(ctx, d, time.Minute)
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to restored copy: %w", err)
	}
	return &restored{c: c, db: d.db}, nil
}

// restored is a sandbox server with the backup loaded.
type restored struct {
	c  *conn
	db int
}

func (r *restored) Close(context.Context) error {
	r.c.close()
	return nil
}

// Observe implements engine.Copy with INFO keyspace, as Dump does.
func (r *restored) Observe(ctx context.Context) (*engine.SourceStats, error) {
	tables, err := keyspace(r.c)
	if err != nil {
		return nil, err
	}
	return &engine.SourceStats{Tables: tables}, nil
}

// Integrity implements engine.Copy: Redis has no index to check against its
// data; loading the RDB checked every value's encoding.
func (r *restored) Integrity(context.Context) (string, error) {
	return "", fmt.Errorf("redis has no indexes to check: %w", errors.ErrUnsupported)
}

// Query implements engine.Copy. A query is one Redis command, quoted as for
// redis-cli ("HLEN sessions", `GET "user:1 name"`), optionally prefixed by
// the database it runs in ("db2: DBSIZE"). Only commands the server flags
// read-only are run. The reply must be one value: a string, an integer, nil
// or an array of one of those.
func (r *restored) Query(ctx context.Context, query string) (engine.Value, error) {
	db, args, err := parseQuery(query, r.db)
	if err != nil {
		return engine.Value{}, fmt.Errorf("%w: %v", engine.ErrQuery, err)
	}
	if err := r.readOnly(args); err != nil {
		return engine.Value{}, err
	}
	if _, err := r.c.do("SELECT", strconv.Itoa(db)); err != nil {
		return engine.Value{}, queryError(err)
	}
	v, err := r.c.do(args...)
	if err != nil {
		return engine.Value{}, queryError(err)
	}
	if v.kind == '*' && !v.null {
		if len(v.array) != 1 || v.array[0].kind == '*' {
			return engine.Value{}, fmt.Errorf("%w: returned %d values, want exactly one", engine.ErrQuery, len(v.array))
		}
		v = v.array[0]
	}
	return toValue(v), nil
}

// refusedCommands may be flagged read-only, yet run code a backup brought
// (scripts, function libraries), block, or walk the whole keyspace in one
// call; the rest are writes no check needs, refused before any server sees
// them (the server's read-only flag decides every other command).
var refusedCommands = map[string]string{
	"eval": "runs a script", "eval_ro": "runs a script", "evalsha": "runs a script", "evalsha_ro": "runs a script",
	"fcall": "runs a function library's code", "fcall_ro": "runs a function library's code",
	"script": "manages scripts", "function": "manages function libraries",
	"keys":  "walks the whole keyspace in one call (count keys with DBSIZE)",
	"xread": "may block", "xreadgroup": "may block", "subscribe": "blocks", "psubscribe": "blocks",
	"ssubscribe": "blocks", "monitor": "blocks",
	"del": "writes", "unlink": "writes", "set": "writes", "flushall": "writes", "flushdb": "writes",
	"config": "changes the server", "debug": "changes the server", "shutdown": "stops the server",
	"migrate": "connects to another server", "replicaof": "connects to another server", "slaveof": "connects to another server",
}

// refusedCheck explains why a check may not run the command name, or is nil.
func refusedCheck(name string) error {
	if why, ok := refusedCommands[strings.ToLower(name)]; ok {
		return fmt.Errorf("%s %s: checks run only plain read-only commands (GET, HLEN, DBSIZE...)", strings.ToUpper(name), why)
	}
	return nil
}

// readOnly refuses commands the server does not flag read-only, so a check
// cannot change what later checks see or stop the sandbox, and those
// refused names.
func (r *restored) readOnly(args []string) error {
	name := strings.ToLower(args[0])
	var info value
	var err error
	if len(args) > 1 { // a subcommand, e.g. OBJECT ENCODING
		info, err = r.c.do("COMMAND", "INFO", name+"|"+strings.ToLower(args[1]))
	}
	if err == nil && (len(info.array) != 1 || info.array[0].null) {
		info, err = r.c.do("COMMAND", "INFO", name)
	}
	if err != nil {
		return queryError(err)
	}
	if len(info.array) != 1 || info.array[0].null || len(info.array[0].array) < 3 {
		return fmt.Errorf("%w: unknown command %q", engine.ErrQuery, args[0])
	}
	for _, f := range info.array[0].array[2].array {
		if f.str == "readonly" {
			if err := refusedCheck(args[0]); err != nil {
				return fmt.Errorf("%w: %v", engine.ErrQuery, err)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: %s is not a read-only command; checks only read", engine.ErrQuery, strings.ToUpper(args[0]))
}

func queryError(err error) error {
	var se ServerError
	if errors.As(err, &se) {
		return fmt.Errorf("%w: %s", engine.ErrQuery, se)
	}
	return err
}

func toValue(v value) engine.Value {
	switch {
	case v.null:
		return engine.Value{Null: true}
	case v.kind == ':':
		return engine.Value{Text: strconv.FormatInt(v.n, 10)}
	}
	val := engine.Value{Text: v.str}
	if t, err := time.Parse(time.RFC3339Nano, v.str); err == nil {
		val.Time = &t
	}
	return val
}

// parseQuery splits a check query into its database and arguments.
func parseQuery(q string, db int) (int, []string, error) {
	args, err := splitArgs(q)
	if err != nil {
		return 0, nil, err
	}
	if len(args) > 0 {
		if n, ok := strings.CutPrefix(args[0], "db"); ok && strings.HasSuffix(n, ":") {
			if db, err = strconv.Atoi(strings.TrimSuffix(n, ":")); err != nil || db < 0 {
				return 0, nil, fmt.Errorf("invalid database %q", args[0])
			}
			args = args[1:]
		}
	}
	if len(args) == 0 {
		return 0, nil, errors.New("no command")
	}
	return db, args, nil
}

// splitArgs splits a command line as redis-cli does: on spaces, with
// "double quotes" (escapes \" \\ \n \r \t \xHH) and 'single quotes'.
func splitArgs(s string) ([]string, error) {
	var args []string
	for i := 0; i < len(s); {
		if s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' {
			i++
			continue
		}
		var b strings.Builder
		for i < len(s) && !strings.ContainsRune(" \t\n\r", rune(s[i])) {
			switch q := s[i]; q {
			case '"', '\'':
				i++
				closed := false
				for i < len(s) {
					c := s[i]
					i++
					if c == q {
						closed = true
						break
					}
					if c == '\\' && q == '"' && i < len(s) {
						e := s[i]
						i++
						switch e {
						case 'n':
							c = '\n'
						case 'r':
							c = '\r'
						case 't':
							c = '\t'
						case 'x':
							if i+2 > len(s) {
								return nil, errors.New(`incomplete \x escape`)
							}
							h, err := strconv.ParseUint(s[i:i+2], 16, 8)
							if err != nil {
								return nil, fmt.Errorf(`invalid escape \x%s`, s[i:i+2])
							}
							c = byte(h)
							i += 2
						default:
							c = e
						}
					}
					b.WriteByte(c)
				}
				if !closed {
					return nil, errors.New("unbalanced quotes")
				}
			default:
				b.WriteByte(q)
				i++
			}
		}
		args = append(args, b.String())
	}
	return args, nil
}
