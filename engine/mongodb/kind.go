package mongodb

import (
	"log/slog"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/mongodb/checkquery"
)

// Kind registers MongoDB (cli/wiring.go). A check query is a read-only
// command document (package checkquery), validated at config load.
var Kind = engine.Kind{
	Name:  "mongodb",
	Words: engine.CollectionsDocs,
	New: func(dsn string, log *slog.Logger) (engine.Engine, error) {
		return New(dsn, WithLogger(log)), nil
	},
	CheckQuery: func(query string) error {
		_, err := checkquery.Parse(query)
		return err
	},
	Secrets: engine.URLPassword,
}

var _ engine.Engine = (*Engine)(nil)
