package postgres

import (
	"log/slog"
	"slices"

	"github.com/backproof/backproof/engine"
)

// Kind registers PostgreSQL (cli/wiring.go). Check queries are SQL, judged
// by the restored copy's server in a read-only transaction.
var Kind = engine.Kind{
	Name:  "postgres",
	Words: engine.TablesRows,
	New: func(dsn string, log *slog.Logger) (engine.Engine, error) {
		return New(dsn, WithLogger(log)), nil
	},
	Secrets: func(dsn string) []string {
		out := engine.URLPassword(dsn)
		if _, p, err := splitPassword(dsn); err == nil && p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
		return out
	},
}

var _ engine.Engine = (*Engine)(nil)
