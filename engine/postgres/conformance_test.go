package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/backproof/backproof/engine/enginetest"
	"github.com/backproof/backproof/engine/postgres"
	"github.com/backproof/backproof/internal/testenv"
)

func TestConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Harness{
		Kind:         postgres.Kind,
		NewDatabase:  testenv.NewPostgresDB,
		Seed:         pgSeed,
		Extra:        pgExtra,
		Content:      pgContent,
		WritingQuery: "WITH d AS (DELETE FROM orders RETURNING 1) SELECT count(*) FROM d",
	})
}

// pgSeed: variant 2 has fewer orders, with other values under the same ids.
func pgSeed(t testing.TB, dsn string, variant int) {
	testenv.Exec(t, dsn, fmt.Sprintf(`
CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, total numeric(10,2), note text, pad text);
CREATE INDEX orders_customer ON orders (customer);
CREATE TABLE items (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders, qty int CHECK (qty > 0));
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 50;
INSERT INTO orders SELECT i, 'customer ' || (i * %[1]d %% 17), i * %[1]d / 3.0, CASE WHEN i %% 5 = 0 THEN NULL ELSE 'it''s "%[1]d"' END,
  repeat(md5((i * %[1]d)::text), 40)
  FROM generate_series(1, %[2]d) i;
INSERT INTO items SELECT i, 1 + i %% %[2]d, 1 + i %% (3 + %[1]d) FROM generate_series(1, %[3]d) i;`,
		variant, 250-100*(variant-1), 400-150*(variant-1)))
}

func pgExtra(t testing.TB, dsn string) string {
	testenv.Exec(t, dsn, `CREATE TABLE extra (id int PRIMARY KEY, v text); INSERT INTO extra VALUES (1, 'a'), (2, 'b');`)
	return "public.extra"
}

// pgContent reads every table of schema public as id -> row text.
func pgContent(t testing.TB, dsn string) enginetest.Content {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	c := enginetest.Content{}
	for _, tb := range tables {
		items := map[string]string{}
		rows, err := conn.Query(ctx, "SELECT id::text, t::text FROM public."+pgx.Identifier{tb}.Sanitize()+" t")
		if err != nil {
			t.Fatal(err)
		}
		var id, row string
		if _, err := pgx.ForEachRow(rows, []any{&id, &row}, func() error { items[id] = row; return nil }); err != nil {
			t.Fatal(err)
		}
		c["public."+tb] = items
	}
	return c
}
