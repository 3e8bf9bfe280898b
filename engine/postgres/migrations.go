package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/backproof/backproof/engine"
)

// migrationTablesSQL finds the tables migration tools keep their history
// in, with their columns, in every user schema.
const migrationTablesSQL = `
SELECT n.nspname, c.relname, array_agg(a.attname::text ORDER BY a.attnum)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
  AND c.relname IN ('flyway_schema_history', 'databasechangelog', 'schema_migrations',
                    'alembic_version', 'django_migrations', '_prisma_migrations')
GROUP BY 1, 2
ORDER BY 1, 2`

// migrationQuery says how to read one tool's version from its table: the
// columns it needs, and a query returning one version per applied
// migration (%s is the table).
type migrationQuery struct {
	tool    string
	columns []string
	sql     string
	// latest: the query returns the newest first; otherwise the highest
	// version is the schema's.
	latest bool
}

var migrationQueries = map[string][]migrationQuery{
	"flyway_schema_history": {{tool: engine.ToolFlyway, columns: []string{"version", "success"},
		sql: `SELECT version::text FROM %s WHERE success AND version IS NOT NULL`}},
	"databasechangelog": {{tool: engine.ToolLiquibase, columns: []string{"id", "orderexecuted"},
		sql: `SELECT id::text FROM %s ORDER BY orderexecuted DESC`, latest: true}},
	"schema_migrations": {
		// golang-migrate keeps one row with a dirty flag; Rails a row per migration.
		{tool: engine.ToolGolangMigrate, columns: []string{"version", "dirty"},
			sql: `SELECT version::text FROM %s`},
		{tool: engine.ToolRails, columns: []string{"version"},
			sql: `SELECT version::text FROM %s`},
	},
	"alembic_version": {{tool: engine.ToolAlembic, columns: []string{"version_num"},
		sql: `SELECT version_num::text FROM %s ORDER BY 1`, latest: true}},
	"django_migrations": {{tool: engine.ToolDjango, columns: []string{"id", "app", "name"},
		sql: `SELECT app::text || '.' || name::text FROM %s ORDER BY id DESC`, latest: true}},
	"_prisma_migrations": {{tool: engine.ToolPrisma, columns: []string{"migration_name", "finished_at", "rolled_back_at"},
		sql: `SELECT migration_name::text FROM %s WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`}},
}

// listMigrations reads the schema version of every migration tool's table
// in the database. A table of that name but another shape is not one; a
// table that cannot be read is skipped (logged): the version is a detail of
// the manifest, never a reason to fail a backup. Each read runs under a
// savepoint, so that a failure leaves the snapshot's transaction usable.
func (e *Engine) listMigrations(ctx context.Context, tx pgx.Tx) ([]engine.Migration, error) {
	rows, err := tx.Query(ctx, migrationTablesSQL)
	if err != nil {
		return nil, fmt.Errorf("list migration tables: %w", err)
	}
	type table struct {
		schema, name string
		columns      []string
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
		var t table
		err := r.Scan(&t.schema, &t.name, &t.columns)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list migration tables: %w", err)
	}
	var out []engine.Migration
	for _, t := range tables {
		for _, q := range migrationQueries[t.name] {
			if !hasColumns(t.columns, q.columns) {
				continue
			}
			m, err := readMigration(ctx, tx, pgx.Identifier{t.schema, t.name}.Sanitize(), q)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				e.log.WarnContext(ctx, "cannot read the schema version", "table", t.schema+"."+t.name, "tool", q.tool, "err", err)
				break
			}
			m.Table = t.schema + "." + t.name
			out = append(out, m)
			break
		}
	}
	return out, nil
}

func readMigration(ctx context.Context, tx pgx.Tx, table string, q migrationQuery) (engine.Migration, error) {
	m := engine.Migration{Tool: q.tool}
	sp, err := tx.Begin(ctx) // a savepoint
	if err != nil {
		return m, err
	}
	defer sp.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	rows, err := sp.Query(ctx, fmt.Sprintf(q.sql, table))
	if err != nil {
		return m, err
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[*string])
	if err != nil {
		return m, err
	}
	var vs []string
	for _, v := range versions {
		if v != nil {
			vs = append(vs, *v)
		}
	}
	m.Applied = int64(len(vs))
	switch {
	case len(vs) == 0:
	case q.tool == engine.ToolAlembic: // one row per head
		m.Version = joinVersions(vs)
	case q.latest:
		m.Version = vs[0]
	default:
		m.Version = engine.MaxVersion(vs)
	}
	return m, nil
}

func joinVersions(vs []string) string {
	s := vs[0]
	for _, v := range vs[1:] {
		s += "," + v
	}
	return s
}

func hasColumns(have, want []string) bool {
	for _, c := range want {
		if !slices.Contains(have, c) {
			return false
		}
	}
	return true
}
