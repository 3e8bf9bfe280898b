// Package sample creates a realistic order-service database: customers,
// orders and order items with indexes and foreign keys, a partitioned event
// table, a schema and table whose names need quoting, and a view. Tests and
// the demo back it up and restore it.
package sample

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

const schema = `
CREATE TABLE customers (
  id         bigserial PRIMARY KEY,
  email      text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
  id          bigserial PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers(id),
  status      text NOT NULL CHECK (status IN ('new', 'paid', 'shipped', 'cancelled')),
  total_cents bigint NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE INDEX orders_created_idx ON orders (created_at);
CREATE TABLE order_items (
  id          bigserial PRIMARY KEY,
  order_id    bigint NOT NULL REFERENCES orders(id),
  sku         text NOT NULL,
  quantity    int NOT NULL,
  price_cents bigint NOT NULL
);
CREATE INDEX order_items_order_idx ON order_items (order_id);
CREATE TABLE events (id bigserial, at date NOT NULL, payload jsonb) PARTITION BY RANGE (at);
CREATE TABLE events_2026_10 PARTITION OF events FOR VALUES FROM ('2026-10-01') TO ('2026-11-01');
CREATE TABLE events_2026_11 PARTITION OF events FOR VALUES FROM ('2026-11-01') TO ('2026-12-01');
CREATE SCHEMA "Billing";
CREATE TABLE "Billing"."Invoice Lines" (id serial PRIMARY KEY, "Order" bigint, note text);
CREATE VIEW order_totals AS
  SELECT o.id, sum(i.quantity * i.price_cents) AS cents FROM orders o JOIN order_items i ON i.order_id = o.id GROUP BY o.id;
`

// Seed creates the schema in the (empty) database at dsn and fills it with
// about 2.5 rows per order: orders/10 customers, orders orders, 1.25 items
// per order, orders/10 events and orders/40 invoice lines.
func Seed(ctx context.Context, dsn string, orders int) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	customers := max(orders/10, 1)
	stmts := []string{
		schema,
		fmt.Sprintf(`INSERT INTO customers (email, created_at)
		  SELECT 'customer' || g || '@example.com', now() - g * interval '1 minute' FROM generate_series(1, %d) g`, customers),
		fmt.Sprintf(`INSERT INTO orders (customer_id, status, total_cents, created_at)
		  SELECT 1 + g %% %d, (ARRAY['new','paid','shipped','cancelled'])[1 + g %% 4], 100 + g %% 9000, now() - g * interval '1 second'
		  FROM generate_series(1, %d) g`, customers, orders),
		fmt.Sprintf(`INSERT INTO order_items (order_id, sku, quantity, price_cents)
		  SELECT 1 + g %% %d, 'SKU-' || (g %% 500), 1 + g %% 5, 100 + g %% 2000 FROM generate_series(1, %d) g`, orders, orders*5/4),
		fmt.Sprintf(`INSERT INTO events (at, payload)
		  SELECT date '2026-10-01' + (g %% 61), jsonb_build_object('n', g) FROM generate_series(1, %d) g`, max(orders/10, 1)),
		fmt.Sprintf(`INSERT INTO "Billing"."Invoice Lines" ("Order", note)
		  SELECT g, 'line ''' || g || '''' FROM generate_series(1, %d) g`, max(orders/40, 1)),
		`ANALYZE`,
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("seed sample database: %w", err)
		}
	}
	return nil
}

// Counts returns the exact row count of every table that stores rows
// (ordinary tables and leaf partitions), keyed by "schema.table".
func Counts(ctx context.Context, dsn string) (map[string]int64, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	  WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'`)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var n [2]string
		return n, r.Scan(&n[0], &n[1])
	})
	if err != nil {
		return nil, err
	}
	counts := map[string]int64{}
	for _, n := range names {
		var c int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM ONLY "+pgx.Identifier{n[0], n[1]}.Sanitize()).Scan(&c); err != nil {
			return nil, err
		}
		counts[n[0]+"."+n[1]] = c
	}
	return counts, nil
}
