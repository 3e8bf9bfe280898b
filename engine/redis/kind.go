package redis

import (
	"log/slog"

	"github.com/backproof/backproof/engine"
)

// Kind registers Redis and ValkeyKind Valkey (cli/wiring.go): one package,
// the flavor checked against the server's (flavor.go). A check query is one
// read-only command, judged by the restored copy's server; commands that run
// code, block or walk the whole keyspace are refused at config load
// (refusedCheck).
var (
	Kind       = kind(Redis)
	ValkeyKind = kind(Valkey)
)

func kind(flavor string) engine.Kind {
	return engine.Kind{
		Name:  flavor,
		Words: engine.DatabasesKeys,
		New: func(dsn string, log *slog.Logger) (engine.Engine, error) {
			return New(dsn, WithLogger(log), WithFlavor(flavor)), nil
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
}

var _ engine.Engine = (*Engine)(nil)
