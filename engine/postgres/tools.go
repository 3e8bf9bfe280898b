package postgres

import (
	"context"
	"fmt"
	"regexp"

	"github.com/backproof/backproof/engine/proc"
)

// Tool is a PostgreSQL client program and its major version.
type Tool = proc.Tool

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(\.\d+)?`)

// binGlobs are where distributions install versioned client tools side by side.
var binGlobs = []string{"/usr/lib/postgresql/*/bin/", "/usr/pgsql-*/bin/", "/usr/local/pgsql/bin/"}

func probeTool(ctx context.Context, path string) (Tool, error) {
	return proc.Probe(ctx, path, versionRE, "PostgreSQL")
}

// findTools lists the installed copies of a client program.
func findTools(ctx context.Context, name string, binDirs []string) []Tool {
	return proc.Find(ctx, name, binDirs, binGlobs, "pg_wrapper", probeTool)
}

// pickTool chooses the newest tool, which must be at least serverMajor:
// pg_dump refuses servers newer than itself, and pg_restore must be at least
// as new as the pg_dump that wrote the archive.
func pickTool(name string, tools []Tool, serverMajor int) (Tool, error) {
	return proc.Newest(name, tools, serverMajor, fmt.Sprintf("PostgreSQL %d", serverMajor),
		fmt.Sprintf("the PostgreSQL %d client tools", serverMajor))
}

// NewestDump returns the newest installed pg_dump; false when there is none.
// A server of its major or older can be dumped.
func NewestDump(ctx context.Context) (Tool, bool) {
	t, err := pickTool("pg_dump", findTools(ctx, "pg_dump", nil), 0)
	return t, err == nil
}
