// Package engine is the contract between backproof and one kind of database.
//
// An engine lives in its own package under engine/ and gives backproof a
// [Kind]: its name in the config, the words its output uses, how to validate
// a check query without a server, the secrets a DSN holds, and a constructor
// for an [Engine] bound to one source DSN. cli/wiring.go lists the kinds of
// this build, one line each; nothing else in backproof names an engine.
//
// An Engine does five things, each documented on its method:
//
//   - dump: [Dumper.Dump] streams a consistent logical dump and returns what
//     it observed at dump time ([DumpInfo]: server and tool versions, exact
//     per-container item counts from the dump's own snapshot, schema objects),
//     which the manifest records;
//   - restore into a server: [Restorer] (restore --to DSN): an empty-target
//     check, --force, and an error that says what a failed restore left;
//   - sandbox: [Prover.Sandbox] describes a throwaway server for an image and
//     [Prover.Restore] loads an artifact into it (or, for servers that load
//     a file at start, the optional [Preloader]);
//   - inspect a copy: [Prover.Open] returns a [Copy] that observes the same
//     statistics a dump records (verification compares them with the
//     manifest), runs the engine's own integrity check and runs check queries;
//   - describe: [Restorer.Describe] and [Engine.ConnString] name a server for
//     a person, without (Describe) or with (ConnString) its password.
//
// Errors: a failure the backup is to blame for is ErrRestore, ErrQuery or
// ErrCorrupt (wrapped), and verification and restore report it as a bad
// backup (exit 3). Anything else (server down, wrong password, a missing
// tool, ctx) is operational (exit 1) and names the server with Describe, never
// with the DSN. A password never reaches an error, a log line or a child's
// argv; engines that run a tool use engine/proc for that.
//
// engine/enginetest is the conformance suite: an engine is done when it
// passes it against a real server.
package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/backproof/backproof/sandbox"
)

// Errors an engine reports about the backup itself rather than about the
// machinery; verification and restore turn them into a bad backup.
var (
	// ErrRestore: the restore rejected the backup.
	ErrRestore = errors.New("restore failed")
	// ErrQuery: the restored database rejected a check query, or the query
	// did not return exactly one value, or it would write.
	ErrQuery = errors.New("query failed")
	// ErrCorrupt: an integrity check found the backup's data corrupt, in
	// the restored copy or in the artifact itself.
	ErrCorrupt = errors.New("corruption found")
)

// Kind describes one engine to the rest of backproof, before any connection:
// it is the engine's registration entry (cli/wiring.go).
type Kind struct {
	// Name is the config's `engine:` value, e.g. "postgres".
	Name string
	// Words are the nouns the output uses for what this engine counts.
	Words Words
	// New returns the engine for the source database at dsn. The dsn is a
	// secret: it never reaches argv, logs or errors. New does no I/O; a DSN
	// it cannot parse is an error that says what is wrong without quoting it.
	New func(dsn string, log *slog.Logger) (Engine, error)
	// CheckQuery validates a configured check query at config load, without
	// a server (MongoDB: a command document). nil: any non-empty text, which
	// the restored copy's server then judges (SQL).
	CheckQuery func(query string) error
	// Secrets returns the secrets in dsn (its password, as written and
	// unescaped) for the log redactor; nil when it holds none.
	Secrets func(dsn string) []string
}

// Words are the nouns for what an engine counts: containers (tables,
// collections, logical databases) that hold items (rows, documents, keys).
type Words struct {
	Container, Containers string // "table", "tables"
	Item, Items           string // "row", "rows"
}

// Words of the engines so far.
var (
	TablesRows      = Words{"table", "tables", "row", "rows"}
	CollectionsDocs = Words{"collection", "collections", "document", "documents"}
	DatabasesKeys   = Words{"database", "databases", "key", "keys"}
)

// Or returns w, or tables and rows when w is the zero value.
func (w Words) Or() Words {
	if w == (Words{}) {
		return TablesRows
	}
	return w
}

// Engine is everything backproof does with one source database and the
// servers its backups are restored into. Every engine implements all of it;
// optional capabilities are separate interfaces (Preloader).
type Engine interface {
	Dumper
	Prover
	Restorer
	// ConnString is a connection string for srv, for a person to use (the
	// sandbox restore --sandbox holds open); it holds the password.
	ConnString(srv Server) string
}

// Dumper takes dumps of the source database.
type Dumper interface {
	// Artifact is the file name of the raw dump stream, before compression
	// and encryption suffixes are added (e.g. "dump.pgdump").
	Artifact() string
	// Dump writes a logical dump of the database to w. It returns only after
	// the dump is complete and consistent, with the statistics it observed
	// in the dump's own snapshot. Any failure of the tool, the connection or
	// ctx is an error (on ctx: one that wraps context.Cause(ctx)), and then
	// the bytes written are garbage the caller discards; a Dump leaves
	// nothing behind on the source or on disk.
	Dump(ctx context.Context, w io.Writer) (*DumpInfo, error)
}

// Restorer restores into a server a person names (restore --to DSN). The dsn
// is a secret like the source's.
type Restorer interface {
	// Objects counts what a restore into the database at dsn would collide
	// with (tables, collections, keys...). restore --to refuses a target
	// with any unless --force; then it changes nothing at all.
	Objects(ctx context.Context, dsn string) (int, error)
	// RestoreInto restores a decompressed artifact from a local file into
	// the database at dsn; the file is the caller's spool, which it may
	// rewrite to read it faster, as Prover.Restore. info is what the
	// manifest recorded at dump time.
	// With opts.Clean (--force) the objects the dump contains replace those
	// of the same name, and other objects are left alone. A backup the
	// restore rejects is ErrRestore or ErrCorrupt, wrapped. Every error says
	// what state the failed restore left the target in (nothing changed,
	// what it created dropped again, or restored up to a named point).
	RestoreInto(ctx context.Context, dsn, path string, info *DumpInfo, opts RestoreOptions) error
	// Describe names the database at dsn for messages, without credentials
	// (e.g. "postgres://app@db:5432/orders").
	Describe(dsn string) string
}

// StreamRestorer is a Restorer that also restores from a stream read once,
// front to back, as from a pipe: restore --to decompresses into it while it
// restores instead of first writing the whole dump to a file. It is one job
// (opts.Jobs is ignored), with RestoreInto's guarantees otherwise.
//
// RestoreStream first checks the target and its own tools as RestoreInto
// does, writing nothing, and only then calls open, at most once and before
// it returns, for the stream: restore --to spools and checks the stored bytes meanwhile, and open
// waits for that. An error from open is returned as it is (wrapped only
// with %w), and the target is then untouched.
type StreamRestorer interface {
	RestoreStream(ctx context.Context, dsn string, open func() (io.Reader, error), info *DumpInfo, opts RestoreOptions) error
}

// DumpInfo is what a dump observed at dump time, recorded in the manifest.
type DumpInfo struct {
	ServerVersion string            `json:"server_version"`
	Tools         map[string]string `json:"tools,omitempty"`
	Source        SourceStats       `json:"source"`
}

// SourceStats are the source statistics captured at dump time, consistent
// with the dump itself; verification compares the restored copy against them.
type SourceStats struct {
	// Tables: one entry per container (table, collection, logical
	// database) with its exact item count, sorted by Schema then Name.
	Tables []TableStats `json:"tables,omitempty"`
	// Objects: the schema objects the dump holds, by kind ("index",
	// "function", ...), each list sorted. Verification requires every one of
	// them in the restored copy.
	Objects map[string][]string `json:"objects,omitempty"`
	// Migrations: the schema versions recorded by migration tools (Flyway,
	// Liquibase, ...) in the database, when it has their tables.
	Migrations []Migration `json:"migrations,omitempty"`
	// Position: where the dump's snapshot stands in the server's change
	// log, for point-in-time recovery from there (MySQL/MariaDB:
	// binlog_file, binlog_position, gtid_set).
	Position map[string]string `json:"position,omitempty"`
	// Notes: what a reader must know about this copy, e.g. a table whose
	// copy is not point-in-time.
	Notes []string `json:"notes,omitempty"`
}

// TableStats is one container's exact item count. Schema is its namespace
// (PostgreSQL schema, MongoDB or MySQL database; empty for Redis).
type TableStats struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	Rows   int64  `json:"rows"`
}

// Server is how to reach a database server: a sandbox, or a restore target.
type Server struct {
	Host     string
	Port     int
	User     string
	Password string
	Database string
}

// Prover restores backups into a throwaway server and inspects them there.
type Prover interface {
	// Sandbox describes a server running image whose superuser has the
	// given password, and the credentials to reach it (Host and Port are
	// filled in once it runs). The spec's ReadyLog says when it serves.
	// info is what the manifest of the backup to restore recorded, for
	// settings sized to it; nil when there is no backup.
	Sandbox(image, password string, info *DumpInfo) (sandbox.Spec, Server)
	// Restore loads a decompressed artifact from a local file into srv; the
	// file is the caller's spool, which Restore may rewrite to read it
	// faster, never changing what it restores. info is what the manifest
	// recorded at dump time. A backup the restore
	// rejects is ErrRestore (ErrCorrupt when the artifact itself is
	// damaged), wrapped; anything else is operational.
	Restore(ctx context.Context, srv Server, path string, info *DumpInfo, opts RestoreOptions) error
	// Open connects to a restored copy.
	Open(ctx context.Context, srv Server) (Copy, error)
}

// Preloader is a Prover whose server loads a backup by itself as it starts,
// from a file put in place beforehand (Redis reads its RDB file at boot and
// nothing else). Verification then spools the artifact before it starts the
// sandbox, with the file in it; the start is the restore, and Restore is not
// called.
type Preloader interface {
	Prover
	// Preload checks the decompressed artifact at path and adds to spec
	// what the server needs to load it at start. ErrRestore: the artifact
	// cannot be loaded.
	Preload(ctx context.Context, spec *sandbox.Spec, srv Server, path string, info *DumpInfo) error
	// LoadFailed explains a sandbox that failed to start with the artifact
	// in place: ErrRestore when the server rejected the backup, err itself
	// when nothing says so.
	LoadFailed(err error) error
}

// PreloadChooser is a Prover that loads some backups at start: Preloader
// returns the Preloader for such a backup, nil for the others, which are
// restored into the running sandbox (PostgreSQL loads at start only when
// this host's pg_restore is older than the backup's pg_dump: then the
// sandbox image's own pg_restore restores it).
type PreloadChooser interface {
	Preloader(ctx context.Context, info *DumpInfo) Preloader
}

// RestoreOptions tune a restore.
type RestoreOptions struct {
	Jobs int // at most this many parallel restore jobs, where the format and the data allow; <= 1: one, in a single transaction
	// Clean (--force) replaces the objects the dump contains.
	Clean bool
	// Progress, when set, is written every byte of the artifact as the
	// restore consumes it (single-job restores).
	Progress io.Writer
}

// Copy is a restored database under inspection.
//
// Verification runs Observe and Integrity at the same time: each keeps the
// server busy on its own. Query and Close come after both returned.
type Copy interface {
	// Observe gathers the same statistics a dump records, from the copy.
	Observe(ctx context.Context) (*SourceStats, error)
	// Integrity runs the engine's own integrity check on the whole copy
	// (PostgreSQL: amcheck on every B-tree index; MongoDB: validate on
	// every collection). It returns what it checked for a person ("12
	// indexes"), errors.ErrUnsupported when the server cannot run it, and
	// ErrCorrupt (wrapped) when it finds corruption.
	Integrity(ctx context.Context) (checked string, err error)
	// Query runs a check query returning one value, read-only: a query
	// that would write is refused with ErrQuery. ErrQuery also: the
	// database rejected it, or it did not return exactly one row of one
	// column (one value).
	Query(ctx context.Context, query string) (Value, error)
	Close(ctx context.Context) error
}

// MaxQueryTime bounds one check query in the server that runs it (PostgreSQL
// statement_timeout, MongoDB maxTimeMS, MySQL max_execution_time), so that
// no query keeps a sandbox busy after its check has given up.
const MaxQueryTime = 10 * time.Minute

// QueryTimeout is the server-side time limit of a check query run under ctx:
// MaxQueryTime, or a second less than is left before ctx's deadline (so the
// server's answer arrives before the deadline), at least a second.
func QueryTimeout(ctx context.Context) time.Duration {
	timeout := MaxQueryTime
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, max(time.Until(dl)-time.Second, time.Second))
	}
	return timeout.Truncate(time.Millisecond)
}

// Value is the single value a check query returned.
type Value struct {
	Null bool
	Text string     // the value as text; numbers in Go's shortest form
	Time *time.Time // set for timestamp and date values
}

// URLPassword returns the password in a URL-form DSN
// (scheme://user:password@host/...), as written and unescaped, for
// Kind.Secrets; nil when it has none.
func URLPassword(dsn string) []string {
	_, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return nil
	}
	var out []string
	// Where the authority ends differs: at "/?#" for URL parsers (pgx,
	// net/url), at "/?" for MongoDB's driver, which takes a "#" as part of
	// a password, and at "/" alone for it when no "/" precedes the "?"
	// ("mongodb://u?:p@h" has the password "p"). Every reading's password
	// is a secret.
	for _, end := range []string{"/?#", "/?", "/"} {
		auth := rest
		if i := strings.IndexAny(auth, end); i >= 0 {
			auth = auth[:i]
		}
		at := strings.LastIndex(auth, "@")
		if at < 0 {
			continue
		}
		_, pass, ok := strings.Cut(auth[:at], ":")
		if !ok || pass == "" {
			continue
		}
		out = append(out, pass)
		if u, err := url.PathUnescape(pass); err == nil && u != pass && u != "" {
			out = append(out, u)
		}
	}
	// Longest first: a redactor replacing a shorter reading first ("p" of
	// "p@ss#x") would leave the rest of the longer one in view.
	slices.SortFunc(out, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	return slices.Compact(out)
}

// RedactPassword masks in msg the password of the URL-form dsn, as written
// and unescaped: for messages that may quote a part of the DSN.
func RedactPassword(msg, dsn string) string {
	for _, p := range URLPassword(dsn) {
		msg = strings.ReplaceAll(msg, p, "[REDACTED]")
	}
	return msg
}

// ErrNotEmpty: a restore --to target holds objects and --force was not given.
var ErrNotEmpty = errors.New("the target database is not empty")

// CheckEmpty is restore --to's guard: it refuses the database at dsn when
// it holds objects a restore would collide with, unless force. It changes
// nothing, and its error says so.
func CheckEmpty(ctx context.Context, r Restorer, dsn string, force bool) error {
	n, err := r.Objects(ctx, dsn)
	if err != nil {
		return err
	}
	if n > 0 && !force {
		return fmt.Errorf("%w (%d objects): nothing was changed; pass --force to replace the objects the backup contains (others are left alone)", ErrNotEmpty, n)
	}
	return nil
}
