package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/backproof/backproof/engine/enginetest"
)

// FuzzDSN: the password pgx sends is one the redactor masks; the rest of a
// split DSN, which goes on pg_dump's argv, holds no password; errors quote
// none.
func FuzzDSN(f *testing.F) {
	for _, s := range []string{
		"postgres://app:pw@db:5432/orders?sslmode=disable", "postgresql://app:p%40ss@db/x?password=other",
		"host=db user=app password='a b\\'c' dbname=x", "host=db password=secret", "postgres://:@/", "password=",
		"postgres://u:p&<>\"x@h/db", "user=a password = 'x'  port=1", "postgres://u@h/db?password=a+b%2B",
	} {
		f.Add(s)
	}
	f.Setenv("PGPASSWORD", "")
	f.Setenv("PGPASSFILE", "/nonexistent")
	f.Setenv("PGSERVICEFILE", "/nonexistent")
	f.Fuzz(func(t *testing.T, dsn string) {
		rest, password, err := splitPassword(dsn)
		if err != nil {
			enginetest.QuotesNoPassword(t, Kind, dsn, err.Error())
		} else {
			enginetest.KnownPassword(t, Kind, dsn, password)
			if _, p, err := splitPassword(rest); err != nil || p != "" {
				t.Fatalf("%q split into %q, which still has password %q (%v)", dsn, rest, p, err)
			}
		}
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			enginetest.QuotesNoPassword(t, Kind, dsn, err.Error())
			return
		}
		enginetest.KnownPassword(t, Kind, dsn, cfg.Password)
		enginetest.QuotesNoPassword(t, Kind, dsn, Describe(dsn))
	})
}
