package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// querier is what a connection and a transaction have in common.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// objectsSQL lists the schema objects pg_dump writes for a database, outside
// system schemas and not owned by an extension, with identifiers quoted as
// pg_dump would. Internal triggers (those behind foreign keys) and the
// built-in plpgsql extension are left out: they come back by themselves.
const objectsSQL = `
WITH user_ns AS (
  SELECT oid, nspname FROM pg_namespace
  WHERE nspname <> 'information_schema' AND nspname NOT LIKE 'pg\_%'
),
ext AS (
  SELECT classid, objid FROM pg_depend WHERE deptype = 'e'
)
SELECT kind, name FROM (
  SELECT CASE c.relkind
           WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'f' THEN 'foreign table'
           WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
           WHEN 'S' THEN 'sequence' ELSE 'index' END,
         format('%I.%I', n.nspname, c.relname)
  FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S', 'i', 'I') AND c.relpersistence <> 't'
    AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_class'::regclass AND objid = c.oid)
    AND NOT EXISTS (SELECT 1 FROM pg_index i JOIN ext ON ext.classid = 'pg_class'::regclass AND ext.objid = i.indrelid
                    WHERE i.indexrelid = c.oid)
  UNION ALL
  SELECT 'constraint', format('%I.%I.%I', n.nspname, c.relname, co.conname)
  FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN user_ns n ON n.oid = c.relnamespace
  WHERE c.relpersistence <> 't'
    AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_class'::regclass AND objid = c.oid)
  UNION ALL
  SELECT 'trigger', format('%I.%I.%I', n.nspname, c.relname, t.tgname)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN user_ns n ON n.oid = c.relnamespace
  WHERE NOT t.tgisinternal AND c.relpersistence <> 't'
    AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_class'::regclass AND objid = c.oid)
  UNION ALL
  SELECT 'function', format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
  FROM pg_proc p JOIN user_ns n ON n.oid = p.pronamespace
  WHERE NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_proc'::regclass AND objid = p.oid)
  UNION ALL
  SELECT 'type', format('%I.%I', n.nspname, t.typname)
  FROM pg_type t JOIN user_ns n ON n.oid = t.typnamespace
  WHERE (t.typtype IN ('e', 'd', 'r', 'm')
         OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
    AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_type'::regclass AND objid = t.oid)
  UNION ALL
  SELECT 'schema', format('%I', n.nspname) FROM user_ns n
  WHERE NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_namespace'::regclass AND objid = n.oid)
  UNION ALL
  SELECT 'extension', format('%I', extname) FROM pg_extension WHERE extname <> 'plpgsql'
) AS o(kind, name)
ORDER BY 1, 2`

// listObjects returns the database's schema objects by kind, each list
// sorted.
func listObjects(ctx context.Context, q querier) (map[string][]string, error) {
	rows, err := q.Query(ctx, objectsSQL)
	if err != nil {
		return nil, fmt.Errorf("list schema objects: %w", err)
	}
	objects := map[string][]string{}
	var kind, name string
	_, err = pgx.ForEachRow(rows, []any{&kind, &name}, func() error {
		objects[kind] = append(objects[kind], name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list schema objects: %w", err)
	}
	return objects, nil
}
