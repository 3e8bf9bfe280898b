package mysql

import (
	"log/slog"

	"github.com/backproof/backproof/engine"
)

// Kind registers MySQL and MariaDBKind MariaDB (cli/wiring.go): one
// package, the flavor checked against the server's. Check queries are SQL,
// judged by the restored copy's server as an account that may only read.
var (
	Kind        = kind(MySQL)
	MariaDBKind = kind(MariaDB)
)

func kind(flavor string) engine.Kind {
	return engine.Kind{
		Name:  flavor,
		Words: engine.TablesRows,
		New: func(dsn string, log *slog.Logger) (engine.Engine, error) {
			if _, err := parseDSN(dsn); err != nil {
				return nil, err
			}
			return New(flavor, dsn, WithLogger(log)), nil
		},
		Secrets: engine.URLPassword,
	}
}

var _ engine.Engine = (*Engine)(nil)
