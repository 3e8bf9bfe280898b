package redis

import (
	"log/slog"

	"github.com/backproof/backproof/engine"
)

// Kind registers Redis (cli/wiring.go). A check query is one read-only
// command, judged by the restored copy's server; commands that run code,
// block or walk the whole keyspace are refused at config load (refusedCheck).
var Kind = engine.Kind{
	Name:  "redis",
	Words: engine.DatabasesKeys,
	New: func(dsn string, log *slog.Logger) (engine.Engine, error) {
		return New(dsn, WithLogger(log)), nil
	},
	CheckQuery: func(query string) error {
		_, args, err := parseQuery(query, 0)
		if err != nil {
			return err
		}
		return refusedCheck(args[0])
	},
	Secrets: engine.URLPassword,
}

var _ engine.Engine = (*Engine)(nil)
