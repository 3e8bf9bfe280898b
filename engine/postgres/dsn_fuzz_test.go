package postgres

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/backproof/backproof/engine/enginetest"
)

// FuzzDSN: the password pgx sends is one the redactor masks; the rest of a
// split DSN, which goes on pg_dump's argv, holds no password; errors and
// descriptions quote none.
func FuzzDSN(f *testing.F) {
	f.Setenv("PGPASSWORD", "")
	f.Setenv("PGPASSFILE", "/nonexistent")
	f.Setenv("PGSERVICEFILE", "/nonexistent")
	enginetest.FuzzDSN(f, Kind, []string{
		"postgres://app:pw@db:5432/orders?sslmode=disable", "postgresql://app:p%40ss@db/x?password=other",
		"host=db user=app password='a b\\'c' dbname=x", "host=db password=secret", "postgres://:@/", "password=",
		"postgres://u:p&<>\"x@h/db", "user=a password = 'x'  port=1", "postgres://u@h/db?password=a+b%2B",
	}, func(dsn string) (string, string, error) {
		rest, _, err := splitPassword(dsn)
		if err != nil {
			return "", "", err
		}
		if _, p, _ := splitPassword(rest); p != "" {
			panic(fmt.Sprintf("%q split into %q, which still has password %q", dsn, rest, p)) // fails the fuzz run
		}
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			// pgx masks passwords in its errors on a best-effort basis, and
			// not in every malformed string; what leaves backproof passes the
			// redactor, which knows the whole DSN.
			return "", "", nil
		}
		return cfg.Password, Describe(dsn), nil
	})
}
