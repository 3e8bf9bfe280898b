package redis

import (
	"log/slog"

	"github.com/backproof/backproof/engine"
)

// Kind registers Redis (cli/wiring.go). A check query is one read-only
// command, judged by the restored copy's server.
var Kind = engine.Kind{
	Name:  "redis",
	Words: engine.DatabasesKeys,
	New: func(dsn string, log *slog.Logger) (engine.Engine, error) {
		return New(dsn, WithLogger(log)), nil
	},
	Secrets: engine.URLPassword,
}

var _ engine.Engine = (*Engine)(nil)
