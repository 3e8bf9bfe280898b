// Package engine defines how one kind of database is dumped and restored.
// Implementations live in subpackages (postgres, ...).
package engine

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/backproof/backproof/sandbox"
)

// Errors a Prover reports about the backup itself rather than about the
// machinery; verification turns them into a failed (bad) backup.
var (
	// ErrRestore: the restore tool rejected the backup.
	ErrRestore = errors.New("restore failed")
	// ErrQuery: the restored database rejected a check query.
	ErrQuery = errors.New("query failed")
	// ErrCorrupt: an integrity check found the backup's data corrupt, in
	// the restored copy or in the artifact itself.
	ErrCorrupt = errors.New("corruption found")
)

// Engine dumps and restores one database.
type Engine interface {
	// Artifact is the file name of the raw dump stream, before compression
	// and encryption suffixes are added (e.g. "dump.pgdump").
	Artifact() string
	// Dump writes a logical dump of the database to w. It returns only after
	// the dump is complete and consistent; any failure of the dump tool, the
	// connection or ctx is an error, and then the bytes written are garbage.
	Dump(ctx context.Context, w io.Writer) (*DumpInfo, error)
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
	// Tables: PostgreSQL, exact row counts from the dump's own snapshot.
	Tables []TableStats `json:"tables,omitempty"`
	// Objects: the schema objects the dump holds, by kind ("index",
	// "function", ...), each list sorted. Verification requires every one of
	// them in the restored copy.
	Objects map[string][]string `json:"objects,omitempty"`
	// Migrations: the schema versions recorded by migration tools (Flyway,
	// Liquibase, ...) in the database, when it has their tables.
	Migrations []Migration `json:"migrations,omitempty"`
}

// TableStats is one table's exact row count.
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

// Prover is an engine whose backups can be restored into a throwaway server
// and inspected there.
type Prover interface {
	// Sandbox describes a server, running image, whose superuser has the
	// given password, and the credentials to reach it (Host and Port are
	// filled in once it runs).
	Sandbox(image, password string) (sandbox.Spec, Server)
	// Restore loads a decompressed artifact from a local file into srv. info
	// is what the manifest recorded at dump time. A backup the restore tool
	// rejects is reported as ErrRestore.
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

// RestoreOptions tune a restore.
type RestoreOptions struct {
	Jobs int // parallel restore jobs where the format allows; <= 1: one, in a single transaction
	// Clean drops the objects the dump contains before recreating them.
	Clean bool
	// Progress, when set, is written every byte of the artifact as the
	// restore consumes it (single-job restores).
	Progress io.Writer
}

// Copy is a restored database under inspection.
type Copy interface {
	// Observe gathers the same statistics a dump records, from the copy.
	Observe(ctx context.Context) (*SourceStats, error)
	// Amcheck verifies the copy's indexes against their tables. It returns
	// how many it checked, errors.ErrUnsupported when the server cannot, and
	// ErrCorrupt when one is corrupt.
	Amcheck(ctx context.Context) (int, error)
	// Query runs a check query returning one value. ErrQuery: the database
	// rejected it, or it did not return exactly one row of one column.
	Query(ctx context.Context, query string) (Value, error)
	Close(ctx context.Context) error
}

// Value is the single value a check query returned.
type Value struct {
	Null bool
	Text string     // the value as text; numbers in Go's shortest form
	Time *time.Time // set for timestamp and date values
}
