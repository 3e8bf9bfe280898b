// Package engine defines how one kind of database is dumped and restored.
// Implementations live in subpackages (postgres, ...).
package engine

import (
	"context"
	"io"
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
}

// TableStats is one table's exact row count.
type TableStats struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	Rows   int64  `json:"rows"`
}
